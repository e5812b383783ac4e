/**
 * main.ts as operators and CI run it: a broken description gives every problem, exit 1,
 * no stack trace and no output directory; the committed JSON Schema is up to date.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { clusterJsonSchema } from "../constructs/description/json-schema";
import { REPO_ROOT, exampleText, hasCommand, itIf } from "./helpers/synth";
import { planOutcome, withoutSpinnerFrames } from "../scripts/cdktf";

const TSX = path.join(REPO_ROOT, "node_modules", ".bin", "tsx");

function runMain(env: Record<string, string>) {
  const outdir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "cli-")), "cdktf.out");
  const childEnv: NodeJS.ProcessEnv = { ...process.env, CDKTF_OUTDIR: outdir, ...env };
  for (const [k, v] of Object.entries(env)) if (v === "") delete childEnv[k];
  const r = spawnSync(TSX, ["main.ts"], { cwd: REPO_ROOT, env: childEnv, encoding: "utf8" });
  const wrote = fs.existsSync(outdir);
  fs.rmSync(path.dirname(outdir), { recursive: true, force: true });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, wrote };
}

describe("main.ts", () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "desc-"))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("synthesizes the example by default", () => {
    const r = runMain({});
    expect(r).toMatchObject({ status: 0, wrote: true });
  });

  it("rejects a broken description: all problems, exit 1, no stack trace, nothing written", () => {
    const file = path.join(dir, "broken.yaml");
    fs.writeFileSync(file, exampleText().replace("virtualRouterId: 100", "virtualRouterId: 300").replace("haproxy: haproxy:3.0.5", "haproxy: haproxy:latest").replace("overlayAddress: 172.16.1.12", "overlayAddress: 10.9.9.9"));
    const r = runMain({ CLUSTER_FILE: file });
    expect(r.status).toBe(1);
    expect(r.wrote).toBe(false);
    expect(r.stderr).toContain(`${file}: 3 problems in the cluster description:`);
    expect(r.stderr).toMatch(/floatingIp\.virtualRouterId \(line \d+\): expected a VRRP router id 1-255, got number 300/);
    expect(r.stderr).toMatch(/app\.images\.haproxy \(line \d+\): expected an explicit version tag, not 'latest'/);
    expect(r.stderr).toMatch(/nodes\[1\]\.overlayAddress \(line \d+\): expected an address inside overlay\.prefix/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it("names a missing description file without a stack trace, and lists the descriptions in clusters/", () => {
    const r = runMain({ CLUSTER_FILE: "clusters/team-blu.yaml" });
    expect(r.status).toBe(1);
    expect(r.wrote).toBe(false);
    const present = fs.readdirSync(path.join(REPO_ROOT, "clusters")).filter((f) => f.endsWith(".yaml")).sort();
    expect(present).toContain("example.yaml");
    expect(r.stderr).toContain(`cannot read the cluster description ${path.join(REPO_ROOT, "clusters", "team-blu.yaml")} (no such file, ENOENT); descriptions in clusters/: ${present.join(", ")}`);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    // a file elsewhere, in a directory without descriptions: the repository's clusters/ is listed
    const elsewhere = runMain({ CLUSTER_FILE: path.join(dir, "empty", "nope.yaml") });
    expect(elsewhere.stderr).toMatch(/nope\.yaml \(no such file, ENOENT\); descriptions in clusters\/: example\.yaml/);
  });
});

/** `npm run <script> -- args` as an operator types it, output captured through pipes (not a terminal). */
function npmRun(script: string, args: string[], env: Record<string, string>) {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === "") delete childEnv[k];
  const r = spawnSync("npm", ["run", script, "--", ...args], { cwd: REPO_ROOT, env: childEnv, encoding: "utf8", timeout: 180000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, all: `${r.stdout}${r.stderr}` };
}

