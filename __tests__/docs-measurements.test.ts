/**
 * The pages' citations of docs/generated/test-measurements.md name the key they come from
 * (`[3.43 s](generated/test-measurements.md)<!-- failover.crash -->`): each must be that
 * key's value as the table shows it, not merely some figure of the file
 * (scripts/cite-measurements.ts rewrites them after a new measurement run).
 */
import * as fs from "fs";
import * as path from "path";
import { citations, citingPages, recite } from "../scripts/cite-measurements";
import { formatValue, MEASUREMENTS_JSON, type MeasurementsFile, type RecordedMeasurement } from "../scripts/test-measurements";
import { handWrittenPages, pageFigures, REPO_ROOT } from "./helpers/docs";

const read = (rel: string) => fs.readFileSync(path.join(REPO_ROOT, rel), "utf8");
/** Every page that cites test-measurements.md: each of its figures from there names its key. */
const KEYED_PAGES = handWrittenPages().filter((p) => pageFigures(p).referenced.some((r) => r.file === "docs/generated/test-measurements.md"));

describe("citations of docs/generated/test-measurements.md name their key", () => {
  const file: MeasurementsFile | undefined = fs.existsSync(MEASUREMENTS_JSON) ? JSON.parse(fs.readFileSync(MEASUREMENTS_JSON, "utf8")) : undefined;

  it("each keyed citation in README.md and docs/*.md is its key's value", () => {
    const byKey = new Map((file?.measurements ?? []).map((m) => [m.key, formatValue(m)]));
    const cited = citingPages().flatMap((page) => citations(read(page)).map((c) => ({ page, key: c.key, text: c.text })));
    expect(cited.length).toBeGreaterThan(0);
    expect(cited).toEqual(cited.map((c) => ({ ...c, text: byKey.get(c.key) ?? "(no such key in test-measurements.json)" })));
  });

  it.each(KEYED_PAGES)("%s: every figure it cites from test-measurements.md names its key", (page) => {
    const text = read(page);
    const figures = pageFigures(page).referenced.filter((r) => r.file === "docs/generated/test-measurements.md").map((r) => r.figure);
    expect(figures.length).toBeGreaterThan(0);
    expect(citations(text).map((c) => c.text)).toEqual(figures);
  });

  it("scripts/cite-measurements.ts sets a citation's text to its key's value, refuses an unknown key and leaves examples in code alone", () => {
    const rec = (key: string, value: number): RecordedMeasurement => ({ key, what: "w", value, unit: "s", decimals: 2, test: "t.test.ts", date: "2026-12-07T00:00:00.000Z" });
    const page = "took [3.1 s](generated/test-measurements.md)<!-- failover.crash --> and [x](../docs/generated/test-measurements.md)<!-- a-b.c -->; [9 s](generated/bench.md)<!-- failover.crash -->";
    expect(recite(page, [rec("failover.crash", 3.457), rec("a-b.c", 0.5)])).toBe(
      "took [3.46 s](generated/test-measurements.md)<!-- failover.crash --> and [0.50 s](../docs/generated/test-measurements.md)<!-- a-b.c -->; [9 s](generated/bench.md)<!-- failover.crash -->",
    );
    expect(() => recite(page, [rec("failover.crash", 1)])).toThrow('no measurement "a-b.c"');
    // An example in code is no citation.
    const example = "e.g. `[3.43 s](generated/test-measurements.md)<!-- failover.crash -->`";
    expect(citations(example)).toEqual([]);
    expect(recite(example, [])).toBe(example);
  });
});
