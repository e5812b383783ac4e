/**
 * Keeps the pages' citations of docs/generated/test-measurements.md in step with it. A page
 * cites a measured figure as the text of a link to that file followed by the key it comes
 * from, in an HTML comment (invisible once rendered):
 *
 *   [3.43 s](generated/test-measurements.md)<!-- failover.crash -->
 *
 * After `npm run measurements` (or .ci/run) wrote new values, this rewrites each such link
 * text to its key's value, formatted as the table shows it; `--check` only reports the
 * citations that differ (exit 1). An unknown key is an error (exit 1, nothing written).
 *
 *   tsx scripts/cite-measurements.ts [--check]
 */
import * as fs from "fs";
import * as path from "path";

import { formatValue, MEASUREMENTS_JSON, REPO_ROOT, type MeasurementsFile, type RecordedMeasurement } from "./test-measurements";

/** A link to the generated file, then the key in a comment (not right after a backtick: an example in code). */
const CITATION = /(?<!`)\[([^\]]*)\]\(((?:\.\.?\/)*(?:docs\/)?generated\/test-measurements\.md)\)<!-- ([a-z0-9]+(?:[.-][a-z0-9]+)*) -->/g;

export interface Citation {
  text: string;
  key: string;
}

export function citations(markdown: string): Citation[] {
  return [...markdown.matchAll(CITATION)].map((m) => ({ text: m[1], key: m[3] }));
}

/** The page with every citation's text set to its key's value; throws on a key the file does not hold. */
export function recite(markdown: string, records: RecordedMeasurement[]): string {
  const byKey = new Map(records.map((r) => [r.key, r]));
  return markdown.replace(CITATION, (_whole, _text: string, target: string, key: string) => {
    const r = byKey.get(key);
    if (!r) throw new Error(`no measurement "${key}" in ${path.relative(REPO_ROOT, MEASUREMENTS_JSON)} (its keys: ${[...byKey.keys()].join(", ") || "none"})`);
    return `[${formatValue(r)}](${target})<!-- ${key} -->`;
  });
}

/** README.md and docs/*.md. */
export function citingPages(): string[] {
  const docs = fs.readdirSync(path.join(REPO_ROOT, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`);
  return ["README.md", ...docs];
}

function main(argv: string[]): number {
  const check = argv.includes("--check");
  const unknown = argv.filter((a) => a !== "--check");
  if (unknown.length > 0) throw new Error(`unknown argument ${unknown[0]}: expected nothing or --check`);
  const file: MeasurementsFile = JSON.parse(fs.readFileSync(MEASUREMENTS_JSON, "utf8"));
  // Every page first: nothing is written when one of them names an unknown key.
  const changes = citingPages().flatMap((page) => {
    const before = fs.readFileSync(path.join(REPO_ROOT, page), "utf8");
    const after = recite(before, file.measurements);
    return after === before ? [] : [{ page, after, stale: citations(before).filter((c, i) => c.text !== citations(after)[i].text) }];
  });
  for (const { page, after, stale } of changes) {
    for (const c of stale) process.stdout.write(`${page}: ${c.key} cited as "${c.text}"${check ? "" : ", updated"}\n`);
    if (!check) fs.writeFileSync(path.join(REPO_ROOT, page), after);
  }
  if (changes.length === 0) process.stdout.write("every citation of docs/generated/test-measurements.md is its key's value\n");
  return check && changes.length > 0 ? 1 : 0;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`cite-measurements: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
