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
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
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

/** The stand-in synthesized stack: what `npx cdktf synth` would leave in cdktf.out/. */
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
