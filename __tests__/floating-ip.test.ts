/**
 * The floating IP in the synthesized nodes stack: keepalived resources, their order and
 * triggers, the secret's path, and the rendered keepalived.conf per node.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cleanup, edited, exampleCluster, hasCommand, itIf, resourcesOf, synthCluster, type SynthOutput } from "./helpers/synth";
import type { Cluster } from "../constructs/description/schema";
import { nodesStackName } from "../constructs/nodes-stack";
import { VRRP_PASSWORD_PLACEHOLDER, renderKeepalivedConfig } from "../constructs/render/keepalived";

function synthNodes(c: Cluster): { out: SynthOutput; stack: any; files: Record<string, string> } {
  const out = synthCluster(c);
  return { out, stack: out.stacks[nodesStackName(c)], files: out.files[nodesStackName(c)] };
}

const outs: SynthOutput[] = [];
afterAll(() => outs.forEach(cleanup));
function nodes(c: Cluster) {
  const r = synthNodes(c);
  outs.push(r.out);
  return r;
}

describe("keepalived resources", () => {
  const c = exampleCluster();
  const { stack, files } = nodes(c);
  const res = resourcesOf(stack, "null_resource");

  it("one null_resource.<node>_keepalived per node, after its Consul agent and the previous node's keepalived, before its Nomad agent", () => {
    expect(Object.keys(res).sort()).toEqual(["node-1_consul", "node-1_keepalived", "node-1_nomad", "node-2_consul", "node-2_keepalived", "node-2_nomad"]);
    expect(res["node-1_keepalived"].depends_on).toEqual(["terraform_data.node_membership", "null_resource.node-1_consul"]);
    expect(res["node-2_keepalived"].depends_on).toEqual(["terraform_data.node_membership", "null_resource.node-2_consul", "null_resource.node-1_keepalived"]);
    expect(res["node-2_nomad"].depends_on).toContain("null_resource.node-2_keepalived");
  });

  it("drops unicast_fault_no_peer on keepalived older than 2.2.7 (which rejects it), keeps it on newer ones", () => {
    const install = files["rendered/node-1/keepalived/install.sh"];
    const start = install.indexOf("version=$(keepalived --version");
    const snippet = install.slice(start, install.indexOf("\nfi\n", start) + 4);
    expect(start).toBeGreaterThan(0);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kv-"));
    try {
      const conf = files["rendered/node-1/keepalived/keepalived.conf"];
      expect(conf).toMatch(/^\s+unicast_fault_no_peer$/m);
      const run = (version: string) => {
        const candidate = path.join(dir, `${version}.conf`);
        fs.writeFileSync(candidate, conf);
        const script = `candidate=${candidate}\nlog() { :; }\nkeepalived() { echo "Keepalived v${version} (01/01,2024)" >&2; }\n${snippet}`;
        expect(spawnSync("bash", ["-c", script]).status).toBe(0);
        return fs.readFileSync(candidate, "utf8");
      };
      expect(run("2.2.4")).not.toContain("unicast_fault_no_peer");
      expect(run("2.2.4").replace(/\n/g, "")).toBe(conf.replace(/^\s+unicast_fault_no_peer\n/m, "").replace(/\n/g, ""));
      expect(run("2.2.7")).toBe(conf);
      expect(run("2.3.1")).toBe(conf);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the VRRP password is a sensitive variable without default, uploaded by content, never in triggers or files", () => {
    expect(stack.variable.vrrp_password).toMatchObject({ type: "string", sensitive: true, nullable: false });
    expect(stack.variable.vrrp_password.default).toBeUndefined();
    const provs = res["node-1_keepalived"].provisioner.map((p: any) => Object.entries(p)[0]);
    const secret = provs.filter(([t, b]: any) => t === "file" && b.content !== undefined);
    expect(secret).toEqual([["file", { content: "${var.vrrp_password}", destination: ".nomad-cluster-deploy/team-example/keepalived/vrrp_password" }]]);
    // The install runs after every upload, and keeps its exit status.
    expect(provs.map(([t]: any) => t)).toEqual(["remote-exec", "file", "remote-exec"]);
    const last = provs[provs.length - 1][1].inline.slice(-2);
    expect(last[0]).toContain("then sudo bash '.nomad-cluster-deploy/team-example/keepalived/install.sh' || rc=$?;");
    expect(last[1]).toBe('rm -rf "$stage"; exit $rc');
    // no sensitive value in the remote-exec: the engines would suppress its output (validation errors included)
    expect(JSON.stringify(provs[provs.length - 1][1])).not.toContain("var.");
    const triggers = JSON.stringify(res["node-1_keepalived"].triggers);
    expect(triggers).not.toContain("vrrp_password}");
    expect(triggers).not.toMatch(/sha256\(|bcrypt|base64/);
    expect(res["node-1_keepalived"].triggers.vrrp_password_rotation).toBe("${var.vrrp_password_rotation}");
    expect(files["rendered/node-1/keepalived/keepalived.conf"]).toContain(`auth_pass ${VRRP_PASSWORD_PLACEHOLDER}`);
  });

  it("synth needs no secret: no TF_VAR is read and no rendered file varies with one", () => {
    const before = process.env.TF_VAR_vrrp_password;
    process.env.TF_VAR_vrrp_password = "leak-me";
    try {
      const again = nodes(c);
      expect(JSON.stringify(again.stack)).not.toContain("leak-me");
      expect(Object.values(again.files).join("\n")).not.toContain("leak-me");
    } finally {
      if (before === undefined) delete process.env.TF_VAR_vrrp_password;
      else process.env.TF_VAR_vrrp_password = before;
    }
  });

  it("renders a readable keepalived.conf per node: unicast peers, BACKUP + nopreempt, health tracking", () => {
    const conf = files["rendered/node-1/keepalived/keepalived.conf"];
    for (const line of [
      "state BACKUP",
      "nopreempt",
      "interface vxlan100",
      "virtual_router_id 100",
      "priority 150",
      "advert_int 1",
      "unicast_src_ip 172.16.1.11",
      "172.16.1.12    # node-2",
      "unicast_fault_no_peer",
      "check_unicast_src",
      "auth_type PASS",
      "172.16.3.100/16 dev vxlan100",
      'script "/usr/bin/curl -fsS --max-time 1 -o /dev/null http://172.16.1.11:8404/healthz"',
      "weight 0",
      "enable_script_security",
      "script_user keepalived_script",
    ]) {
      expect(conf).toContain(line);
    }
    expect(conf).not.toMatch(/state MASTER/);
    expect(files["rendered/node-2/keepalived/keepalived.conf"]).toContain("unicast_src_ip 172.16.1.12");
    expect(files["rendered/node-2/keepalived/keepalived.conf"]).toContain("priority 100");
    expect(files["rendered/node-1/keepalived/60-floating-ip.conf"]).toContain("net.ipv4.ip_nonlocal_bind = 1");
  });

  it("outputs the candidates with their effective priority", () => {
    expect(stack.output.floating_ip_candidates.value).toEqual({
      "node-1": { overlay_address: "172.16.1.11", priority: 150, maintenance: false },
      "node-2": { overlay_address: "172.16.1.12", priority: 100, maintenance: false },
    });
  });

  itIf(hasCommand("shellcheck"), "shellcheck is not installed (apt-get install shellcheck)")("install scripts are shellcheck-clean", () => {
    const scripts = Object.keys(files).filter((f) => f.includes("/keepalived/") && f.endsWith(".sh"));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sc-"));
    try {
      const paths = scripts.map((f, i) => {
        const p = path.join(dir, `${i}.sh`);
        fs.writeFileSync(p, files[f]);
        return p;
      });
      const removal = nodes(edited(c, (x) => { x.nodes[1].floatingIp.eligible = false; })).files["rendered/node-2/keepalived/install.sh"];
      fs.writeFileSync(path.join(dir, "removal.sh"), removal);
      const r = spawnSync("shellcheck", ["-S", "warning", ...paths, path.join(dir, "removal.sh")], { encoding: "utf8" });
      expect(r.stdout + r.stderr).toBe("");
      expect(r.status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("blast radius and variants", () => {
  const c = exampleCluster();
  const base = resourcesOf(nodes(c).stack, "null_resource");

  it("a new eligible node changes the peers' keepalived triggers only, never their Consul or Nomad", () => {
    const grown = edited(c, (x) => {
      x.nodes.push({ ...x.nodes[1], name: "node-3", address: "192.0.2.13", overlayAddress: "172.16.1.13", floatingIp: { eligible: true, priority: 50 } });
    });
    const after = resourcesOf(nodes(grown).stack, "null_resource");
    for (const n of ["node-1", "node-2"]) {
      expect(after[`${n}_consul`].triggers).toEqual(base[`${n}_consul`].triggers);
      expect(after[`${n}_nomad`].triggers).toEqual(base[`${n}_nomad`].triggers);
      expect(after[`${n}_keepalived`].triggers.sha256_keepalived_conf).not.toEqual(base[`${n}_keepalived`].triggers.sha256_keepalived_conf);
      expect(after[`${n}_keepalived`].triggers.sha256_install_sh).toEqual(base[`${n}_keepalived`].triggers.sha256_install_sh);
    }
  });

  it("maintenance drops the node's priority to 1 and marks the hand-over in its script; clearing restores it", () => {
    const m = edited(c, (x) => { x.nodes[0].maintenance = true; });
    const { files, stack } = nodes(m);
    expect(files["rendered/node-1/keepalived/keepalived.conf"]).toMatch(/^\s*priority 1$/m);
    expect(files["rendered/node-1/keepalived/install.sh"]).toContain("readonly MAINTENANCE=true");
    expect(stack.output.floating_ip_candidates.value["node-1"].priority).toBe(1);
    expect(files["rendered/node-2/keepalived/keepalived.conf"]).toMatch(/^\s*priority 100$/m);
    expect(resourcesOf(nodes(c).stack, "null_resource")["node-1_keepalived"].triggers).toEqual(base["node-1_keepalived"].triggers);
  });

  it("a non-eligible node gets the removal script, no secret, and is nobody's peer", () => {
    const x = edited(c, (y) => { y.nodes[1].floatingIp.eligible = false; });
    const { files, stack } = nodes(x);
    const r = resourcesOf(stack, "null_resource")["node-2_keepalived"];
    expect(Object.keys(files).filter((f) => f.startsWith("rendered/node-2/keepalived/"))).toEqual(["rendered/node-2/keepalived/install.sh"]);
    expect(files["rendered/node-2/keepalived/install.sh"]).toContain("systemctl disable --now --quiet keepalived");
    expect(JSON.stringify(r.provisioner)).not.toContain("vrrp_password");
    expect(r.triggers.vrrp_password_rotation).toBeUndefined();
    // node-1 is then the only candidate: no unicast instance without peers (keepalived would fault).
    const conf = files["rendered/node-1/keepalived/keepalived.conf"];
    expect(conf).not.toContain("unicast_peer");
    expect(conf).not.toMatch(/^\s*unicast_fault_no_peer/m);
    expect(stack.output.floating_ip_candidates.value).toEqual({ "node-1": { overlay_address: "172.16.1.11", priority: 150, maintenance: false } });
  });

  it("the renderer refuses a non-eligible node and takes the script user as a parameter", () => {
    const x = edited(c, (y) => { y.nodes[1].floatingIp.eligible = false; });
    expect(() => renderKeepalivedConfig(x, x.nodes[1])).toThrow(/not eligible/);
    expect(renderKeepalivedConfig(c, c.nodes[0], { scriptUser: "nobody" })).toContain("script_user nobody");
  });
});
