/**
 * System test: changes to a provisioned cluster, applied by the real Terraform (1.11.4)
 * to two VMs behind a real sshd bastion (lab.ts: real sshd, keepalived and Consul (the
 * provider's server and our rendered clients), a Nomad stand-in, each VM isolated in its
 * own mount namespace). engines.test.ts covers the
 * first apply with both engines; this file follows one cluster through changes:
 * re-provisioning without a change restarts nothing, a config that fails validation stops
 * the roll and leaves the previous config, keepalived gets the secret and real
 * keepalived takes the floating IP, a maintenance hands it over, a node added reloads its
 * peers' keepalived, a node removed is decommissioned, a node no longer eligible stops
 * keepalived.
 */
import { STAGING_ROOT } from "../../constructs/provisioned-files";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { REPO_ROOT, edited, itIf } from "../helpers/synth";
import type { Cluster } from "../../constructs/description/schema";
import { nodesStackName } from "../../constructs/nodes-stack";
import { LAB_CONSUL_REJECTS, buildLab, labPrerequisites, type Lab } from "./lab";
import { catalogNodes, consulCli } from "./consul";
import { Workspace, enginePrerequisites, type EngineRun } from "./engine";
import { waitFor } from "./sandbox";

const engines = enginePrerequisites();
const ok = labPrerequisites.ok && engines.ok;
const reason = [labPrerequisites.reason, engines.reason].filter(Boolean).join("; ");
const PASSWORD = "t3st-pw";

jest.setTimeout(600000);

const expectOk = (r: EngineRun) => expect({ status: r.status, output: r.ok ? "" : r.output }).toEqual({ status: 0, output: "" });
const restartsIn = (calls: string[]) => calls.filter((c) => /^systemctl (restart|start|reload|stop)/.test(c));

