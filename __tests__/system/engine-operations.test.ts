/**
 * System test: the operating procedures and their blast radius through the REAL engine
 * (Terraform 1.11.4; `OPERATIONS_ENGINE=tofu` for OpenTofu) on the real synthesized nodes
 * stack, against namespace VMs behind a real sshd bastion (lab.ts: real sshd and
 * keepalived, the real Consul 1.14.11 as the provider's server and on every VM, a Nomad
 * stand-in; every agent command goes through a wrapper that logs the call).
 *
 * For each procedure docs/operations.md describes (one node's setting, maintenance on and
 * off, a node added, a node removed): the real plan (`show -json`) lists exactly the
 * resources the docs name, `npm run summary` gives the same rows from the real plan as from
 * the two synth outputs alone, and the apply does on the VMs what the docs say (the
 * stand-ins' call logs, the real keepalived's floating IP). Then the faults: a node
 * unreachable when its turn comes, and an apply interrupted between install and restart.
 *
 * The steps share one lab and one state, in order: each starts from the previous one's
 * cluster, as an operator's successive deploys would.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { itIf } from "../helpers/synth";
import type { Cluster } from "../../constructs/description/schema";
import { summarizePlan, parsePlanJson, type PlanSummary, type SynthSet } from "../../plan-review/summary";
import { buildLab, labPrerequisites, type Lab, type LabVm } from "./lab";
import { Workspace, enginePrerequisites, type EngineName, type EngineRun } from "./engine";
import { waitFor } from "./sandbox";

const ENGINE: EngineName = process.env.OPERATIONS_ENGINE === "tofu" ? "tofu" : "terraform";
const engines = enginePrerequisites();
const ok = labPrerequisites.ok && engines.ok;
const reason = [labPrerequisites.reason, engines.reason].filter(Boolean).join("; ");
const VRRP_PASSWORD = "Op5.pw-z";

jest.setTimeout(900000);

const expectOk = (r: EngineRun) => expect({ args: r.args.join(" "), status: r.status, output: r.status === 0 ? "" : r.output }).toEqual({ args: r.args.join(" "), status: 0, output: "" });

/** "change address" of each row, sorted: what a plan does, in the summary's words. */
const brief = (s: PlanSummary) => s.rows.map((r) => `${r.change} ${r.address}`).sort();

/** Lines of an apply's output about `address`, by position: when it started and finished each step. */
function events(output: string): { address: string; what: string; line: number }[] {
  return output.split("\n").flatMap((l, line) => {
    const m = /^([a-z_]+\.[^:\s]+): (Creating\.\.\.|Creation complete|Destroying\.\.\.|Destruction complete|Still)/.exec(l.trim());
    return m ? [{ address: m[1], what: m[2], line }] : [];
  });
}

const holdsFloatingIp = (vm: LabVm) => vm.holdsFloatingIp();

