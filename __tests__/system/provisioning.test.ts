/**
 * System test: the synthesized provisioning of a node (null_resource.<node>_consul,
 * _nomad, _keepalived) applied for real over SSH through a real bastion, the way
 * Terraform's SSH communicator does it (see terraform-like.ts).
 *
 * Namespaces: "op" (operator: ssh/scp) ─ "bastion" (sshd) ─ "vm" (sshd). The VM side is
 * isolated from this machine: its sshd runs in a private mount namespace where /etc and
 * /var are overlays on a tmpfs (writes never reach the host), /root is an empty tmpfs and
 * /usr/local/sbin holds stand-ins for consul, nomad, systemctl, sudo and apt-get that
 * record their calls. keepalived (-t), ip, sysctl (per network namespace), useradd run
 * for real inside that isolation.
 */
import * as fs from "fs";
import * as path from "path";
import { cleanup as cleanupSynth, edited, exampleCluster, itIf, synthCluster, type SynthOutput } from "../helpers/synth";
import type { Cluster } from "../../constructs/description/schema";
import { nodesStackName } from "../../constructs/nodes-stack";
import { Sandbox, systemTestPrerequisites, waitFor } from "./sandbox";
import { applyProvisioners, ssh, sshConfigFromConnection, type Operator } from "./terraform-like";
import { INVALID_MARKER, agentStandIns, generationProfile, systemStandIns, writeProfile } from "./provider-standins";

const pre = systemTestPrerequisites(["ip", "unshare", "ssh", "scp", "ssh-keygen", "/usr/sbin/sshd", "keepalived", "useradd"]);

const MARKER = INVALID_MARKER;
const PASSWORD = "t3st-pw";
const VIP = "10.213.0.100";

jest.setTimeout(60000);

/** Stand-in programs on the VM (shared fixtures); each appends its command line to $STATE/calls.log. */
function standIns(state: string, node: string, overlayAddress: string): Record<string, string> {
  return { ...systemStandIns(state), ...agentStandIns(state, node, overlayAddress) };
}