describe("provisioning changes applied by the real Terraform through a bastion", () => {
  let lab: Lab;
  let ws: Workspace;
  let base: Cluster;
  // What the VMs must not change on this machine.
  const hostDirs = ["/etc/consul.d", "/etc/nomad.d", "/etc/keepalived", "/etc/sysctl.d", "/etc/systemd/system"];
  const listing = () => Object.fromEntries(hostDirs.map((dir) => [dir, fs.existsSync(dir) ? fs.readdirSync(dir).sort().join(",") : null]));
  const hostBefore = listing();
  const hostNonlocalBind = fs.readFileSync("/proc/sys/net/ipv4/ip_nonlocal_bind", "utf8");
  const hostHasScriptUser = fs.readFileSync("/etc/passwd", "utf8").includes("\nkeepalived_script:");
  const vm = (i: number) => lab.vms[i];
  const clearCalls = () => lab.vms.forEach((v) => v.clearCalls());

  /** Synthesizes `cluster` into the workspace and applies it (optionally a subset). */
  async function deploy(cluster: Cluster, args: string[] = []) {
    const out = ws.synth(cluster);
    const run = await ws.apply({ args });
    ws.assertNoSecret(run);
    return { run, out };
  }

  beforeAll(async () => {
    if (!ok) return;
    // Three VMs; the cluster starts with two (node-3 joins and leaves later).
    lab = await buildLab({ vms: 3, tag: "pv" });
    base = lab.cluster((c) => (c.nodes = c.nodes.slice(0, 2)));
    for (const v of lab.vms) v.serveHealth(base.app.haproxy.statsPort);
    ws = new Workspace(lab, "terraform", { vrrp_password: PASSWORD });
    ws.synth(base);
    const init = await ws.init();
    if (!init.ok) throw new Error(init.output);
  });

  afterAll(() => {
    if (!lab) return;
    lab.cleanup();
    expect(lab.sandbox.leftoverNamespaces()).toEqual([]);
    // The CI machine itself is untouched.
    expect(listing()).toEqual(hostBefore);
    expect(fs.readFileSync("/proc/sys/net/ipv4/ip_nonlocal_bind", "utf8")).toBe(hostNonlocalBind);
    expect(fs.readFileSync("/etc/passwd", "utf8").includes("\nkeepalived_script:")).toBe(hostHasScriptUser);
  });

  itIf(ok, reason)("first deploy: agents installed, keepalived with the secret, the real keepalived takes the floating IP on the top priority", async () => {
    const { run, out } = await deploy(base);
    expectOk(run);
    expect(run.output).toContain("configuration changed: restarting consul");
    expect(run.output).toContain("joined with address 10.210.0.1");
    const stack = out.files[nodesStackName(base)];
    const rendered = stack["rendered/node-1/keepalived/keepalived.conf"];
    expect(rendered).not.toContain(PASSWORD);
    expect(vm(0).read("/etc/keepalived/keepalived.conf")).toBe(`${rendered.replace("@@VRRP_PASSWORD@@", PASSWORD).trimEnd()}\n`);
    expect(vm(0).exec("stat -c '%a %U' /etc/keepalived/keepalived.conf").stdout.trim()).toBe("600 root");
    // The provisioner's session writes the staged files under umask 077; what the install
    // creates without a stated mode gets the usual one (found by the Ansible peer's --check:
    // /etc/nomad.d came out 0700, cli.env 0600).
    expect(vm(0).exec("stat -c '%a' /etc/nomad.d /etc/nomad.d/cli.env").stdout.trim().split("\n")).toEqual(["755", "644"]);
    expect(vm(0).exec("sysctl -n net.ipv4.ip_nonlocal_bind").stdout.trim()).toBe("1");
    expect(vm(0).exec("getent passwd keepalived_script").stdout).toMatch(/^keepalived_script:x:\d+:\d+:.*:\/usr\/sbin\/nologin$/m);
    expect(vm(0).read("/etc/systemd/system/consul.service.d/10-dns-port.conf")).toBe(stack["rendered/node-1/consul/consul-dns.conf"]);
    // Staging directories and the password file do not outlive the run.
    for (const v of lab.vms) expect(v.exec(`ls ~/${STAGING_ROOT}/${base.name} 2>/dev/null | wc -l`).stdout.trim()).toBe("0");
    // The real servers' catalog has both nodes at their overlay addresses.
    expect(catalogNodes(lab.sandbox, lab.servers.consul)).toMatchObject({ "node-1": "10.210.0.1", "node-2": "10.210.0.2" });
    // Real keepalived, real VRRP on the overlay, tracking the real agent's DNS: node-1 (priority 150) wins.
    await waitFor("node-1 to hold the floating IP", () => vm(0).holdsFloatingIp(), 30000);
    expect(vm(1).holdsFloatingIp()).toBe(false);
  });

  itIf(ok, reason)("npm run drift on the files the real deploy installed: none; a hand edit of the running agent's config is reported, then undone", () => {
    const file = path.join(lab.dir, "described.yaml");
    fs.writeFileSync(file, stringify(base));
    const drift = () => {
      const r = lab.sandbox.run(["ip", "netns", "exec", lab.opNs, path.join(REPO_ROOT, "node_modules", ".bin", "tsx"), path.join(REPO_ROOT, "scripts", "drift.ts")], {
        timeoutMs: 120000,
        env: { ...process.env, CLUSTER_FILE: file },
      });
      return { status: r.status, out: r.stdout + r.stderr };
    };
    expect(drift()).toMatchObject({ status: 0 });
    const edit = (from: string, to: string) => expect(vm(0).exec(`sed -i 's/^log_level  = "${from}"$/log_level  = "${to}"/' /etc/consul.d/consul.hcl`).status).toBe(0);
    edit("INFO", "DEBUG");
    try {
      const r = drift();
      expect(r.status).toBe(2);
      expect(r.out).toContain("node-1: DRIFT in consul");
    } finally {
      edit("DEBUG", "INFO");
    }
    expect(drift()).toMatchObject({ status: 0 });
  });

  itIf(ok, reason)("re-provisioning with identical files (-replace) restarts and reloads nothing", async () => {
    clearCalls();
    const replace = ["consul", "nomad", "keepalived"].map((a) => `-replace=null_resource.node-1_${a}`);
    const { run } = await deploy(base, replace);
    expectOk(run);
    for (const agent of ["consul", "nomad", "keepalived"]) expect(run.output).toContain(`configuration unchanged: ${agent} left running as it is`);
    expect(restartsIn(vm(0).calls())).toEqual([]);
    expect(vm(1).calls()).toEqual([]);
  });

  itIf(ok, reason)("a Consul config that fails validation fails the apply at node-1, keeps its config, and node-2 is never touched", async () => {
    const before = vm(0).read("/etc/consul.d/consul.hcl");
    clearCalls();
    const broken = edited(base, (c) => (c.consul.extraConfig = LAB_CONSUL_REJECTS.extraConfig));
    const { run } = await deploy(broken);
    expect(run.status).toBe(1);
    expect(run.output).toContain("the new consul configuration does not validate; nothing was changed.");
    expect(run.output).toContain(LAB_CONSUL_REJECTS.message);
    expect(vm(0).read("/etc/consul.d/consul.hcl")).toBe(before);
    expect(vm(0).read("/etc/consul.d/zz-extra.hcl")).toBeUndefined();
    expect(restartsIn(vm(0).calls())).toEqual([]);
    // The roll stopped at the failing node: node-2's Consul waits for node-1's.
    expect(vm(1).calls()).toEqual([]);
    // Back to the description that works: the failed (tainted) resource is re-run, unchanged.
    const { run: back } = await deploy(base);
    expectOk(back);
    expect(back.output).toContain("configuration unchanged: consul left running as it is");
    expect((await ws.plan({ detailedExitcode: true })).status).toBe(0);
  });

  itIf(ok, reason)("a keepalived config keepalived -t rejects is not installed", async () => {
    const before = vm(0).read("/etc/keepalived/keepalived.conf");
    clearCalls();
    // A router id the schema would refuse (edited() bypasses it): the real `keepalived -t` refuses it too.
    const { run } = await deploy(edited(base, (c) => (c.floatingIp.virtualRouterId = 300)), ["-target=null_resource.node-1_keepalived"]);
    expect(run.status).toBe(1);
    expect(run.output).toContain("the new keepalived configuration does not validate; nothing was changed.");
    expect(run.output).toContain("VRID '300' not valid");
    expect(vm(0).read("/etc/keepalived/keepalived.conf")).toBe(before);
    expect(restartsIn(vm(0).calls())).toEqual([]);
    expectOk((await deploy(base)).run);
  });

  itIf(ok, reason)("maintenance on the holder: keepalived priority 1 and a restart hand the floating IP to node-2; Nomad drains", async () => {
    expect(vm(0).holdsFloatingIp()).toBe(true);
    clearCalls();
    const { run } = await deploy(edited(base, (c) => (c.nodes[0].maintenance = true)));
    expectOk(run);
    expect(run.output).toContain("maintenance: handing the floating IP");
    expect(vm(0).read("/etc/keepalived/keepalived.conf")).toMatch(/^\s*priority 1$/m);
    expect(vm(0).calls()).toEqual(expect.arrayContaining(["systemctl restart keepalived"]));
    expect(vm(0).calls().some((c) => c.startsWith("nomad node drain"))).toBe(true);
    await waitFor("node-2 to take the floating IP", () => vm(1).holdsFloatingIp(), 30000);
    expect(vm(0).holdsFloatingIp()).toBe(false);
    expectOk((await deploy(base)).run);
  });

  itIf(ok, reason)("a node added: it is provisioned, and the others' keepalived only reloads (new peer)", async () => {
    clearCalls();
    const { run } = await deploy(lab.cluster());
    expectOk(run);
    for (const i of [0, 1]) {
      expect(vm(i).read("/etc/keepalived/keepalived.conf")).toContain("10.210.0.3    # node-3");
      expect(restartsIn(vm(i).calls())).toEqual(["systemctl reload keepalived"]);
      expect(vm(i).keepalivedRunning()).toBe(true);
    }
    expect(vm(2).calls()).toEqual(expect.arrayContaining(["systemctl restart consul", "systemctl restart nomad"]));
    expect(vm(2).keepalivedRunning()).toBe(true);
  });

  itIf(ok, reason)("a node removed is decommissioned; a node no longer eligible gets keepalived stopped, disabled and its config removed", async () => {
    clearCalls();
    const { run } = await deploy(edited(base, (c) => (c.nodes[1].floatingIp.eligible = false)));
    expectOk(run);
    // node-3: its terraform_data.node_membership instance is destroyed, its decommission runs.
    expect(vm(2).calls().filter((c) => /^(consul leave|nomad node drain)/.test(c)).length).toBe(2);
    // The real servers saw node-3 leave gracefully (`consul members` Status column).
    const members = consulCli(lab.sandbox, lab.servers.ns, ["members", `-http-addr=${lab.servers.consul.http}`]).stdout;
    expect(members).toMatch(/^node-3\s+10\.210\.0\.3:8301\s+left\s/m);
    expect(vm(2).keepalivedRunning()).toBe(false);
    // node-2: no longer eligible.
    expect(run.output).toContain("stopping and disabling keepalived");
    expect(vm(1).read("/etc/keepalived/keepalived.conf")).toBeUndefined();
    expect(vm(1).calls()).toContain("systemctl disable --now --quiet keepalived");
    expect(vm(1).keepalivedRunning()).toBe(false);
  });
});
