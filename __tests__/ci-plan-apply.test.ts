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
 * - plan-bundle.sh: the sealed plans open only with the key and the recorded SHA-256.
 * (The counts the Nomad Autoscaler set are kept by Nomad itself, preserve_counts: no check
 * here; see kept-count.test.ts.)
 */
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { findEngine } from "./helpers/engine";
import { cleanup, exampleCluster, hasCommand, itIf, synthCluster } from "./helpers/synth";
import { startStateBackend, type StateBackend } from "./helpers/http-state-backend";

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
  commit(message: string, push?: boolean): string;
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

/**
 * A git checkout whose `origin` (a bare repository beside it) has the branch main: what a CI
 * job's checkout is. Returns `commit(message, push)`: commits everything; pushed to main,
 * unless push is false (then the checkout is ahead of the tip). The scripts read the tip
 * with `git ls-remote origin refs/heads/main` (DEPLOY_BRANCH=main).
 */
function gitWithOrigin(dir: string): (message: string, push?: boolean) => string {
  const git = (...args: string[]) => {
    const r = spawnSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", ...args], { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(r.stderr);
    return r.stdout.trim();
  };
  git("init", "-q", "-b", "main");
  git("init", "-q", "--bare", "-b", "main", "origin.git");
  git("remote", "add", "origin", path.join(dir, "origin.git"));
  fs.appendFileSync(path.join(dir, ".git", "info", "exclude"), "origin.git/\n");
  return (message, push = true) => {
    git("add", "-A");
    git("commit", "--allow-empty", "-q", "-m", message);
    if (push) git("push", "-q", "--force", "origin", "HEAD:main");
    return git("rev-parse", "HEAD");
  };
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
        env: { ...process.env, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1", TERRAFORM, DEPLOY_BRANCH: "main", ...env },
      }),
    writeRendered: (node, text) => {
      fs.mkdirSync(path.join(stackDir, "rendered", node), { recursive: true });
      fs.writeFileSync(path.join(stackDir, "rendered", node, "consul.hcl"), text);
    },
    commit: (message, push) => commit(message, push),
    state: () => {
      const r = spawnSync(TERRAFORM, [`-chdir=${stackDir}`, "state", "list"], { encoding: "utf8" });
      return r.status === 0 ? r.stdout.trim().split("\n").filter(Boolean).sort() : [];
    },
  };
  const commit = gitWithOrigin(dir);
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
    gitWithOrigin(dir)("the example, synthesized");
    const env = { CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1", TERRAFORM, TF_CLI_CONFIG_FILE: rc, DEPLOY_BRANCH: "main", ...SECRET };
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

/**
 * Only the tip deploys, with the HTTP state backend the templates use (a GitLab-like stand-in
 * on loopback): an old pipeline re-run is refused by plan.sh and apply.sh (exit 3) and the
 * rollback is a revert commit, logged; a plan with no change says so (the pipelines then
 * skip the deploy); a partial apply's retry skips the stack already applied and applies the
 * rest; a cancellation signalled to apply.sh alone (as the runners do to a step's main
 * process) reaches Terraform, which stops and unlocks.
 */
describe("only the tip deploys; retries and cancellations (HTTP state backend)", () => {
  const repos: Repo[] = [];
  const backends: StateBackend[] = [];
  afterAll(async () => {
    for (const b of backends) await b.stop();
    repos.forEach((r) => fs.rmSync(r.dir, { recursive: true, force: true }));
  });
  const JOBS = "team-test-jobs";

  /** Two stacks on the HTTP backend: nodes (one resource per node, its file uploaded) and jobs. */
  function synthesizeHttp(repo: Repo, nodes: Record<string, string>, jobsCommand = "true"): void {
    synthesize(repo, nodes);
    const nodesTf = JSON.parse(fs.readFileSync(path.join(repo.stackDir, "cdk.tf.json"), "utf8"));
    nodesTf.terraform = { backend: { http: {} } };
    fs.writeFileSync(path.join(repo.stackDir, "cdk.tf.json"), JSON.stringify(nodesTf, null, 2));
    const jobsDir = path.join(repo.dir, "cdktf.out", "stacks", JOBS);
    fs.rmSync(jobsDir, { recursive: true, force: true });
    fs.mkdirSync(jobsDir, { recursive: true });
    const generation = Object.values(nodes).join("|");
    fs.writeFileSync(
      path.join(jobsDir, "cdk.tf.json"),
      JSON.stringify({
        terraform: { backend: { http: {} } },
        resource: { terraform_data: { web: { input: generation, provisioner: [{ "local-exec": { command: jobsCommand } }] } } },
      }),
    );
  }

  async function httpRepo(): Promise<{ repo: Repo; backend: StateBackend; env: Record<string, string> }> {
    const repo = makeRepo();
    repos.push(repo);
    fs.writeFileSync(path.join(repo.dir, "terraform-locks", "jobs.terraform.lock.hcl"), "");
    const backend = await startStateBackend(repo.dir);
    backends.push(backend);
    fs.appendFileSync(path.join(repo.dir, ".gitignore"), "state-backend/\nplan-*/\n");
    const env = {
      ...SECRET,
      TF_STATE_HTTP_BASE: backend.base,
      TF_HTTP_USERNAME: backend.username,
      TF_HTTP_PASSWORD: backend.password,
      TF_HTTP_LOCK_METHOD: "POST",
      TF_HTTP_UNLOCK_METHOD: "DELETE",
    };
    return { repo, backend, env };
  }
  const applied = (backend: StateBackend, stack: string) =>
    (backend.latest(`production-${stack}`)?.resources ?? []).map((r) => `${r.type}.${r.name}`).sort();

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("an old pipeline re-run is refused by plan.sh and apply.sh; the rollback is a revert commit, planned as a rollback", async () => {
    const { repo, backend, env } = await httpRepo();
    fs.writeFileSync(path.join(repo.dir, "description"), "v1\n");
    const c1 = repo.commit("v1");
    synthesizeHttp(repo, { "node-1": "node-1 v1\n" });
    expect(repo.run("scripts/ci/plan.sh", ["--out", "plan"], env).status).toBe(0);
    expect(fs.readFileSync(path.join(repo.dir, "plan", "changes"), "utf8").trim()).toBe("true");
    expect(repo.run("scripts/ci/apply.sh", ["--plans", "plan"], env).status).toBe(0);
    fs.renameSync(path.join(repo.dir, "plan"), path.join(repo.dir, "plan-c1"));

    fs.writeFileSync(path.join(repo.dir, "description"), "v2\n");
    const c2 = repo.commit("v2");
    synthesizeHttp(repo, { "node-1": "node-1 v2\n" });
    expect(repo.run("scripts/ci/plan.sh", ["--out", "plan"], env).status).toBe(0);
    expect(repo.run("scripts/ci/apply.sh", ["--plans", "plan"], env).status).toBe(0);
    const stateAfterC2 = backend.latest(`production-${STACK}`);

    // A re-run of c1's pipeline: its checkout, its synth, a fresh plan: refused, nothing planned.
    expect(repo.run("git", ["checkout", "-q", "--detach", c1]).status).toBe(0);
    synthesizeHttp(repo, { "node-1": "node-1 v1\n" });
    fs.rmSync(path.join(repo.dir, "plan"), { recursive: true, force: true });
    const replan = repo.run("scripts/ci/plan.sh", ["--out", "plan"], env);
    expect(replan.status).toBe(3);
    expect(replan.stderr).toContain(`commit ${c1} is not the tip of main (${c2}): refusing to plan`);
    expect(replan.stderr).toContain("To roll back, revert the change (git revert <commit>)");
    expect(fs.existsSync(path.join(repo.dir, "plan"))).toBe(false);
    // …and its deploy job re-run with c1's saved plan: refused before anything is applied.
    const reapply = repo.run("scripts/ci/apply.sh", ["--plans", "plan-c1"], env);
    expect(reapply.status).toBe(3);
    expect(reapply.stderr).toContain(`commit ${c1} is not the tip of main (${c2}): refusing to apply`);
    expect(backend.latest(`production-${STACK}`)).toEqual(stateAfterC2);
    expect(fs.readFileSync(path.join(repo.dir, "uploaded", "node-1.hcl"), "utf8")).toBe("node-1 v2\n");

    // The rollback: a revert commit on main, which is the tip: planned, logged as a rollback, applied.
    expect(repo.run("git", ["checkout", "-q", "main"]).status).toBe(0);
    expect(repo.run("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", "revert", "--no-edit", c2]).status).toBe(0);
    expect(repo.run("git", ["push", "-q", "origin", "HEAD:main"]).status).toBe(0);
    synthesizeHttp(repo, { "node-1": "node-1 v1\n" });
    const revert = repo.run("scripts/ci/plan.sh", ["--out", "plan"], env);
    expect(revert.status).toBe(0);
    expect(revert.stderr).toMatch(new RegExp(`rollback: commit [0-9a-f]{40} reverts ${c2}`));
    expect(fs.readFileSync(path.join(repo.dir, "plan", "plan.md"), "utf8")).toContain(`**Rollback**: this commit reverts \`${c2}\``);
    expect(repo.run("scripts/ci/apply.sh", ["--plans", "plan"], env).status).toBe(0);
    expect(fs.readFileSync(path.join(repo.dir, "uploaded", "node-1.hcl"), "utf8")).toBe("node-1 v1\n");

    // The same commit planned again: no change, said so (the pipelines skip the deploy).
    fs.rmSync(path.join(repo.dir, "plan"), { recursive: true });
    const again = repo.run("scripts/ci/plan.sh", ["--out", "plan"], env);
    expect(again.status).toBe(0);
    expect(again.stderr).toContain("no stack changes anything, nothing to deploy");
    expect(fs.readFileSync(path.join(repo.dir, "plan", "changes"), "utf8").trim()).toBe("false");
    expect(fs.readFileSync(path.join(repo.dir, "plan", STACK, "changes"), "utf8").trim()).toBe("false");
  });

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("a commit ahead of the tip (not pushed) or without DEPLOY_BRANCH is refused", async () => {
    const { repo, env } = await httpRepo();
    synthesizeHttp(repo, { "node-1": "node-1 v1\n" });
    const local = repo.commit("local only", false);
    const ahead = repo.run("scripts/ci/plan.sh", ["--out", "plan"], env);
    expect(ahead.status).toBe(3);
    expect(ahead.stderr).toContain(`commit ${local} is not the tip of main`);
    const unset = repo.run("scripts/ci/plan.sh", ["--out", "plan"], { ...env, DEPLOY_BRANCH: "" });
    expect(unset.status).toBe(1);
    expect(unset.stderr).toContain("DEPLOY_BRANCH is not set");
  });

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("a partial apply (nodes applied, jobs failed) retried: nodes skipped as already applied, jobs applied", async () => {
    const { repo, backend, env } = await httpRepo();
    synthesizeHttp(repo, { "node-1": "node-1 v1\n", "node-2": "node-2 v1\n" });
    expect(repo.run("scripts/ci/plan.sh", ["--out", "plan"], env).status).toBe(0);
    // Another run holds the jobs state when the deploy reaches it.
    expect(await backend.hold(`production-${JOBS}`, "someone-elses-lock")).toBe(200);
    const first = repo.run("scripts/ci/apply.sh", ["--plans", "plan"], { ...env, TF_LOCK_TIMEOUT: "1s" });
    expect(first.status).toBe(1);
    expect(first.stderr).toContain(`${JOBS}: the state is locked by another run`);
    expect(applied(backend, STACK)).toEqual(["terraform_data.node-1_consul", "terraform_data.node-2_consul"]);
    expect(applied(backend, JOBS)).toEqual([]);
    // Released; the deploy job re-run with the same saved plans.
    backend.requests();
    const res = await fetch(`${backend.base}/production-${JOBS}/lock`, {
      method: "DELETE",
      headers: { authorization: `Basic ${Buffer.from(`${backend.username}:${backend.password}`).toString("base64")}`, "content-type": "application/json" },
      body: JSON.stringify({ ID: "someone-elses-lock" }),
    });
    expect(res.status).toBe(200);
    const retry = repo.run("scripts/ci/apply.sh", ["--plans", "plan"], env);
    expect(retry.stderr).toContain(`== ${STACK}: already applied (a retry: the state changed since the plan, and a plan now shows no change): skipped`);
    expect(retry.status).toBe(0);
    expect(applied(backend, JOBS)).toEqual(["terraform_data.web"]);
    // The plan's secret was used for the no-change check, never printed.
    expect(retry.stdout + retry.stderr).not.toContain(SECRET.TF_VAR_vrrp_password);
  });

  itIf(hasEngine, `no Terraform engine (npm run engines), git or openssl`)("a cancel signalled to apply.sh only (as a runner does) reaches Terraform: it stops, writes its state and unlocks", async () => {
    const { repo, backend, env } = await httpRepo();
    synthesizeHttp(repo, { "node-1": "node-1 v1\n" }, "exec sleep 120");
    expect(repo.run("scripts/ci/plan.sh", ["--out", "plan"], env).status).toBe(0);
    const child = spawn("scripts/ci/apply.sh", ["--plans", "plan"], {
      cwd: repo.dir,
      env: { ...process.env, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1", TERRAFORM, DEPLOY_BRANCH: "main", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    const started = Date.now();
    while (!out.includes("terraform_data.web: Provisioning with 'local-exec'")) {
      if (Date.now() - started > 60_000 || child.exitCode !== null) throw new Error(`the jobs apply did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(backend.lock(`production-${JOBS}`)).toBeDefined();
    const signalled = Date.now();
    process.kill(child.pid as number, "SIGINT");
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    // Terraform got it (its own message) and stopped long before the 120 s provisioner ended.
    expect(out).toContain("Interrupt received");
    expect(Date.now() - signalled).toBeLessThan(30_000);
    expect(code).not.toBe(0);
    // …and, given the time, it wrote its state and released the lock.
    expect(backend.lock(`production-${JOBS}`)).toBeUndefined();
    const web = backend.latest(`production-${JOBS}`)?.resources.find((r) => r.name === "web");
    expect(web?.instances[0].status).toBe("tainted");
  }, 120_000);
});
