/**
 * Reads a synth output directory (`cdktf.out`) into the shape the plan summary takes:
 * stack name → parsed cdk.tf.json, and each stack's rendered files (the only files a
 * `${file(...)}` in the JSON refers to). `.terraform/` and state files are never read.
 */
import * as fs from "fs";
import * as path from "path";
import type { SynthSet } from "../../plan-review/summary";

export const RENDERED_DIR = "rendered";

/** Every file under `dir`, as sorted '/'-separated paths relative to `base`. */
export function listFiles(dir: string, base = dir): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const full = path.join(dir, e.name);
      return e.isDirectory() ? listFiles(full, base) : [path.relative(base, full).split(path.sep).join("/")];
    })
    .sort();
}

/** Throws with a readable message when `outdir` is not a synth output. */
export function readSynthOutput(outdir: string): Required<SynthSet> {
  const stacksDir = path.join(outdir, "stacks");
  if (!fs.existsSync(stacksDir) || !fs.statSync(stacksDir).isDirectory()) {
    throw new Error(`${outdir} is not a synth output (no stacks/ directory): run \`npm run synth\` first`);
  }
  const stacks: Record<string, any> = {};
  const files: Record<string, Record<string, string>> = {};
  for (const name of fs.readdirSync(stacksDir).sort()) {
    const dir = path.join(stacksDir, name);
    const json = path.join(dir, "cdk.tf.json");
    if (!fs.existsSync(json)) continue;
    stacks[name] = JSON.parse(fs.readFileSync(json, "utf8"));
    const rendered = path.join(dir, RENDERED_DIR);
    files[name] = fs.existsSync(rendered)
      ? Object.fromEntries(listFiles(rendered, dir).map((f) => [f, fs.readFileSync(path.join(dir, f), "utf8")]))
      : {};
  }
  if (Object.keys(stacks).length === 0) throw new Error(`${outdir}/stacks holds no cdk.tf.json`);
  return { stacks, files };
}
