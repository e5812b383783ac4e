/**
 * `npm run summary -- --base-ref REF`: the baseline is built from a git ref (temporary
 * worktree, the ref's own code and description), the change from the working tree, and the
 * worktree is gone afterwards. Run on a throw-away copy of this repository (its files
 * committed once), so the project's own git history is never touched.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT } from "./helpers/synth";

jest.setTimeout(180000);

describe("npm run summary -- --base-ref", () => {
  let repo: string;
  const git = (...args: string[]) => {
    const r = spawnSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", ...args], { cwd: repo, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const summary = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(path.join(REPO_ROOT, "node_modules", ".bin", "tsx"), [path.join(repo, "scripts", "plan-summary.ts"), ...args], {
      cwd: repo,
      encoding: "utf8",
      env: { ...process.env, CLUSTER_FILE: "clusters/example.yaml", ...env },
    });

  beforeAll(() => {
    repo = fs.mkdtempSync(path.join(os.tmpdir(), "summary-ref-"));
    const files = spawnSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], { cwd: REPO_ROOT, encoding: "utf8" })
      .stdout.split("\n")
      .filter((f) => f && fs.existsSync(path.join(REPO_ROOT, f)));
    for (const f of files) {
      fs.mkdirSync(path.dirname(path.join(repo, f)), { recursive: true });
      fs.copyFileSync(path.join(REPO_ROOT, f), path.join(repo, f));
    }
    fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(repo, "node_modules"));
    git("init", "-q", "-b", "main");
    git("add", "-A");
    git("commit", "-qm", "base");
  });
  afterAll(() => fs.rmSync(repo, { recursive: true, force: true }));

  it("synthesizes the ref and the working tree, explains the change, and removes its worktree", () => {
    const example = path.join(repo, "clusters", "example.yaml");
    const text = fs.readFileSync(example, "utf8");
    fs.writeFileSync(example, text.replace("  - name: node-1\n", "  - name: node-1\n    maintenance: true\n"));
    const r = summary(["--base-ref", "main"]);
    expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
    expect(r.stderr).toContain("cluster description: clusters/example.yaml (CLUSTER_FILE) -> stacks team-example-nodes, team-example-jobs");
    expect(r.stderr).toMatch(/baseline: main \([0-9a-f]+\), synthesizing clusters\/example\.yaml as it was there/);
    expect(r.stdout.startsWith("### Plan review against main\n")).toBe(true);
    expect(r.stdout).toContain("| node **node-1** | `null_resource.node-1_keepalived` | -/+ replace | re-provision; maintenance on (priority 150 → 1)");
    expect(r.stdout).toContain("maintenance on: Nomad drains node-1 (deadline 5m;");
    expect(r.stdout).toContain("**Plan: 0 to create, 0 to update in place, 2 to replace, 0 to destroy (2 resource instances).**");
    // nothing left behind: no worktree registered, no cdktf.out written in the repository
    expect(git("worktree", "list").trim().split("\n")).toHaveLength(1);
    expect(fs.existsSync(path.join(repo, "cdktf.out"))).toBe(false);
    fs.writeFileSync(example, text);
  });

  it("a ref that does not exist: exit 2 with git's reason, nothing left behind", () => {
    const r = summary(["--base-ref", "no-such-ref"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/error: cannot check out no-such-ref: .*no-such-ref/);
    expect(git("worktree", "list").trim().split("\n")).toHaveLength(1);
  });
});
