/**
 * The alert rules (rendered/metrics/alert-rules.yml, the file the metrics job's Prometheus
 * loads) run by the real rule engine: `promtool test rules` (Prometheus v2.53.3, built by
 * `npm run engines`) replays synthetic series of the example cluster for 40 minutes.
 * - healthy replay: two HAProxies with traffic and no errors, every target up, the broker
 *   answering, the jobs inside their range, the TSDB at half its cap: no alert at any time;
 * - each failure fail-static hides, one at a time: its alert fires once its `for` has passed,
 *   with the labels and annotations the team receives.
 * promtool compares the firing alerts (labels and annotations) with the expected ones
 * exactly, so an alert firing where none is expected fails the test too.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { stringify } from "yaml";
import { edited, exampleCluster, itIf } from "./helpers/synth";
import { alertRules, renderAlertRules, type AlertRule } from "../constructs/render/metrics/alerts";
import { scalingBounds } from "../constructs/render/jobs/scaling";
import { PROMETHEUS_MISSING, PROMTOOL_BIN, havePrometheus } from "./system/prometheus";

const c = exampleCluster();
const ok = havePrometheus();
/** Samples every 15 s for 40 minutes. */
const N = 160;
const STEP = "15s";

type Series = Record<string, string>;

const HAPROXY = [
  { instance: "172.16.1.11:8404", node: "node-1" },
  { instance: "172.16.1.12:8404", node: "node-2" },
];
const lbl = (o: Record<string, string>) => `{${Object.entries(o).map(([k, v]) => `${k}="${v}"`).join(",")}}`;

/** Running allocations of a job as the Nomad clients report them (one series per alloc). */
function allocs(job: string, n: number): Series {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`nomad_client_allocs_memory_usage${lbl({ job: "nomad-client", exported_job: job, alloc_id: `${job}-${i}` })}`, `1e8x${N}`]));
}

/** A healthy cluster: every input of every rule present and fine. */
function healthy(): Series {
  const s: Series = {};
  for (const h of HAPROXY) {
    const t = { job: "haproxy", ...h };
    s[`up${lbl(t)}`] = `1x${N}`;
    // 20 requests/s to web and to the public frontend, no 5xx
    s[`haproxy_backend_http_requests_total${lbl({ ...t, proxy: "web" })}`] = `0+300x${N}`;
    s[`haproxy_frontend_http_requests_total${lbl({ ...t, proxy: "public" })}`] = `0+450x${N}`;
    s[`haproxy_frontend_http_responses_total${lbl({ ...t, proxy: "public", code: "2xx" })}`] = `0+450x${N}`;
    s[`haproxy_frontend_http_responses_total${lbl({ ...t, proxy: "public", code: "5xx" })}`] = `0x${N}`;
    s[`haproxy_backend_current_sessions${lbl({ ...t, proxy: "api" })}`] = `3x${N}`;
    s[`haproxy_backend_current_sessions${lbl({ ...t, proxy: "api_uploads" })}`] = `1x${N}`;
    for (const p of ["web", "api"]) s[`haproxy_backend_active_servers${lbl({ ...t, proxy: p })}`] = `2x${N}`;
    s[`up${lbl({ job: "consul-agent", ...h })}`] = `1x${N}`;
  }
  for (const n of c.nodes) s[`up${lbl({ job: "nomad-client", instance: `${n.overlayAddress}:4646`, node: n.name })}`] = `1x${N}`;
  const q = { job: "celery-queue", instance: "127.0.0.1:9808" };
  s[`up${lbl(q)}`] = `1x${N}`;
  s[`celery_queue_broker_up${lbl(q)}`] = `1x${N}`;
  s[`celery_queue_messages${lbl({ ...q, queue: "celery" })}`] = `5x${N}`;
  s[`celery_queue_consumers${lbl({ ...q, queue: "celery" })}`] = `2x${N}`;
  s[`up${lbl({ job: "nomad-autoscaler", instance: "127.0.0.1:9809" })}`] = `1x${N}`;
  const p = { job: "prometheus", instance: "127.0.0.1:9090" };
  s[`up${lbl(p)}`] = `1x${N}`;
  s[`prometheus_tsdb_storage_blocks_bytes${lbl(p)}`] = `4e8x${N}`;
  s[`prometheus_tsdb_wal_storage_size_bytes${lbl(p)}`] = `1e8x${N}`;
  s[`prometheus_tsdb_retention_limit_bytes${lbl(p)}`] = `1e9x${N}`;
  // every scaled job inside its range: its min
  for (const j of ["web", "api", "worker"] as const) Object.assign(s, allocs(j, scalingBounds(c, j).min));
  return s;
}