describe("provisioning over SSH through a bastion (synthesized provisioners, real sshd)", () => {
  let sb: Sandbox;
  let op: Operator;
  let state: string;
  let base: Cluster;
  const synths: SynthOutput[] = [];
  // What the VM side must not change on this machine.
  const hostDirs = ["/etc/consul.d", "/etc/nomad.d", "/etc/keepalived", "/etc/sysctl.d", "/etc/systemd/system"];
  const listing = () => Object.fromEntries(hostDirs.map((dir) => [dir, fs.existsSync(dir) ? fs.readdirSync(dir).sort().join(",") : null]));
  const hostBefore = listing();
  const hostNonlocalBind = fs.readFileSync("/proc/sys/net/ipv4/ip_nonlocal_bind", "utf8");
  const hostHasScriptUser = fs.readFileSync("/etc/passwd", "utf8").includes("\nkeepalived_script:");

  const calls = () => (fs.existsSync(path.join(state, "calls.log")) ? fs.readFileSync(path.join(state, "calls.log"), "utf8").split("\n").filter(Boolean) : []);
  const clearCalls = () => fs.rmSync(path.join(state, "calls.log"), { force: true });
  const onVm = (cmd: string) => ssh(op, "node-1", cmd);

  /** Synthesizes `cluster` and applies node-1's resource of `component` like Terraform. */
  function apply(cluster: Cluster, component: string) {
    const out = synthCluster(cluster);
    synths.push(out);
    const stackDir = path.join(out.outdir, "stacks", nodesStackName(cluster));
    const resource = out.stacks[nodesStackName(cluster)].resource.null_resource[`node-1_${component}`];
    expect(resource).toBeDefined();
    return { ...applyProvisioners(op, "node-1", stackDir, resource, { vrrp_password: PASSWORD, vrrp_password_rotation: "1" }), out, resource };
  }

  beforeAll(async () => {
    if (!pre.ok) return;
    sb = new Sandbox("pv");
    const d = sb.dir;
    state = path.join(d, "vm-state");
    fs.mkdirSync(state);
    // The example's servers: the newest generation's versions, datacenter dc1.
    writeProfile(state, { ...generationProfile("2025", "10.213.9.9", "unused"), serversDatacenter: "dc1" });
    const opNs = sb.netns("op");
    const bastionNs = sb.netns("bastion");
    const vmNs = sb.netns("vm");
    sb.link(opNs, "eth0", "10.213.1.1/24", bastionNs, "eth0", "10.213.1.2/24");
    sb.link(bastionNs, "eth1", "10.213.2.1/24", vmNs, "eth0", "10.213.2.2/24");
    // The VM's overlay interface (a veth pair inside the VM namespace; dummy links may be unavailable).
    sb.must(["ip", "-n", vmNs, "link", "add", "ovl213", "type", "veth", "peer", "name", "ovl213p"]);
    sb.must(["ip", "-n", vmNs, "address", "add", "10.213.0.1/24", "dev", "ovl213"]);
    sb.must(["ip", "-n", vmNs, "link", "set", "ovl213", "up"]);
    sb.must(["ip", "-n", vmNs, "link", "set", "ovl213p", "up"]);

    for (const k of ["operator", "bastion_host", "vm_host"]) sb.must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", path.join(d, k)]);
    fs.copyFileSync(path.join(d, "operator.pub"), path.join(d, "authorized_keys"));
    const pub = (k: string) => fs.readFileSync(path.join(d, `${k}.pub`), "utf8").trim().split(" ").slice(0, 2).join(" ");

    const sshdConfig = (name: string, listen: string) => {
      const file = path.join(d, `${name}_sshd_config`);
      fs.writeFileSync(
        file,
        [
          `ListenAddress ${listen}`,
          `HostKey ${path.join(d, `${name}_host`)}`,
          `AuthorizedKeysFile ${path.join(d, "authorized_keys")}`,
          "PidFile none",
          "StrictModes no",
          "UsePAM no",
          "PermitRootLogin prohibit-password",
          "PasswordAuthentication no",
          "KbdInteractiveAuthentication no",
          "PermitTTY no",
          "PrintMotd no",
          "PrintLastLog no",
          "Subsystem sftp internal-sftp",
          "LogLevel VERBOSE",
          "",
        ].join("\n"),
      );
      return file;
    };
    // sshd's privilege separation directory (what the openssh-server service creates).
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    sb.start("sshd-bastion", bastionNs, ["/usr/sbin/sshd", "-D", "-e", "-f", sshdConfig("bastion", "10.213.1.2")]);

    // The VM: private mount namespace; /etc and /var are overlays whose upper layer is a tmpfs.
    const bin = path.join(d, "vm-bin");
    fs.mkdirSync(bin);
    for (const [name, text] of Object.entries(standIns(state, "node-1", "10.213.0.1"))) fs.writeFileSync(path.join(bin, name), text, { mode: 0o755 });
    const priv = path.join(d, "vm-private");
    fs.mkdirSync(priv);
    const vmSetup = `set -euo pipefail
mount -t tmpfs tmpfs ${priv}
for dir in etc var; do
  mkdir -p ${priv}/$dir-upper ${priv}/$dir-work
  mount -t overlay overlay -o lowerdir=/$dir,upperdir=${priv}/$dir-upper,workdir=${priv}/$dir-work /$dir
done
mount -t tmpfs tmpfs /root
mount --bind ${bin} /usr/local/sbin
exec /usr/sbin/sshd -D -e -f ${sshdConfig("vm", "10.213.2.2")}`;
    sb.start("sshd-vm", vmNs, ["unshare", "--mount", "--propagation", "private", "bash", "-c", vmSetup]);

    base = edited(exampleCluster(), (c) => {
      c.name = `sys-${sb.id}`;
      c.bastion = { host: "10.213.1.2", port: 22, user: "root", hostKey: pub("bastion_host") };
      c.ssh = { user: "root", privateKey: { file: path.join(d, "operator") } };
      c.overlay = { interface: "ovl213", prefix: "10.213.0.0/24", addressing: "static", linkDns: "none" };
      c.floatingIp = { address: VIP, virtualRouterId: 213, advertInterval: 1 };
      c.nodes[0] = { ...c.nodes[0], address: "10.213.2.2", overlayAddress: "10.213.0.1", hostKey: pub("vm_host") };
      c.nodes[1] = { ...c.nodes[1], address: "10.213.2.3", overlayAddress: "10.213.0.2" };
    });

    // The operator's ssh config, from the synthesized connection block (host keys pinned).
    const first = synthCluster(base);
    synths.push(first);
    const conn = first.stacks[nodesStackName(base)].resource.null_resource["node-1_consul"].connection;
    expect(conn.private_key).toContain(path.join(d, "operator"));
    const knownHosts = path.join(d, "known_hosts");
    fs.writeFileSync(knownHosts, `${conn.bastion_host} ${conn.bastion_host_key}\n${conn.host} ${conn.host_key}\n`);
    const sshConfig = path.join(d, "ssh_config");
    fs.writeFileSync(sshConfig, sshConfigFromConnection("node-1", conn, path.join(d, "operator"), knownHosts));
    op = { sandbox: sb, ns: opNs, sshConfig };
    await waitFor("ssh to the VM through the bastion", () => onVm("true").status === 0, 15000, () => onVm("true").stderr);
  });

  afterAll(() => {
    for (const s of synths) cleanupSynth(s);
    if (!sb) return;
    fs.rmSync(`/tmp/provision-sys-${sb.id}`, { recursive: true, force: true });
    sb.cleanup();
    expect(sb.leftoverNamespaces()).toEqual([]);
    // The CI machine itself is untouched.
    expect(listing()).toEqual(hostBefore);
    expect(fs.readFileSync("/proc/sys/net/ipv4/ip_nonlocal_bind", "utf8")).toBe(hostNonlocalBind);
    expect(fs.readFileSync("/etc/passwd", "utf8").includes("\nkeepalived_script:")).toBe(hostHasScriptUser);
  });

  itIf(pre.ok, pre.reason)("consul and nomad: the first run installs and restarts, a second identical run restarts nothing", () => {
    clearCalls();
    for (const agent of ["consul", "nomad"]) {
      const r = apply(base, agent);
      expect({ agent, ok: r.ok, output: r.output }).toMatchObject({ ok: true });
      expect(r.output).toContain(`configuration changed: restarting ${agent}`);
      expect(r.output).toContain("joined with address 10.213.0.1");
      const rendered = r.out.files[nodesStackName(base)][`rendered/node-1/${agent}/${agent}.hcl`];
      expect(onVm(`cat /etc/${agent}.d/${agent}.hcl`).stdout).toBe(rendered);
    }
    expect(calls()).toEqual(expect.arrayContaining(["systemctl restart consul", "systemctl restart nomad"]));
    expect(calls().filter((c) => /^(consul validate|nomad config validate) /.test(c))).toHaveLength(2);
    expect(onVm("stat -c %a /etc/systemd/system/consul.service.d/10-dns-port.conf").stdout.trim()).toBe("644");
    // The staging directories are gone.
    expect(onVm(`ls /tmp/provision-${base.name} 2>/dev/null | wc -l`).stdout.trim()).toBe("0");

    clearCalls();
    for (const agent of ["consul", "nomad"]) {
      const r = apply(base, agent);
      expect({ agent, ok: r.ok, output: r.output }).toMatchObject({ ok: true });
      expect(r.output).toContain(`configuration unchanged: ${agent} left running as it is`);
    }
    expect(calls().filter((c) => /^systemctl (restart|start|reload|stop)/.test(c))).toEqual([]);
  });

  itIf(pre.ok, pre.reason)("a config that fails validation fails the run with the script's message and leaves the previous config", () => {
    const before = onVm("cat /etc/consul.d/consul.hcl").stdout;
    expect(before).toContain('node_name  = "node-1"');
    clearCalls();
    const broken = edited(base, (c) => {
      c.consul.extraConfig = `# ${MARKER}\nlog_level = "DEBUG"\n`;
    });
    const r = apply(broken, "consul");
    expect(r.ok).toBe(false);
    expect(r.output).toContain("the new consul configuration does not validate; nothing was changed.");
    expect(r.output).toContain(`Config validation failed: ${MARKER}`);
    expect(r.output).toMatch(/Process exited with status 1/);
    expect(onVm("cat /etc/consul.d/consul.hcl").stdout).toBe(before);
    expect(onVm("ls /etc/consul.d").stdout.split("\n")).not.toContain("zz-extra.hcl");
    expect(calls().filter((c) => c.startsWith("systemctl"))).toEqual([]);
    // Terraform's staging dir is removed on failure too.
    expect(onVm(`ls /tmp/provision-${base.name} 2>/dev/null | wc -l`).stdout.trim()).toBe("0");
  });

  itIf(pre.ok, pre.reason)("keepalived: installs the config with the secret, the sysctl and the script user; idempotent; reloads on a peer change", () => {
    clearCalls();
    const r = apply(base, "keepalived");
    expect({ ok: r.ok, output: r.output }).toMatchObject({ ok: true });
    expect(r.output).toContain("installed /etc/keepalived/keepalived.conf");
    expect(r.output).toContain("starting keepalived");
    expect(r.output).not.toContain(PASSWORD);
    // The synthesized files hold the placeholder, the installed one the password (mode 0600).
    const rendered = r.out.files[nodesStackName(base)]["rendered/node-1/keepalived/keepalived.conf"];
    expect(rendered).not.toContain(PASSWORD);
    expect(JSON.stringify(r.out.stacks)).not.toContain(PASSWORD);
    const installed = onVm("cat /etc/keepalived/keepalived.conf").stdout;
    expect(installed).toBe(`${rendered.replace("@@VRRP_PASSWORD@@", PASSWORD).trimEnd()}\n`);
    expect(onVm("stat -c '%a %U' /etc/keepalived/keepalived.conf").stdout.trim()).toBe("600 root");
    expect(onVm("sysctl -n net.ipv4.ip_nonlocal_bind").stdout.trim()).toBe("1");
    expect(onVm("cat /etc/sysctl.d/60-floating-ip.conf").stdout).toContain("net.ipv4.ip_nonlocal_bind = 1");
    expect(onVm("getent passwd keepalived_script").stdout).toMatch(/^keepalived_script:x:\d+:\d+:.*:\/usr\/sbin\/nologin$/m);
    expect(calls()).toEqual(expect.arrayContaining(["systemctl enable --quiet keepalived", "systemctl start keepalived"]));
    expect(calls().filter((c) => c.startsWith("apt-get"))).toEqual([]);
    // The password file does not outlive the run.
    expect(onVm(`ls /tmp/provision-${base.name} 2>/dev/null | wc -l`).stdout.trim()).toBe("0");

    clearCalls();
    const again = apply(base, "keepalived");
    expect({ ok: again.ok, output: again.output }).toMatchObject({ ok: true });
    expect(again.output).toContain("configuration unchanged: keepalived left running as it is");
    expect(calls().filter((c) => /^systemctl (restart|start|reload|stop)/.test(c))).toEqual([]);

    // A third eligible node: node-1's peer list changes → only a reload.
    clearCalls();
    const grown = edited(base, (c) => {
      c.nodes.push({ ...c.nodes[1], name: "node-3", address: "10.213.2.4", overlayAddress: "10.213.0.3", floatingIp: { eligible: true, priority: 50 } });
    });
    const reload = apply(grown, "keepalived");
    expect({ ok: reload.ok, output: reload.output }).toMatchObject({ ok: true });
    expect(reload.output).toContain("configuration changed: reloading keepalived");
    expect(onVm("cat /etc/keepalived/keepalived.conf").stdout).toContain("10.213.0.3    # node-3");
    expect(calls().filter((c) => /^systemctl (restart|start|reload|stop)/.test(c))).toEqual(["systemctl reload keepalived"]);
  });

  itIf(pre.ok, pre.reason)("keepalived: a config keepalived -t rejects is not installed; maintenance hands the floating IP over", () => {
    const before = onVm("cat /etc/keepalived/keepalived.conf").stdout;
    clearCalls();
    // A router id the schema would refuse (edited() bypasses it): the real `keepalived -t` refuses it too.
    const rejected = apply(edited(base, (c) => { c.floatingIp.virtualRouterId = 300; }), "keepalived");
    expect(rejected.ok).toBe(false);
    expect(rejected.output).toContain("the new keepalived configuration does not validate; nothing was changed.");
    expect(rejected.output).toContain("VRID '300' not valid");
    expect(rejected.output).not.toContain(PASSWORD);
    expect(onVm("cat /etc/keepalived/keepalived.conf").stdout).toBe(before);
    expect(calls().filter((c) => c.startsWith("systemctl"))).toEqual([]);
    // A node without its overlay address fails before anything is touched.
    const wrongIface = apply(edited(base, (c) => { c.overlay.interface = "ovl999"; }), "keepalived");
    expect(wrongIface.ok).toBe(false);
    expect(wrongIface.output).toContain("overlay interface ovl999 does not exist on this VM");

    // The node holds the floating IP and goes into maintenance: keepalived is restarted so
    // that the stopping instance sends priority 0 and a peer takes over.
    sb.must(["ip", "-n", `${sb.id}-vm`, "address", "add", `${VIP}/24`, "dev", "ovl213"]);
    clearCalls();
    const maint = apply(edited(base, (c) => { c.nodes[0].maintenance = true; }), "keepalived");
    expect({ ok: maint.ok, output: maint.output }).toMatchObject({ ok: true });
    expect(maint.output).toContain("maintenance: handing the floating IP");
    expect(onVm("cat /etc/keepalived/keepalived.conf").stdout).toMatch(/^\s*priority 1$/m);
    expect(calls().filter((c) => /^systemctl (restart|start|reload|stop)/.test(c))).toEqual(["systemctl reload keepalived", "systemctl restart keepalived"]);
  });

  itIf(pre.ok, pre.reason)("a node that is no longer eligible gets keepalived stopped, disabled and its config removed", () => {
    clearCalls();
    const r = apply(edited(base, (c) => { c.nodes[0].floatingIp.eligible = false; }), "keepalived");
    expect({ ok: r.ok, output: r.output }).toMatchObject({ ok: true });
    expect(r.output).toContain("stopping and disabling keepalived");
    expect(onVm("test -e /etc/keepalived/keepalived.conf && echo present || echo absent").stdout.trim()).toBe("absent");
    expect(calls()).toContain("systemctl disable --now --quiet keepalived");
    const again = apply(edited(base, (c) => { c.nodes[0].floatingIp.eligible = false; }), "keepalived");
    expect(again.ok).toBe(true);
    expect(again.output).not.toContain("stopping");
  });
});
