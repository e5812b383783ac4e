/**
 * Entry point: reads the cluster description (env CLUSTER_FILE, default
 * clusters/example.yaml), validates it completely, and only then synthesizes. Any failure
 * prints what is wrong (the field and line, or the file), exits 1 and leaves no output
 * directory behind, neither a half-written new one nor the previous one (which would
 * describe another description than the one just refused).
 *
 * It says which description it loaded and the stack names (loudly when CLUSTER_FILE is
 * unset and the example is used), and what a cluster without ACLs gives away, unless an
 * npm command wrapper (scripts/cdktf.ts) said it already. Under `cdktf synth` the notice goes to stdout: cdktf prints the app's stdout as
 * it is, but every stderr line as an "[ERROR]" log line.
 */
import * as fs from "fs";
import * as path from "path";
import { App } from "cdktf";
import { ANNOUNCED_ENV, loadSelectedDescription, selectedDescription } from "./constructs/description/selection";
import { defineCluster } from "./constructs/cluster";

/** Where cdktf writes (the CLI passes CDKTF_OUTDIR; the App's default otherwise). */
function removeOutput(): void {
  fs.rmSync(path.resolve(process.env.CDKTF_OUTDIR ?? "cdktf.out"), { recursive: true, force: true });
}

function main(): number {
  const loaded = loadSelectedDescription();
  if (!loaded.ok) {
    process.stderr.write(loaded.message);
    removeOutput();
    return 1;
  }
  if (process.env[ANNOUNCED_ENV] !== "1") {
    const underCdktf = process.env.CDKTF_CONTEXT_JSON !== undefined;
    (underCdktf ? process.stdout : process.stderr).write(loaded.notice + loaded.warning);
  }
  const app = new App();
  defineCluster(app, loaded.cluster);
  app.synth();
  return 0;
}

try {
  process.exitCode = main();
} catch (e) {
  // Validation refuses every description we know to break synthesis; anything else is
  // our bug. The operator gets the file and the message, not a stack trace (DEBUG=1 for it).
  process.stderr.write(`${selectedDescription(process.env, process.cwd()).file}: cannot synthesize this description: ${e instanceof Error ? e.message : String(e)}\n`);
  if (process.env.DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
  try {
    removeOutput();
  } catch {
    // nothing more to do: the message above is what matters
  }
  process.exitCode = 1;
}