interface Expected {
  alertname: string;
  evalTime: string;
  alerts: { labels: Record<string, string>; annotations: Record<string, string> }[];
}

/** The annotations of a rule as Prometheus expands them for one alert's labels ($labels.x only). */
function annotationsFor(rule: AlertRule, labels: Record<string, string>): Record<string, string> {
  const expand = (t: string) => t.replace(/\{\{ \$labels\.([a-z_]+) \}\}/g, (_, k: string) => labels[k] ?? "");
  return { summary: expand(rule.annotations.summary), description: expand(rule.annotations.description) };
}

function expected(alertname: string, evalTime: string, alertLabels: Record<string, string>[]): Expected {
  const rules = alertRules(c).filter((r) => r.alert === alertname);
  return {
    alertname,
    evalTime,
    alerts: alertLabels.map((l) => {
      const rule = rules.find((r) => r.labels.scaled_job === undefined || r.labels.scaled_job === l.scaled_job)!;
      const labels = { ...rule.labels, ...l } as Record<string, string>;
      return { labels, annotations: annotationsFor(rule, labels) };
    }),
  };
}

/** promtool's unit-test file: one test case of the given series and expectations. */
function testFile(series: Series, checks: Expected[]): string {
  return stringify(
    {
      rule_files: ["rules.yml"],
      evaluation_interval: "15s",
      tests: [
        {
          interval: STEP,
          input_series: Object.entries(series).map(([k, v]) => ({ series: k, values: v })),
          alert_rule_test: checks.map((e) => ({
            eval_time: e.evalTime,
            alertname: e.alertname,
            exp_alerts: e.alerts.map((a) => ({ exp_labels: a.labels, exp_annotations: a.annotations })),
          })),
        },
      ],
    },
    { lineWidth: 0 },
  );
}

