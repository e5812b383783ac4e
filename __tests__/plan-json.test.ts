/**
 * The plan summary reading a real plan (`terraform show -json PLANFILE`), produced here by
 * the real engine on a stack of `terraform_data` resources shaped like the nodes stack
 * (built into Terraform and OpenTofu: no provider to install). Each case applies a
 * baseline, edits the configuration, plans, and reads the plan's JSON.
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { itIf, REPO_ROOT } from "./helpers/synth";
import { parsePlanJson, renderPlanMarkdown, summarizePlan, type SynthSet } from "../plan-review/summary";
import { findEngine } from "./helpers/engine";

const engine = findEngine();
const STACK = "t-nodes";
const SECRET = "s3cr3t-planted-7f1c";
const SECRET2 = "s3cr3t-planted-9e2d";

jest.setTimeout(60000);

/** A nodes-stack look-alike: per node a "consul" resource with hash triggers, a membership instance with a destroy-time step. */
function stack(nodes: Record<string, { sha: string; host: string }>, opts: { bastion?: string } = {}): any {
  return {
    variable: { secret: { type: "string", sensitive: true } },
    resource: {
      terraform_data: {
        ...Object.fromEntries(Object.entries(nodes).map(([n, v]) => [`${n}_consul`, { triggers_replace: { node: n, host: v.host, sha256_consul_hcl: v.sha } }])),
        node_membership: {
          for_each: Object.fromEntries(Object.entries(nodes).map(([n, v]) => [n, { host: v.host, bastion: opts.bastion ?? "bastion.example.org" }])),
          input: "${each.value}",
          triggers_replace: { node: "${each.key}" },
          provisioner: [{ "local-exec": { when: "destroy", command: "echo decommission ${self.triggers_replace.node}" } }],
        },
        vrrp: { input: "${var.secret}" },
      },
    },
    output: { nodes: { value: Object.fromEntries(Object.keys(nodes).map((n) => [n, {}])) } },
  };
}

const sha = (c: string) => c.repeat(64);
const BASE = { "node-1": { sha: sha("a"), host: "192.0.2.11" }, "node-2": { sha: sha("a"), host: "192.0.2.12" } };

