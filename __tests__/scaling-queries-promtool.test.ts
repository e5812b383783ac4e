/**
 * The web and api scaling queries evaluated by the real PromQL engine (`promtool test
 * rules`, Prometheus v2.53.3 built by `npm run engines`) on synthetic series of two
 * HAProxies: with both scraped the query returns the load per instance; with one HAProxy
 * still registered but not scraped (up == 0) it returns no series, so the autoscaler takes
 * no action (fail static) instead of reading a smaller load and scaling down. Then the
 * settling parts (issue 23): a lull shorter than the scale-down window keeps the window's
 * highest load (no scale-down), the floor min × target at zero load, and no series as soon
 * as the inputs are gone (not the window's stale maximum).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { itIf, exampleCluster } from "./helpers/synth";
import { scalingQuery, queryWindowSeconds, scaleDownWindowSeconds } from "../constructs/render/jobs/scaling";
import { PROMETHEUS_MISSING, PROMTOOL_BIN, havePrometheus } from "./system/prometheus";

const c = exampleCluster();

/** promtool's unit-test file: 15 s samples of two HAProxies for 10 minutes, one query evaluated at 5 min. */
function testFile(expr: string, secondHaproxyUp: 0 | 1, expected: { value: number }[]): string {
  const series = (metric: string, values: string) => `      - series: '${metric}'\n        values: '${values}'`;
  const lines = [
    "rule_files: []",
    "evaluation_interval: 15s",
    "tests:",
    "  - interval: 15s",
    "    input_series:",
    series('up{job="haproxy",instance="a"}', "1x40"),
    series('up{job="haproxy",instance="b"}', `${secondHaproxyUp}x40`),
    // 30 requests/s through each HAProxy's web backend (+450 per 15 s sample)
    series('haproxy_backend_http_requests_total{job="haproxy",instance="a",proxy="web"}', "0+450x40"),
    series('haproxy_backend_http_requests_total{job="haproxy",instance="b",proxy="web"}', "0+450x40"),
    // 6 streams in flight on each HAProxy's api backends
    series('haproxy_backend_current_sessions{job="haproxy",instance="a",proxy="api"}', "4x40"),
    series('haproxy_backend_current_sessions{job="haproxy",instance="a",proxy="api_uploads"}', "2x40"),
    series('haproxy_backend_current_sessions{job="haproxy",instance="b",proxy="api"}', "6x40"),
    // both HAProxies see 2 instances UP
    ...["a", "b"].flatMap((i) => ["web", "api"].map((p) => series(`haproxy_backend_active_servers{job="haproxy",instance="${i}",proxy="${p}"}`, "2x40"))),
    "    promql_expr_test:",
    `      - expr: '${expr.replace(/'/g, "''")}'`,
    "        eval_time: 5m",
    `        exp_samples:${expected.length ? "" : " []"}`,
    ...expected.map((e) => `          - labels: '{}'\n            value: ${e.value}`),
    "",
  ];
  return lines.join("\n");
}

