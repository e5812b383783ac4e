/**
 * Refuse to deploy from CI with Terraform state that would be lost: a CI runner is thrown
 * away after the job, so a stack with the (default) local backend would forget every
 * resource it created and the next deploy would try to create them all again.
 *
 *   npx tsx scripts/check-remote-state.ts [cdktf.out]
 *
 * Exit 0 when every synthesized stack declares a non-local backend, 1 otherwise. There is
 * no override: a local state file on a runner is deleted by the next checkout's clean, and
 * it would hold the stacks' secrets outside any access control.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export interface StackBackend {
  stack: string;
  backends: string[];
}

/** The backend types declared by each synthesized stack under <outDir>/stacks. */
export function stackBackends(outDir: string): StackBackend[] {
  const stacksDir = path.join(outDir, "stacks");
  if (!fs.existsSync(stacksDir)) throw new Error(`${stacksDir} does not exist: run cdktf synth first`);
  return fs
    .readdirSync(stacksDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && fs.existsSync(path.join(stacksDir, d.name, "cdk.tf.json")))
    .map((d) => {
      const json = JSON.parse(fs.readFileSync(path.join(stacksDir, d.name, "cdk.tf.json"), "utf8"));
      return { stack: d.name, backends: Object.keys(json?.terraform?.backend ?? {}) };
    });
}

/** Stacks whose state would stay on the runner (no backend, or the local one). */
export function stacksWithLocalState(outDir: string): string[] {
  return stackBackends(outDir)
    .filter((s) => s.backends.length === 0 || s.backends.includes("local"))
    .map((s) => s.stack);
}

if (require.main === module) {
  const outDir = process.argv[2] ?? "cdktf.out";
  const stacks = stackBackends(outDir);
  if (stacks.length === 0) {
    console.error(`no synthesized stack under ${outDir}/stacks`);
    process.exit(1);
  }
  const local = stacksWithLocalState(outDir);
  if (local.length > 0) {
    console.error(`error: stack(s) with local Terraform state: ${local.join(", ")}; a CI runner forgets it. Configure a remote backend with access control and locking (docs/ci.md, "State").`);
    process.exit(1);
  }
  for (const s of stacks) console.log(`${s.stack}: backend ${s.backends.join(", ") || "(none)"}`);
}
