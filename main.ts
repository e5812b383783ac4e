/**
 * Entry point: reads the cluster description (env CLUSTER_FILE, default
 * clusters/example.yaml), validates it completely, and only then synthesizes. A broken
 * description prints every problem and exits 1 before anything is written, so no
 * half-written cdktf.out is left behind.
 *
 * It says which description it loaded and the stack names (loudly when CLUSTER_FILE is
 * unset and the example is used), unless an npm command wrapper (scripts/cdktf.ts) said it
 * already. Under `cdktf synth` the notice goes to stdout: cdktf prints the app's stdout as
 * it is, but every stderr line as an "[ERROR]" log line.
 */
import { App } from "cdktf";
import { ANNOUNCED_ENV, loadSelectedDescription } from "./constructs/description/selection";
import { defineCluster } from "./constructs/cluster";

function main(): number {
  const loaded = loadSelectedDescription();
  if (!loaded.ok) {
    process.stderr.write(loaded.message);
    return 1;
  }
  if (process.env[ANNOUNCED_ENV] !== "1") {
    const underCdktf = process.env.CDKTF_CONTEXT_JSON !== undefined;
    (underCdktf ? process.stdout : process.stderr).write(loaded.notice);
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