describe(`operations through the real engine (${ENGINE}), three VMs behind a bastion`, () => {
  let lab: Lab;
  let ws: Workspace;
  /** The synth output and cluster of the last apply (the plan's baseline). */
  let applied: { cluster: Cluster; set: SynthSet } | undefined;

  beforeAll(async () => {
    if (!ok) return;
    lab = await buildLab({ vms: 3, tag: "ops" });
    ws = new Workspace(lab, ENGINE, { vrrp_password: VRRP_PASSWORD });
    // Nomad's documented eligibility: `node drain -enable` also marks the node ineligible,
    // `node eligibility -enable` makes it eligible again; `node status -self` reports it.
    for (const v of lab.vms) {
      const file = path.join(lab.dir, `${v.name}-bin`, "nomad");
      const text = fs.readFileSync(file, "utf8");
      const patched = text
        .replace("*SchedulingEligibility*) echo eligible ;;", '*SchedulingEligibility*) if [[ -e "$STATE/ineligible" ]]; then echo ineligible; else echo eligible; fi ;;')
        .replace(
          '"node drain" | "node eligibility") ;;',
          '"node drain" | "node eligibility") case " $* " in *" -enable "*) [[ $2 == drain ]] && touch "$STATE/ineligible" || rm -f "$STATE/ineligible" ;; esac ;;',
        );
      expect(patched).not.toBe(text);
      fs.writeFileSync(file, patched);
      // HAProxy's health endpoint, which keepalived's vrrp_script polls: without it
      // keepalived stays in FAULT and nobody holds the floating IP.
      v.serveHealth(8404);
    }
  });

  afterAll(() => {
    if (!lab) return;
    lab.cleanup();
    expect(lab.sandbox.leftoverNamespaces()).toEqual([]);
  });

  const vm = (name: string) => lab.vms.find((v) => v.name === name)!;
  const clearCalls = () => lab.vms.forEach((v) => v.clearCalls());

  /**
   * Synthesizes `cluster`, plans, and checks that the summary of the real plan and the
   * offline summary (previous synth vs this one) list the same rows, equal to `expected`.
   */
  async function planCase(cluster: Cluster, expected: string[], opts: { patch?: (json: any) => void; offline?: boolean } = {}): Promise<{ set: SynthSet; real: PlanSummary }> {
    const out = ws.synth(cluster);
    if (opts.patch) {
      const file = path.join(ws.stackDir(), "cdk.tf.json");
      const json = JSON.parse(fs.readFileSync(file, "utf8"));
      opts.patch(json);
      fs.writeFileSync(file, JSON.stringify(json, null, 2));
    }
    const set: SynthSet = { stacks: { [ws.stack!]: out.stacks[ws.stack!] }, files: { [ws.stack!]: out.files[ws.stack!] } };
    const plan = await ws.plan({ detailedExitcode: true });
    expect(plan.status).toBe(expected.length ? 2 : 0);
    const json = await ws.showPlanJson();
    const real = summarizePlan(applied?.set, set, { plans: { [ws.stack!]: parsePlanJson(json) } });
    expect(brief(real)).toEqual([...expected].sort());
    // The offline summary compares configurations: after a partial apply it cannot know
    // which instances already changed, so such a step skips the comparison.
    if (opts.offline !== false) expect(brief(summarizePlan(applied?.set, set))).toEqual(brief(real));
    expect(JSON.stringify(real)).not.toContain(VRRP_PASSWORD);
    return { set, real };
  }

  async function applyCase(cluster: Cluster, set: SynthSet): Promise<EngineRun> {
    clearCalls();
    const run = await ws.apply({ planFile: true });
    expectOk(run);
    ws.assertNoSecret(run);
    applied = { cluster, set };
    return run;
  }

  /** A step of the sequence: after a failed one, the later steps fail at once (they build on its state). */
  let failedStep: string | undefined;
  const step = (name: string, body: () => Promise<void>) =>
    itIf(ok, reason)(name, async () => {
      if (failedStep) throw new Error(`not run: the earlier step "${failedStep}" failed`);
      try {
        await body();
      } catch (e) {
        failedStep = name;
        throw e;
      }
    });

  const twoNodes = () => lab.cluster((c) => (c.nodes = c.nodes.slice(0, 2)));

  step("a fresh cluster: every agent created, each kind one node after the other; then a plan shows no change", async () => {
    const cluster = twoNodes();
    ws.synth(cluster);
    expectOk(await ws.init());
    const nodes = ["node-1", "node-2"];
    const { set } = await planCase(cluster, [
      ...nodes.flatMap((n) => ["consul", "keepalived", "nomad"].map((a) => `create null_resource.${n}_${a}`)),
      ...nodes.map((n) => `create terraform_data.node_membership["${n}"]`),
    ]);
    const run = await applyCase(cluster, set);
    const ev = events(run.stdout);
    const at = (address: string, what: string) => ev.find((e) => e.address === address && e.what === what)?.line ?? NaN;
    for (const kind of ["consul", "keepalived", "nomad"]) {
      // node-2's agent of each kind starts after node-1's of that kind finished
      expect(at(`null_resource.node-2_${kind}`, "Creating...")).toBeGreaterThan(at(`null_resource.node-1_${kind}`, "Creation complete"));
    }
    for (const n of nodes) {
      expect(at(`null_resource.${n}_keepalived`, "Creating...")).toBeGreaterThan(at(`null_resource.${n}_consul`, "Creation complete"));
      expect(at(`null_resource.${n}_nomad`, "Creating...")).toBeGreaterThan(at(`null_resource.${n}_keepalived`, "Creation complete"));
      expect(vm(n).calls()).toEqual(expect.arrayContaining(["systemctl restart consul", "systemctl restart nomad"]));
      expect(vm(n).keepalivedRunning()).toBe(true);
    }
    await waitFor("one node holding the floating IP", () => nodes.filter((n) => holdsFloatingIp(vm(n))).length === 1, 30000);
    await planCase(cluster, []);
  });

  step("one node's setting (node-2's Nomad meta): node-2's Nomad agent only; node-1 untouched", async () => {
    const cluster = lab.cluster((c) => {
      c.nodes = c.nodes.slice(0, 2);
      c.nodes[1].meta = { rack: "r2" };
    });
    const { set } = await planCase(cluster, ["replace null_resource.node-2_nomad"]);
    await applyCase(cluster, set);
    expect(vm("node-2").calls()).toContain("systemctl restart nomad");
    expect(vm("node-2").calls().filter((c) => / consul$/.test(c) && /restart|start|stop/.test(c))).toEqual([]);
    expect(vm("node-1").calls()).toEqual([]);
  });

  const withMeta = (c: Cluster) => (c.nodes[1].meta = { rack: "r2" });

  step("maintenance on node-1: its keepalived (floating IP handed over) then its Nomad agent (drain); nothing else", async () => {
    expect(holdsFloatingIp(vm("node-1")) || holdsFloatingIp(vm("node-2"))).toBe(true);
    const cluster = lab.cluster((c) => {
      c.nodes = c.nodes.slice(0, 2);
      withMeta(c);
      c.nodes[0].maintenance = true;
    });
    const { set } = await planCase(cluster, ["replace null_resource.node-1_keepalived", "replace null_resource.node-1_nomad"]);
    const heldBefore = holdsFloatingIp(vm("node-1"));
    await applyCase(cluster, set);
    const calls = vm("node-1").calls();
    const drain = calls.findIndex((c) => c.startsWith("nomad node drain -self -enable"));
    expect(drain).toBeGreaterThan(-1);
    if (heldBefore) expect(calls.findIndex((c) => c === "systemctl restart keepalived")).toBeLessThan(drain);
    expect(calls.filter((c) => /^systemctl (re)?start consul/.test(c))).toEqual([]);
    expect(vm("node-2").calls()).toEqual([]);
    await waitFor("node-2 holding the floating IP", () => holdsFloatingIp(vm("node-2")) && !holdsFloatingIp(vm("node-1")), 15000);
  });

  step("maintenance off: the same two resources; node-1 eligible again; the floating IP stays where it is (nopreempt)", async () => {
    const cluster = lab.cluster((c) => {
      c.nodes = c.nodes.slice(0, 2);
      withMeta(c);
    });
    const { set } = await planCase(cluster, ["replace null_resource.node-1_keepalived", "replace null_resource.node-1_nomad"]);
    await applyCase(cluster, set);
    expect(vm("node-1").calls()).toContain("nomad node eligibility -self -enable");
    expect(vm("node-2").calls()).toEqual([]);
    await new Promise((r) => setTimeout(r, 3000));
    expect([holdsFloatingIp(vm("node-1")), holdsFloatingIp(vm("node-2"))]).toEqual([false, true]);
  });

  const threeNodes = () => lab.cluster(withMeta);

  step("a node added: its own resources, and the peers' keepalived reloaded (peer list); no Consul or Nomad elsewhere", async () => {
    const cluster = threeNodes();
    const { set } = await planCase(cluster, [
      "create null_resource.node-3_consul",
      "create null_resource.node-3_keepalived",
      "create null_resource.node-3_nomad",
      'create terraform_data.node_membership["node-3"]',
      "replace null_resource.node-1_keepalived",
      "replace null_resource.node-2_keepalived",
    ]);
    await applyCase(cluster, set);
    expect(vm("node-3").calls()).toEqual(expect.arrayContaining(["systemctl restart consul", "systemctl restart nomad"]));
    expect(vm("node-3").keepalivedRunning()).toBe(true);
    for (const n of ["node-1", "node-2"]) {
      const calls = vm(n).calls();
      expect(calls).toContain("systemctl reload keepalived");
      expect(calls.filter((c) => /^systemctl (re)?start (consul|nomad)/.test(c))).toEqual([]);
      expect(vm(n).read("/etc/keepalived/keepalived.conf")).toContain(vm("node-3").overlayAddress);
    }
  });

  /** The synthesized SSH timeout, shortened for the fault tests only (Terraform retries an unreachable host until it). */
  const SYNTH_TIMEOUT = "3m";
  const shortTimeout = (json: any) => {
    for (const body of Object.values<any>(json.resource.null_resource)) {
      expect(body.connection.timeout).toBe(SYNTH_TIMEOUT);
      body.connection.timeout = "10s";
    }
  };
  const withConsulLogLevel = (level: string) => (c: Cluster) => {
    withMeta(c);
    c.nodes[0].meta = { rack: "r1" };
    c.consul.extraConfig = `log_level = "${level}"\n`;
  };
  const everyConsul = ["node-1", "node-2", "node-3"].map((n) => `replace null_resource.${n}_consul`);

  step("a node unreachable when its turn comes: the apply fails naming it; earlier nodes changed, later ones untouched; the next apply converges", async () => {
    // every node's Consul, and node-1's Nomad (its meta): node-1's Nomad waits only for node-1
    const cluster = lab.cluster(withConsulLogLevel("DEBUG"));
    await planCase(cluster, [...everyConsul, "replace null_resource.node-1_nomad"], { patch: shortTimeout });
    // node-2 drops off the network between the bastion and the VMs
    lab.sandbox.must(["ip", "-n", lab.bastion.ns, "link", "set", "v2", "down"]);
    clearCalls();
    const failed = await ws.apply({ planFile: true });
    lab.sandbox.must(["ip", "-n", lab.bastion.ns, "link", "set", "v2", "up"]);
    expect(failed.status).toBe(1);
    ws.assertNoSecret(failed);
    expect(failed.output).toMatch(/with null_resource\.node-2_consul/);
    expect(failed.output).not.toMatch(/with null_resource\.node-[13]_/);
    // what does not wait for node-2 is applied all the same
    expect(vm("node-1").calls()).toEqual(expect.arrayContaining(["systemctl restart consul", "systemctl restart nomad"]));
    expect(vm("node-1").read("/etc/consul.d/zz-extra.hcl")).toContain('"DEBUG"');
    expect(vm("node-2").calls()).toEqual([]);
    expect(vm("node-3").calls()).toEqual([]); // waits for node-2's Consul: never started
    expect(vm("node-3").read("/etc/consul.d/zz-extra.hcl")).toBeUndefined();

    // node-2 is back. The next plan is what is left: node-2's Consul (tainted by the failed
    // create), and node-3's Consul as a create: a replacement is destroy-then-create, and
    // the destroy half (nothing on the VM for a null_resource) ran in the failed apply.
    const again = await planCase(cluster, ["replace null_resource.node-2_consul", "create null_resource.node-3_consul"], { patch: shortTimeout, offline: false });
    expect(again.real.rows.find((r) => r.address === "null_resource.node-2_consul")?.why[0]).toBe("tainted (a previous apply failed)");
    await applyCase(cluster, again.set);
    expect(vm("node-1").calls()).toEqual([]);
    for (const n of ["node-2", "node-3"]) {
      expect(vm(n).calls()).toContain("systemctl restart consul");
      expect(vm(n).read("/etc/consul.d/zz-extra.hcl")).toContain('"DEBUG"');
    }
    await planCase(cluster, []);
  });

  step("an apply interrupted between install and restart: the next apply restarts the agent although its files already match", async () => {
    const cluster = lab.cluster(withConsulLogLevel("INFO"));
    await planCase(cluster, everyConsul);
    // node-1's `systemctl restart consul` blocks until the test says; the engine is interrupted meanwhile
    const bin = path.join(lab.dir, "node-1-bin");
    fs.renameSync(path.join(bin, "systemctl"), path.join(bin, "systemctl.real"));
    const state = vm("node-1").stateDir;
    fs.writeFileSync(
      path.join(bin, "systemctl"),
      `#!/usr/bin/env bash
if [[ "$*" == "restart consul" ]]; then
  touch ${state}/blocked
  until [[ -e ${state}/abort ]]; do sleep 0.1; done
  exit 1
fi
exec ${bin}/systemctl.real "$@"
`,
      { mode: 0o755 },
    );
    clearCalls();
    try {
      const child = spawn("ip", ["netns", "exec", lab.opNs, ws.bin, `-chdir=${ws.stackDir()}`, "apply", "-input=false", "-no-color", "-auto-approve", path.join(ws.dir, "last.tfplan")], { env: ws.env(), stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (b) => (output += b));
      child.stderr.on("data", (b) => (output += b));
      const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
      await waitFor("node-1's install reaching the restart", () => fs.existsSync(path.join(state, "blocked")), 120000, () => output);
      child.kill("SIGINT");
      const code = await exited;
      fs.writeFileSync(path.join(state, "abort"), "");
      expect(code).not.toBe(0);
      expect(output).toMatch(/Interrupt received/);
    } finally {
      fs.writeFileSync(path.join(state, "abort"), "");
      fs.renameSync(path.join(bin, "systemctl.real"), path.join(bin, "systemctl"));
    }
    // the new file is installed, the agent was not restarted
    expect(vm("node-1").read("/etc/consul.d/zz-extra.hcl")).toContain('"INFO"');
    expect(vm("node-1").calls()).not.toContain("systemctl restart consul");

    // node-1's Consul is tainted (its create was interrupted); node-2's and node-3's old
    // instances were already destroyed (the destroy halves of their replacements ran first)
    const again = await planCase(cluster, ["replace null_resource.node-1_consul", "create null_resource.node-2_consul", "create null_resource.node-3_consul"], { offline: false });
    await applyCase(cluster, again.set);
    expect(vm("node-1").calls()).toContain("systemctl restart consul");
    await planCase(cluster, []);
  });

  step("a node removed (node-2): its resources destroyed, its decommission runs on it in order; the peers' keepalived reloaded", async () => {
    const cluster = lab.cluster((c) => {
      withConsulLogLevel("INFO")(c);
      c.nodes.splice(1, 1);
    });
    const { set } = await planCase(cluster, [
      "destroy null_resource.node-2_consul",
      "destroy null_resource.node-2_keepalived",
      "destroy null_resource.node-2_nomad",
      'destroy terraform_data.node_membership["node-2"]',
      "replace null_resource.node-1_keepalived",
      "replace null_resource.node-3_keepalived",
    ]);
    await applyCase(cluster, set);
    const calls = vm("node-2").calls();
    const step = (re: RegExp) => calls.findIndex((c) => re.test(c));
    const order = [step(/^systemctl disable --now --quiet keepalived$/), step(/^nomad node drain -self -enable/), step(/^systemctl disable --now --quiet nomad$/), step(/^consul leave/), step(/^systemctl disable --now --quiet consul$/)];
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(vm("node-2").keepalivedRunning()).toBe(false);
    for (const n of ["node-1", "node-3"]) {
      expect(vm(n).calls()).toContain("systemctl reload keepalived");
      expect(vm(n).read("/etc/keepalived/keepalived.conf")).not.toContain(vm("node-2").overlayAddress);
    }
    await waitFor("one remaining node holding the floating IP", () => [vm("node-1"), vm("node-3")].filter(holdsFloatingIp).length === 1, 15000);
    await planCase(cluster, []);
  });
});
