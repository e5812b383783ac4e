/**
 * Releases keep the autoscaler's count: the expressions of constructs/kept-count.ts,
 * taken from the synthesized jobs stack, evaluated by the real Terraform (PATH) and the
 * real OpenTofu (.engines, `npm run engines`).
 *
 * The Nomad provider cannot run here (licence, no registry), so the two data sources are
 * replaced by stand-ins of the same shape, as terraform-provider-nomad v2.5.2 fills them
 * (data_source_scaling_policies.go: policies = [{id, enabled, type, target = {Namespace,
 * Job, Group}}], Nomad's ScalingPolicyListStub; data_source_job.go: task_groups =
 * [{name, count, meta, task, volumes}]): a variable for the policies, and a
 * terraform_data under the SAME count expression for the job read (its output = what
 * data.nomad_job would hold). The count and vars expressions are the synthesized ones with
 * the data source addresses substituted, nothing else.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync } from "child_process";
import { jobsStackName } from "../constructs/jobs-stack";
import { countVariableName } from "../constructs/render/jobs/scaling";
import { scalingBounds } from "../constructs/render/jobs/common";
import { cleanup, edited, exampleCluster, hasCommand, itIf, REPO_ROOT, synthCluster, type SynthOutput } from "./helpers/synth";

const TOFU = path.join(REPO_ROOT, ".engines", "bin", "tofu");
const ENGINES: { name: string; bin: string; available: boolean; why: string }[] = [
  { name: "terraform", bin: "terraform", available: hasCommand("terraform"), why: "terraform is not on PATH" },
  { name: "tofu", bin: TOFU, available: fs.existsSync(TOFU), why: "OpenTofu not built (npm run engines)" },
];

/** Strips the `${…}` of a Terraform JSON expression string. */
function expr(s: string): string {
  const m = /^\$\{([\s\S]*)\}$/.exec(s);
  if (!m) throw new Error(`not a single expression: ${s}`);
  return m[1];
}

interface Case {
  what: string;
  /** Stand-in of data.nomad_scaling_policies.<job>_running.policies */
  policies: unknown[];
  /** What data.nomad_job.<job>_running would read (when its count is 1). */
  running: unknown;
}

function policy(job: string, group = job) {
  return { id: `id-${job}-${group}`, enabled: true, type: "horizontal", target: { Namespace: "default", Job: job, Group: group } };
}
function jobRead(groups: Record<string, number>) {
  return { task_groups: Object.entries(groups).map(([name, count]) => ({ name, count, meta: {}, task: [], volumes: [] })) };
}