function promtool(rules: string, test: string): { status: number | null; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alert-rules-promtool-"));
  try {
    fs.writeFileSync(path.join(dir, "rules.yml"), rules);
    fs.writeFileSync(path.join(dir, "test.yml"), test);
    const r = spawnSync(PROMTOOL_BIN, ["test", "rules", path.join(dir, "test.yml")], { encoding: "utf8", timeout: 60000 });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const RULES = renderAlertRules(c);
const ALERTNAMES = [...new Set(alertRules(c).map((r) => r.alert))];
/** Nothing fires: every alert name at several times, after every `for`. */
const silent = (times: string[]) => times.flatMap((t) => ALERTNAMES.map((a) => expected(a, t, [])));
const passes = (r: { status: number | null; output: string }) => ({ status: r.status, output: r.status === 0 ? "" : r.output });

describe("alert rules in the real rule engine (promtool test rules)", () => {
  it("the example renders every rule the issue names (autoscaling on: per scaled job)", () => {
    expect(ALERTNAMES.sort()).toEqual(["BrokerUnreachable", "Http5xxSurge", "PrometheusTsdbNearSizeCap", "ScaledJobPinnedAtMax", "ScalingQueryNoData", "ScrapeTargetDown"]);
    expect(alertRules(c).filter((r) => r.alert === "ScalingQueryNoData").map((r) => r.labels.scaled_job)).toEqual(["web", "api", "worker"]);
    // without autoscaling, no rule about its inputs
    const off = alertRules(edited(c, (x) => (x.metrics.autoscaling.enabled = false))).map((r) => r.alert);
    expect(off).toEqual(["ScrapeTargetDown", "PrometheusTsdbNearSizeCap", "Http5xxSurge"]);
  });

  itIf(ok, PROMETHEUS_MISSING)("healthy replay: no alert fires at any time", () => {
    expect(passes(promtool(RULES, testFile(healthy(), silent(["1m", "10m", "20m", "39m"]))))).toEqual({ status: 0, output: "" });
  });

  itIf(ok, PROMETHEUS_MISSING)("one HAProxy not scraped: ScrapeTargetDown for it, and web's and api's scaling queries have no data", () => {
    const s = healthy();
    const down = { job: "haproxy", ...HAPROXY[1] };
    s[`up${lbl(down)}`] = `0x${N}`;
    const checks = [
      expected("ScrapeTargetDown", "10m", [down]),
      expected("ScalingQueryNoData", "10m", [{ scaled_job: "web" }, { scaled_job: "api" }]),
      // not before its `for` (5 minutes)
      expected("ScalingQueryNoData", "4m", []),
      ...["ScaledJobPinnedAtMax", "BrokerUnreachable", "PrometheusTsdbNearSizeCap", "Http5xxSurge"].map((a) => expected(a, "10m", [])),
    ];
    expect(passes(promtool(RULES, testFile(s, checks)))).toEqual({ status: 0, output: "" });
  });

  itIf(ok, PROMETHEUS_MISSING)("the broker unreachable: BrokerUnreachable, and the worker's query has no data (the exporter drops the depth series)", () => {
    const s = healthy();
    const q = { job: "celery-queue", instance: "127.0.0.1:9808" };
    s[`celery_queue_broker_up${lbl(q)}`] = `0x${N}`;
    delete s[`celery_queue_messages${lbl({ ...q, queue: "celery" })}`];
    delete s[`celery_queue_consumers${lbl({ ...q, queue: "celery" })}`];
    const checks = [
      expected("BrokerUnreachable", "10m", [q]),
      expected("ScalingQueryNoData", "10m", [{ scaled_job: "worker" }]),
      expected("ScrapeTargetDown", "10m", []),
    ];
    expect(passes(promtool(RULES, testFile(s, checks)))).toEqual({ status: 0, output: "" });
  });

  itIf(ok, PROMETHEUS_MISSING)("a Nomad client not scraped: ScrapeTargetDown with its node's name", () => {
    const s = healthy();
    const n = c.nodes[1];
    const t = { job: "nomad-client", instance: `${n.overlayAddress}:4646`, node: n.name };
    s[`up${lbl(t)}`] = `1x20 0x${N - 20}`;
    const checks = [expected("ScrapeTargetDown", "7m", []), expected("ScrapeTargetDown", "12m", [t]), expected("ScalingQueryNoData", "12m", [])];
    expect(passes(promtool(RULES, testFile(s, checks)))).toEqual({ status: 0, output: "" });
  });

  itIf(ok, PROMETHEUS_MISSING)("web at its scaling.max: ScaledJobPinnedAtMax after 15 minutes, not before", () => {
    const s = healthy();
    for (const k of Object.keys(s)) if (k.includes('exported_job="web"')) delete s[k];
    Object.assign(s, allocs("web", scalingBounds(c, "web").max));
    const checks = [expected("ScaledJobPinnedAtMax", "10m", []), expected("ScaledJobPinnedAtMax", "20m", [{ scaled_job: "web" }])];
    expect(passes(promtool(RULES, testFile(s, checks)))).toEqual({ status: 0, output: "" });
  });

  itIf(ok, PROMETHEUS_MISSING)("the TSDB above 90% of its size cap for 30 minutes: PrometheusTsdbNearSizeCap", () => {
    const s = healthy();
    const p = { job: "prometheus", instance: "127.0.0.1:9090" };
    s[`prometheus_tsdb_storage_blocks_bytes${lbl(p)}`] = `8.5e8x${N}`;
    const checks = [expected("PrometheusTsdbNearSizeCap", "20m", []), expected("PrometheusTsdbNearSizeCap", "35m", [p])];
    expect(passes(promtool(RULES, testFile(s, checks)))).toEqual({ status: 0, output: "" });
  });

  itIf(ok, PROMETHEUS_MISSING)("10% of the public requests answered 5xx: Http5xxSurge; a few 5xx at a trickle of traffic: none", () => {
    const surge = healthy();
    const trickle = healthy();
    for (const h of HAPROXY) {
      const t = { job: "haproxy", ...h, proxy: "public" };
      surge[`haproxy_frontend_http_responses_total${lbl({ ...t, code: "5xx" })}`] = `0+45x${N}`;
      // 0.1 request/s per HAProxy, half of them 5xx: a high share, but 0.1/s in all, below the floor
      trickle[`haproxy_frontend_http_requests_total${lbl(t)}`] = `0+1.5x${N}`;
      trickle[`haproxy_frontend_http_responses_total${lbl({ ...t, code: "5xx" })}`] = `0+0.75x${N}`;
    }
    expect(passes(promtool(RULES, testFile(surge, [expected("Http5xxSurge", "4m", []), expected("Http5xxSurge", "15m", [{}])])))).toEqual({ status: 0, output: "" });
    expect(passes(promtool(RULES, testFile(trickle, [expected("Http5xxSurge", "15m", [])])))).toEqual({ status: 0, output: "" });
  });

  itIf(ok, PROMETHEUS_MISSING)("the test can fail: an alert firing where none is expected is reported by promtool", () => {
    const s = healthy();
    const down = { job: "haproxy", ...HAPROXY[0] };
    s[`up${lbl(down)}`] = `0x${N}`;
    const r = promtool(RULES, testFile(s, [expected("ScrapeTargetDown", "10m", [])]));
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/FAILED/);
  });
});
