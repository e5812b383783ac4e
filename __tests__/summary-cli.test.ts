/**
 * `npm run summary` as operators and CI run it, on real synth outputs of main.ts: the header
 * names what it really read (the synth output and its stacks, not the example a missing
 * CLUSTER_FILE would select), and `--detailed-exitcode` exits as Terraform's plan does
 * (0 no change, 2 changes, 1 error) while the default stays 0 / 2 for the CI scripts.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT, exampleText } from "./helpers/synth";

jest.setTimeout(180000);
const TSX = path.join(REPO_ROOT, "node_modules", ".bin", "tsx");

function run(script: string, args: string[], env: Record<string, string>) {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === "") delete childEnv[k];
  const r = spawnSync(TSX, [script, ...args], { cwd: REPO_ROOT, env: childEnv, encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("npm run summary", () => {
  let dir: string;
  let blueOut: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "summary-cli-"));
    const blue = path.join(dir, "team-blue.yaml");
    fs.writeFileSync(blue, exampleText().replace("name: team-example", "name: team-blue"));
    blueOut = path.join(dir, "blue.out");
    const synth = run("main.ts", [], { CLUSTER_FILE: blue, CDKTF_OUTDIR: blueOut });
    if (synth.status !== 0) throw new Error(`synth failed: ${synth.stderr}`);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const summary = (args: string[], env: Record<string, string> = {}) => run("scripts/plan-summary.ts", args, { CLUSTER_FILE: "", ...env });

  it("without CLUSTER_FILE names the synth output it read and its stacks, never the example", () => {
    const r = summary(["--out", blueOut]);
    expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
    expect(r.stderr).toContain(`summarizing ${blueOut} (stacks team-blue-jobs, team-blue-nodes) against no baseline`);
    expect(r.stderr).not.toMatch(/example/i);
    expect(r.stdout.startsWith(`### Plan review of ${blueOut} (team-blue-jobs, team-blue-nodes)\n`)).toBe(true);
    expect(r.stdout).toContain("| node **node-1** |");
  });

  it("with CLUSTER_FILE naming another cluster, says the synth output does not hold its stacks", () => {
    const r = summary(["--out", blueOut], { CLUSTER_FILE: "clusters/example.yaml" });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`NOTE: ${blueOut} does not hold the stacks of CLUSTER_FILE=clusters/example.yaml (team-example-nodes, team-example-jobs): run \`npm run synth\` first`);
  });

  it("--detailed-exitcode: 0 no change, 2 changes, 1 error; without it 0 and 2 as the CI scripts expect", () => {
    const same = summary(["--base", blueOut, "--out", blueOut, "--detailed-exitcode"]);
    expect({ status: same.status, stderr: same.stderr }).toMatchObject({ status: 0, stderr: expect.stringContaining("no changes (exit 0, --detailed-exitcode)") });
    expect(same.stdout).toContain("**No changes: nothing to create, update, replace or destroy.**");
    const changed = summary(["--out", blueOut, "--detailed-exitcode"]);
    expect({ status: changed.status, stderr: changed.stderr }).toMatchObject({ status: 2, stderr: expect.stringContaining("changes (exit 2, --detailed-exitcode)") });
    const missing = path.join(dir, "nothing-here");
    const broken = summary(["--out", missing, "--detailed-exitcode"]);
    expect({ status: broken.status, stderr: broken.stderr }).toEqual({ status: 1, stderr: `error: ${missing} is not a synth output (no stacks/ directory): run \`npm run synth\` first\n` });
    expect(summary(["--out", blueOut]).status).toBe(0);
    expect(summary(["--out", missing]).status).toBe(2);
  });
});