class Workdir {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "plan-json-"));
  readonly stackDir = path.join(this.dir, "cdktf.out", "stacks", STACK);
  constructor() {
    fs.mkdirSync(this.stackDir, { recursive: true });
    fs.writeFileSync(path.join(this.dir, "terraform.rc"), "");
  }
  tf(args: string[], secret = SECRET): string {
    const r = spawnSync(engine!.path, args, {
      cwd: this.stackDir,
      encoding: "utf8",
      env: { ...process.env, TF_IN_AUTOMATION: "1", CHECKPOINT_DISABLE: "1", TF_CLI_CONFIG_FILE: path.join(this.dir, "terraform.rc"), TF_VAR_secret: secret },
    });
    if (r.status !== 0) throw new Error(`${engine!.name} ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }
  write(json: any): SynthSet {
    fs.writeFileSync(path.join(this.stackDir, "cdk.tf.json"), JSON.stringify(json, null, 2));
    return { stacks: { [STACK]: json } };
  }
  /** Applies `json` as the baseline state. */
  apply(json: any, secret = SECRET): SynthSet {
    const set = this.write(json);
    this.tf(["init", "-input=false", "-no-color"]);
    this.tf(["apply", "-auto-approve", "-input=false", "-no-color"], secret);
    return set;
  }
  /** Plans `json` against the state and returns `show -json` of the plan, as text. */
  plan(json: any, extra: string[] = [], secret = SECRET): string {
    this.write(json);
    this.tf(["plan", "-input=false", "-no-color", "-out=plan.bin", ...extra], secret);
    const text = this.tf(["show", "-json", "plan.bin"], secret);
    fs.writeFileSync(path.join(this.dir, "plan.json"), text);
    return text;
  }
  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

const run = itIf(engine !== undefined, "no Terraform/OpenTofu engine (terraform on PATH or .engines/bin/tofu from `npm run engines`)");
const brief = (rows: { address: string; change: string; group: string }[]) => rows.map((r) => `${r.group} ${r.change} ${r.address}`).sort();

describe(`plan summary from a real plan (${engine?.name ?? "no engine"})`, () => {
  let w: Workdir;
  beforeEach(() => (w = new Workdir()));
  afterEach(() => w.remove());

  run("a first plan: every instance a create, grouped by node; the secret's value never printed", () => {
    w.write(stack(BASE));
    w.tf(["init", "-input=false", "-no-color"]);
    const text = w.plan(stack(BASE));
    expect(text).toContain(SECRET); // show -json prints sensitive values in clear: the reader must mask them
    const s = summarizePlan(undefined, { stacks: { [STACK]: stack(BASE) } }, { plans: { [STACK]: parsePlanJson(JSON.parse(text)) } });
    expect(brief(s.rows)).toEqual([
      "cluster create terraform_data.vrrp",
      "node-1 create terraform_data.node-1_consul",
      'node-1 create terraform_data.node_membership["node-1"]',
      "node-2 create terraform_data.node-2_consul",
      'node-2 create terraform_data.node_membership["node-2"]',
    ]);
    expect(s.notes.join(" ")).not.toMatch(/no baseline/i);
    expect(s.notes.join(" ")).toMatch(/rows from the real plan/);
    expect(JSON.stringify(s)).not.toContain(SECRET);
    expect(renderPlanMarkdown(s)).not.toContain(SECRET);
  });

  run("edits: a changed hash re-creates one resource, a removed node is destroyed with its decommission, a new node created, a bastion change updates in place, a rotated secret is an update shown masked", () => {
    const base = w.apply(stack(BASE));
    const headJson = stack(
      { "node-1": { sha: sha("b"), host: "192.0.2.11" }, "node-3": { sha: sha("a"), host: "192.0.2.13" } },
      { bastion: "bastion2.example.org" },
    );
    const plan = parsePlanJson(JSON.parse(w.plan(headJson, [], SECRET2)));
    const head = { stacks: { [STACK]: headJson } };
    const s = summarizePlan(base, head, { plans: { [STACK]: plan } });
    expect(brief(s.rows)).toEqual([
      "cluster update terraform_data.vrrp",
      "node-1 replace terraform_data.node-1_consul",
      'node-1 update terraform_data.node_membership["node-1"]',
      "node-2 destroy terraform_data.node-2_consul",
      'node-2 destroy terraform_data.node_membership["node-2"]',
      "node-3 create terraform_data.node-3_consul",
      'node-3 create terraform_data.node_membership["node-3"]',
    ]);
    const row = (a: string) => s.rows.find((r) => r.address === a)!;
    expect(row("terraform_data.node-1_consul").why).toEqual(["triggers_replace.sha256_consul_hcl"]);
    expect(row('terraform_data.node_membership["node-1"]').why).toEqual(["input.bastion: bastion.example.org → bastion2.example.org"]);
    expect(row('terraform_data.node_membership["node-2"]').why.join("; ")).toMatch(/destroy-time step runs: decommission/);
    expect(row("terraform_data.vrrp").why).toEqual(["input: (sensitive) → (sensitive, changed)"]);
    const md = renderPlanMarkdown(s);
    for (const secret of [SECRET, SECRET2]) {
      expect(md).not.toContain(secret);
      expect(JSON.stringify(s)).not.toContain(secret);
    }
    // the offline summary of the same two configurations agrees on every address and change
    expect(brief(summarizePlan(base, head).rows).filter((r) => !r.includes("vrrp"))).toEqual(brief(s.rows).filter((r) => !r.includes("vrrp")));
  });

  run("no change: no rows and the 'no changes' line; -replace and a tainted instance are replacements saying why", () => {
    const base = w.apply(stack(BASE));
    const none = summarizePlan(base, base, { plans: { [STACK]: parsePlanJson(JSON.parse(w.plan(stack(BASE)))) } });
    expect(none.rows).toEqual([]);
    expect(renderPlanMarkdown(none)).toContain("No changes");

    const replaced = summarizePlan(base, base, { plans: { [STACK]: parsePlanJson(JSON.parse(w.plan(stack(BASE), ["-replace=terraform_data.node-2_consul"]))) } });
    expect(replaced.rows.map((r) => [r.address, r.change, r.why])).toEqual([["terraform_data.node-2_consul", "replace", ["replacement requested (-replace)"]]]);

    w.tf(["taint", "-no-color", 'terraform_data.node_membership["node-1"]']);
    const tainted = summarizePlan(base, base, { plans: { [STACK]: parsePlanJson(JSON.parse(w.plan(stack(BASE)))) } });
    expect(tainted.rows.map((r) => [r.address, r.change, r.why[0]])).toEqual([['terraform_data.node_membership["node-1"]', "replace", "tainted (a previous apply failed)"]]);
  });

  run("refuses a state's JSON (terraform show -json without a plan file) and other JSON", () => {
    w.apply(stack(BASE));
    const state = JSON.parse(w.tf(["show", "-json"]));
    expect(() => parsePlanJson(state, "state.json")).toThrow(/state\.json is not the output of `terraform show -json PLANFILE`/);
    expect(() => parsePlanJson({ resource: {} }, "x.json")).toThrow(/not the output/);
  });

  run("npm run summary -- --plan nodes=FILE prints the real plan's rows for that stack", () => {
    w.apply(stack(BASE));
    w.plan(stack({ "node-1": BASE["node-1"] }));
    const out = execFileSync(
      "npx",
      ["tsx", path.join(REPO_ROOT, "scripts", "plan-summary.ts"), "--out", path.join(w.dir, "cdktf.out"), "--plan", `nodes=${path.join(w.dir, "plan.json")}`],
      { cwd: REPO_ROOT, encoding: "utf8" },
    );
    expect(out).toMatch(/rows from the real plan/);
    expect(out).toContain("| node **node-2** |");
    expect(out).toMatch(/\| `terraform_data\.node-2_consul` \| - destroy \|/);
    expect(out).toMatch(/`terraform_data\.node_membership\["node-2"\]` \| - destroy \| removed from the configuration; destroy-time step runs: decommission/);
    expect(out).toContain("**Plan: 0 to create, 0 to update in place, 0 to replace, 2 to destroy (2 resource instances).**");
    const bad = spawnSync("npx", ["tsx", path.join(REPO_ROOT, "scripts", "plan-summary.ts"), "--out", path.join(w.dir, "cdktf.out"), "--plan", "jobs=x.json"], { cwd: REPO_ROOT, encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--plan jobs=…: no single synthesized stack named jobs/);
    expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
