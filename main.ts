/**
 * Entry point: reads the cluster description (env CLUSTER_FILE, default
 * clusters/example.yaml), validates it completely, and only then
 * synthesizes. A broken description prints every problem and exits 1 before anything is
 * written, so no half-written cdktf.out is left behind.
 */
import * as path from "path";
import { App } from "cdktf";
import { loadDescriptionFile, formatProblems } from "./constructs/description/load";
import { defineCluster } from "./constructs/cluster";

export const DEFAULT_CLUSTER_FILE = "clusters/example.yaml";

function main(): number {
  const file = process.env.CLUSTER_FILE ?? DEFAULT_CLUSTER_FILE;
  const loaded = loadDescriptionFile(path.resolve(file));
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(file, loaded.problems)}\n`);
    return 1;
  }
  const app = new App();
  defineCluster(app, loaded.cluster);
  app.synth();
  return 0;
}

try {
  process.exitCode = main();
} catch (e) {
  // An operator gets the message, not a stack trace (set DEBUG=1 for the trace).
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  if (process.env.DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
  process.exitCode = 1;
}
