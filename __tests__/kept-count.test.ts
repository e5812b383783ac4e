/**
 * Counts kept by Nomad itself (constructs/kept-count.ts): nomad_job preserve_counts, no
 * plan-time read, and the deliberate changes that still take effect.
 *
 * The synthesized jobs stack is checked as written; then releases are applied by the real
 * Terraform (PATH) or OpenTofu (.engines) against a Nomad API stand-in
 * (system/fixtures/nomad-scaling-api.py, on loopback), which follows Nomad's documented
 * register semantics for PreserveCounts (the job validated as submitted; each existing
 * group then keeps its count) and its scale API. The Nomad provider cannot run here
 * (its module is not to be used), so `nomad_job.<job>` is played by a terraform_data that
 * registers the synthesized jobspec's job (count, scaling bounds, as HashiCorp's HCL parser
 * reads them) with PreserveCounts = the synthesized preserve_counts, replaced whenever the
 * jobspec changes as the provider updates the job; the synthesized terraform_data.<job>_count
 * and <job>_scaling_bounds run as synthesized (their script rendered/jobs/set-count.sh).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync, spawnSync } from "child_process";
import { jobsStackName } from "../constructs/jobs-stack";
import { NOMAD_PROVIDER_VERSION, PRESERVE_COUNTS_SINCE } from "../constructs/kept-count";
import { fromTerraformLiteral } from "../constructs/nomad-job";
import { SET_COUNT_SCRIPT } from "../constructs/render/jobs/scaling";
import type { Cluster } from "../constructs/description/schema";
import { cleanup, edited, exampleCluster, hasCommand, itIf, parseHcl, REPO_ROOT, synthCluster, type SynthOutput } from "./helpers/synth";
import { groupOf } from "./helpers/jobs";
import { Sandbox, waitFor } from "./system/sandbox";

const TOFU = path.join(REPO_ROOT, ".engines", "bin", "tofu");
const ENGINE = hasCommand("terraform") ? "terraform" : fs.existsSync(TOFU) ? TOFU : "";
const hasTools = ENGINE !== "" && hasCommand("curl") && fs.existsSync("/usr/bin/python3") && hasCommand("node");
const NO_TOOLS = "needs terraform (PATH) or OpenTofu (npm run engines), curl and /usr/bin/python3";
const SCALED = ["web", "api", "worker"] as const;

describe("counts kept by Nomad (preserve_counts), no plan-time read", () => {
  const c = exampleCluster();
  let out: SynthOutput;
  let stack: any;
  beforeAll(() => {
    out = synthCluster(c);
    stack = out.stacks[jobsStackName(c)];
  });
  afterAll(() => cleanup(out));

  it("web, api and worker register with preserve_counts; haproxy and metrics do not; nothing is read at plan time", () => {
    for (const job of SCALED) {
      expect(stack.resource.nomad_job[job].preserve_counts).toBe(true);
      expect(stack.resource.nomad_job[job].hcl2).toBeUndefined();
    }
    for (const job of ["haproxy", "metrics"]) expect(stack.resource.nomad_job[job].preserve_counts).toBeUndefined();
    // No data source at all: the kept count is Nomad's at registration, not a plan-time read.
    expect(stack.data).toBeUndefined();
    // The jobspec's count is the description's (a new job's count).
    expect(out.files[jobsStackName(c)]["rendered/jobs/web.nomad.hcl"]).toMatch(/^ {4}count = 2$/m);
  });

  it(`the jobs stack pins the Nomad provider at ${NOMAD_PROVIDER_VERSION} (preserve_counts since ${PRESERVE_COUNTS_SINCE})`, () => {
    expect(stack.terraform.required_providers.nomad).toEqual({ source: "nomad", version: NOMAD_PROVIDER_VERSION });
    const [maj, min] = NOMAD_PROVIDER_VERSION.split(".").map(Number);
    const [smaj, smin] = PRESERVE_COUNTS_SINCE.split(".").map(Number);
    expect(maj * 1000 + min).toBeGreaterThanOrEqual(smaj * 1000 + smin);
  });

  it("a count or bounds change of the description is applied once, after the job's registration, by the rendered script", () => {
    for (const job of SCALED) {
      const count = stack.resource.terraform_data[`${job}_count`];
      const bounds = stack.resource.terraform_data[`${job}_scaling_bounds`];
      expect(count.triggers_replace).toEqual({ count: c.app[job].count });
      expect(bounds.triggers_replace).toEqual({ min: 2, max: 4 });
      expect(count.depends_on).toEqual([`nomad_job.${job}`]);
      expect(bounds.depends_on).toEqual([`nomad_job.${job}`, `terraform_data.${job}_count`]);
      expect(count.provisioner[0]["local-exec"].command).toBe(`bash 'rendered/${SET_COUNT_SCRIPT}' '${job}' '${job}' '2' '2' '2'`);
      expect(bounds.provisioner[0]["local-exec"].command).toBe(`bash 'rendered/${SET_COUNT_SCRIPT}' '${job}' '${job}' '2' '4'`);
      expect(count.provisioner[0]["local-exec"].environment).toEqual({ NOMAD_ADDR: c.servers.nomadHttpAddress, NOMAD_REGION: c.region });
    }
    expect(out.files[jobsStackName(c)][`rendered/${SET_COUNT_SCRIPT}`]).toMatch(/^#!\/usr\/bin\/env bash\n/);
  });

  itIf(hasCommand("shellcheck"), "shellcheck is not installed")("set-count.sh is shellcheck-clean", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "set-count-"));
    try {
      fs.writeFileSync(path.join(dir, "set-count.sh"), out.files[jobsStackName(c)][`rendered/${SET_COUNT_SCRIPT}`]);
      const r = spawnSync("shellcheck", ["-S", "warning", path.join(dir, "set-count.sh")], { encoding: "utf8" });
      expect({ status: r.status, out: r.stdout }).toEqual({ status: 0, out: "" });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("with autoscaling off: no preserve_counts, no count resources: a release registers the description's count", () => {
    const off = synthCluster(edited(c, (d) => void (d.metrics.autoscaling.enabled = false)));
    try {
      const s = off.stacks[jobsStackName(c)];
      for (const job of SCALED) expect(s.resource.nomad_job[job].preserve_counts).toBeUndefined();
      expect(s.resource.terraform_data ?? {}).not.toHaveProperty("web_count");
      expect(off.files[jobsStackName(c)]["rendered/jobs/web.nomad.hcl"]).toMatch(/^ {4}count = 2$/m);
    } finally {
      cleanup(off);
    }
  });
});

// ---------------------------------------------------------------------------------------
// Releases applied by the real Terraform against a Nomad API stand-in

interface StandinState {
  jobs: Record<string, { count: number; version: number; min: number; max: number }>;
  scale_requests: { job: string; count: number; message: string; refused?: string }[];
  registrations: { job: string; submitted: number; preserve: boolean; registered: number }[];
}

describe("releases during autoscaling keep Nomad's count; deliberate changes take effect (real Terraform, Nomad API stand-in)", () => {
  let sb: Sandbox | undefined;
  let dir = "";
  afterAll(() => {
    sb?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  itIf(hasTools, NO_TOOLS)("autoscaler's count kept across a release; new max, new count, autoscaling off each take effect once", async () => {
    const s = (sb = new Sandbox("kc"));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "kept-count-"));
    const port = 20000 + (process.pid % 20000);
    const address = `http://127.0.0.1:${port}`;
    const specFile = path.join(dir, "spec.json");
    fs.writeFileSync(specFile, JSON.stringify({ jobs: {} }));
    const nomad = s.start("nomad-standin", undefined, ["/usr/bin/python3", path.join(__dirname, "system", "fixtures", "nomad-scaling-api.py"), "127.0.0.1", String(port), specFile]);
    const call = (method: string, p: string, body?: unknown): any => {
      const args = ["-sS", "--max-time", "10", "-X", method, `${address}${p}`, ...(body === undefined ? [] : ["--data-binary", JSON.stringify(body)])];
      return JSON.parse(execFileSync("curl", args, { encoding: "utf8" }) || "null");
    };
    const state = (): StandinState => call("GET", "/test/state");
    await waitFor("the stand-in answering", () => { try { state(); return true; } catch { return false; } }, 15000, () => s.log(nomad));

    const job = "web";
    const env = { ...process.env, TF_IN_AUTOMATION: "1", CHECKPOINT_DISABLE: "1", TF_CLI_CONFIG_FILE: "/dev/null" };
    const tf = (...args: string[]) => {
      const r = spawnSync(ENGINE, args, { cwd: dir, env, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`${ENGINE} ${args.join(" ")}: ${r.stdout}\n${r.stderr}\n--- stand-in\n${s.log(nomad).slice(-2000)}`);
      return r.stdout;
    };
    /** One release: synth the description, write the module, terraform apply; returns the apply's output. */
    const release = async (cl: Cluster): Promise<string> => {
      const o = synthCluster(cl);
      try {
        const st = o.stacks[jobsStackName(cl)];
        const nj = st.resource.nomad_job[job];
        const jobspec = fromTerraformLiteral(nj.jobspec);
        const parsed = await parseHcl(`${job}.nomad.hcl`, jobspec);
        const g = groupOf(parsed.job[job][0], job);
        // The job as the provider submits it (api.Job: the group's Count and Scaling) with
        // PreserveCounts = preserve_counts.
        const payload = { Job: { ID: job, TaskGroups: [{ Name: job, Count: g.count, Scaling: { Min: g.scaling[0].min, Max: g.scaling[0].max, Enabled: true, Policy: g.scaling[0].policy?.[0] ?? null } }] }, PreserveCounts: nj.preserve_counts === true };
        fs.writeFileSync(path.join(dir, "register.json"), JSON.stringify(payload));
        const td: Record<string, any> = {
          nomad_job_web: {
            triggers_replace: { jobspec: nj.jobspec },
            provisioner: [{ "local-exec": { command: `curl -sS --fail -X PUT --data-binary @register.json ${address}/v1/jobs` } }],
          },
        };
        for (const name of [`${job}_count`, `${job}_scaling_bounds`]) {
          const r = st.resource.terraform_data?.[name];
          if (!r) continue;
          const pe = r.provisioner[0]["local-exec"];
          td[name] = {
            ...r,
            depends_on: r.depends_on.map((d: string) => (d === `nomad_job.${job}` ? "terraform_data.nomad_job_web" : d)),
            provisioner: [{ "local-exec": { ...pe, environment: { ...pe.environment, NOMAD_ADDR: address } } }],
          };
          delete td[name]["//"];
        }
        fs.mkdirSync(path.join(dir, "rendered", "jobs"), { recursive: true });
        fs.writeFileSync(path.join(dir, "rendered", SET_COUNT_SCRIPT), o.files[jobsStackName(cl)][`rendered/${SET_COUNT_SCRIPT}`] ?? "");
        fs.writeFileSync(path.join(dir, "main.tf.json"), JSON.stringify({ resource: { terraform_data: td } }, null, 2));
      } finally {
        cleanup(o);
      }
      tf("init", "-input=false", "-no-color");
      return tf("apply", "-auto-approve", "-input=false", "-no-color");
    };

    const base = exampleCluster();
    // 1. First deploy: the job is new, registered at the description's count; nothing scaled.
    await release(base);
    expect(state().jobs.web).toMatchObject({ count: 2, version: 0 });
    expect(state().scale_requests).toEqual([]);

    // 2. The autoscaler scales web to 4; a release (a new image) keeps 4: no read, no guard.
    call("PUT", "/v1/job/web/scale", { Count: 4, Target: { Group: "web" }, Message: "autoscaler" });
    const newImage = edited(base, (d) => void (d.app.images.web = d.app.images.web.replace(/:[^:@]+/, ":next-release")));
    await release(newImage);
    expect(state().jobs.web.count).toBe(4);
    expect(state().registrations.at(-1)).toEqual({ job: "web", submitted: 2, preserve: true, registered: 4 });
    expect(state().scale_requests.map((r) => r.message)).toEqual(["autoscaler"]);

    // 3. A new max below the running count: the release moves it into the new bounds, once.
    const newMax = edited(newImage, (d) => void (d.app.web.scaling = { min: 2, max: 3 }));
    const applied = await release(newMax);
    expect(state().jobs.web).toMatchObject({ count: 3, max: 3 });
    expect(state().scale_requests.at(-1)).toMatchObject({ job: "web", count: 3, message: "release: the description's bounds 2..3" });
    expect(applied).toMatch(/set-count: web\/web 4 -> 3/);
    // The same description again: nothing replaced, nothing sent.
    const before = state().scale_requests.length;
    await release(newMax);
    expect(state().scale_requests.length).toBe(before);

    // 4. A count edit: set once, then the autoscaler owns it again.
    call("PUT", "/v1/job/web/scale", { Count: 2, Target: { Group: "web" }, Message: "autoscaler" });
    const newCount = edited(newMax, (d) => void (d.app.web.count = 3));
    await release(newCount);
    expect(state().jobs.web.count).toBe(3);
    expect(state().scale_requests.at(-1)).toMatchObject({ count: 3, message: "release: the description's count 3" });

    // 5. Autoscaling off: registered without PreserveCounts, so at the description's count.
    call("PUT", "/v1/job/web/scale", { Count: 2, Target: { Group: "web" }, Message: "by hand" });
    const off = edited(newCount, (d) => void (d.metrics.autoscaling.enabled = false));
    await release(off);
    expect(state().registrations.at(-1)).toEqual({ job: "web", submitted: 3, preserve: false, registered: 3 });
    expect(state().jobs.web.count).toBe(3);
    expect(state().scale_requests.filter((r) => r.refused)).toEqual([]);
  }, 600000);
});
