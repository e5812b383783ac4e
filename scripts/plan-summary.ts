/**
 * `npm run summary [-- --out DIR] [--base DIR] [--plan STACK=FILE]... [--title TEXT] [--json]`
 *
 * Prints, as Markdown (for a CI comment), what the synth output in DIR (default
 * ./cdktf.out) would change compared with a baseline synth output (e.g. the main branch's
 * CI artifact), per node and per job, and a one-line total. Without --base everything is
 * new. With `--plan nodes=plan.json` (the output of `terraform show -json PLANFILE` for
 * that stack; STACK is the stack name or its suffix after the cluster name) the rows of
 * that stack are Terraform's real plan instead. See docs/plan-review.md.
 */
import * as fs from "fs";
import { parsePlanJson, renderPlanMarkdown, summarizePlan, type TerraformPlanJson } from "../constructs/plan-summary";
import { readSynthOutput } from "./lib/synth-output";

const USAGE =
  "usage: npm run summary -- [--out DIR (default cdktf.out)] [--base DIR] [--plan STACK=FILE (terraform show -json PLANFILE; repeatable)] [--title TEXT] [--json]";

/** "nodes" → the one stack named "<cluster>-nodes"; a full stack name as is. */
function resolveStack(name: string, stacks: string[]): string {
  if (stacks.includes(name)) return name;
  const bySuffix = stacks.filter((s) => s.endsWith(`-${name}`));
  if (bySuffix.length === 1) return bySuffix[0];
  throw new Error(`--plan ${name}=…: no single synthesized stack named ${name} or *-${name} (stacks: ${stacks.join(", ")})\n${USAGE}`);
}

function main(argv: string[]): number {
  let out = "cdktf.out";
  let base: string | undefined;
  let title = "Plan review";
  let json = false;
  const planFiles: [string, string][] = [];
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
    else if (a === "--plan") {
      const v = value();
      const eq = v.indexOf("=");
      if (eq <= 0 || eq === v.length - 1) throw new Error(`--plan needs STACK=FILE, got ${v}\n${USAGE}`);
      planFiles.push([v.slice(0, eq), v.slice(eq + 1)]);
    }
    else if (a === "-h" || a === "--help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  const head = readSynthOutput(out);
  const plans: Record<string, TerraformPlanJson> = {};
  for (const [name, file] of planFiles) {
    const stack = resolveStack(name, Object.keys(head.stacks));
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
      throw new Error(`--plan ${name}=${file}: ${e instanceof Error ? e.message : String(e)}`);
    }
    plans[stack] = parsePlanJson(parsed, file);
  }
  const summary = summarizePlan(base === undefined ? undefined : readSynthOutput(base), head, { plans });
  process.stdout.write(json ? `${JSON.stringify(summary, null, 2)}\n` : renderPlanMarkdown(summary, title));
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
}
