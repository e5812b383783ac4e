/**
 * The runbook's lock and state procedures (docs/operations.md, blocks marked
 * `# runbook: <name>`) run as written, with the real Terraform, against a stand-in of
 * GitLab's Terraform state API on loopback (helpers/http-state-backend.ts): a stuck lock
 * (a job killed mid-apply), a wrong lock ID, a free state probed, and an older state
 * restored with `state push -force`. The stack is built from terraform_data only, so no
 * provider is downloaded; its name is the runbook's `$T-jobs` for T=team-example.
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { hasCommand, itIf } from "./helpers/synth";
import { startStateBackend, type StateBackend } from "./helpers/http-state-backend";

const ROOT = path.resolve(__dirname, "..");
const T = "team-example";
const STACK = `${T}-jobs`;
const STATE = `production-${STACK}`;
const canRun = hasCommand("terraform") && hasCommand("curl");
const WHY = "terraform (1.11.4) or curl not on PATH";

/** The runbook's sh blocks by their marker line `# runbook: NAME`. */
function runbookBlock(name: string): string {
  const text = fs.readFileSync(path.join(ROOT, "docs", "operations.md"), "utf8");
  // Fenced blocks, also indented ones (in a list), their indentation removed.
  const blocks = [...text.matchAll(/^( *)```sh\n([\s\S]*?)^ *```$/gm)].map((m) => m[2].replace(new RegExp(`^${m[1]}`, "gm"), ""));
  const found = blocks.filter((b) => b.startsWith(`# runbook: ${name}\n`));
  expect([name, found.length]).toEqual([name, 1]);
  return found[0];
}