function promtoolTest(text: string): { status: number | null; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "scaling-promtool-"));
  try {
    const file = path.join(dir, "test.yml");
    fs.writeFileSync(file, text);
    const r = spawnSync(PROMTOOL_BIN, ["test", "rules", file], { encoding: "utf8", timeout: 60000 });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A promtool test of one query on given input series (15 s samples), expected samples at given times. */
function seriesTest(expr: string, series: Record<string, string>, checks: { at: string; expected: number[] }[]): string {
  const lines = [
    "rule_files: []",
    "evaluation_interval: 15s",
    "tests:",
    "  - interval: 15s",
    "    input_series:",
    ...Object.entries(series).map(([m, v]) => `      - series: '${m}'\n        values: '${v}'`),
    "    promql_expr_test:",
    ...checks.flatMap((k) => [
      `      - expr: '${expr.replace(/'/g, "''")}'`,
      `        eval_time: ${k.at}`,
      `        exp_samples:${k.expected.length ? "" : " []"}`,
      ...k.expected.map((v) => `          - labels: '{}'\n            value: ${v}`),
    ]),
    "",
  ];
  return lines.join("\n");
}

describe("scaling queries in the real PromQL engine (promtool test rules)", () => {
  const ok = havePrometheus();
  expect(queryWindowSeconds(c)).toBeLessThanOrEqual(300); // the 5-minute evaluation point has a full window

  itIf(ok, PROMETHEUS_MISSING)("web: both HAProxies scraped → 60 requests/s over 2 instances = 30 per instance", () => {
    const r = promtoolTest(testFile(scalingQuery(c, "web"), 1, [{ value: 30 }]));
    expect({ status: r.status, output: r.status === 0 ? "" : r.output }).toEqual({ status: 0, output: "" });
  });

  itIf(ok, PROMETHEUS_MISSING)("api: both HAProxies scraped → 12 streams over 2 instances = 6 per instance", () => {
    const r = promtoolTest(testFile(scalingQuery(c, "api"), 1, [{ value: 6 }]));
    expect({ status: r.status, output: r.status === 0 ? "" : r.output }).toEqual({ status: 0, output: "" });
  });

  itIf(ok, PROMETHEUS_MISSING)("web and api: one HAProxy registered but not scraped → no series (no action), not half the load", () => {
    for (const job of ["web", "api"] as const) {
      const r = promtoolTest(testFile(scalingQuery(c, job), 0, []));
      expect({ job, status: r.status, output: r.status === 0 ? "" : r.output }).toEqual({ job, status: 0, output: "" });
    }
  });

  itIf(ok, PROMETHEUS_MISSING)("the test can fail: a wrong expectation is reported by promtool", () => {
    const r = promtoolTest(testFile(scalingQuery(c, "web"), 1, [{ value: 31 }]));
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/FAILED/);
  });

  itIf(ok, PROMETHEUS_MISSING)("worker: a backlog hidden by prefetch (ready 0 and 32 alternating) reads as its average, a lull shorter than the scale-down window as the window's maximum, the inputs gone as no series", () => {
    expect(scaleDownWindowSeconds(c)).toBe(300);
    const q = scalingQuery(c, "worker");
    // 0-10 min: ready alternates 0/32 (15 s scrapes): the 60 s average is 12.8 or 19.2, never
    // 0 as one scrape reads; the window's maximum 19.2 / 2 consumers = 9.6 (target 8: within
    // the 20 % band). 10-18 min: ready 0; at 12 min (a lull of 2 min < the 5 min window) still
    // 9.6; at 16 min (the window all 0) the floor min × target = 2 × 8 = 16 → 8 per consumer.
    // 18-23 min: a burst of 60 → 30 per consumer at once. At 27 min the exporter's series is
    // gone: no series (not the window's stale maximum).
    const series = {
      'celery_queue_messages{queue="celery"}': `${Array(20).fill("0 32").join(" ")} ${"0 ".repeat(32).trim()} ${"60 ".repeat(20).trim()}`,
      'celery_queue_consumers{queue="celery"}': "2x100",
    };
    const r = promtoolTest(
      seriesTest(q, series, [
        { at: "9m", expected: [9.6] },
        { at: "12m", expected: [9.6] },
        { at: "16m", expected: [8] },
        { at: "20m", expected: [30] },
        { at: "27m", expected: [] },
      ]),
    );
    expect({ status: r.status, output: r.status === 0 ? "" : r.output }).toEqual({ status: 0, output: "" });
  });

  itIf(ok, PROMETHEUS_MISSING)("web: scale-down only after the whole window was low; the floor min × target at zero traffic", () => {
    const q = scalingQuery(c, "web");
    // 0-10 min 60 rps (+900 per 15 s), then 0: the held maximum keeps 60 for the window
    // (30 per instance at 13 min), then the floor 40 → 20 per instance at 17 min.
    const series = {
      'up{job="haproxy",instance="a"}': "1x100",
      'haproxy_backend_http_requests_total{job="haproxy",instance="a",proxy="web"}': "0+900x40 36000x60",
      'haproxy_backend_active_servers{job="haproxy",instance="a",proxy="web"}': "2x100",
    };
    const r = promtoolTest(seriesTest(q, series, [{ at: "9m", expected: [30] }, { at: "13m", expected: [30] }, { at: "17m", expected: [20] }]));
    expect({ status: r.status, output: r.status === 0 ? "" : r.output }).toEqual({ status: 0, output: "" });
  });
});
