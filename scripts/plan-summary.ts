/**
 * `npm run summary [-- --out DIR] [--base DIR] [--title TEXT] [--json]`
 *
 * Prints, as Markdown (for a CI comment), what the synth output in DIR (default
 * ./cdktf.out) would change compared with a baseline synth output (e.g. the main branch's
 * CI artifact), per node and per job, and a one-line total. Without --base everything is
 * new. See docs/plan-review.md.
 */
import { renderPlanMarkdown, summarizePlan } from "../constructs/plan-summary";
import { readSynthOutput } from "./lib/synth-output";

const USAGE = "usage: npm run summary -- [--out DIR (default cdktf.out)] [--base DIR] [--title TEXT] [--json]";

function main(argv: string[]): number {
  let out = "cdktf.out";
  let base: string | undefined;
  let title = "Plan review";
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === "--out") out = value();
    else if (a === "--base") base = value();
    else if (a === "--title") title = value();
    else if (a === "--json") json = true;
    else if (a === "-h" || a === "--help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  const summary = summarizePlan(base === undefined ? undefined : readSynthOutput(base), readSynthOutput(out));
  process.stdout.write(json ? `${JSON.stringify(summary, null, 2)}\n` : renderPlanMarkdown(summary, title));
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
}
