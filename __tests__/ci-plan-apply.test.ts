/**
 * scripts/ci/plan.sh and apply.sh with the real Terraform engine: the deploy applies the
 * reviewed plan file, or refuses.
 *
 * The stack here is a stand-in for a synthesized nodes stack that needs no provider (the
 * built-in terraform_data), so that Terraform runs offline: one resource per "node" whose
 * create-time local-exec provisioner copies its rendered file to an "uploaded" directory,
 * as the nodes stack's file provisioners upload rendered/… at apply time (read from disk
 * then, not from the plan), with the file's sha256 as the replacement trigger, as
 * null_resource.triggers do, and a sensitive variable like vrrp_password. What is proved:
 * - the applied changes are the reviewed ones (same addresses and actions as the plan JSON),
 *   and the variable values are the plan's, whatever the deploy job's environment says, and
 *   neither is printed (Terraform itself would print both in a warning: apply.sh unsets them);
 * - a description changed between plan and apply is refused before anything runs, naming
 *   the changed file;
 * - a plan whose state changed since (another deploy) is refused by Terraform ("Saved plan
 *   is stale"), nothing applied;
 * - plans made for another commit are refused;
 * - plan-bundle.sh: the sealed plans open only with the key and the recorded SHA-256;
 * - the counts the Nomad Autoscaler set are kept: a plan whose nomad_job counts differ from
 *   the ones Nomad runs now (an HTTP stand-in on loopback) is refused, nothing applied.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { findEngine } from "./helpers/engine";
import { cleanup, exampleCluster, hasCommand, itIf, synthCluster } from "./helpers/synth";

const ROOT = path.resolve(__dirname, "..");
// Terraform or OpenTofu (helpers/engine.ts); the scripts take it from TERRAFORM.
const ENGINE = findEngine();
const TERRAFORM = ENGINE?.path ?? "terraform";
const hasEngine = ENGINE !== undefined && hasCommand("git") && hasCommand("openssl");
const STACK = "team-test-nodes";

interface Repo {
  dir: string;
  run(cmd: string, args: string[], env?: Record<string, string>): SpawnSyncReturns<string>;
  stackDir: string;
  writeRendered(node: string, text: string): void;
  commit(message: string): string;
  state(): string[];
}

/** The stand-in synthesized stack: what `npm run synth` would leave in cdktf.out/. */
function synthesize(repo: Repo, nodes: Record<string, string>): void {
  fs.rmSync(repo.stackDir, { recursive: true, force: true });
  fs.mkdirSync(repo.stackDir, { recursive: true });
  const resources: Record<string, unknown> = {};
  for (const [node, text] of Object.entries(nodes)) {
    repo.writeRendered(node, text);
    const hash = crypto.createHash("sha256").update(text).digest("hex");
    resources[`${node}_consul`] = {
      triggers_replace: { sha256_consul_hcl: hash },
      provisioner: [
        {
          "local-exec": {
            // The upload: the file as it is on disk at apply time, and the VRRP-like secret's
            // own hash (the secret itself is never written).
            command: `mkdir -p ../../../uploaded && cp rendered/${node}/consul.hcl ../../../uploaded/${node}.hcl && printf '%s' "$SECRET" | sha256sum | cut -c1-64 > ../../../uploaded/${node}.secret-sha256`,
            environment: { SECRET: "${var.vrrp_password}" },
          },
        },
      ],
    };
  }
  const tf = {
    terraform: { backend: { local: { path: "../../../terraform.state" } } },
    variable: { vrrp_password: { type: "string", sensitive: true } },
    resource: { terraform_data: resources },
  };
  fs.writeFileSync(path.join(repo.stackDir, "cdk.tf.json"), JSON.stringify(tf, null, 2));
}