describe("a release registers the count running in Nomad (autoscaling on)", () => {
  const c = exampleCluster();
  let out: SynthOutput;
  let stack: any;
  beforeAll(() => {
    out = synthCluster(c);
    stack = out.stacks[jobsStackName(c)];
  });
  afterAll(() => cleanup(out));

  it("web, api and worker take their count from hcl2.vars, read from Nomad at plan time; haproxy does not", () => {
    for (const job of ["web", "api", "worker"] as const) {
      const vars = stack.resource.nomad_job[job].hcl2?.vars;
      expect(Object.keys(vars)).toEqual([countVariableName(job)]);
      expect(vars[countVariableName(job)]).toContain(`data.nomad_job.${job}_running`);
      expect(stack.data.nomad_scaling_policies[`${job}_running`].job_id).toBe(job);
      expect(stack.data.nomad_job[`${job}_running`].job_id).toBe(job);
      // No depends_on: a data source that depends on a managed resource is read at apply
      // time, and the vars would be unknown in every plan.
      expect(stack.data.nomad_job[`${job}_running`].depends_on).toBeUndefined();
    }
    expect(stack.resource.nomad_job.haproxy.hcl2).toBeUndefined();
  });

  for (const engine of ENGINES) {
    itIf(engine.available, engine.why)(`${engine.name}: job absent → description count; inside bounds → kept; outside → clamped`, () => {
      const job = "web";
      const { min, max } = scalingBounds(c, job);
      const desc = c.app[job].count;
      expect([min, desc, max]).toEqual([2, 2, 4]); // the example's, which the cases below straddle
      const countExpr = expr(stack.data.nomad_job[`${job}_running`].count).replaceAll(`data.nomad_scaling_policies.${job}_running.policies`, "var.policies");
      const varsExpr = expr(stack.resource.nomad_job[job].hcl2.vars[countVariableName(job)]).replaceAll(`data.nomad_job.${job}_running`, "terraform_data.job_read[*].output");
      expect(countExpr).not.toMatch(/(^|[^_])data\./);
      expect(varsExpr).not.toMatch(/(^|[^_])data\./);

      const cases: (Case & { expected: number })[] = [
        { what: "job absent (first deploy): no policy", policies: [], running: jobRead({}), expected: desc },
        { what: "only another job's policies (a job named web-canary)", policies: [policy("web-canary"), policy("api")], running: jobRead({ web: 9 }), expected: desc },
        { what: "running 3, inside 2..4: kept", policies: [policy(job)], running: jobRead({ web: 3 }), expected: 3 },
        { what: "running 4 = max: kept", policies: [policy(job)], running: jobRead({ web: 4 }), expected: 4 },
        { what: "running 7 (scaled by hand above max): clamped to max", policies: [policy(job)], running: jobRead({ web: 7 }), expected: max },
        { what: "running 1 (below min): clamped to min", policies: [policy(job)], running: jobRead({ web: 1 }), expected: min },
        { what: "running 0 (stopped by hand): clamped to min", policies: [policy(job)], running: jobRead({ web: 0 }), expected: min },
        { what: "job there but its group renamed: description count", policies: [policy(job, "frontend")], running: jobRead({ frontend: 3 }), expected: desc },
      ];
      const results = cases.map((k) => evaluate(engine.bin, countExpr, varsExpr, k));
      expect(results.map((r, i) => `${cases[i].what}: ${r}`)).toEqual(cases.map((k) => `${k.what}: ${k.expected}`));
    });
  }

  it("with autoscaling off: no data source, no hcl2, the jobspec's count is the description's", () => {
    const off = synthCluster(edited(c, (d: any) => void (d.metrics = { ...(d.metrics ?? {}), autoscaling: { enabled: false } })));
    try {
      const s = off.stacks[jobsStackName(c)];
      expect(s.data).toBeUndefined();
      for (const job of ["web", "api", "worker"]) expect(s.resource.nomad_job[job].hcl2).toBeUndefined();
      expect(off.files[jobsStackName(c)]["rendered/jobs/web.nomad.hcl"]).toMatch(/^ {4}count = 2$/m);
    } finally {
      cleanup(off);
    }
  });
});

/** Applies a module of stand-ins plus the synthesized expressions; returns the count it registers. */
function evaluate(bin: string, countExpr: string, varsExpr: string, k: Case): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kept-count-"));
  try {
    const module = {
      variable: { policies: { type: "any" }, running: { type: "any" } },
      resource: { terraform_data: { job_read: { count: `\${${countExpr}}`, input: "${var.running}" } } },
      output: { count: { value: `\${${varsExpr}}` } },
    };
    fs.writeFileSync(path.join(dir, "main.tf.json"), JSON.stringify(module, null, 2));
    fs.writeFileSync(path.join(dir, "stand-ins.auto.tfvars.json"), JSON.stringify({ policies: k.policies, running: k.running }));
    const env = { ...process.env, TF_IN_AUTOMATION: "1", CHECKPOINT_DISABLE: "1", TF_CLI_CONFIG_FILE: "/dev/null" };
    const run = (...args: string[]) => execFileSync(bin, args, { cwd: dir, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    run("init", "-input=false", "-no-color");
    run("apply", "-auto-approve", "-input=false", "-no-color");
    return JSON.parse(run("output", "-json", "count"));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