describe("npm run synth / diff / deploy (scripts/cdktf.ts around cdktf)", () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "npm-cdktf-"))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a broken description: each problem exactly once, exit 1, no escape codes in a pipe, cdktf not started", () => {
    const file = path.join(dir, "broken.yaml");
    fs.writeFileSync(file, exampleText().replace("virtualRouterId: 100", "virtualRouterId: 300").replace("overlayAddress: 172.16.1.12", "overlayAddress: 10.9.9.9"));
    const out = path.join(dir, "out-broken");
    const r = npmRun("synth", ["-o", out], { CLUSTER_FILE: file });
    expect(r.status).toBe(1);
    const count = (re: RegExp) => (r.all.match(re) ?? []).length;
    expect(count(/floatingIp\.virtualRouterId \(line \d+\): expected a VRRP router id 1-255, got number 300/g)).toBe(1);
    expect(count(/nodes\[1\]\.overlayAddress \(line \d+\)/g)).toBe(1);
    expect(count(/2 problems in the cluster description/g)).toBe(1);
    expect(r.all).not.toContain("\x1b");
    expect(r.all).not.toContain("Synthesizing");
    expect(fs.existsSync(out)).toBe(false);
  });

  it("synthesizes the selected description: names it and its stacks, no escape codes in a pipe", () => {
    const file = path.join(dir, "team-blue.yaml");
    fs.writeFileSync(file, exampleText().replace("name: team-example", "name: team-blue"));
    const out = path.join(dir, "out-blue");
    const r = npmRun("synth", ["-o", out], { CLUSTER_FILE: file });
    expect({ status: r.status, all: r.all }).toMatchObject({ status: 0 });
    expect(r.stderr).toContain(`cluster description: ${file} (CLUSTER_FILE) -> stacks team-blue-nodes, team-blue-jobs`);
    expect(r.stderr).toContain("running: cdktf synth -o");
    expect(r.all).not.toContain("\x1b");
    expect(r.all).toContain("Generated Terraform code for the stacks: team-blue-jobs, team-blue-nodes");
    // the notice is printed once (main.ts stays quiet under the wrapper)
    expect((r.all.match(/cluster description: /g) ?? []).length).toBe(1);
    expect(fs.readdirSync(path.join(out, "stacks")).sort()).toEqual(["team-blue-jobs", "team-blue-nodes"]);
    // no ACLs (the example's, every provider year's): ONE warning naming what others can read, and where to read more
    const warnings = r.all.split("\n").filter((l) => l.includes("WARNING: no ACLs"));
    expect(warnings).toHaveLength(1);
    expect(r.stderr).toContain(warnings[0]);
    expect(warnings[0]).toMatch(/^WARNING: no ACLs \(consul\.acl and nomad\.acl off, as on every provider year\): anyone who reaches the servers' APIs \(other teams on the overlay, the Internet through the provider's tunnels\) can read the jobs' secrets \(S3 keys, the broker URL with its password and Grafana's admin password\) in Nomad Variables, run jobs on your nodes and register services that HAProxy sends your traffic to\. See docs\/trust-model\.md\.$/);
    expect(fs.existsSync(path.join(REPO_ROOT, "docs", "trust-model.md"))).toBe(true);
  }, 200000);

  it("with Consul and Nomad ACLs on, synth prints no ACL warning", () => {
    const file = path.join(dir, "team-acl.yaml");
    const text = exampleText().replace("name: team-example", "name: team-acl");
    fs.writeFileSync(file, `${text}\nconsul:\n  acl: true\nnomad:\n  acl: true\n`);
    const out = path.join(dir, "out-acl");
    const r = npmRun("synth", ["-o", out], { CLUSTER_FILE: file });
    expect({ status: r.status, all: r.all }).toMatchObject({ status: 0 });
    expect(r.stderr).toContain(`cluster description: ${file} (CLUSTER_FILE) -> stacks team-acl-nodes, team-acl-jobs`);
    expect(r.all).not.toContain("WARNING");
    expect(r.all).not.toContain("trust-model");
  }, 200000);

  it("a stack pattern of another cluster stops before cdktf and names the description that was loaded", () => {
    const r = npmRun("deploy", ["team-blue-*"], { CLUSTER_FILE: "" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("NOTE: CLUSTER_FILE is not set, so this is THE EXAMPLE cluster");
    expect(r.stderr).toContain("'team-blue-*' matches no stack of clusters/example.yaml (its stacks: team-example-nodes, team-example-jobs)");
    expect(r.all).not.toContain("running: cdktf");
    expect(r.all).not.toContain("Could not find stack");
  });

  it("diff and deploy refuse to run on the example when CLUSTER_FILE is not set", () => {
    for (const command of ["deploy", "diff"]) {
      const r = npmRun(command, [], { CLUSTER_FILE: "" });
      expect({ command, status: r.status }).toEqual({ command, status: 1 });
      expect(r.stderr).toContain(`error: refusing to ${command} without CLUSTER_FILE: that would be the example cluster. Set CLUSTER_FILE=clusters/<team>.yaml`);
      expect(r.all).not.toContain("running: cdktf");
    }
  });

  it("drift refuses to run on the example when CLUSTER_FILE is not set (its hosts are placeholders), before any ssh", () => {
    const r = npmRun("drift", [], { CLUSTER_FILE: "" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("error: refusing to check drift without CLUSTER_FILE: that would be the example cluster (placeholder hosts). Set CLUSTER_FILE=clusters/<team>.yaml");
    expect(r.all).not.toContain("checking 2 nodes through the bastion");
  });
});

describe("npm run diff -- --detailed-exitcode (as terraform plan -detailed-exitcode), off a terminal", () => {
  // A stand-in app (one terraform_data per stack, no provider) so that the REAL cdktf and
  // Terraform plan offline: this tests the wrapper's exit codes and output, not our stacks.
  const APP = "node_modules/.bin/tsx __tests__/helpers/terraform-data-app.ts";
  let dir: string;
  let env: Record<string, string>;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "npm-diff-"));
    fs.writeFileSync(path.join(dir, "terraform.rc"), "");
    env = { CLUSTER_FILE: "clusters/example.yaml", TF_CLI_CONFIG_FILE: path.join(dir, "terraform.rc"), FAKE_INPUT: "a", FAKE_STATE_DIR: dir };
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const diff = (args: string[], more: Record<string, string> = {}) => npmRun("diff", ["-a", APP, "-o", path.join(dir, "out"), ...args, "team-example-nodes"], { ...env, ...more });
  const SPINNER = /[\u2800-\u28ff]/;

  itIf(hasCommand("terraform"), "terraform not on PATH")("2 with changes, 0 without, 1 on an error; plain diff still exits 0 with changes; no spinner frame", () => {
    const changes = diff(["--detailed-exitcode"]);
    expect({ status: changes.status, out: changes.stdout }).toMatchObject({ status: 2, out: expect.stringContaining("Plan: 1 to add, 0 to change, 0 to destroy.") });
    expect(changes.stderr).toContain("changes planned (exit 2, --detailed-exitcode)");
    expect(changes.all).not.toContain("--detailed-exitcode team-example-nodes (CHECKPOINT"); // not passed on to cdktf
    expect(changes.all).not.toMatch(SPINNER);

    const plain = diff([]);
    expect({ status: plain.status, out: plain.stdout }).toMatchObject({ status: 0, out: expect.stringContaining("Plan: 1 to add") });

    const deployed = npmRun("deploy", ["-a", APP, "-o", path.join(dir, "out"), "--auto-approve", "team-example-nodes"], env);
    expect({ status: deployed.status, all: deployed.all }).toMatchObject({ status: 0 });
    const none = diff(["--detailed-exitcode"]);
    expect({ status: none.status, out: none.stdout }).toMatchObject({ status: 0, out: expect.stringContaining("No changes. Your infrastructure matches the configuration.") });
    expect(none.stderr).toContain("no changes in the stack (exit 0, --detailed-exitcode)");

    // cdktf (ink) draws its last spinner frame ("⠹  Synthesizing") when the app fails
    const failed = diff(["--detailed-exitcode"], { FAKE_FAIL: "1" });
    expect({ status: failed.status, all: failed.all }).toMatchObject({ status: 1, all: expect.stringContaining("stand-in app failing on purpose") });
    expect(failed.all).not.toMatch(SPINNER);
  }, 400000);

  it("--detailed-exitcode is refused on deploy and synth (it would mean nothing there)", () => {
    const r = npmRun("synth", ["--detailed-exitcode"], {});
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("error: --detailed-exitcode is an option of diff only");
    expect(r.all).not.toContain("running: cdktf");
  });
});