function makeRepo(): Repo {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ci-plan-apply-"));
  fs.mkdirSync(path.join(dir, "scripts", "ci"), { recursive: true });
  for (const f of ["lib.sh", "plan.sh", "apply.sh", "plan-bundle.sh"]) {
    fs.copyFileSync(path.join(ROOT, "scripts", "ci", f), path.join(dir, "scripts", "ci", f));
    fs.chmodSync(path.join(dir, "scripts", "ci", f), 0o755);
  }
  // No provider in this stack: its lock file is empty, and still required.
  fs.mkdirSync(path.join(dir, "terraform-locks"));
  fs.writeFileSync(path.join(dir, "terraform-locks", "nodes.terraform.lock.hcl"), "");
  fs.writeFileSync(path.join(dir, ".gitignore"), "cdktf.out/\nplan/\nuploaded/\nterraform.state*\n*.enc\n");
  const stackDir = path.join(dir, "cdktf.out", "stacks", STACK);
  const repo: Repo = {
    dir,
    stackDir,
    run: (cmd, args, env = {}) =>
      spawnSync(cmd, args, {
        cwd: dir,
        encoding: "utf8",
        env: { ...process.env, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1", TERRAFORM, ...env },
      }),
    writeRendered: (node, text) => {
      fs.mkdirSync(path.join(stackDir, "rendered", node), { recursive: true });
      fs.writeFileSync(path.join(stackDir, "rendered", node, "consul.hcl"), text);
    },
    commit: (message) => {
      const git = (...args: string[]) => {
        const r = spawnSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", ...args], { cwd: dir, encoding: "utf8" });
        if (r.status !== 0) throw new Error(r.stderr);
        return r.stdout.trim();
      };
      git("add", "-A");
      git("commit", "--allow-empty", "-q", "-m", message);
      return git("rev-parse", "HEAD");
    },
    state: () => {
      const r = spawnSync(TERRAFORM, [`-chdir=${stackDir}`, "state", "list"], { encoding: "utf8" });
      return r.status === 0 ? r.stdout.trim().split("\n").filter(Boolean).sort() : [];
    },
  };
  spawnSync("git", ["init", "-q", "-b", "main"], { cwd: dir });
  repo.commit("init");
  return repo;
}

const SECRET = { TF_VAR_vrrp_password: "s3cr3t-1" };
const sha = (text: string) => crypto.createHash("sha256").update(text).digest("hex");

describe("plan.sh / apply.sh with the real engine", () => {
  const repos: Repo[] = [];
  afterAll(() => repos.forEach((r) => fs.rmSync(r.dir, { recursive: true, force: true })));
  const newRepo = () => {
    const r = makeRepo();
    repos.push(r);
    return r;
  };

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("applies exactly the reviewed plan, with the plan's variable values", () => {
    const repo = newRepo();
    synthesize(repo, { "node-1": "node-1 v1\n", "node-2": "node-2 v1\n" });
    const plan = repo.run("scripts/ci/plan.sh", ["--out", "plan"], SECRET);
    expect(plan.stderr).not.toContain("error");
    expect(plan.status).toBe(0);
    // The readable rendering: Terraform's own text, sensitive value redacted.
    const text = fs.readFileSync(path.join(repo.dir, "plan", STACK, "plan.txt"), "utf8");
    expect(text).toContain('terraform_data.node-1_consul will be created');
    expect(text).toContain("Plan: 2 to add, 0 to change, 0 to destroy.");
    expect(fs.readFileSync(path.join(repo.dir, "plan", "plan.md"), "utf8")).toContain(text.trim().split("\n")[0]);
    for (const f of ["plan.txt", "plan.md"]) {
      const p = f === "plan.md" ? path.join(repo.dir, "plan", f) : path.join(repo.dir, "plan", STACK, f);
      expect(fs.readFileSync(p, "utf8")).not.toContain(SECRET.TF_VAR_vrrp_password);
    }
    const reviewed = JSON.parse(fs.readFileSync(path.join(repo.dir, "plan", STACK, "plan.json"), "utf8"));
    const reviewedChanges = (reviewed.resource_changes as { address: string; change: { actions: string[] } }[])
      .map((c) => `${c.address} ${c.change.actions.join(",")}`)
      .sort();
    expect(reviewedChanges).toEqual(["terraform_data.node-1_consul create", "terraform_data.node-2_consul create"]);

    // The deploy job: same commit, a fresh synth, another value in its environment.
    synthesize(repo, { "node-1": "node-1 v1\n", "node-2": "node-2 v1\n" });
    const apply = repo.run("scripts/ci/apply.sh", ["--plans", "plan"], { TF_VAR_vrrp_password: "another-value" });
    expect(apply.stderr).not.toMatch(/error/i);
    expect(apply.status).toBe(0);
    expect(apply.stdout).toContain("Apply complete! Resources: 2 added, 0 changed, 0 destroyed.");
    expect(repo.state()).toEqual(reviewedChanges.map((c) => c.split(" ")[0]));
    expect(fs.readFileSync(path.join(repo.dir, "uploaded", "node-1.hcl"), "utf8")).toBe("node-1 v1\n");
    // The secret the provisioner saw is the one the plan was made with.
    expect(fs.readFileSync(path.join(repo.dir, "uploaded", "node-1.secret-sha256"), "utf8").trim()).toBe(sha(SECRET.TF_VAR_vrrp_password));
    // Neither value is printed: Terraform 1.11 warns about a TF_VAR_* that differs from the
    // plan's value and prints both, so apply.sh removes TF_VAR_* from its environment.
    expect(apply.stdout + apply.stderr).not.toContain(SECRET.TF_VAR_vrrp_password);
    expect(apply.stdout + apply.stderr).not.toContain("another-value");
  });

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("refuses a description changed between plan and apply, naming the file, applying nothing", () => {
    const repo = newRepo();
    synthesize(repo, { "node-1": "node-1 v1\n" });
    expect(repo.run("scripts/ci/plan.sh", ["--out", "plan"], SECRET).status).toBe(0);
    // Same resources, same trigger in the saved plan, but another file would be uploaded.
    repo.writeRendered("node-1", "node-1 CHANGED\n");
    const apply = repo.run("scripts/ci/apply.sh", ["--plans", "plan"], SECRET);
    expect(apply.status).toBe(1);
    expect(apply.stderr).toContain("rendered/node-1/consul.hcl");
    expect(apply.stderr).toContain(`${STACK}: the synthesized configuration differs from the planned one`);
    expect(repo.state()).toEqual([]);
    expect(fs.existsSync(path.join(repo.dir, "uploaded"))).toBe(false);
  });

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("refuses a stale plan (the state changed since): Terraform's own check, nothing applied", () => {
    const repo = newRepo();
    synthesize(repo, { "node-1": "node-1 v1\n" });
    expect(repo.run("scripts/ci/plan.sh", ["--out", "plan"], SECRET).status).toBe(0);
    fs.renameSync(path.join(repo.dir, "plan"), path.join(repo.dir, "plan-old"));
    // Another change is planned and deployed meanwhile.
    synthesize(repo, { "node-1": "node-1 v1\n", "node-2": "node-2 v1\n" });
    expect(repo.run("scripts/ci/plan.sh", ["--out", "plan"], SECRET).status).toBe(0);
    expect(repo.run("scripts/ci/apply.sh", ["--plans", "plan"], SECRET).status).toBe(0);
    const before = repo.state();
    // The old plan, with its own configuration synthesized again.
    synthesize(repo, { "node-1": "node-1 v1\n" });
    const stale = repo.run("scripts/ci/apply.sh", ["--plans", "plan-old"], SECRET);
    expect(stale.status).toBe(1);
    expect(stale.stdout + stale.stderr).toContain("Saved plan is stale");
    expect(stale.stderr).toContain(`${STACK}: the state changed since this plan was made`);
    expect(repo.state()).toEqual(before);
  });

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("refuses plans made for another commit", () => {
    const repo = newRepo();
    synthesize(repo, { "node-1": "node-1 v1\n" });
    expect(repo.run("scripts/ci/plan.sh", ["--out", "plan"], SECRET).status).toBe(0);
    const planned = fs.readFileSync(path.join(repo.dir, "plan", "commit"), "utf8").trim();
    const next = repo.commit("another change");
    const apply = repo.run("scripts/ci/apply.sh", ["--plans", "plan"], SECRET);
    expect(apply.status).toBe(1);
    expect(apply.stderr).toContain(`the plans were made for commit ${planned}, this is ${next}`);
    expect(repo.state()).toEqual([]);
  });

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("plan-bundle.sh: plans travel encrypted and open only with the key and the recorded SHA-256", () => {
    const repo = newRepo();
    synthesize(repo, { "node-1": "node-1 v1\n" });
    expect(repo.run("scripts/ci/plan.sh", ["--out", "plan"], SECRET).status).toBe(0);
    const key = { PLAN_ENCRYPTION_KEY: "k".repeat(40) };
    expect(repo.run("scripts/ci/plan-bundle.sh", ["seal", "plan", "tfplan.enc"], {}).stderr).toContain("PLAN_ENCRYPTION_KEY is not set");
    const seal = repo.run("scripts/ci/plan-bundle.sh", ["seal", "plan", "tfplan.enc"], key);
    expect(seal.status).toBe(0);
    const digest = seal.stdout.trim();
    expect(digest).toBe(sha256File(path.join(repo.dir, "tfplan.enc")));
    // The archive does not contain the plan in clear (a saved plan is a zip: "PK").
    expect(fs.readFileSync(path.join(repo.dir, "tfplan.enc")).includes(Buffer.from("tfplan"))).toBe(false);
    const wrongSum = repo.run("scripts/ci/plan-bundle.sh", ["open", "tfplan.enc", "0".repeat(64), "opened"], key);
    expect(wrongSum.status).toBe(1);
    expect(wrongSum.stderr).toContain("not the reviewed plan");
    expect(repo.run("scripts/ci/plan-bundle.sh", ["open", "tfplan.enc", digest, "opened-bad"], { PLAN_ENCRYPTION_KEY: "wrong" }).status).not.toBe(0);
    expect(repo.run("scripts/ci/plan-bundle.sh", ["open", "tfplan.enc", digest, "opened"], key).status).toBe(0);
    expect(sha256File(path.join(repo.dir, "opened", STACK, "tfplan"))).toBe(sha256File(path.join(repo.dir, "plan", STACK, "tfplan")));
    // …and the opened plan applies.
    synthesize(repo, { "node-1": "node-1 v1\n" });
    expect(repo.run("scripts/ci/apply.sh", ["--plans", "opened"], SECRET).status).toBe(0);
    expect(repo.state()).toEqual(["terraform_data.node-1_consul"]);
  });

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("a stack without its committed lock file is refused before init", () => {
    const repo = newRepo();
    synthesize(repo, { "node-1": "node-1 v1\n" });
    fs.rmSync(path.join(repo.dir, "terraform-locks", "nodes.terraform.lock.hcl"));
    const plan = repo.run("scripts/ci/plan.sh", ["--out", "plan"], SECRET);
    expect(plan.status).toBe(1);
    expect(plan.stderr).toContain("terraform-locks/nodes.terraform.lock.hcl is missing");
  });
});

/**
 * A stand-in for the Nomad HTTP API on loopback, reproducing what Nomad documents for
 * "Read Job" (https://developer.hashicorp.com/nomad/api-docs/jobs#read-job):
 * `GET /v1/job/:job_id` (query `namespace`, and `region` as every endpoint takes) answers 200
 * with the job, whose `TaskGroups[]` carry `Name` and `Count`; an unknown job answers 404
 * with the body `job not found`; with ACLs on, a request without a valid `X-Nomad-Token`
 * answers 403 `Permission denied`. The jobs and their counts are read from JOBS_FILE at
 * each request (the test changes them as the autoscaler would); each request is logged to
 * LOG_FILE (method, path and query, whether the token matched; never the token).
 */
const NOMAD_STAND_IN = `
const http = require("http");
const fs = require("fs");
const [jobsFile, logFile, token] = process.argv.slice(1);
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://nomad");
  const tokenOk = req.headers["x-nomad-token"] === token;
  fs.appendFileSync(logFile, JSON.stringify({ method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), tokenOk }) + "\\n");
  const send = (code, body, type) => { res.writeHead(code, { "Content-Type": type }); res.end(body); };
  if (!tokenOk) return send(403, "Permission denied", "text/plain");
  const m = /^\\/v1\\/job\\/([^/]+)$/.exec(url.pathname);
  if (req.method !== "GET" || !m) return send(404, "Invalid URL", "text/plain");
  const jobs = JSON.parse(fs.readFileSync(jobsFile, "utf8"));
  const id = decodeURIComponent(m[1]);
  if (!(id in jobs)) return send(404, "job not found", "text/plain");
  const namespace = url.searchParams.get("namespace") || "default";
  send(200, JSON.stringify({
    ID: id, Name: id, Namespace: namespace, Region: url.searchParams.get("region") || "global", Type: "service",
    Status: "running", Stop: false, Version: 3, ModifyIndex: 1234, JobModifyIndex: 1200,
    TaskGroups: [{ Name: id, Count: jobs[id], Scaling: { Enabled: true, Min: 2, Max: 4 }, Tasks: [{ Name: id, Driver: "docker" }] }],
  }), "application/json");
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`;

interface NomadStandIn {
  address: string;
  setCounts(counts: Record<string, number>): void;
  requests(): { method: string; path: string; query: Record<string, string>; tokenOk: boolean }[];
  stop(): Promise<void>;
}

async function startNomadStandIn(dir: string, token: string): Promise<NomadStandIn> {
  const jobsFile = path.join(dir, "nomad-jobs.json");
  const logFile = path.join(dir, "nomad-requests.log");
  fs.writeFileSync(jobsFile, "{}");
  fs.writeFileSync(logFile, "");
  const child: ChildProcess = spawn(process.execPath, ["-e", NOMAD_STAND_IN, jobsFile, logFile, token], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once("exit", (code) => reject(new Error(`Nomad stand-in exited (${code})`)));
  });
  return {
    address: `http://127.0.0.1:${port}`,
    setCounts: (counts) => fs.writeFileSync(jobsFile, JSON.stringify(counts)),
    requests: () => fs.readFileSync(logFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        process.kill(child.pid as number, "SIGTERM");
      }),
  };
}

