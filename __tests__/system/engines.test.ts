/**
 * System test: the real Terraform (1.11.4 in the image) and OpenTofu (built by `npm run
 * engines`) read and apply the synthesized nodes stack, over SSH through a real sshd
 * bastion, to two VMs (lab.ts: real sshd, real keepalived, the real Consul 1.14.11, a Nomad
 * stand-in).
 * The null provider is our stand-in for hashicorp/null 3.2.4 (engines/null-provider: the
 * Go module proxy refuses the real one), reproducing its documented null_resource.
 *
 * Per engine, on a fresh cluster: init (no registry), validate, plan, apply, then
 * `plan -detailed-exitcode` reports no change; every rendered file is on the VMs. Once,
 * `cdktf deploy` itself (the cdktf CLI synthesizing and driving Terraform).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { REPO_ROOT, itIf } from "../helpers/synth";
import { nodesStackName } from "../../constructs/nodes-stack";
import { buildLab, labPrerequisites, type Lab } from "./lab";
import { CLI_CONFIG, ENGINE_NAMES, Workspace, enginePrerequisites, type EngineRun } from "./engine";

const engines = enginePrerequisites();
const ok = labPrerequisites.ok && engines.ok;
const reason = [labPrerequisites.reason, engines.reason].filter(Boolean).join("; ");
const VRRP_PASSWORD = "Vr7.pw-x";

jest.setTimeout(600000);

/**
 * SSH logins an sshd of the lab accepted so far (its log, LogLevel VERBOSE: one "Accepted
 * publickey" line per connection). Through the bastion each engine connection is one login at
 * the bastion (from the operator's namespace) and one at the VM (from the bastion).
 */
function sshLogins(lab: Lab, sshd: string): number {
  const log = path.join(lab.dir, `${sshd}.log`);
  return fs.existsSync(log) ? (fs.readFileSync(log, "utf8").match(/^.*Accepted publickey for /gm) ?? []).length : 0;
}
/** The lab's sshd logins per sshd (bastion, then each VM) while `run` runs. */
async function loginsDuring(lab: Lab, run: () => Promise<void>): Promise<Record<string, number>> {
  const names = ["sshd-bastion", ...lab.vms.map((v) => `sshd-${v.name}`)];
  const before = names.map((n) => sshLogins(lab, n));
  await run();
  return Object.fromEntries(names.map((n, i) => [n, sshLogins(lab, n) - before[i]]));
}
/**
 * SSH connections a provisioning of one node makes: two per resource (a fresh private
 * staging directory, then one script uploaded into it), one more for keepalived's secret file
 * (ProvisionedFiles). Before the rendered files travelled inside the script: ten.
 */
const CONNECTIONS_PER_NODE = { consul: 2, nomad: 2, keepalived: 3 };
const PER_NODE = Object.values(CONNECTIONS_PER_NODE).reduce((a, b) => a + b, 0);

const expectOk = (r: EngineRun) => expect({ args: r.args.join(" "), status: r.status, output: r.status === 0 ? "" : r.output }).toEqual({ args: r.args.join(" "), status: 0, output: "" });

describe.each(ENGINE_NAMES)("%s on the synthesized nodes stack, two VMs behind a bastion", (engine) => {
  let lab: Lab;
  let ws: Workspace;

  beforeAll(async () => {
    if (!ok) return;
    lab = await buildLab({ vms: 2, tag: engine === "terraform" ? "et" : "eo" });
  });

  afterAll(() => {
    if (!lab) return;
    lab.cleanup();
    expect(lab.sandbox.leftoverNamespaces()).toEqual([]);
  });

  itIf(ok, reason)("init, validate, plan, apply a fresh cluster; a second plan shows no change", async () => {
    const cluster = lab.cluster();
    ws = new Workspace(lab, engine, { vrrp_password: VRRP_PASSWORD });
    const out = ws.synth(cluster);
    const stack = nodesStackName(cluster);

    const init = await ws.init();
    expectOk(init);
    expect(init.output).toMatch(/hashicorp\/null v3\.2\.4/);
    expectOk(await ws.validate());

    const plan = await ws.plan({ detailedExitcode: true });
    expect(plan.status).toBe(2);
    const planned = await ws.showPlanJson();
    const creates = planned.resource_changes.filter((r: any) => r.change.actions.join() === "create").map((r: any) => r.address).sort();
    expect(creates).toEqual(
      [
        ...cluster.nodes.flatMap((n) => ["consul", "keepalived", "nomad"].map((a) => `null_resource.${n.name}_${a}`)),
        ...cluster.nodes.map((n) => `terraform_data.node_membership["${n.name}"]`),
      ].sort(),
    );

    let apply!: EngineRun;
    const logins = await loginsDuring(lab, async () => {
      apply = await ws.apply({ planFile: true });
    });
    expectOk(apply);
    // Every connection went through the bastion, and no more of them than the design's.
    expect(logins).toEqual({ "sshd-bastion": PER_NODE * lab.vms.length, ...Object.fromEntries(lab.vms.map((v) => [`sshd-${v.name}`, PER_NODE])) });
    ws.assertNoSecret(apply);
    // eslint-disable-next-line no-console
    console.log(`${engine}: init ${init.ms} ms, plan ${plan.ms} ms, apply (2 VMs) ${apply.ms} ms`);

    for (const [i, vm] of lab.vms.entries()) {
      const node = cluster.nodes[i].name;
      for (const agent of ["consul", "nomad"]) expect(vm.read(`/etc/${agent}.d/${agent}.hcl`)).toBe(out.files[stack][`rendered/${node}/${agent}/${agent}.hcl`]);
      const installed = vm.read("/etc/keepalived/keepalived.conf") ?? "";
      expect(installed).toContain(`virtual_router_id 210`);
      expect(installed).toContain(VRRP_PASSWORD);
      expect(vm.keepalivedRunning()).toBe(true);
      expect(vm.calls()).toEqual(expect.arrayContaining(["systemctl restart consul", "systemctl restart nomad"]));
    }

    const again = await ws.plan({ detailedExitcode: true });
    expect({ status: again.status, output: again.status === 0 ? "" : again.output }).toEqual({ status: 0, output: "" });
    const state = await ws.showStateJson();
    expect(state.values.root_module.resources.filter((r: any) => r.type === "null_resource").every((r: any) => /^\d+$/.test(r.values.id))).toBe(true);
  });

  itIf(ok, reason)("a one-node apply (its three resources re-provisioned) makes seven SSH connections through the bastion, all to that node", async () => {
    const node = lab.vms[0].name;
    let run!: EngineRun;
    const logins = await loginsDuring(lab, async () => {
      run = await ws.apply({ args: Object.keys(CONNECTIONS_PER_NODE).map((agent) => `-replace=null_resource.${node}_${agent}`) });
    });
    expectOk(run);
    for (const agent of Object.keys(CONNECTIONS_PER_NODE)) expect(run.output).toContain(`configuration unchanged: ${agent} left running as it is`);
    expect(logins).toEqual({ "sshd-bastion": PER_NODE, [`sshd-${node}`]: PER_NODE, ...Object.fromEntries(lab.vms.slice(1).map((v) => [`sshd-${v.name}`, 0])) });
  });
});

