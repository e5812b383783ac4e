/**
 * Entry point: reads the cluster description (env CLUSTER_FILE, default
 * clusters/example.yaml), validates it completely, and only then
 * synthesizes. Any failure prints what is wrong (the field and line, or the file), exits 1
 * and leaves no output directory behind, neither a half-written new one nor the previous
 * one (which would describe another description than the one just refused).
 */
import * as fs from "fs";
import * as path from "path";
import { App } from "cdktf";
import { loadDescriptionFile, formatProblems } from "./constructs/description/load";
import { defineCluster } from "./constructs/cluster";

export const DEFAULT_CLUSTER_FILE = "clusters/example.yaml";

/** Where cdktf writes (the CLI passes CDKTF_OUTDIR; the App's default otherwise). */
function outdir(): string {
  return path.resolve(process.env.CDKTF_OUTDIR ?? "cdktf.out");
}

function removeOutput(): void {
  fs.rmSync(outdir(), { recursive: true, force: true });
}

const file = process.env.CLUSTER_FILE ?? DEFAULT_CLUSTER_FILE;

function main(): number {
  const loaded = loadDescriptionFile(path.resolve(file));
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(file, loaded.problems)}\n`);
    removeOutput();
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
  // Validation refuses every description we know to break synthesis; anything else is
  // our bug. The operator gets the file and the message, not a stack trace (DEBUG=1 for it).
  process.stderr.write(`${file}: cannot synthesize this description: ${e instanceof Error ? e.message : String(e)}\n`);
  if (process.env.DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
  try {
    removeOutput();
  } catch {
    // nothing more to do: the message above is what matters
  }
  process.exitCode = 1;
}
