/**
 * Test helpers: synthesize the real app (the same `defineCluster` as main.ts) into a temp
 * directory and read back what an operator would get in cdktf.out.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { App } from "cdktf";
import { defineCluster } from "../../constructs/cluster";
import { listFiles, readSynthOutput } from "../../scripts/lib/synth-output";

export { listFiles };
import { loadDescriptionFile, loadDescriptionText } from "../../constructs/description/load";
import type { Cluster } from "../../constructs/description/schema";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
export const EXAMPLE_FILE = path.join(REPO_ROOT, "clusters", "example.yaml");

export function exampleText(): string {
  return fs.readFileSync(EXAMPLE_FILE, "utf8");
}

/** The example cluster, validated and defaulted. */
export function exampleCluster(): Cluster {
  const r = loadDescriptionFile(EXAMPLE_FILE);
  if (!r.ok) throw new Error(`example cluster invalid: ${JSON.stringify(r.problems)}`);
  return r.cluster;
}

/** Loads a description from YAML text; throws with the problems when invalid. */
export function clusterFromText(text: string): Cluster {
  const r = loadDescriptionText(text);
  if (!r.ok) throw new Error(`invalid description: ${JSON.stringify(r.problems)}`);
  return r.cluster;
}

/** A deep copy of a cluster, modified by `edit` (for blast-radius tests). */
export function edited(c: Cluster, edit: (c: Cluster) => void): Cluster {
  const copy = structuredClone(c);
  edit(copy);
  return copy;
}

export interface SynthOutput {
  outdir: string;
  /** Stack name → parsed cdk.tf.json */
  stacks: Record<string, any>;
  /** Stack name → (path relative to the stack dir → file text) for every file but cdk.tf.json */
  files: Record<string, Record<string, string>>;
}

/** Output directories not cleaned up yet: whatever a test forgets is removed after its file. */
const pending = new Set<string>();
afterAll(() => {
  for (const dir of pending) fs.rmSync(dir, { recursive: true, force: true });
  pending.clear();
});

/** Synthesizes the cluster into a fresh temp dir (removed by `cleanup`, or after the test file). */
export function synthCluster(cluster: Cluster): SynthOutput {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), "cdktf-test-"));
  pending.add(outdir);
  const app = new App({ outdir, skipValidation: false });
  defineCluster(app, cluster);
  app.synth();
  // the same reader as `npm run summary`: cdk.tf.json and the rendered files of each stack
  return { outdir, ...readSynthOutput(outdir) };
}

export function cleanup(out: SynthOutput): void {
  fs.rmSync(out.outdir, { recursive: true, force: true });
  pending.delete(out.outdir);
}

/** Resources of one type in a synthesized stack: name → body. */
export function resourcesOf(stack: any, type: string): Record<string, any> {
  return stack.resource?.[type] ?? {};
}

/** Parses HCL with HashiCorp's parser (WebAssembly build of hcl2json). */
export async function parseHcl(name: string, text: string): Promise<any> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { parse } = require("@cdktf/hcl2json");
  return parse(name, text);
}

/** CI sets REQUIRE_ALL_TESTS=1: there a test that would be skipped fails instead. */
export const REQUIRE_ALL_TESTS = process.env.REQUIRE_ALL_TESTS === "1";

/**
 * Runs a test body only when `cond`; otherwise registers it as skipped and says why,
 * loudly, or, under REQUIRE_ALL_TESTS, as a failing test naming what is missing.
 */
export function itIf(cond: boolean, reason: string): jest.It {
  if (cond) return it;
  if (REQUIRE_ALL_TESTS) {
    return ((name: string) =>
      it(name, () => {
        throw new Error(`cannot run here (${reason}) but REQUIRE_ALL_TESTS=1 forbids skipping`);
      })) as unknown as jest.It;
  }
  const skipped = ((name: string, fn?: jest.ProvidesCallback, timeout?: number) => {
    // eslint-disable-next-line no-console
    console.warn(`SKIPPED: ${name}: ${reason}`);
    return it.skip(name, fn, timeout);
  }) as unknown as jest.It;
  return skipped;
}

export function hasCommand(cmd: string): boolean {
  return (process.env.PATH ?? "").split(path.delimiter).some((d) => {
    try {
      fs.accessSync(path.join(d, cmd), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