/**
 * apply.sh against the counts Nomad runs now. The saved plan is a real one (plan.sh on the
 * offline stand-in stack above); its plan.json (`terraform show -json` of it, which apply.sh
 * reads) gets the resource changes that the example's real jobs stack would plan for its
 * autoscaled jobs: the nomad_job bodies (jobspec, hcl2.vars names, the provider's address
 * and region) are the synthesized ones, in the shape Terraform's JSON plan format gives them
 * for terraform-provider-nomad 2.5.2's schema (hcl2: a nested block, so a list of one
 * object {allow_fs, vars}; vars: map(string), so the count is a string). That shape was
 * checked once with the real provider 2.5.2 (built from source) and Terraform 1.11.4 on a
 * small plan; the provider is not built for the tests (nor is Nomad available to it).
 */
describe("apply.sh keeps the counts the Nomad Autoscaler set", () => {
  const TOKEN = "nomad-acl-token-0f9c1e";
  const repos: Repo[] = [];
  const standIns: NomadStandIn[] = [];
  let jobsStack: any;
  beforeAll(() => {
    const out = synthCluster(exampleCluster());
    jobsStack = Object.entries(out.stacks).find(([name]) => name.endsWith("-jobs"))?.[1];
    cleanup(out);
  });
  afterAll(async () => {
    await Promise.all(standIns.map((s) => s.stop()));
    repos.forEach((r) => fs.rmSync(r.dir, { recursive: true, force: true }));
  });
  const newRepo = () => {
    const r = makeRepo();
    repos.push(r);
    return r;
  };
  const newStandIn = async (repo: Repo) => {
    const s = await startNomadStandIn(repo.dir, TOKEN);
    standIns.push(s);
    return s;
  };

  /** The synthesized nomad_job.<job> as Terraform's JSON plan shows it, registering `count`. */
  function plannedJob(job: string, actions: string[], count: number, before: number | null) {
    const config = jobsStack.resource.nomad_job[job];
    const varName = Object.keys(config.hcl2.vars)[0];
    // What apply.sh relies on: the variable is <job>_count and sets the count of group <job>.
    expect(varName).toBe(`${job}_count`);
    expect(config.jobspec).toMatch(new RegExp(`group "${job}" \\{[^]*count += var\\.${varName}\\b`));
    const body = (n: number) => ({
      deregister_on_destroy: config.deregister_on_destroy,
      deregister_on_id_change: config.deregister_on_id_change,
      detach: config.detach,
      hcl2: [{ allow_fs: false, vars: { [varName]: String(n) } }],
      jobspec: config.jobspec,
      json: null,
      policy_override: null,
      purge_on_destroy: config.purge_on_destroy,
      rerun_if_dead: false,
      read_allocation_ids: false,
      timeouts: config.timeouts,
      // Computed by the provider's CustomizeDiff from the jobspec parsed with the vars: known
      // at plan time even for a new job (checked with the real provider 2.5.2 built from
      // source and Terraform 1.11.4); id, region and type only once the job exists.
      name: job,
      namespace: "default",
      datacenters: ["dc1"],
      task_groups: [{ count: n, name: job, task: [{ driver: "docker", name: job, volume_mounts: null }], volumes: null }],
      ...(actions.includes("create") ? {} : { id: job, region: "global", type: "service" }),
    });
    return {
      resource: {
        address: `nomad_job.${job}`,
        mode: "managed",
        type: "nomad_job",
        name: job,
        provider_name: "registry.terraform.io/hashicorp/nomad",
        change: {
          actions,
          before: before === null ? null : body(before),
          after: body(count),
          after_unknown: {
            allocation_ids: true, deployment_id: true, deployment_status: true, modify_index: true, status: true,
            datacenters: [false], hcl2: [{ vars: {} }], task_groups: [{ meta: true, task: [{ meta: true }] }], timeouts: {},
            ...(actions.includes("create") ? { id: true, region: true, type: true } : {}),
          },
          before_sensitive: before === null ? false : {},
          after_sensitive: {},
        },
      },
      config: { address: `nomad_job.${job}`, mode: "managed", type: "nomad_job", name: job, provider_config_key: "nomad", schema_version: 0 },
    };
  }

  /** plan.json of the saved plan, with the jobs stack's nomad_job changes and provider. */
  function addJobsToPlan(repo: Repo, address: string, jobs: ReturnType<typeof plannedJob>[]): void {
    const file = path.join(repo.dir, "plan", STACK, "plan.json");
    const plan = JSON.parse(fs.readFileSync(file, "utf8"));
    const provider = jobsStack.provider.nomad[0];
    expect(provider.region).toBe("global");
    plan.resource_changes.push(...jobs.map((j) => j.resource));
    plan.configuration.provider_config = {
      ...plan.configuration.provider_config,
      nomad: {
        name: "nomad",
        full_name: "registry.terraform.io/hashicorp/nomad",
        version_constraint: "2.5.2",
        // The real stack's is the cluster's (provider.address); the stand-in listens here.
        expressions: { address: { constant_value: address }, region: { constant_value: provider.region } },
      },
    };
    plan.configuration.root_module.resources.push(...jobs.map((j) => j.config));
    fs.writeFileSync(file, JSON.stringify(plan));
  }

  /** A saved plan registering web at 3 (update), api at 2 (create) and worker at 2 (no-op). */
  async function planned(): Promise<{ repo: Repo; nomad: NomadStandIn }> {
    const repo = newRepo();
    synthesize(repo, { "node-1": "node-1 v1\n" });
    expect(repo.run("scripts/ci/plan.sh", ["--out", "plan"], SECRET).status).toBe(0);
    const nomad = await newStandIn(repo);
    addJobsToPlan(repo, nomad.address, [plannedJob("web", ["update"], 3, 2), plannedJob("api", ["create"], 2, null), plannedJob("worker", ["no-op"], 2, 2)]);
    return { repo, nomad };
  }
  const env = { ...SECRET, NOMAD_TOKEN: TOKEN };

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("counts equal to Nomad's: the plan is applied; the token is sent, never printed", async () => {
    const { repo, nomad } = await planned();
    // api does not exist in Nomad (404: nothing to compare); worker's count differs but the
    // plan does not register it (no-op: the provider calls no Register).
    nomad.setCounts({ web: 3, worker: 4 });
    const apply = repo.run("scripts/ci/apply.sh", ["--plans", "plan"], env);
    expect(apply.stderr).not.toMatch(/error/i);
    expect(apply.status).toBe(0);
    expect(apply.stdout).toContain("Apply complete! Resources: 1 added");
    expect(repo.state()).toEqual(["terraform_data.node-1_consul"]);
    const reads = nomad.requests();
    // Checked before anything is applied, and again just before the stack's apply.
    expect(reads.map((r) => r.path).sort()).toEqual(["/v1/job/api", "/v1/job/api", "/v1/job/web", "/v1/job/web"]);
    expect(reads.every((r) => r.method === "GET" && r.tokenOk && r.query.region === "global")).toBe(true);
    expect(reads.find((r) => r.path === "/v1/job/web")?.query.namespace).toBe("default");
    expect(apply.stdout + apply.stderr).not.toContain(TOKEN);
  });

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("a count the autoscaler changed since the plan: refused, naming the job and both counts, nothing applied", async () => {
    const { repo, nomad } = await planned();
    nomad.setCounts({ web: 4 });
    const apply = repo.run("scripts/ci/apply.sh", ["--plans", "plan"], env);
    expect(apply.status).toBe(1);
    expect(apply.stderr).toContain(`${STACK}: job web: the plan registers group web with count 3 (running at plan time), Nomad runs 4 now`);
    expect(apply.stderr).toContain("the autoscaler changed it since the plan: applying would undo it; plan again");
    expect(apply.stdout).not.toContain("Apply complete");
    expect(repo.state()).toEqual([]);
    expect(fs.existsSync(path.join(repo.dir, "uploaded"))).toBe(false);
  });

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("Nomad unreachable: refused, nothing applied; APPLY_SKIP_COUNT_CHECK=1 applies, with a warning", async () => {
    const { repo, nomad } = await planned();
    await nomad.stop(); // nothing listens on its port any more
    const apply = repo.run("scripts/ci/apply.sh", ["--plans", "plan"], env);
    expect(apply.status).toBe(1);
    expect(apply.stderr).toContain(`${STACK}: cannot read job web from Nomad at ${nomad.address}`);
    expect(apply.stderr).toContain("refusing to apply (APPLY_SKIP_COUNT_CHECK=1 to apply anyway");
    expect(repo.state()).toEqual([]);

    const skipped = repo.run("scripts/ci/apply.sh", ["--plans", "plan"], { ...env, APPLY_SKIP_COUNT_CHECK: "1" });
    expect(skipped.status).toBe(0);
    expect(skipped.stderr).toContain("APPLY_SKIP_COUNT_CHECK=1: the counts the Nomad Autoscaler set are not compared");
    expect(repo.state()).toEqual(["terraform_data.node-1_consul"]);
  });

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("a token Nomad refuses (403): refused, naming the answer", async () => {
    const { repo, nomad } = await planned();
    nomad.setCounts({ web: 3 });
    const apply = repo.run("scripts/ci/apply.sh", ["--plans", "plan"], { ...env, NOMAD_TOKEN: "wrong-token" });
    expect(apply.status).toBe(1);
    expect(apply.stderr).toContain(`Nomad at ${nomad.address} answered HTTP 403 for job web`);
    expect(apply.stdout + apply.stderr).not.toContain("wrong-token");
    expect(repo.state()).toEqual([]);
  });
});