describe("cdktf deploy: the cdktf CLI driving Terraform", () => {
  let lab: Lab;

  beforeAll(async () => {
    if (!ok) return;
    lab = await buildLab({ vms: 2, tag: "cd" });
  });

  afterAll(() => {
    if (!lab) return;
    lab.cleanup();
    expect(lab.sandbox.leftoverNamespaces()).toEqual([]);
  });

  itIf(ok, reason)("`cdktf deploy <nodes stack> --auto-approve` synthesizes, inits from the mirror and applies; nothing left to do afterwards", async () => {
    const cluster = lab.cluster();
    const file = path.join(lab.dir, "cluster.yaml");
    fs.writeFileSync(file, stringify(cluster));
    const outdir = path.join(lab.dir, "cdktf.out");
    const stack = nodesStackName(cluster);
    // The cdktf CLI runs in the operator namespace (no network but the lab's): synth runs
    // the app (cdktf.json), then the CLI runs terraform init/plan/apply in the stack dir.
    const env = {
      PATH: process.env.PATH ?? "",
      HOME: lab.dir,
      CLUSTER_FILE: file,
      CHECKPOINT_DISABLE: "1",
      TF_CLI_CONFIG_FILE: CLI_CONFIG,
      TF_IN_AUTOMATION: "1",
      TF_VAR_vrrp_password: VRRP_PASSWORD,
      CI: "1",
    };
    const cdktf = (...args: string[]) => {
      const r = spawnSync("ip", ["netns", "exec", lab.opNs, path.join(REPO_ROOT, "node_modules", ".bin", "cdktf"), ...args], { cwd: REPO_ROOT, env, encoding: "utf8", timeout: 600000 });
      const output = `${r.stdout}\n${r.stderr}`;
      expect({ args, status: r.status, output: r.status === 0 ? "" : output }).toEqual({ args, status: 0, output: "" });
      expect(output).not.toContain(VRRP_PASSWORD);
      return output;
    };
    // cdktf-cli 0.21 runs `terraform providers lock -platform=linux_amd64` whenever the stack
    // has no lock file, and that command ignores the CLI config's mirror (it asks the origin
    // registry): with a mirror only, the lock file comes from one `terraform init` first.
    cdktf("synth", "--output", outdir);
    const ws = new Workspace(lab, "terraform", { vrrp_password: VRRP_PASSWORD }, lab.dir);
    ws.stack = stack;
    const init = await ws.init();
    expectOk(init);
    const start = Date.now();
    cdktf("deploy", stack, "--auto-approve", "--output", outdir);
    // eslint-disable-next-line no-console
    console.log(`cdktf deploy (synth + apply, 2 VMs): ${Date.now() - start} ms`);
    for (const vm of lab.vms) {
      expect(vm.read("/etc/consul.d/consul.hcl")).toBe(fs.readFileSync(path.join(outdir, "stacks", stack, "rendered", vm.name, "consul", "consul.hcl"), "utf8"));
      expect(vm.keepalivedRunning()).toBe(true);
    }
    // The same stack dir, read by plain Terraform: no change left.
    const plan = await ws.plan({ detailedExitcode: true });
    expect({ status: plan.status, output: plan.status === 0 ? "" : plan.output }).toEqual({ status: 0, output: "" });
  });
});