describe("spinner frames and plan outcomes (scripts/cdktf.ts)", () => {
  it("drops spinner-frame lines and keeps the rest", () => {
    expect(withoutSpinnerFrames("a\n\u2839  Synthesizing\nb\n")).toBe("a\nb\n");
    expect(withoutSpinnerFrames("Plan: 1 to add\n")).toBe("Plan: 1 to add\n");
  });
  it("reads Terraform's plan lines as -detailed-exitcode would", () => {
    expect(planOutcome("x-nodes  No changes. Your infrastructure matches the configuration.")).toBe(0);
    expect(planOutcome("                    Plan: 0 to add, 1 to change, 0 to destroy.")).toBe(2);
    expect(planOutcome("x-jobs  Changes to Outputs:\n  ~ a = 1 -> 2")).toBe(2);
    expect(planOutcome("Error: something")).toBeUndefined();
  });
});

describe("main.ts says which description it loaded", () => {
  it("on stderr, loudly for the example; on stdout under cdktf (which logs the app's stderr as errors)", () => {
    const example = runMain({ CLUSTER_FILE: "" });
    expect(example.status).toBe(0);
    expect(example.stderr).toContain("cluster description: clusters/example.yaml -> stacks team-example-nodes, team-example-jobs");
    expect(example.stderr).toContain("NOTE: CLUSTER_FILE is not set, so this is THE EXAMPLE cluster");
    expect(example.stdout).toBe("");
    const underCdktf = runMain({ CLUSTER_FILE: "clusters/example.yaml", CDKTF_CONTEXT_JSON: "{}" });
    // the notice, then the example's no-ACL warning (one line)
    const [notice, warning, ...rest] = underCdktf.stdout.split("\n");
    expect(notice).toBe("cluster description: clusters/example.yaml (CLUSTER_FILE) -> stacks team-example-nodes, team-example-jobs");
    expect(warning).toMatch(/^WARNING: no ACLs .* See docs\/trust-model\.md\.$/);
    expect(rest).toEqual([""]);
    expect(underCdktf.stderr).toBe("");
  });
});

describe("cluster.schema.json", () => {
  it("is up to date with the zod schema (run `npm run schema`)", () => {
    expect(fs.readFileSync(path.join(REPO_ROOT, "cluster.schema.json"), "utf8")).toBe(clusterJsonSchema());
  });
});
