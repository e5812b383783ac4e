/**
 * The CI templates operators copy (ci-templates/): parsed with `yaml`, checked for the
 * pipeline shape (test -> synth -> manual deploy; images only on tags), the plan-review
 * artifact, pinned actions/images/tools, secrets only from the CI secret store.
 * Also scripts/check-remote-state.ts, which the deploy jobs run.
 */
import { itIf } from "./helpers/synth";
import { SECRET_VARIABLES } from "../constructs/description/secrets";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseDocument } from "yaml";
import { looksLikeSecretName } from "../scripts/dockerfile-rules";
import { stackBackends, stacksWithLocalState } from "../scripts/check-remote-state";

const ROOT = path.resolve(__dirname, "..");
const GITHUB = path.join(ROOT, "ci-templates", "github", "workflows", "deploy.yml");
const GITLAB = path.join(ROOT, "ci-templates", "gitlab", ".gitlab-ci.yml");

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

describe("GitHub Actions template", () => {
  const wf = load(GITHUB);
  const jobs = wf.jobs;
  const stepsText = (job: string) => (jobs[job].steps as any[]).map((s) => s.run ?? "").join("\n");
  const uses = (job: string) => (jobs[job].steps as any[]).filter((s) => s.uses).map((s) => s.uses as string);

  test("triggers: branch pushes, tags, pull requests, manual runs", () => {
    expect(Object.keys(wf.on).sort()).toEqual(["pull_request", "push", "workflow_dispatch"]);
    expect(wf.on.push.tags.length).toBeGreaterThan(0);
    expect(wf.permissions).toEqual({ contents: "read" });
  });

  test("has the test, synth, images and deploy jobs", () => {
    expect(Object.keys(jobs).sort()).toEqual(["deploy", "images", "synth", "test"]);
  });

  test("test job runs npm ci then npm test, with shellcheck installed", () => {
    const runs = (jobs.test.steps as any[]).map((s) => s.run ?? "");
    const ci = runs.findIndex((r) => /^npm ci\b/m.test(r));
    const t = runs.findIndex((r) => /^npm test\b/m.test(r));
    expect(ci).toBeGreaterThanOrEqual(0);
    expect(t).toBeGreaterThan(ci);
    expect(stepsText("test")).toMatch(/apt-get install[^\n]*shellcheck/);
  });

  test("pull requests get the plan-review summary against the base commit on the run's summary page", () => {
    const steps = jobs.synth.steps as any[];
    const summary = steps.find((st) => /npm run --silent summary/.test(st.run ?? ""));
    expect(summary).toBeDefined();
    expect(summary.if).toBe("github.event_name == 'pull_request'");
    expect(summary.env.BASE_SHA).toBe("${{ github.event.pull_request.base.sha }}");
    expect(summary.run).toMatch(/--base \.\.\/plan-base\/cdktf\.out --out cdktf\.out[^\n]*>> "\$GITHUB_STEP_SUMMARY"/);
    // after this commit's synth, before the artifact upload
    const synth = steps.findIndex((st) => /npx cdktf synth$/m.test(st.run ?? "") && !/plan-base/.test(st.run ?? ""));
    const upload = steps.findIndex((st) => String(st.uses ?? "").startsWith("actions/upload-artifact@"));
    expect(synth).toBeLessThan(steps.indexOf(summary));
    expect(steps.indexOf(summary)).toBeLessThan(upload);
  });

  test("synth job needs test, synthesizes and uploads all of cdktf.out as the plan-review artifact", () => {
    expect(jobs.synth.needs).toContain("test");
    expect(stepsText("synth")).toMatch(/npx cdktf synth|npm run synth/);
    const upload = (jobs.synth.steps as any[]).find((s) => String(s.uses ?? "").startsWith("actions/upload-artifact@"));
    expect(upload).toBeDefined();
    expect(upload.with.path.replace(/\/$/, "")).toBe("cdktf.out");
    expect(upload.with.name).toMatch(/plan-review/);
    expect(upload.with["if-no-files-found"]).toBe("error");
    // The synth job gets no secret at all.
    expect(JSON.stringify(jobs.synth)).not.toMatch(/secrets\./);
  });

  test("images job runs only on tags and pushes with images/build.sh tagged with the git tag", () => {
    expect(jobs.images.if).toMatch(/startsWith\(github\.ref, 'refs\/tags\/'\)/);
    expect(jobs.images.permissions.packages).toBe("write");
    const run = stepsText("images");
    expect(run).toMatch(/images\/build\.sh --registry "\$registry" --tag "\$GITHUB_REF_NAME"/);
    expect(run).not.toMatch(/--dry-run|latest/);
  });

  test("deploy is manual only, needs test and synth, and is held by a protected environment", () => {
    expect(jobs.deploy.needs).toEqual(expect.arrayContaining(["test", "synth"]));
    expect(jobs.deploy.if).toBe("github.event_name == 'workflow_dispatch'");
    expect(jobs.deploy.environment).toBeTruthy();
    expect(jobs.deploy.concurrency["cancel-in-progress"]).toBe(false);
    const run = stepsText("deploy");
    expect(run).toMatch(/npx cdktf deploy --auto-approve '\*'/);
    expect(run).toMatch(/scripts\/check-remote-state\.ts/);
    expect(run.indexOf("check-remote-state")).toBeLessThan(run.indexOf("cdktf deploy"));
  });

  test("deploy gets the Terraform secrets and the SSH key from GitHub secrets", () => {
    const steps = jobs.deploy.steps as any[];
    const deployStep = steps.find((s) => /cdktf deploy/.test(s.run ?? ""));
    for (const v of REQUIRED_TF_VARS) {
      expect([v, deployStep.env[v]]).toEqual([v, expect.stringMatching(/^\$\{\{ secrets\.[A-Z0-9_]+ \}\}$/)]);
    }
    const sshStep = steps.find((s) => /ssh-add/.test(s.run ?? ""));
    expect(sshStep.env.SSH_PRIVATE_KEY).toBe("${{ secrets.SSH_PRIVATE_KEY }}");
    expect(sshStep.run).toMatch(/ssh-agent/);
    expect(sshStep.run).toMatch(/SSH_AUTH_SOCK=.*>> "\$GITHUB_ENV"/);
    // The agent must be loaded before the deploy step runs.
    expect(steps.indexOf(sshStep)).toBeLessThan(steps.indexOf(deployStep));
  });

  test("terraform is installed with a pinned version and without the wrapper", () => {
    const tf = (jobs.deploy.steps as any[]).find((s) => String(s.uses ?? "").startsWith("hashicorp/setup-terraform@"));
    expect(tf.with.terraform_version).toBe("${{ env.TERRAFORM_VERSION }}");
    expect(wf.env.TERRAFORM_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
    expect(String(tf.with.terraform_wrapper)).toBe("false");
  });

  test("every action is pinned to a full commit SHA with its version in a comment", () => {
    const all = Object.keys(jobs).flatMap(uses);
    expect(all.length).toBeGreaterThan(5);
    for (const u of all) expect(u).toMatch(/^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@[0-9a-f]{40}$/);
    const text = fs.readFileSync(GITHUB, "utf8");
    for (const line of text.split("\n").filter((l) => /uses: /.test(l))) {
      expect(line).toMatch(/@[0-9a-f]{40} # v\d+\.\d+\.\d+$/);
    }
    expect(text).not.toMatch(/@(master|main|latest)\b/);
  });

  test("node is pinned to an exact version >= 20", () => {
    const [major] = String(wf.env.NODE_VERSION).split(".").map(Number);
    expect(wf.env.NODE_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
    expect(major).toBeGreaterThanOrEqual(20);
  });

  test("CLUSTER_FILE defaults to clusters/example.yaml", () => {
    expect(wf.env.CLUSTER_FILE).toMatch(/'clusters\/example\.yaml'/);
    expect(fs.existsSync(path.join(ROOT, "images", "build.sh"))).toBe(true);
  });

  test("no secret literal values", () => {
    expectNoLiteralSecrets(GITHUB, wf, (v) => /^\$\{\{ (secrets|vars)\.[A-Za-z0-9_]+( \|\| secrets\.[A-Za-z0-9_]+)? \}\}$/.test(v));
  });
});

describe("GitLab CI template", () => {
  const ci = load(GITLAB);
  const script = (job: string) => [...(ci[job].before_script ?? []), ...(ci[job].script ?? [])].join("\n");
  const imagesOf = (job: any): string[] =>
    [job.image, ...(job.services ?? []).map((s: any) => (typeof s === "string" ? s : s.name))]
      .filter(Boolean)
      .map((i: any) => (typeof i === "string" ? i : i.name));

  test("stages in order and the four jobs", () => {
    expect(ci.stages).toEqual(["test", "synth", "images", "deploy"]);
    for (const job of ["test", "synth", "images", "deploy"]) expect(ci[job].stage).toBe(job);
  });

  test("test job runs npm ci then npm test, with shellcheck installed", () => {
    const lines: string[] = ci.test.script;
    const ciIdx = lines.findIndex((l) => /^npm ci\b/.test(l));
    expect(ciIdx).toBeGreaterThanOrEqual(0);
    expect(lines.findIndex((l) => /^npm test\b/.test(l))).toBeGreaterThan(ciIdx);
    expect(script("test")).toMatch(/apt-get install[^\n]*shellcheck/);
  });

  test("synth job needs test and keeps all of cdktf.out as the plan-review artifact", () => {
    expect(ci.synth.needs).toContain("test");
    expect(script("synth")).toMatch(/npx cdktf synth|npm run synth/);
    expect(ci.synth.artifacts.paths).toEqual(["cdktf.out/", "plan-summary.md"]);
    expect(ci.synth.artifacts.expose_as).toBeTruthy();
    expect(ci.synth.artifacts.name).toMatch(/plan-review/);
  });

  test("merge requests get the plan-review summary against the target branch as plan-summary.md", () => {
    const s = script("synth");
    expect(s).toMatch(/if \[ -n "\$\{CI_MERGE_REQUEST_DIFF_BASE_SHA:-\}" \]; then/);
    expect(s).toMatch(/git worktree add --quiet --detach \.\.\/plan-base "\$CI_MERGE_REQUEST_DIFF_BASE_SHA"/);
    expect(s).toMatch(/npm run --silent summary -- --base \.\.\/plan-base\/cdktf\.out --out cdktf\.out[^\n]*> plan-summary\.md/);
    expect(s.indexOf("npx cdktf synth")).toBeLessThan(s.indexOf("summary --"));
  });

  test("images job runs only on tags and pushes with images/build.sh tagged with the git tag", () => {
    expect(ci.images.rules).toEqual([{ if: "$CI_COMMIT_TAG" }]);
    expect(script("images")).toMatch(/images\/build\.sh --registry "\$\{IMAGE_REGISTRY:-\$CI_REGISTRY_IMAGE\}" --tag "\$CI_COMMIT_TAG"/);
    expect(script("images")).toMatch(/--password-stdin/);
  });

  test("deploy is manual only, needs test and synth, one at a time, in a protected environment", () => {
    expect(ci.deploy.needs).toEqual(expect.arrayContaining(["test", "synth"]));
    expect(ci.deploy.when).toBeUndefined();
    expect(ci.deploy.rules.length).toBeGreaterThan(0);
    for (const rule of ci.deploy.rules) expect(rule.when).toBe("manual");
    expect(ci.deploy.allow_failure).toBe(false);
    expect(ci.deploy.environment.name).toBe("production");
    expect(ci.deploy.resource_group).toBeTruthy();
    const s = script("deploy");
    expect(s).toMatch(/npx cdktf deploy --skip-synth --ignore-missing-stack-dependencies --auto-approve "\$stack"/);
    // one GitLab-managed state per stack, nodes before jobs
    expect(s).toMatch(/state\/\$\{TF_STATE_PREFIX\}-\$\{stack\}/);
    expect(s.indexOf("stacks/*-nodes")).toBeLessThan(s.indexOf("stacks/*-jobs"));
    expect(s.indexOf("check-remote-state")).toBeGreaterThan(-1);
    expect(s.indexOf("check-remote-state")).toBeLessThan(s.indexOf("cdktf deploy"));
  });

  test("deploy loads the SSH key into an agent and checks the TF_VAR_* secrets are present", () => {
    const s = script("deploy");
    expect(s).toMatch(/ssh-agent -s/);
    expect(s).toMatch(/ssh-add/);
    expect(s).toMatch(/SSH_PRIVATE_KEY/);
    for (const v of REQUIRED_TF_VARS.filter((x) => x !== "TF_VAR_registry_password")) expect(s).toContain(v);
    // Secrets are never defined in the file: they come from CI/CD variables.
    for (const v of REQUIRED_TF_VARS) {
      expect(ci.variables[v]).toBeUndefined();
      expect(ci.deploy.variables[v]).toBeUndefined();
    }
  });

  test("terraform is pinned and verified against SHA256SUMS", () => {
    expect(ci.variables.TERRAFORM_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
    expect(script("deploy")).toMatch(/SHA256SUMS[^\n]*\| sha256sum -c -/);
  });

  test("every container image is pinned to an exact version", () => {
    const jobs = ["default", "test", "synth", "images", "deploy"].map((j) => ci[j]);
    const images = jobs.flatMap(imagesOf);
    expect(images.length).toBeGreaterThanOrEqual(3);
    for (const image of images) {
      expect(image).toMatch(/^[a-z0-9./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$/);
    }
  });

  test("CLUSTER_FILE defaults to clusters/example.yaml", () => {
    expect(ci.variables.CLUSTER_FILE).toBe("clusters/example.yaml");
  });

  test("no secret literal values", () => {
    expectNoLiteralSecrets(GITLAB, ci, (v) => /^\$\{?[A-Z0-9_]+\}?$/.test(v));
  });
});

const hasShellcheck = spawnSync("shellcheck", ["--version"]).status === 0;

describe("shell snippets of both templates", () => {
  let dir = "";
  afterAll(() => dir && fs.rmSync(dir, { recursive: true, force: true }));
  itIf(hasShellcheck, "shellcheck is not installed (apt-get install shellcheck)")("are shellcheck-clean at -S warning (as bash)", () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "ci-sh-"));
    const files: string[] = [];
    const gh = load(GITHUB);
    for (const [name, job] of Object.entries<any>(gh.jobs)) {
      (job.steps as any[])
        .filter((st) => st.run)
        .forEach((st, i) => {
          expect(st.run).not.toMatch(/\$\{\{/); // expressions go through env:, never into scripts
          const f = path.join(dir, `github-${name}-${i}.sh`);
          fs.writeFileSync(f, `#!/usr/bin/env bash\nset -eo pipefail\n${st.run}`);
          files.push(f);
        });
    }
    const gl = load(GITLAB);
    for (const name of ["test", "synth", "images", "deploy"]) {
      const f = path.join(dir, `gitlab-${name}.sh`);
      fs.writeFileSync(f, `#!/usr/bin/env bash\nset -e\n${[...(gl[name].before_script ?? []), ...gl[name].script].join("\n")}`);
      files.push(f);
    }
    expect(files.length).toBeGreaterThanOrEqual(8);
    const res = spawnSync("shellcheck", ["-S", "warning", ...files], { encoding: "utf8" });
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