describe("runbook: Terraform state lock and state procedures, real Terraform, GitLab-like HTTP state", () => {
  let dir: string;
  let backend: StateBackend;
  let cliConfig: string;
  const env = (extra: Record<string, string> = {}) => ({
    ...process.env,
    CHECKPOINT_DISABLE: "1",
    TF_IN_AUTOMATION: "1",
    TF_CLI_CONFIG_FILE: cliConfig,
    T,
    TF_STATE_HTTP_BASE: backend.base,
    TF_HTTP_USERNAME: backend.username,
    TF_HTTP_PASSWORD: backend.password,
    ...extra,
  });
  /** The runbook's set-up block, then the named blocks, as an operator pastes them. */
  const runbook = (names: string[], extra: Record<string, string> = {}): SpawnSyncReturns<string> =>
    spawnSync("bash", ["-c", ["set -e", runbookBlock("state-env"), ...names.map(runbookBlock)].join("\n")], { cwd: dir, encoding: "utf8", env: env(extra) });
  const terraform = (args: string[], extra: Record<string, string> = {}): SpawnSyncReturns<string> =>
    spawnSync("terraform", [`-chdir=cdktf.out/stacks/${STACK}`, ...args], { cwd: dir, encoding: "utf8", env: env({ ...backend.env(STATE), ...extra }) });
  const apply = (generation: string) => {
    const r = terraform(["apply", "-auto-approve", "-input=false", "-no-color", "-lock-timeout=0s", `-var=generation=${generation}`]);
    expect([r.status, r.stderr]).toEqual([0, ""]);
  };

  beforeAll(async () => {
    if (!canRun) return;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "runbook-state-"));
    cliConfig = path.join(dir, "terraform.rc");
    fs.writeFileSync(cliConfig, "");
    backend = await startStateBackend(dir);
    const stackDir = path.join(dir, "cdktf.out", "stacks", STACK);
    fs.mkdirSync(stackDir, { recursive: true });
    // Like the synthesized stacks: an http backend configured from TF_HTTP_* only.
    fs.writeFileSync(
      path.join(stackDir, "cdk.tf.json"),
      JSON.stringify({
        terraform: { backend: { http: {} } },
        variable: { generation: { type: "string" } },
        resource: { terraform_data: { haproxy: { input: "${var.generation}" }, web: { input: "${var.generation}" } } },
      }),
    );
    const init = terraform(["init", "-input=false", "-no-color"]);
    expect([init.status, init.stderr]).toEqual([0, ""]);
  });
  afterAll(async () => {
    if (!canRun) return;
    await backend.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  itIf(canRun, WHY)("a stuck lock: the holder's ID is the one in 'already locked: ID=', not Terraform's 'Lock Info' ID; the runbook finds and releases it", async () => {
    apply("1");
    // A deploy job killed mid-apply (SIGKILL: no unlock) leaves its lock.
    expect(await backend.hold(STATE, "4f1c2d7e-dead-job-lock")).toBe(200);
    const plan = terraform(["plan", "-input=false", "-no-color", "-lock-timeout=0s", "-var=generation=1"]);
    expect(plan.status).toBe(1);
    expect(plan.stderr).toContain("Error acquiring the state lock");
    expect(plan.stderr).toContain("HTTP remote state already locked: ID=4f1c2d7e-dead-job-lock");
    // The "Lock Info" block is Terraform's own attempt, not the holder: its ID is another one.
    const shownId = /Lock Info:\s*\n\s*ID:\s*(\S+)/.exec(plan.stderr)?.[1];
    expect(shownId).toBeDefined();
    expect(shownId).not.toBe("4f1c2d7e-dead-job-lock");

    const probe = runbook(["lock-holder"]);
    expect(probe.stderr).toBe("");
    expect(probe.stdout).toContain('"ID":"4f1c2d7e-dead-job-lock"');
    expect(probe.stdout).toContain('"Who":"ci-job-4711"');
    expect(probe.stdout).toMatch(/HTTP 409\n$/);
    expect(backend.lock(STATE)?.ID).toBe("4f1c2d7e-dead-job-lock");

    const release = runbook(["lock-release"], { LOCK_ID: "4f1c2d7e-dead-job-lock" });
    expect(release.stdout).toMatch(/HTTP 200\n$/);
    expect(backend.lock(STATE)).toBeUndefined();
    const after = terraform(["plan", "-input=false", "-no-color", "-lock-timeout=0s", "-var=generation=1"]);
    expect([after.status, after.stdout]).toEqual([0, expect.stringContaining("No changes.")]);
    // The credentials never appear in what the operator sees.
    expect(probe.stdout + probe.stderr + release.stdout + release.stderr).not.toContain(backend.password);
  });

  itIf(canRun, WHY)("a state service answering 423 Locked instead of GitLab's 409: Terraform and the probe read the holder the same way", async () => {
    const other = await startStateBackend(path.join(dir, "423"), { lockedStatus: 423 });
    try {
      expect(await other.hold(STATE, "held-elsewhere")).toBe(200);
      const plan = spawnSync("terraform", [`-chdir=cdktf.out/stacks/${STACK}`, "plan", "-input=false", "-no-color", "-lock-timeout=0s", "-var=generation=1"], {
        cwd: dir,
        encoding: "utf8",
        env: { ...env(), ...other.env(STATE), TF_STATE_HTTP_BASE: other.base, TF_CLI_CONFIG_FILE: cliConfig },
      });
      // Same working directory, another backend address: -reconfigure is not needed for env-only settings.
      expect(plan.stderr).toContain("HTTP remote state already locked: ID=held-elsewhere");
      const probe = runbook(["lock-holder"], { TF_STATE_HTTP_BASE: other.base });
      expect(probe.stdout).toContain('"ID":"held-elsewhere"');
      expect(probe.stdout).toMatch(/HTTP 423\n$/);
    } finally {
      await other.stop();
    }
  });

  itIf(canRun, WHY)("a wrong ID: the runbook's release refuses it (409) and the live lock stays; `terraform force-unlock` would release it whatever the ID", async () => {
    expect(await backend.hold(STATE, "live-deploy-lock")).toBe(200);
    const release = runbook(["lock-release"], { LOCK_ID: "an-old-lock-id" });
    expect(release.stdout).toMatch(/HTTP 409\n$/);
    expect(backend.lock(STATE)?.ID).toBe("live-deploy-lock");
    // Why the runbook does not use force-unlock with this backend: its HTTP client sends no
    // ID on unlock, and GitLab then releases whatever lock is held: here a live one.
    const force = terraform(["force-unlock", "-force", "an-old-lock-id"]);
    expect(force.status).toBe(0);
    expect(backend.lock(STATE)).toBeUndefined();
    const unlocks = backend.requests().filter((r) => r.method === "DELETE" && r.path.endsWith("/lock"));
    expect(unlocks[unlocks.length - 1]).toEqual({ method: "DELETE", path: `/state/${STATE}/lock`, status: 200 });
  });

  itIf(canRun, WHY)("a free state probed: the probe then holds it and the runbook releases it with the probe's ID", () => {
    expect(backend.lock(STATE)).toBeUndefined();
    const probe = runbook(["lock-holder"]);
    expect(probe.stdout).toMatch(/HTTP 200\n$/);
    const id = backend.lock(STATE)?.ID as string;
    expect(id).toMatch(/^runbook-probe-/);
    expect(probe.stdout).toContain(`"ID":"${id}"`);
    expect(runbook(["lock-release"], { LOCK_ID: id }).stdout).toMatch(/HTTP 200\n$/);
    expect(backend.lock(STATE)).toBeUndefined();
  });

  itIf(canRun, WHY)("an older state restored: the state check lists it, `state push` refuses it, the runbook's `state push -force` restores it", () => {
    apply("1");
    const good = backend.latest(STATE)!;
    apply("2");
    const damaged = backend.latest(STATE)!;
    expect(damaged.serial).toBeGreaterThan(good.serial);
    const check = runbook(["state-check"]);
    expect(check.stderr).toBe("");
    expect(check.stdout).toContain(`serial ${damaged.serial} lineage ${damaged.lineage}`);
    expect(check.stdout).toContain("terraform_data.haproxy ok");
    // Without -force Terraform refuses an older serial of the same lineage.
    fs.writeFileSync(path.join(dir, "older.json"), JSON.stringify(good));
    const plain = terraform(["state", "push", path.join(dir, "older.json")]);
    expect(plain.status).toBe(1);
    expect(plain.stderr).toMatch(/cannot import state with serial \d+ over newer state with serial \d+/);
    const restore = runbook(["state-restore"], { SERIAL: String(good.serial) });
    expect([restore.status, restore.stderr]).toEqual([0, ""]);
    const now = backend.latest(STATE)!;
    expect(now.lineage).toBe(good.lineage);
    const inputs = (s: typeof now) => s.resources.map((r) => JSON.stringify((r.instances[0] as { attributes?: { input?: unknown } }).attributes?.input));
    expect(inputs(now)).toEqual(inputs(good));
    // The next plan brings the infrastructure (generation 2) and the description together.
    const plan = terraform(["plan", "-input=false", "-no-color", "-lock-timeout=0s", "-var=generation=2"]);
    expect(plan.stdout).toContain("2 to change");
  });
});
