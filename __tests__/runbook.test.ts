/**
 * The runbook (docs/operations.md) is pasted into a shell by someone having a bad day: every
 * ```sh block must at least parse (bash -n), and every procedure of "Runbook" answers the
 * same questions in the same order.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.resolve(__dirname, "..");
const DOCS = ["docs/operations.md", "docs/ci.md"];

function shellBlocks(text: string): string[] {
  return [...text.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

describe("runbook", () => {
  test.each(DOCS)("every sh block of %s parses with bash -n", (doc) => {
    const blocks = shellBlocks(fs.readFileSync(path.join(ROOT, doc), "utf8"));
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) {
      const res = spawnSync("bash", ["-n"], { input: block, encoding: "utf8" });
      expect([block.split("\n")[0], res.stderr]).toEqual([block.split("\n")[0], ""]);
    }
  });

  test("each procedure has a pre-check, commands, expected output, duration, verification and rollback", () => {
    const text = fs.readFileSync(path.join(ROOT, "docs", "operations.md"), "utf8");
    const runbook = text.slice(text.indexOf("## Runbook"), text.indexOf("## Bad days"));
    const procedures = runbook.split(/^### /m).slice(1).filter((p) => p.includes("| step | what |"));
    expect(procedures.map((p) => p.split("\n")[0])).toEqual(
      expect.arrayContaining(["New application version", "Planned maintenance of a node", "Adding a node", "Removing a node", "Rotating a secret"]),
    );
    for (const p of procedures) {
      const rows = [...p.matchAll(/^\| ([a-z /-]+) \|/gm)].map((m) => m[1]).filter((r) => r !== "step");
      const required = ["pre-check", "commands", "expected", "duration", "verification"];
      expect([p.split("\n")[0], required.every((r) => rows.includes(r)), rows.some((r) => r.startsWith("rollback"))]).toEqual([p.split("\n")[0], true, true]);
    }
  });

  test("the bad days have their scenarios", () => {
    const text = fs.readFileSync(path.join(ROOT, "docs", "operations.md"), "utf8");
    const bad = text.slice(text.indexOf("## Bad days"));
    for (const scenario of ["disk is full", "state locked", "state lost", "lost their data", "re-imaged", "bad HAProxy release"]) {
      expect([scenario, bad.includes(scenario)]).toEqual([scenario, true]);
    }
    // A re-imaged VM keeps its state: only -replace re-runs its install scripts.
    expect(bad).toMatch(/-replace='null_resource\.node-1_consul'/);
    expect(bad).toMatch(/force-unlock/);
  });
});
