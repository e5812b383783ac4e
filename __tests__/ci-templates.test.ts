/**
 * The CI templates operators copy (ci-templates/): validated against the official schemas
 * (GitHub's workflow schema from SchemaStore, GitLab's own CI schema: helpers/ci-schemas.ts),
 * then our rules: plan on the default branch only, the saved plan passed from the plan job to
 * the deploy job (never a re-plan, never `cdktf deploy`), deploy gated on the default branch
 * and a protected environment, no deploy on tags, one committed cluster description, every
 * variable the synthesized stacks declare passed, no secret echoed, remote state only,
 * pinned actions/images/tools. Also scripts/check-remote-state.ts and the shell scripts in
 * scripts/ci/ (shellcheck). The plan/apply scripts themselves run with the real engine in
 * ci-plan-apply.test.ts.
 */
import { cleanup, clusterFromText, exampleText, itIf, parseHcl, synthCluster } from "./helpers/synth";
import { githubWorkflowErrors, gitlabCiErrors } from "./helpers/ci-schemas";
import { SECRET_VARIABLES } from "../constructs/description/secrets";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseDocument } from "yaml";
import { looksLikeSecretName } from "../scripts/dockerfile-rules";
import { stackBackends, stacksWithLocalState } from "../scripts/check-remote-state";

const ROOT = path.resolve(__dirname, "..");
const GITHUB_DIR = path.join(ROOT, "ci-templates", "github", "workflows");
/** The pull-request workflow (test, synth, images) and the deploy workflow (default branch only). */
const GITHUB_CI = path.join(GITHUB_DIR, "ci.yml");
const GITHUB = path.join(GITHUB_DIR, "deploy.yml");
const GITLAB = path.join(ROOT, "ci-templates", "gitlab", ".gitlab-ci.yml");
/** Included by both GitLab pipelines (as .gitlab/terraform.gitlab-ci.yml), and the deploy child pipeline. */
const GITLAB_TERRAFORM = path.join(ROOT, "ci-templates", "gitlab", "terraform.gitlab-ci.yml");
const GITLAB_DEPLOY = path.join(ROOT, "ci-templates", "gitlab", "deploy.gitlab-ci.yml");
/** The runner label/tag of the self-hosted runner that reaches the cluster and holds the deploy. */
const DEPLOY_RUNNER = "cluster-network";

/* eslint-disable @typescript-eslint/no-explicit-any */
function load(file: string): any {
  const doc = parseDocument(fs.readFileSync(file, "utf8"), { uniqueKeys: true });
  expect(doc.errors).toEqual([]);
  expect(doc.warnings).toEqual([]);
  return doc.toJS();
}

/** Env-like maps anywhere in the document (GitHub `env:`, GitLab `variables:`). */
function envMaps(node: any, names: string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const rec = (n: any) => {
    if (Array.isArray(n)) n.forEach(rec);
    else if (n && typeof n === "object") {
      for (const [k, v] of Object.entries(n)) {
        if (names.includes(k) && v && typeof v === "object" && !Array.isArray(v)) out.push(v as Record<string, unknown>);
        rec(v);
      }
    }
  };
  rec(node);
  return out;
}

