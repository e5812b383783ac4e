/**
 * Figures a test measures that the docs state (a failover time, a scale-up time, a memory
 * peak): the test records them here, and scripts/test-measurements.ts writes them into
 * docs/generated/test-measurements.md, the one file the docs may cite them from
 * (docs/README.md, "Generated figures"). Recording is a no-op unless TEST_MEASUREMENTS_FILE
 * names a file (.ci/run and `npm run measurements` set it): a plain `jest` run writes nothing.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import type { Measurement, RecordedMeasurement } from "../../scripts/test-measurements";

export type { Measurement };

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const KEY = /^[a-z0-9]+(?:[.-][a-z0-9]+)*$/;

export function recordMeasurement(m: Measurement): void {
  if (!KEY.test(m.key)) throw new Error(`measurement key ${JSON.stringify(m.key)}: expected lower-case words joined by . or -`);
  if (!Number.isFinite(m.value)) throw new Error(`measurement ${m.key}: value ${m.value} is not a finite number`);
  const file = process.env.TEST_MEASUREMENTS_FILE;
  if (!file) return;
  const testPath = (expect.getState().testPath as string | undefined) ?? "";
  const rec: RecordedMeasurement = {
    key: m.key,
    what: m.what,
    value: m.value,
    unit: m.unit,
    decimals: m.decimals ?? 1,
    test: path.relative(REPO_ROOT, testPath),
    date: new Date().toISOString(),
    // how busy the machine was: a time measured on a loaded machine reads differently
    load1: Math.round(os.loadavg()[0] * 100) / 100,
  };
  // One line per record, appended: jest's workers may record at the same time.
  fs.appendFileSync(file, `${JSON.stringify(rec)}\n`);
}