function sha256File(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/**
 * The same scripts on the real synthesized nodes stack of the example (hashicorp/null from
 * the offline mirror that `npm run engines` builds; its CLI configuration
 * .engines/terraform.rc). Nothing can be applied here (the provisioners SSH to the VMs),
 * so this proves the refusals on the real stack, and the lock file check: the committed
 * lock holds the registry's hashes, which a locally built provider does not match.
 */
describe("plan.sh / apply.sh on the real nodes stack", () => {
  const rc = process.env.TEST_ENGINE_RC ?? path.join(ROOT, ".engines", "terraform.rc");
  const canRun = hasEngine && fs.existsSync(rc);
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  /** A repository-like directory with the example synthesized into cdktf.out/. */
  function exampleRepo(): { dir: string; stack: string; run: Repo["run"]; state: () => string[] } {
    const out = synthCluster(exampleCluster());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ci-nodes-"));
    dirs.push(dir);
    fs.cpSync(out.outdir, path.join(dir, "cdktf.out"), { recursive: true });
    cleanup(out);
    fs.mkdirSync(path.join(dir, "scripts", "ci"), { recursive: true });
    for (const f of ["lib.sh", "plan.sh", "apply.sh"]) fs.copyFileSync(path.join(ROOT, "scripts", "ci", f), path.join(dir, "scripts", "ci", f));
    fs.cpSync(path.join(ROOT, "terraform-locks"), path.join(dir, "terraform-locks"), { recursive: true });
    const stack = Object.keys(out.stacks).find((s) => s.endsWith("-nodes")) as string;
    const env = { CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1", TERRAFORM, TF_CLI_CONFIG_FILE: rc, ...SECRET };
    const run: Repo["run"] = (cmd, args, extra = {}) => spawnSync(cmd, args, { cwd: dir, encoding: "utf8", env: { ...process.env, ...env, ...extra } });
    const state = () => {
      const r = run(TERRAFORM, [`-chdir=cdktf.out/stacks/${stack}`, "state", "list"]);
      return r.status === 0 ? r.stdout.trim().split("\n").filter(Boolean).sort() : [];
    };
    return { dir, stack, run, state };
  }

  /** A lock file for the locally built provider, in a directory of its own (LOCK_DIR). */
  function localLock(repo: ReturnType<typeof exampleRepo>): Record<string, string> {
    const lockDir = path.join(repo.dir, "local-locks");
    fs.mkdirSync(lockDir);
    const probe = path.join(repo.dir, "probe");
    fs.mkdirSync(probe);
    fs.writeFileSync(path.join(probe, "main.tf.json"), JSON.stringify({ terraform: { required_providers: { null: { source: "hashicorp/null", version: "3.2.4" } } } }));
    expect(repo.run(TERRAFORM, [`-chdir=${probe}`, "init", "-input=false"]).status).toBe(0);
    fs.copyFileSync(path.join(probe, ".terraform.lock.hcl"), path.join(lockDir, "nodes.terraform.lock.hcl"));
    return { LOCK_DIR: lockDir };
  }

  itIf(canRun, "no engine with the offline provider mirror (npm run engines)")("the committed lock file is checked: a provider whose hash it does not list is refused at init", () => {
    const repo = exampleRepo();
    const plan = repo.run("scripts/ci/plan.sh", ["--out", "plan", repo.stack]);
    expect(plan.status).toBe(1);
    // Terraform: the local build's checksum is not among the registry's; OpenTofu: the lock
    // file lists the provider under registry.terraform.io only. Either way: no init, no plan.
    expect(plan.stderr).toMatch(/checksum|lock file/i);
    expect(fs.existsSync(path.join(repo.dir, "plan", repo.stack, "tfplan"))).toBe(false);
  });

  itIf(canRun, "no engine with the offline provider mirror (npm run engines)")("plans the real stack, then refuses a changed rendered file and a stale plan", () => {
    const repo = exampleRepo();
    const lock = localLock(repo);
    const plan = repo.run("scripts/ci/plan.sh", ["--out", "plan", repo.stack], lock);
    expect(plan.stderr).not.toMatch(/^error/m);
    expect(plan.status).toBe(0);
    const text = fs.readFileSync(path.join(repo.dir, "plan", repo.stack, "plan.txt"), "utf8");
    expect(text).toContain("null_resource.node-1_consul will be created");
    expect(text).toContain('terraform_data.node_membership["node-2"] will be created');
    expect(text).not.toContain(SECRET.TF_VAR_vrrp_password);

    // A rendered file the provisioner would upload changes after the review.
    const consul = path.join(repo.dir, "cdktf.out", "stacks", repo.stack, "rendered", "node-1", "consul", "consul.hcl");
    const original = fs.readFileSync(consul, "utf8");
    fs.writeFileSync(consul, `${original}# edited after the review\n`);
    const changed = repo.run("scripts/ci/apply.sh", ["--plans", "plan", repo.stack], lock);
    expect(changed.status).toBe(1);
    expect(changed.stderr).toContain("rendered/node-1/consul/consul.hcl");
    expect(repo.state()).toEqual([]);
    fs.writeFileSync(consul, original);

    // Another apply changes the state meanwhile (the membership instances have destroy-time
    // steps only: they are created without SSH).
    const other = repo.run(TERRAFORM, [`-chdir=cdktf.out/stacks/${repo.stack}`, "apply", "-input=false", "-auto-approve", "-target=terraform_data.node_membership"]);
    expect(other.status).toBe(0);
    const before = repo.state();
    expect(before).toEqual(['terraform_data.node_membership["node-1"]', 'terraform_data.node_membership["node-2"]']);
    const stale = repo.run("scripts/ci/apply.sh", ["--plans", "plan", repo.stack], lock);
    expect(stale.status).toBe(1);
    expect(stale.stdout + stale.stderr).toContain("Saved plan is stale");
    expect(repo.state()).toEqual(before);
  });
});