const LITERAL_SECRET_PATTERNS: [string, RegExp][] = [
  ["private key block", /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
  ["AWS access key id", /\bAKIA[0-9A-Z]{16}\b/],
  ["credentials in a URL", /[a-z]+:\/\/[^/\s:@$]+:[^/\s@$]+@/i],
  ["GitHub token", /\bgh[pousr]_[A-Za-z0-9]{20,}\b/],
  ["GitLab token", /\bglpat-[A-Za-z0-9_-]{20,}\b/],
];

function expectNoLiteralSecrets(file: string, doc: any, isReference: (v: string) => boolean): void {
  const text = fs.readFileSync(file, "utf8");
  for (const [what, re] of LITERAL_SECRET_PATTERNS) {
    expect([what, re.test(text)]).toEqual([what, false]);
  }
  // Any variable whose name looks like a secret must be a reference to the secret store.
  for (const map of envMaps(doc, ["env", "variables", "with"])) {
    for (const [name, value] of Object.entries(map)) {
      if (typeof value !== "string" || !looksLikeSecretName(name)) continue;
      expect([name, isReference(value)]).toEqual([name, true]);
    }
  }
}

// Every secret variable the stacks declare, from the single list the stacks use.
const REQUIRED_TF_VARS = Object.values(SECRET_VARIABLES).map((v) => `TF_VAR_${v.name}`);

/** Every Terraform variable the synthesized stacks declare (example, with private images, Nomad ACLs: the autoscaler's token, and both alert receivers). */
function declaredVariables(): string[] {
  const withRegistry = `${exampleText().replace(/^app:\n/m, "app:\n  registry: { server: ghcr.io, username: example-bot }\n")}\nnomad:\n  acl: true\nmetrics:\n  alerting:\n    webhook: {}\n    email: { to: [ops@example.org], from: alerts@example.org, smarthost: smtp.example.org, username: alerts }\n`;
  const out = synthCluster(clusterFromText(withRegistry));
  try {
    return [...new Set(Object.values(out.stacks).flatMap((st: any) => Object.keys(st.variable ?? {})))].sort();
  } finally {
    cleanup(out);
  }
}
const DECLARED_TF_VARS = declaredVariables().map((v) => `TF_VAR_${v}`);
/** Read by the providers and backends from the environment (docs/deploying.md). */
const PROVIDER_ENV = ["NOMAD_TOKEN", "CONSUL_HTTP_TOKEN", "NOMAD_CACERT", "CONSUL_CACERT"];

/**
 * A secret reaches the log through echo/printf whose output is not piped into another
 * program (piping into ssh-add, docker login, tr… is how a secret is handed over), or `set -x`.
 */
function echoedSecrets(script: string, names: string[]): string[] {
  const found: string[] = [];
  for (const line of script.split("\n")) {
    for (const command of line.split(/\|\||&&|;|(?:^|\s)[{}](?=\s|$)/)) {
      const pipeline = command.split("|").map((c) => c.trim());
      const printed = /^(echo|printf)\b/.test(pipeline[0]) && (pipeline.length === 1 || /^(tee|cat)\b/.test(pipeline[1]));
      if (!printed) continue;
      for (const n of names) if (new RegExp(`\\$\\{?${n}\\b`).test(pipeline[0])) found.push(`${n}: ${line.trim()}`);
    }
  }
  if (/^\s*set -[a-z]*x/m.test(script)) found.push("set -x traces every command with its expanded values");
  return found;
}

/** The events that start a GitHub workflow (`on:` as a string, a list or a map). */
function githubTriggers(wf: any): string[] {
  return typeof wf.on === "string" ? [wf.on] : Array.isArray(wf.on) ? wf.on : Object.keys(wf.on);
}
/** Whether a value (runs-on, tags…) names the deploy runner anywhere, even inside an expression. */
const namesDeployRunner = (v: unknown): boolean => JSON.stringify(v ?? null).includes(DEPLOY_RUNNER);

describe("runner isolation: no pull-request workflow names the deploy runner", () => {
  const workflows = fs.readdirSync(GITHUB_DIR).filter((f) => /\.ya?ml$/.test(f));
  const PR_EVENTS = ["pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment", "issue_comment", "merge_group"];

  test("GitHub: only deploy.yml names it, and deploy.yml is triggered by pushes to main and manual runs, never by a pull request", () => {
    expect(workflows.sort()).toEqual(["ci.yml", "deploy.yml"]);
    for (const f of workflows) {
      const wf = load(path.join(GITHUB_DIR, f));
      const prTriggered = githubTriggers(wf).some((e) => PR_EVENTS.includes(e));
      const naming = Object.entries<any>(wf.jobs).filter(([, job]) => namesDeployRunner(job["runs-on"]) || namesDeployRunner(job.container)).map(([name]) => name);
      // A workflow a pull request triggers runs as the pull request wrote it: none names the runner.
      if (prTriggered) expect([f, naming]).toEqual([f, []]);
      if (naming.length > 0) expect([f, githubTriggers(wf).sort()]).toEqual(["deploy.yml", ["push", "workflow_dispatch"]]);
    }
    const deploy = load(GITHUB);
    expect(deploy.on.push).toEqual({ branches: ["main"] });
    expect(load(GITHUB_CI).on).toEqual({ push: { tags: ["v*"] }, pull_request: null });
  });

  test("the check catches a pull-request workflow that names the runner", () => {
    const bad = { on: { pull_request: null }, jobs: { x: { "runs-on": ["self-hosted", "${{ 'cluster-network' }}"] } } };
    expect(githubTriggers(bad).some((e) => PR_EVENTS.includes(e)) && Object.values<any>(bad.jobs).some((j) => namesDeployRunner(j["runs-on"]))).toBe(true);
  });

  test("GitLab: every job on the deploy runner runs only on the default branch, never in a merge request pipeline", () => {
    const files = [GITLAB, GITLAB_TERRAFORM, GITLAB_DEPLOY].map(load);
    const all: Record<string, any> = Object.assign({}, ...files);
    for (const [name, job] of Object.entries<any>(all)) {
      if (!job || typeof job !== "object" || !("script" in job)) continue;
      const base = job.extends ? all[job.extends] : {};
      if (!namesDeployRunner(job.tags ?? base.tags)) continue;
      const rules = JSON.stringify(job.rules ?? []);
      const inChild = load(GITLAB_DEPLOY)[name] !== undefined;
      // The parent's jobs: the default-branch rule; the child's: created only by the parent's
      // deploy job, itself on that rule (and the child's workflow accepts parent pipelines only).
      if (inChild) expect(load(GITLAB_DEPLOY).workflow.rules).toEqual([{ if: '$CI_PIPELINE_SOURCE == "parent_pipeline"' }]);
      else expect([name, rules]).toEqual([name, JSON.stringify([{ if: '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE != "merge_request_event"' }])]);
    }
    expect(load(GITLAB).deploy.rules).toEqual([{ if: '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE != "merge_request_event"' }]);
    expect(load(GITLAB_TERRAFORM)[".terraform"].tags).toEqual([DEPLOY_RUNNER]);
  });
});

describe("GitHub Actions templates", () => {
  const ci = load(GITHUB_CI);
  const wf = load(GITHUB);
  // The pull-request jobs (ci.yml) and the deploy jobs (deploy.yml); both have a test job.
  const jobs: Record<string, any> = { ...ci.jobs, ...wf.jobs, test: ci.jobs.test };
  const steps = (job: string) => jobs[job].steps as any[];
  const stepsText = (job: string) => steps(job).map((s) => s.run ?? "").join("\n");
  const uses = (job: string) => steps(job).filter((s) => s.uses).map((s) => s.uses as string);
  const DEFAULT_BRANCH_ONLY = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch) && (github.event_name == 'push' || github.event_name == 'workflow_dispatch')";

  test("are valid for GitHub's own workflow parser and schema, which catch a broken job", () => {
    expect(githubWorkflowErrors(GITHUB)).toEqual([]);
    expect(githubWorkflowErrors(GITHUB_CI)).toEqual([]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ci-gh-"));
    try {
      const broken = path.join(dir, "broken.yml");
      const text = fs.readFileSync(GITHUB, "utf8");
      fs.writeFileSync(broken, text.replace("timeout-minutes: 60", "timeout_minutes: 60"));
      expect(githubWorkflowErrors(broken).join("\n")).toMatch(/Unexpected value 'timeout_minutes'/);
      fs.writeFileSync(broken, text.replace("    needs: [plan]\n", "    needs: [plann]\n"));
      expect(githubWorkflowErrors(broken).join("\n")).toMatch(/plann/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("jobs: ci.yml test, synth, images; deploy.yml test, approval, plan, deploy; read-only token by default", () => {
    expect(Object.keys(ci.jobs).sort()).toEqual(["images", "synth", "test"]);
    expect(Object.keys(wf.jobs).sort()).toEqual(["approval", "deploy", "plan", "test"]);
    expect(ci.permissions).toEqual({ contents: "read" });
    expect(wf.permissions).toEqual({ contents: "read" });
  });

  test("test jobs run npm ci then npm test, with shellcheck installed", () => {
    for (const job of [ci.jobs.test, wf.jobs.test]) {
      const runs = (job.steps as any[]).map((s) => s.run ?? "");
      const i = runs.findIndex((r) => /^npm ci\b/m.test(r));
      expect(i).toBeGreaterThanOrEqual(0);
      expect(runs.findIndex((r) => /^npm test\b/m.test(r))).toBeGreaterThan(i);
      expect(runs.join("\n")).toMatch(/apt-get install[^\n]*shellcheck/);
    }
  });

  test("pull requests: our summary against the merge commit's first parent, posted as a comment; the artifact survives a failed summary", () => {
    const st = steps("synth");
    expect(jobs.synth.if).toBe("github.event_name == 'pull_request'");
    const checkout = st.find((s) => String(s.uses).startsWith("actions/checkout@"));
    expect(checkout.with["fetch-depth"]).toBeGreaterThanOrEqual(2);
    const summary = st.find((s) => /scripts\/ci\/summary\.sh/.test(s.run ?? ""));
    expect(summary.run).toContain('scripts/ci/summary.sh "$(git rev-parse HEAD^1)" plan-summary.md');
    expect(summary.run).toContain("npx tsx scripts/ci/post-comment.ts github plan-summary.md");
    expect(jobs.synth.permissions["pull-requests"]).toBe("write");
    const upload = st.find((s) => String(s.uses).startsWith("actions/upload-artifact@"));
    expect(upload.if).toBe("always()");
    expect(upload.with.path).toMatch(/cdktf\.out\//);
    expect(upload.with.name).toMatch(/plan-review/);
    expect(JSON.stringify(ci.jobs.synth)).not.toMatch(/secrets\./);
  });

  test("plan and deploy run only on the default branch (push or manual run there), never on a tag or a pull request", () => {
    expect(jobs.plan.if).toBe(DEFAULT_BRANCH_ONLY);
    expect(jobs.deploy.if).toBe(`needs.plan.outputs.changes == 'true' && ${DEFAULT_BRANCH_ONLY}`);
    expect(jobs.deploy.environment).toBe("production");
    expect(jobs.plan.environment).toBe("production-plan");
    expect(jobs.deploy.needs).toEqual(["plan"]);
    expect(jobs.plan.needs).toEqual(["test", "approval"]);
  });

  test("two people: the approval check runs before the plan, with the job's token (pull-requests: read), scripts not run", () => {
    const a = jobs.approval;
    expect(a.permissions).toEqual({ contents: "read", "pull-requests": "read" });
    expect(a["runs-on"]).toBe("ubuntu-24.04");
    const check = steps("approval").find((s) => /check-approval\.ts/.test(s.run ?? ""));
    expect(check.run).toBe("npx tsx scripts/ci/check-approval.ts github");
    expect(check.env).toEqual({ GITHUB_TOKEN: "${{ github.token }}" });
    expect(wf.env.DEPLOY_BRANCH).toBe("${{ github.event.repository.default_branch }}");
  });

  test("only the tip deploys: plan.sh and apply.sh get DEPLOY_BRANCH; plans and deploys share one concurrency group, never cancelled while running", () => {
    for (const job of ["plan", "deploy"]) expect(jobs[job].concurrency).toEqual({ group: "production-terraform", "cancel-in-progress": false });
    // Workflow-level env reaches every step, the scripts' tip check included.
    expect(wf.env.DEPLOY_BRANCH).toBeDefined();
    expect(wf.concurrency).toBeUndefined();
  });

  test("Terraform is the job's process: plan.sh and apply.sh are exec'd (a cancel reaches them, they pass it on)", () => {
    expect(steps("plan").some((s) => s.run === "exec scripts/ci/plan.sh --out plan")).toBe(true);
    expect(steps("deploy").some((s) => s.run === "exec scripts/ci/apply.sh --plans plan")).toBe(true);
  });

  test("a plan with no change ends the run green: the deploy (and its approval) is skipped", () => {
    const seal = steps("plan").find((s) => s.id === "seal");
    expect(seal.run).toContain('echo "changes=$(cat plan/changes)" >> "$GITHUB_OUTPUT"');
    expect(jobs.plan.outputs.changes).toBe("${{ steps.seal.outputs.changes }}");
    expect(jobs.deploy.if.startsWith("needs.plan.outputs.changes == 'true' && ")).toBe(true);
  });

  test("every job holding a secret or a token installs with npm ci --ignore-scripts", () => {
    for (const [name, job] of Object.entries<any>(wf.jobs)) {
      const holds = /secrets\.|github\.token/.test(JSON.stringify(job));
      const installs = (job.steps as any[]).map((s) => s.run ?? "").filter((r) => /\bnpm (ci|install|i)\b/.test(r));
      if (holds) for (const r of installs) expect([name, r]).toEqual([name, "npm ci --ignore-scripts"]);
    }
    for (const name of ["approval", "plan", "deploy"]) expect([name, stepsText(name).includes("npm ci --ignore-scripts")]).toEqual([name, true]);
    // The plan job also installs the base commit for the summary.
    expect(fs.readFileSync(path.join(ROOT, "scripts", "ci", "summary.sh"), "utf8")).toMatch(/npm ci --ignore-scripts/);
    expect(fs.readFileSync(path.join(ROOT, "scripts", "ci", "summary.sh"), "utf8")).not.toMatch(/npm ci(?! --ignore-scripts)/);
  });

  test("plan and deploy run on a self-hosted runner that reaches the cluster's network", () => {
    for (const job of ["plan", "deploy"]) expect(jobs[job]["runs-on"]).toEqual(["self-hosted", "linux", DEPLOY_RUNNER]);
    for (const job of ["test", "approval"]) expect(wf.jobs[job]["runs-on"]).toBe("ubuntu-24.04");
  });

  test("the saved plan goes from plan to deploy: sealed, its SHA-256 a job output, one artifact per run (no attempt: a re-run deploy finds it), applied by apply.sh; nothing re-plans", () => {
    const plan = steps("plan");
    const seal = plan.find((s) => s.id === "seal");
    expect(seal.run).toContain("scripts/ci/plan-bundle.sh seal plan tfplan.enc");
    expect(seal.run).toContain("rm -f plan/*/tfplan plan/*/plan.json");
    expect(jobs.plan.outputs.bundle_sha256).toBe("${{ steps.seal.outputs.sha256 }}");
    const upload = plan.find((s) => String(s.uses).startsWith("actions/upload-artifact@"));
    expect(plan.indexOf(upload)).toBeGreaterThan(plan.indexOf(seal));
    expect(upload.with["retention-days"]).toBe(1);
    expect(upload.with.name).toBe("tfplan-${{ github.run_id }}");
    expect(upload.with.overwrite).toBe(true);
    const download = steps("deploy").find((s) => String(s.uses).startsWith("actions/download-artifact@"));
    expect(download.with.name).toBe(upload.with.name);
    expect(fs.readFileSync(GITHUB, "utf8")).not.toContain("run_attempt");
    const open = steps("deploy").find((s) => /plan-bundle\.sh open/.test(s.run ?? ""));
    expect(open.env.BUNDLE_SHA256).toBe("${{ needs.plan.outputs.bundle_sha256 }}");
    expect(open.run).toBe('scripts/ci/plan-bundle.sh open reviewed/tfplan.enc "$BUNDLE_SHA256" plan');
    const deploy = stepsText("deploy");
    expect(deploy.indexOf("plan-bundle.sh open")).toBeLessThan(deploy.indexOf("apply.sh"));
    expect(fs.readFileSync(GITHUB, "utf8")).not.toMatch(/cdktf deploy|--auto-approve|terraform apply/);
    expect(deploy).not.toContain("plan.sh");
  });

  test("the plan and our summary are posted on the merged pull request and on the run page", () => {
    const text = stepsText("plan");
    expect(text).toContain('scripts/ci/summary.sh "$(git rev-parse HEAD^1)" plan/summary.md plan > /dev/null');
    expect(text).toContain('cat plan/plan.md plan/summary.md >> "$GITHUB_STEP_SUMMARY"');
    expect(text).toContain("npx tsx scripts/ci/post-comment.ts github plan/plan.md plan/summary.md");
    expect(jobs.plan.permissions).toEqual({ contents: "read", "pull-requests": "write" });
  });

  test("one description: every job that synthesizes takes it from clusters/deployed, never from a CI variable", () => {
    for (const f of [GITHUB, GITHUB_CI]) expect(fs.readFileSync(f, "utf8")).not.toMatch(/vars\.CLUSTER_FILE|CLUSTER_FILE:/);
    for (const job of ["synth", "plan", "deploy"]) {
      const text = stepsText(job);
      expect([job, text.indexOf("scripts/ci/cluster-file.sh") >= 0]).toEqual([job, true]);
      expect(text.indexOf("scripts/ci/cluster-file.sh")).toBeLessThan(text.indexOf("npm run synth"));
    }
  });

  test("plan gets every variable the stacks declare; plan and deploy get the provider tokens, CA files and state credentials; deploy gets no TF_VAR_*", () => {
    expect(DECLARED_TF_VARS).toEqual(expect.arrayContaining([...REQUIRED_TF_VARS, "TF_VAR_vrrp_password_rotation"]));
    for (const v of DECLARED_TF_VARS) expect([v, typeof jobs.plan.env[v]]).toEqual([v, "string"]);
    for (const v of REQUIRED_TF_VARS) expect(jobs.plan.env[v]).toMatch(/^\$\{\{ secrets\.[A-Z0-9_]+ \}\}$/);
    for (const job of ["plan", "deploy"]) {
      for (const v of [...PROVIDER_ENV, "TF_STATE_HTTP_BASE", "TF_HTTP_USERNAME", "TF_HTTP_PASSWORD"]) {
        expect([job, v, typeof jobs[job].env[v]]).toEqual([job, v, "string"]);
      }
    }
    expect(JSON.stringify(jobs.deploy)).not.toContain("TF_VAR_");
    const sshStep = steps("deploy").find((s) => /ssh-add/.test(s.run ?? ""));
    expect(sshStep.env.SSH_PRIVATE_KEY).toBe("${{ secrets.SSH_PRIVATE_KEY }}");
    expect(steps("deploy").indexOf(sshStep)).toBeLessThan(steps("deploy").findIndex((s) => /apply\.sh/.test(s.run ?? "")));
    expect(fs.readFileSync(GITHUB, "utf8")).not.toContain("ALLOW_LOCAL_STATE");
    expect(stepsText("plan")).toContain("npx tsx scripts/check-remote-state.ts cdktf.out");
  });

  test("no secret is echoed, and a pipe into tee keeps the first command's failure", () => {
    for (const file of [ci, wf]) {
      for (const [name, job] of Object.entries<any>(file.jobs)) {
        for (const st of job.steps as any[]) {
          const secretNames = Object.entries({ ...job.env, ...st.env })
            .filter(([, v]) => /secrets\./.test(String(v)))
            .map(([k]) => k);
          expect([name, echoedSecrets(st.run ?? "", secretNames)]).toEqual([name, []]);
          if (/\|\s*tee\b/.test(st.run ?? "")) expect(st.run).toMatch(/^set -o pipefail$/m);
        }
      }
    }
    expect(echoedSecrets('test -n "$T" || echo "x"; echo "token: ${T}" | tee log', ["T"])).toEqual(['T: test -n "$T" || echo "x"; echo "token: ${T}" | tee log']);
    expect(echoedSecrets("printf '%s' \"$T\" | docker login --password-stdin", ["T"])).toEqual([]);
    expect(echoedSecrets("set -x\nrun", ["T"]).length).toBe(1);
  });

  test("images job runs only on tags and pushes with images/build.sh tagged with the git tag", () => {
    expect(jobs.images.if).toMatch(/startsWith\(github\.ref, 'refs\/tags\/'\)/);
    expect(jobs.images.permissions.packages).toBe("write");
    const run = stepsText("images");
    expect(run).toMatch(/images\/build\.sh --registry "\$registry" --tag "\$GITHUB_REF_NAME"/);
    expect(run).not.toMatch(/--dry-run|latest/);
  });

  test("terraform is installed with a pinned version and without the wrapper", () => {
    for (const job of ["plan", "deploy"]) {
      const tf = steps(job).find((s) => String(s.uses ?? "").startsWith("hashicorp/setup-terraform@"));
      expect(tf.with.terraform_version).toBe("${{ env.TERRAFORM_VERSION }}");
      expect(String(tf.with.terraform_wrapper)).toBe("false");
    }
    expect(wf.env.TERRAFORM_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
  });

  test("every action is pinned to a full commit SHA with its version in a comment", () => {
    const all = [...Object.keys(ci.jobs).map((j) => ci.jobs[j]), ...Object.keys(wf.jobs).map((j) => wf.jobs[j])].flatMap((j: any) => (j.steps as any[]).filter((s) => s.uses).map((s) => s.uses as string));
    expect(all.length).toBeGreaterThan(5);
    for (const u of all) expect(u).toMatch(/^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@[0-9a-f]{40}$/);
    for (const f of [GITHUB, GITHUB_CI]) {
      const text = fs.readFileSync(f, "utf8");
      for (const line of text.split("\n").filter((l) => /uses: /.test(l))) expect(line).toMatch(/@[0-9a-f]{40} # v\d+\.\d+\.\d+$/);
      expect(text).not.toMatch(/@(master|main|latest)\b/);
    }
    expect(uses("plan").length).toBeGreaterThan(0);
  });

  test("node is pinned to an exact version >= 20", () => {
    for (const w of [ci, wf]) {
      const [major] = String(w.env.NODE_VERSION).split(".").map(Number);
      expect(w.env.NODE_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
      expect(major).toBeGreaterThanOrEqual(20);
    }
  });

  test("no secret literal values", () => {
    const ref = (v: string) => /^\$\{\{ (secrets|vars|steps|needs|github)\.[A-Za-z0-9_.]+( \|\| (secrets\.[A-Za-z0-9_]+|'[^']*'))? \}\}$/.test(v);
    expectNoLiteralSecrets(GITHUB, wf, ref);
    expectNoLiteralSecrets(GITHUB_CI, ci, ref);
  });
});

describe("GitLab CI templates", () => {
  const parent = load(GITLAB);
  const shared = load(GITLAB_TERRAFORM);
  const child = load(GITLAB_DEPLOY);
  // The jobs as GitLab sees them once .gitlab/terraform.gitlab-ci.yml is included.
  const ci: Record<string, any> = { ...parent, ...shared };
  const kid: Record<string, any> = { ...child, ...shared };
  const scriptOf = (all: Record<string, any>, job: string) => {
    const base = all[job].extends ? all[all[job].extends] : {};
    return [...(all[job].before_script ?? base.before_script ?? []), ...(all[job].script ?? [])].join("\n");
  };
  const script = (job: string) => scriptOf(ci, job);
  const imagesOf = (job: any): string[] =>
    [job.image, ...(job.services ?? []).map((s: any) => (typeof s === "string" ? s : s.name))]
      .filter(Boolean)
      .map((i: any) => (typeof i === "string" ? i : i.name));
  const DEFAULT_BRANCH_ONLY = '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE != "merge_request_event"';

  test("the three files are valid against GitLab's CI schema, which catches a broken job", () => {
    expect(gitlabCiErrors(parent)).toEqual([]);
    expect(gitlabCiErrors(shared)).toEqual([]);
    expect(gitlabCiErrors(child)).toEqual([]);
    const broken = structuredClone(parent);
    broken.plan.artifact = broken.plan.artifacts;
    broken.plan.artifacts.access = "everyone";
    const errors = gitlabCiErrors(broken).join("\n");
    expect(errors).toMatch(/\/plan: must NOT have additional properties \{"additionalProperty":"artifact"\}/);
    expect(errors).toMatch(/\/plan\/artifacts\/access: must be equal to one of the allowed values/);
    const brokenChild = structuredClone(child);
    brokenChild.apply.needs[0].pipelin = brokenChild.apply.needs[0].pipeline;
    expect(gitlabCiErrors(brokenChild).length).toBeGreaterThan(0);
  });

  test("both pipelines include the shared file by the path the docs copy it to", () => {
    expect(parent.include).toEqual([{ local: ".gitlab/terraform.gitlab-ci.yml" }]);
    expect(child.include).toEqual([{ local: ".gitlab/terraform.gitlab-ci.yml" }]);
    expect(parent.deploy.trigger).toEqual({ include: ".gitlab/deploy.gitlab-ci.yml", strategy: "depend" });
  });

  test("stages in order and the jobs", () => {
    expect(parent.stages).toEqual(["test", "synth", "images", "approval", "plan", "deploy"]);
    for (const job of ["test", "synth", "images", "approval", "plan", "deploy"]) expect(parent[job].stage).toBe(job);
    expect(child.stages).toEqual(["deploy"]);
    expect(Object.keys(child).filter((k) => child[k]?.stage)).toEqual(["no-change", "apply"]);
  });

  test("test job runs npm ci then npm test, with shellcheck installed", () => {
    const lines: string[] = ci.test.script;
    const ciIdx = lines.findIndex((l) => /^npm ci\b/.test(l));
    expect(ciIdx).toBeGreaterThanOrEqual(0);
    expect(lines.findIndex((l) => /^npm test\b/.test(l))).toBeGreaterThan(ciIdx);
    expect(script("test")).toMatch(/apt-get install[^\n]*shellcheck/);
  });

  test("synth: cdktf.out kept even when the summary fails; merge requests get our summary against the target branch", () => {
    expect(ci.synth.artifacts.paths).toEqual(["cdktf.out/", "plan-summary.md"]);
    expect(ci.synth.artifacts.when).toBe("always");
    expect(ci.synth.artifacts.expose_as).toBeTruthy();
    const s = script("synth");
    expect(s).toContain('scripts/ci/summary.sh "${CI_MERGE_REQUEST_TARGET_BRANCH_SHA:-$CI_MERGE_REQUEST_DIFF_BASE_SHA}" plan-summary.md');
    expect(s.indexOf("npm run synth")).toBeLessThan(s.indexOf("summary.sh"));
  });

  test("approval, plan and the deploy trigger run only on the default branch; the apply is manual in a protected environment", () => {
    for (const job of ["approval", "plan", "deploy"]) expect([job, ci[job].rules]).toEqual([job, [{ if: DEFAULT_BRANCH_ONLY }]]);
    expect(JSON.stringify(parent.deploy)).not.toContain("CI_COMMIT_TAG");
    expect(kid.apply.rules).toEqual([{ if: '$PLAN_CHANGES == "true"', when: "manual" }]);
    expect(kid.apply.allow_failure).toBe(false);
    expect(kid.apply.environment).toEqual({ name: "production" });
    expect(ci.plan.environment).toEqual({ name: "production", action: "prepare" });
  });

  test("two people: the approval check runs before the plan, with a read token, scripts not run", () => {
    expect(ci.plan.needs).toEqual(["test", "synth", "approval"]);
    expect(ci.approval.script).toEqual(["npm ci --ignore-scripts", "npx tsx scripts/ci/check-approval.ts gitlab"]);
    expect(ci.approval.variables.DEPLOY_BRANCH).toBe("$CI_DEFAULT_BRANCH");
    expect(ci.approval.cache).toEqual([]);
    // Its token is a variable scoped to production: the jobs that run install scripts never get it.
    expect(ci.approval.environment).toEqual({ name: "production", action: "prepare" });
    for (const job of ["test", "synth", "images"]) expect([job, ci[job].environment]).toEqual([job, undefined]);
  });

  test("only the tip deploys: DEPLOY_BRANCH for plan.sh and apply.sh; plan and apply share resource_group production", () => {
    expect(shared[".terraform"].variables.DEPLOY_BRANCH).toBe("$CI_DEFAULT_BRANCH");
    expect(ci.plan.resource_group).toBe("production");
    expect(kid.apply.resource_group).toBe("production");
    expect(ci.plan.extends).toBe(".terraform");
    expect(kid.apply.extends).toBe(".terraform");
  });

  test("a plan with no change: the child pipeline has only the no-change job (green, nobody asked); a change gets the manual apply", () => {
    expect(script("plan")).toContain(`printf 'PLAN_BUNDLE_SHA256=%s\\nPLAN_CHANGES=%s\\n' "$PLAN_BUNDLE_SHA256" "$(cat plan/changes)" > plan.env`);
    expect(parent.deploy.needs).toEqual([{ job: "plan", artifacts: true }]);
    expect(parent.deploy.variables).toEqual({ PLAN_CHANGES: "$PLAN_CHANGES", PLAN_BUNDLE_SHA256: "$PLAN_BUNDLE_SHA256", PARENT_PIPELINE_ID: "$CI_PIPELINE_ID" });
    expect(kid["no-change"].rules).toEqual([{ if: '$PLAN_CHANGES == "false"' }]);
    expect(kid["no-change"].when).toBeUndefined();
    expect(JSON.stringify(kid["no-change"])).not.toMatch(/cluster-network|environment|SSH_PRIVATE_KEY/);
  });

  test("Terraform is the job's process: the apply line is exec'd, and last", () => {
    expect(kid.apply.script[kid.apply.script.length - 1]).toBe("exec scripts/ci/apply.sh --plans plan");
  });

  test("every job holding a secret installs with npm ci --ignore-scripts; their jobs do not share the npm cache", () => {
    for (const [name, all] of [["approval", ci], ["plan", ci], ["apply", kid]] as const) {
      const s = scriptOf(all, name);
      const installs = s.split("\n").filter((l) => /\bnpm (ci|install|i)\b/.test(l));
      expect([name, installs]).toEqual([name, ["npm ci --ignore-scripts"]]);
    }
    expect(shared[".terraform"].cache).toEqual([]);
  });

  test("plan and apply run on a runner tagged for the cluster's network", () => {
    expect(shared[".terraform"].tags).toEqual([DEPLOY_RUNNER]);
  });

  test("the saved plan goes from plan to the child's apply: sealed, not downloadable, 1 day, its SHA-256 passed on, applied by apply.sh", () => {
    const p = script("plan");
    expect(p).toContain("scripts/ci/plan.sh --out plan");
    expect(p).toContain("PLAN_BUNDLE_SHA256=$(scripts/ci/plan-bundle.sh seal plan tfplan.enc)");
    expect(p).toContain("rm -f plan/*/tfplan plan/*/plan.json");
    expect(ci.plan.artifacts).toMatchObject({ access: "none", expire_in: "1 day", paths: ["tfplan.enc", "plan/"], reports: { dotenv: "plan.env" } });
    expect(kid.apply.needs).toEqual([{ pipeline: "$PARENT_PIPELINE_ID", job: "plan" }]);
    const d = scriptOf(kid, "apply");
    expect(d).toContain('scripts/ci/plan-bundle.sh open tfplan.enc "$PLAN_BUNDLE_SHA256" plan');
    expect(d.indexOf("plan-bundle.sh open")).toBeLessThan(d.indexOf("apply.sh"));
    expect(kid.apply.script.join("\n")).not.toContain("plan.sh");
    for (const f of [GITLAB, GITLAB_TERRAFORM, GITLAB_DEPLOY]) expect(fs.readFileSync(f, "utf8")).not.toMatch(/cdktf deploy|--auto-approve|terraform apply/);
  });

  test("the plan and our summary are posted on the merged merge request", () => {
    const p = script("plan");
    expect(p).toContain('scripts/ci/summary.sh "$(git rev-parse HEAD^1)" plan/summary.md plan > /dev/null');
    expect(p).toContain("npx tsx scripts/ci/post-comment.ts gitlab plan/plan.md plan/summary.md");
    expect(Number(ci.plan.variables.GIT_DEPTH)).toBeGreaterThanOrEqual(2);
  });

  test("one description: CLUSTER_FILE is never a pipeline variable; every job that synthesizes reads clusters/deployed", () => {
    expect(JSON.stringify(ci.variables)).not.toContain("CLUSTER_FILE");
    for (const [job, all] of [["synth", ci], ["plan", ci], ["apply", kid]] as const) {
      const s = scriptOf(all, job);
      expect([job, s.indexOf("CLUSTER_FILE=$(scripts/ci/cluster-file.sh)") >= 0]).toEqual([job, true]);
      expect(s.indexOf("scripts/ci/cluster-file.sh")).toBeLessThan(s.indexOf("npm run synth"));
    }
  });

  test("every variable the stacks declare and the providers read is named; the required ones are checked; state is remote", () => {
    const s = script("plan");
    for (const v of [...DECLARED_TF_VARS, ...PROVIDER_ENV]) expect([v, s.includes(v)]).toEqual([v, true]);
    for (const v of [...REQUIRED_TF_VARS.filter((x) => !["TF_VAR_registry_password", "TF_VAR_autoscaler_nomad_token", "TF_VAR_alert_webhook_url", "TF_VAR_alert_smtp_password"].includes(x)), "TF_HTTP_PASSWORD", "PLAN_ENCRYPTION_KEY"]) {
      expect(s).toMatch(new RegExp(`for v in [^\n]*\\b${v}\\b[^\n]*printenv`));
    }
    expect(kid.apply.script.join("\n")).not.toContain("TF_VAR_");
    expect(shared[".terraform"].before_script.join("\n")).not.toContain("TF_VAR_");
    for (const v of REQUIRED_TF_VARS) {
      expect(ci.variables[v]).toBeUndefined();
      expect(shared[".terraform"].variables[v]).toBeUndefined();
    }
    expect(shared[".terraform"].variables.TF_STATE_HTTP_BASE).toBe("$CI_API_V4_URL/projects/$TF_STATE_PROJECT_ID/terraform/state");
    expect(s).toContain("npx tsx scripts/check-remote-state.ts cdktf.out");
    for (const f of [GITLAB, GITLAB_TERRAFORM, GITLAB_DEPLOY]) expect(fs.readFileSync(f, "utf8")).not.toMatch(/ALLOW_LOCAL_STATE|CI_JOB_TOKEN/);
  });

  test("no secret is echoed; a pipe into tee keeps the first command's failure", () => {
    const secrets = [...REQUIRED_TF_VARS, "SSH_PRIVATE_KEY", "NOMAD_TOKEN", "CONSUL_HTTP_TOKEN", "TF_HTTP_PASSWORD", "PLAN_ENCRYPTION_KEY", "PLAN_NOTE_TOKEN", "APPROVAL_CHECK_TOKEN", "CI_REGISTRY_PASSWORD"];
    for (const [job, all] of [...["test", "synth", "images", "approval", "plan"].map((j) => [j, ci] as const), ["apply", kid] as const, ["no-change", kid] as const]) {
      const s = scriptOf(all, job);
      expect([job, echoedSecrets(s, secrets)]).toEqual([job, []]);
      if (/\|\s*tee\b/.test(s)) expect(s.indexOf("set -o pipefail")).toBeGreaterThanOrEqual(0);
      if (/\|\s*tee\b/.test(s)) expect(s.indexOf("set -o pipefail")).toBeLessThan(s.search(/\|\s*tee\b/));
    }
  });

  test("images job runs only on tags and pushes with images/build.sh tagged with the git tag", () => {
    expect(ci.images.rules).toEqual([{ if: "$CI_COMMIT_TAG" }]);
    expect(script("images")).toMatch(/images\/build\.sh --registry "\$\{IMAGE_REGISTRY:-\$CI_REGISTRY_IMAGE\}" --tag "\$CI_COMMIT_TAG"/);
    expect(script("images")).toMatch(/--password-stdin/);
  });

  test("terraform is pinned and verified against SHA256SUMS", () => {
    expect(shared[".terraform"].variables.TERRAFORM_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
    expect(scriptOf(kid, "apply")).toMatch(/SHA256SUMS[^\n]*\| sha256sum -c -/);
  });

  test("every container image is pinned to an exact version", () => {
    const images = [...["default", "test", "synth", "images", "approval", "plan"].map((j) => ci[j]), shared[".terraform"], kid["no-change"]].flatMap(imagesOf);
    expect(images.length).toBeGreaterThanOrEqual(4);
    for (const image of images) expect(image).toMatch(/^[a-z0-9./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$/);
  });

  test("no secret literal values", () => {
    for (const [f, doc] of [[GITLAB, parent], [GITLAB_TERRAFORM, shared], [GITLAB_DEPLOY, child]] as const) expectNoLiteralSecrets(f, doc, (v) => /^\$\{?[A-Z0-9_]+\}?$/.test(v));
  });
});

describe("docs/ci.md: the comparison with Atlantis and Terraform Cloud", () => {
  test("every test the table's 'this pipeline' column cites exists in the test file it names", () => {
    const text = fs.readFileSync(path.join(ROOT, "docs", "ci.md"), "utf8");
    const table = text.slice(text.indexOf("## Against Atlantis and Terraform Cloud"), text.indexOf("## What the tests prove"));
    const rows = table.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| |") && !l.startsWith("|---"));
    expect(rows.map((r) => r.split("|")[1].trim())).toEqual(["when the plan is reviewed", "what is applied", "serialization", "an old commit", "approval", "untrusted code"]);
    for (const row of rows) {
      const ours = row.split("|")[2];
      const cites = [...ours.matchAll(/`([\w-]+\.test\.ts)`(?:: ((?:"[^"]+"(?:, )?)+))?/g)];
      expect([row.split("|")[1].trim(), cites.length > 0]).toEqual([row.split("|")[1].trim(), true]);
      for (const [, file, names] of cites) {
        const source = fs.readFileSync(path.join(ROOT, "__tests__", file), "utf8");
        for (const [, name] of (names ?? "").matchAll(/"([^"]+)"/g)) expect([file, name, source.includes(name)]).toEqual([file, name, true]);
      }
    }
  });
});

describe("committed provider lock files", () => {
  test("each kind of stack has one, pinning exactly the providers and versions it requires", async () => {
    const out = synthCluster(clusterFromText(exampleText()));
    try {
      for (const [stack, tf] of Object.entries<any>(out.stacks)) {
        const kind = stack.split("-").pop();
        const lockFile = path.join(ROOT, "terraform-locks", `${kind}.terraform.lock.hcl`);
        if (kind === "jobs" && !fs.existsSync(lockFile)) continue; // see docs/ci.md: generated by the operator
        const lock = await parseHcl(`${kind}.terraform.lock.hcl`, fs.readFileSync(lockFile, "utf8"));
        const locked = Object.fromEntries(Object.entries<any>(lock.provider).map(([addr, [p]]) => [addr, p.version]));
        const required = Object.fromEntries(
          Object.values<any>(tf.terraform.required_providers).map((p) => [`registry.terraform.io/hashicorp/${p.source}`, p.version]),
        );
        expect([stack, locked]).toEqual([stack, required]);
        for (const [, [p]] of Object.entries<any>(lock.provider)) expect(p.hashes.some((h: string) => h.startsWith("zh:"))).toBe(true);
      }
    } finally {
      cleanup(out);
    }
  });
});

const hasShellcheck = spawnSync("shellcheck", ["--version"]).status === 0;

describe("shell snippets of both templates", () => {
  let dir = "";
  afterAll(() => dir && fs.rmSync(dir, { recursive: true, force: true }));
  itIf(hasShellcheck, "shellcheck is not installed (apt-get install shellcheck)")("are shellcheck-clean at -S warning (as bash)", () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ci-sh-"));
    const files: string[] = [];
    for (const file of [GITHUB, GITHUB_CI]) {
      for (const [name, job] of Object.entries<any>(load(file).jobs)) {
        (job.steps as any[])
          .filter((st) => st.run)
          .forEach((st, i) => {
            expect(st.run).not.toMatch(/\$\{\{/); // expressions go through env:, never into scripts
            const f = path.join(dir, `github-${path.basename(file, ".yml")}-${name}-${i}.sh`);
            fs.writeFileSync(f, `#!/usr/bin/env bash\nset -eo pipefail\n${st.run}`);
            files.push(f);
          });
      }
    }
    const gl: Record<string, any> = { ...load(GITLAB), ...load(GITLAB_TERRAFORM) };
    const glChild: Record<string, any> = { ...load(GITLAB_DEPLOY), ...load(GITLAB_TERRAFORM) };
    for (const [name, all] of [...["test", "synth", "images", "approval", "plan"].map((j) => [j, gl] as const), ["apply", glChild] as const, ["no-change", glChild] as const]) {
      const before = all[name].before_script ?? (all[name].extends ? all[all[name].extends].before_script : []) ?? [];
      const f = path.join(dir, `gitlab-${name}.sh`);
      fs.writeFileSync(f, `#!/usr/bin/env bash\nset -e\n${[...before, ...all[name].script].join("\n")}`);
      files.push(f);
    }
    expect(files.length).toBeGreaterThanOrEqual(8);
    // The scripts the templates call.
    const ciScripts = path.join(ROOT, "scripts", "ci");
    files.push(...fs.readdirSync(ciScripts).filter((f) => f.endsWith(".sh")).map((f) => path.join(ciScripts, f)));
    const res = spawnSync("shellcheck", ["-S", "warning", "-x", ...files], { encoding: "utf8", cwd: ROOT });
    expect(res.stdout + res.stderr).toBe("");
    expect(res.status).toBe(0);
  });
});

describe("the checks themselves catch bad templates", () => {
  let dir = "";
  afterAll(() => dir && fs.rmSync(dir, { recursive: true, force: true }));
  test("a literal secret is detected", () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ci-"));
    const file = path.join(dir, "bad.yml");
    fs.writeFileSync(file, "env:\n  TF_VAR_rabbitmq_password: hunter2hunter2\n");
    const doc = load(file);
    expect(() => expectNoLiteralSecrets(file, doc, (v) => /^\$\{\{ secrets\.[A-Z_]+ \}\}$/.test(v))).toThrow();
    fs.writeFileSync(file, "url: amqp://team:s3cr3t@broker.example.org:5672/team\n");
    expect(() => expectNoLiteralSecrets(file, load(file), () => true)).toThrow();
  });

  test("a duplicated key makes the YAML invalid", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ci-"));
    try {
      const file = path.join(dir, "dup.yml");
      fs.writeFileSync(file, "jobs:\n  a: 1\n  a: 2\n");
      expect(() => load(file)).toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("scripts/check-remote-state.ts", () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  function out(stacks: Record<string, unknown>): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cdktf-out-"));
    dirs.push(dir);
    for (const [name, tf] of Object.entries(stacks)) {
      fs.mkdirSync(path.join(dir, "stacks", name), { recursive: true });
      fs.writeFileSync(path.join(dir, "stacks", name, "cdk.tf.json"), JSON.stringify(tf));
    }
    return dir;
  }

  test("local or missing backends are reported, remote ones are not", () => {
    const dir = out({
      a: { terraform: { backend: { local: { path: "x.tfstate" } } } },
      b: { terraform: { required_providers: {} } },
      c: { terraform: { backend: { http: { address: "https://example.org/state" } } } },
      d: { terraform: { backend: { s3: { bucket: "b", key: "k" } } } },
    });
    expect(stacksWithLocalState(dir).sort()).toEqual(["a", "b"]);
    expect(stackBackends(dir).find((s) => s.stack === "d")?.backends).toEqual(["s3"]);
  });

  test("a missing cdktf.out is an error", () => {
    expect(() => stackBackends(path.join(os.tmpdir(), "does-not-exist-cdktf-out"))).toThrow(/synth/);
  });
});

describe("scripts/ci/cluster-file.sh (one committed description)", () => {
  const run = (env: Record<string, string | undefined>) =>
    spawnSync(path.join(ROOT, "scripts", "ci", "cluster-file.sh"), [], { encoding: "utf8", env: { PATH: process.env.PATH, ...env } as NodeJS.ProcessEnv });
  const named = fs
    .readFileSync(path.join(ROOT, "clusters", "deployed"), "utf8")
    .split("\n")
    .find((l) => l.trim() && !l.startsWith("#"));

  test("prints the description named in clusters/deployed, which exists", () => {
    const r = run({});
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${named}\n`);
    expect(fs.existsSync(path.join(ROOT, String(named)))).toBe(true);
  });

  test("refuses a CLUSTER_FILE set elsewhere that names another file, accepts the same one", () => {
    const r = run({ CLUSTER_FILE: "clusters/example-later-year.yaml" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`CLUSTER_FILE=clusters/example-later-year.yaml is set outside the repository, but clusters/deployed names ${named}`);
    expect(run({ CLUSTER_FILE: named }).status).toBe(0);
  });
});

describe("scripts/ci/summary.sh never fails the job", () => {
  let dir = "";
  afterAll(() => dir && fs.rmSync(dir, { recursive: true, force: true }));
  test("an unknown base, or a base that does not synthesize, gives a one-line note and exit 0", () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ci-summary-"));
    const git = (...args: string[]) => spawnSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", ...args], { cwd: dir, encoding: "utf8" });
    git("init", "-q", "-b", "main");
    fs.mkdirSync(path.join(dir, "scripts", "ci"), { recursive: true });
    fs.copyFileSync(path.join(ROOT, "scripts", "ci", "summary.sh"), path.join(dir, "scripts", "ci", "summary.sh"));
    git("add", "-A");
    git("commit", "-q", "-m", "a commit without package.json: it cannot synthesize");
    const base = git("rev-parse", "HEAD").stdout.trim();
    const run = (b: string) => spawnSync("bash", ["scripts/ci/summary.sh", b, "out.md"], { cwd: dir, encoding: "utf8" });
    const unknown = run("0".repeat(40));
    expect(unknown.status).toBe(0);
    expect(fs.readFileSync(path.join(dir, "out.md"), "utf8")).toBe(`Base commit \`${"0".repeat(40)}\` is not available here: no comparison (the synthesized files are in the artifact).\n`);
    const broken = run(base);
    expect(broken.status).toBe(0);
    expect(fs.readFileSync(path.join(dir, "out.md"), "utf8")).toBe(`Base commit \`${base}\` does not synthesize: no comparison (the synthesized files are in the artifact).\n`);
    // The worktree of the base is removed again.
    expect(git("worktree", "list").stdout.trim().split("\n")).toHaveLength(1);
  });
});
