/**
 * System test: the three scaling policies' queries (rendered into the jobspecs) evaluated
 * by a real Prometheus (v2.53.3 as the pinned image, built by npm run engines; helper m's harness) scraping the real HAProxy (the
 * rendered haproxy.cfg, native Prometheus exporter on its stats listener) in front of
 * stand-in web and api instances, and the real queue exporter (rendered script) against a
 * real RabbitMQ, all in one network namespace. Load is applied, then removed:
 * - each query returns exactly one series, 0 at rest;
 * - under load each query's value per instance rises above its target by more than the
 *   strategy's threshold (the autoscaler would scale up), and falls back to the floor
 *   (min × target / instances) at rest; the time from load start to the rise is printed;
 * - HAProxy and the exporter stopped: every query returns NO series (the autoscaler's "no
 *   metrics available": fail static), never 0.
 * Stand-ins: web instances answer at once; api instances answer /image… after 0.5 s (an
 * S3 read), /health at once, their services registered as Nomad registers them (consul.ts)
 * in a real Consul agent (1.14.11, a lone server on the namespace's loopback) whose DNS
 * HAProxy resolves them through.
 *
 * The second test runs the REAL Nomad Autoscaler (v0.4.5, built by
 * scripts/prepare-autoscaler.sh) with the rendered agent config and the rendered policies,
 * against the real Prometheus, on a replayed load, so that every scaling decision is the
 * autoscaler's own. Nomad itself cannot run here (its module is not to be used): a stand-in
 * (fixtures/nomad-scaling-api.py) answers the endpoints the autoscaler calls as Nomad's
 * HTTP API documents them (scaling policies list/read, job scale status, job scale), with
 * blocking queries, and serves the replayed load in the metrics' names.
 */
import * as fs from "fs";
import * as path from "path";
import { edited, exampleCluster, itIf, parseHcl, REPO_ROOT } from "../helpers/synth";
import { groupOf } from "../helpers/jobs";
import { recordMeasurement } from "../helpers/measurements";
import { renderHaproxyConfig } from "../../constructs/render/jobs/haproxy-cfg";
import { SCALE_THRESHOLD, scalingBounds, scalingQuery, scalingTarget } from "../../constructs/render/jobs/scaling";
import { AUTOSCALER_HTTP_PORT, autoscalingScrapeConfigs, renderAutoscalerConfig, renderQueueExporter } from "../../constructs/render/jobs/autoscaler";
import { renderJobspecs } from "../../constructs/render/jobs";
import { NOMAD_HTTP_PORT } from "../../constructs/render/agents";
import { RABBITMQ_PREREQUISITES, CELERY_QUEUE_PY, holdingConsumer, publishTasks, startRabbitmq } from "./rabbitmq";
import { PROMETHEUS_MISSING, havePrometheus, startPrometheus } from "./prometheus";
import { Sandbox, sleep, systemTestPrerequisites, waitFor } from "./sandbox";
import { CONSUL_MISSING, dig, haveConsul, nomadRegistrations, registerService, startProviderServer } from "./consul";
import { renderApiJob } from "../../constructs/render/jobs/api";
import { renderWebJob } from "../../constructs/render/jobs/web";

const system = systemTestPrerequisites(["ip", "haproxy", "curl", "/usr/bin/dig", ...RABBITMQ_PREREQUISITES]);
const pre = {
  ok: system.ok && havePrometheus() && haveConsul(),
  reason: [system.reason, havePrometheus() ? "" : PROMETHEUS_MISSING, haveConsul() ? "" : CONSUL_MISSING].filter(Boolean).join("; "),
};

const OVERLAY = "127.0.0.2";
const FLOATING = "127.0.0.3";
const BACKENDS = [
  { name: "web1", service: "web", addr: "127.0.0.21" },
  { name: "web2", service: "web", addr: "127.0.0.22" },
  { name: "api1", service: "api", addr: "127.0.0.11" },
  { name: "api2", service: "api", addr: "127.0.0.12" },
];
const BACKEND_PORT = 8001;
const API_DELAY_S = 0.5;


/** Bounded client load: `threads` loops, each at most `rate` requests/s (0: back to back), for `seconds`. */
const LOAD_PY = `import sys, threading, time, http.client
host, port, path, threads, rate, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
stop = time.time() + seconds
done = [0, 0]
def run():
    while time.time() < stop:
        t = time.time()
        try:
            c = http.client.HTTPConnection(host, port, timeout=15)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
            done[0] += 1
        except Exception:
            done[1] += 1
        if rate > 0:
            d = 1.0 / rate - (time.time() - t)
            if d > 0:
                time.sleep(d)
ts = [threading.Thread(target=run) for _ in range(threads)]
[t.start() for t in ts]
[t.join() for t in ts]
print("ok %d failed %d" % tuple(done), flush=True)
`;

jest.setTimeout(420000);

describe("scaling policies against a real Prometheus, HAProxy and RabbitMQ", () => {
  let sb: Sandbox | undefined;
  afterAll(() => {
    if (!sb) return;
    sb.cleanup();
    expect(sb.leftoverNamespaces()).toEqual([]);
  });

  itIf(pre.ok, pre.reason)("load moves each policy's value above its target and back to its floor at rest; metrics gone: no series", async () => {
    const c = edited(exampleCluster(), (x) => {
      x.app.haproxy = { ...x.app.haproxy, nodePort: 18080, floatingPort: 18081, statsPort: 18404 };
      x.metrics.autoscaling.scaleDownWindow = "30s"; // the shortest: the test waits for the held maximum to pass
    });
    const s = (sb = new Sandbox("as"));
    const ns = s.netns("as");
    for (const a of [OVERLAY, FLOATING, ...BACKENDS.map((b) => b.addr)]) s.inNs(ns, ["ip", "address", "add", `${a}/32`, "dev", "lo"]);

    // Stand-in instances registered in a real Consul, the real HAProxy with the rendered config.
    fs.writeFileSync(path.join(s.dir, "load.py"), LOAD_PY);
    for (const b of BACKENDS) s.start(b.name, ns, ["/usr/bin/python3", path.join(__dirname, "fixtures", "backend.py"), b.name, b.addr, String(BACKEND_PORT), b.service === "api" ? String(API_DELAY_S) : "0"]);
    const consul = await startProviderServer(s, ns, "2022", "127.0.0.1"); // DNS on 127.0.0.1:8600 (client_addr)
    const jobspecs = { api: renderApiJob(c), web: renderWebJob(c) };
    for (const b of BACKENDS) {
      for (const reg of await nomadRegistrations(jobspecs[b.service as "api" | "web"], { task: b.service, allocId: `alloc-${b.name}`, address: b.addr, port: BACKEND_PORT })) registerService(s, consul, reg);
    }
    for (const service of ["web", "api"]) {
      const want = BACKENDS.filter((b) => b.service === service).map((b) => b.addr).sort();
      await waitFor(`Consul answering the healthy ${service} instances`, () => JSON.stringify(dig(s, ns, "127.0.0.1", `${service}.service.consul`, "A", 8600).sort()) === JSON.stringify(want), 30000);
    }
    const cfg = path.join(s.dir, "haproxy.cfg");
    fs.writeFileSync(cfg, renderHaproxyConfig(c, { overlayAddress: OVERLAY, floatingAddress: FLOATING, dnsServer: "127.0.0.1:8600", runDir: s.dir, masterPid: 0 }));
    const haproxy = s.start("haproxy", ns, ["haproxy", "-W", "-db", "-f", cfg]);

    // The real broker and the rendered queue exporter on its production port.
    const mq = await startRabbitmq(s, ns, "team-scale", "s3cret-scale");
    const script = path.join(s.dir, "queue-exporter.py");
    fs.writeFileSync(script, renderQueueExporter(c));
    const exporter = s.start("queue-exporter", ns, ["env", `CELERY_BROKER_URL=${mq.url}`, "/usr/bin/python3", script]);

    // Prometheus scraping HAProxy's stats listener and the exporter (as the metrics job does).
    const exporterScrape = autoscalingScrapeConfigs().find((x) => x.job_name === "celery-queue")!;
    const promConfig = {
      global: { scrape_interval: c.metrics.prometheus.scrapeInterval, evaluation_interval: c.metrics.prometheus.scrapeInterval },
      scrape_configs: [{ job_name: "haproxy", metrics_path: "/metrics", static_configs: [{ targets: [`${OVERLAY}:${c.app.haproxy.statsPort}`] }] }, exporterScrape],
    };
    const prom = await startPrometheus(s, ns, JSON.stringify(promConfig, null, 2));

    const jobs = ["web", "api", "worker"] as const;
    const count = 2; // running instances of each job (the stand-ins, the two consumers)
    const queries = Object.fromEntries(jobs.map((j) => [j, scalingQuery(c, j)])) as Record<(typeof jobs)[number], string>;
    /** The query's value per instance, and the floor it returns at rest (min × target / instances). */
    const evaluate = (j: (typeof jobs)[number]) => {
      const r = prom.query(queries[j]);
      const floor = (scalingBounds(c, j).min * scalingTarget(c, j)) / count;
      if (r.length !== 1) return { series: r.length, value: NaN, floor };
      return { series: 1, value: r[0].value, floor };
    };
    /** Whether the autoscaler's target-value strategy would scale up from `count`: factor above 1 + threshold. */
    const wouldScaleUp = (e: { value: number }, j: (typeof jobs)[number]) => e.value / scalingTarget(c, j) > 1 + SCALE_THRESHOLD;

    // Two worker-like consumers (prefetch 1), the queue declared: the worker's running count.
    holdingConsumer(s, ns, mq, "consumer1", 1);
    holdingConsumer(s, ns, mq, "consumer2", 1);
    const diag = () => `${JSON.stringify(Object.fromEntries(jobs.map((j) => [j, evaluate(j)])))}\n${prom.log().slice(-1500)}\n${s.log(haproxy).slice(-1500)}\n${s.log(exporter).slice(-800)}`;
    await waitFor("both instances UP in HAProxy, two consumers, every query one series at its floor", () => {
      const up = prom.query(`max(haproxy_backend_active_servers{proxy=~"web|api"}) by (proxy)`);
      const consumers = prom.query(`celery_queue_consumers{queue="celery"}`);
      return up.length === 2 && up.every((x) => x.value === 2) && consumers[0]?.value === 2 && jobs.every((j) => evaluate(j).series === 1 && evaluate(j).value === evaluate(j).floor);
    }, 90000, diag, 1000);
    // At rest the value is the floor: count × floor / target = min, the description's min.
    const rest = Object.fromEntries(jobs.map((j) => [j, evaluate(j)]));
    for (const j of jobs) expect({ j, ...rest[j], min: (count * rest[j].value) / scalingTarget(c, j) }).toEqual({ j, series: 1, value: rest[j].floor, floor: rest[j].floor, min: scalingBounds(c, j).min });

    // Load: web ~100 requests/s, api 20 clients back to back on slow reads, 60 tasks queued.
    const t0 = Date.now();
    const webLoad = s.start("load-web", ns, ["/usr/bin/python3", path.join(s.dir, "load.py"), FLOATING, String(c.app.haproxy.floatingPort), "/", "4", "25", "150"]);
    const apiLoad = s.start("load-api", ns, ["/usr/bin/python3", path.join(s.dir, "load.py"), FLOATING, String(c.app.haproxy.floatingPort), "/image/AbCd1234", "20", "0", "150"]);
    publishTasks(mq, 60);
    const rose: Partial<Record<(typeof jobs)[number], { seconds: number; value: number }>> = {};
    const peak: Record<string, number> = { web: 0, api: 0, worker: 0 };
    await waitFor("every policy's value above target × (1 + threshold): a scale-up", () => {
      for (const j of jobs) {
        const e = evaluate(j);
        expect(e.series).toBe(1);
        peak[j] = Math.max(peak[j], e.value);
        if (!rose[j] && wouldScaleUp(e, j)) rose[j] = { seconds: (Date.now() - t0) / 1000, value: e.value };
      }
      return jobs.every((j) => rose[j]);
    }, 140000, diag, 2000);
    // eslint-disable-next-line no-console
    console.log(
      `scale-up (load start → value above target × ${1 + SCALE_THRESHOLD}; Prometheus scraping every ${c.metrics.prometheus.scrapeInterval}, windows ${queries.web.match(/\[(\d+s)\]/)![1]}):\n` +
        jobs.map((j) => `  ${j}: ${rose[j]!.seconds.toFixed(1)} s (value ${rose[j]!.value.toFixed(2)} per instance vs target ${scalingTarget(c, j)})`).join("\n"),
    );
    // docs/metrics.md, "One measured scale-up", cites these (keys written out: the docs test looks them up).
    const scaleUpKeys = {
      worker: ["autoscaling.query-above-target-worker", "autoscaling.query-load-ratio-worker"],
      web: ["autoscaling.query-above-target-web", "autoscaling.query-load-ratio-web"],
      api: ["autoscaling.query-above-target-api", "autoscaling.query-load-ratio-api"],
    } as const;
    for (const j of jobs) {
      const [time, load] = scaleUpKeys[j];
      recordMeasurement({ key: time, what: `${j}: load start → its policy's load per instance above target × ${1 + SCALE_THRESHOLD} (Prometheus every ${c.metrics.prometheus.scrapeInterval})`, value: rose[j]!.seconds, unit: "s", decimals: 1 });
      recordMeasurement({ key: load, what: `${j}: that load per instance ÷ its target (${scalingTarget(c, j)})`, value: rose[j]!.value / scalingTarget(c, j), unit: "×", decimals: 2 });
    }

    // Rest: loads stopped, the queue emptied.
    await s.stop(webLoad, "SIGKILL");
    await s.stop(apiLoad, "SIGKILL");
    mq.kombu(`${CELERY_QUEUE_PY}with kombu.Connection(os.environ["URL"]) as c:
    q(c.default_channel).purge()
`);
    const t1 = Date.now();
    await waitFor("every policy back at its floor (the held maximum of the scale-down window gone)", () => jobs.every((j) => evaluate(j).value === evaluate(j).floor), 150000, diag, 2000);
    const backAtRest = (Date.now() - t1) / 1000;
    // eslint-disable-next-line no-console
    console.log(`back at rest ${backAtRest.toFixed(1)} s after the load stopped; peaks per instance: ${JSON.stringify(peak)}`);
    recordMeasurement({ key: "autoscaling.query-back-at-floor", what: `load stopped → every policy's value back at its floor (scaleDownWindow ${c.metrics.autoscaling.scaleDownWindow})`, value: backAtRest, unit: "s", decimals: 0 });

    // Metrics gone: HAProxy and the exporter stop; their series go stale at the next scrape.
    await s.stop(haproxy, "SIGTERM", 10000);
    await s.stop(exporter, "SIGTERM", 10000);
    await waitFor("no series for any policy (fail static)", () => jobs.every((j) => prom.query(queries[j]).length === 0), 30000, diag, 1000);
    await sleep(0);
  });
});

// ---------------------------------------------------------------------------------------
// The real Nomad Autoscaler on a replayed load

export const AUTOSCALER_BIN = path.join(REPO_ROOT, ".engines", "bin", "nomad-autoscaler");
const AUTOSCALER_MISSING = "no .engines/bin/nomad-autoscaler: run scripts/prepare-autoscaler.sh (builds the Nomad Autoscaler v0.4.5 from engines/nomad-autoscaler)";
const realPre = (() => {
  const s = systemTestPrerequisites(["ip", "curl"]);
  const reasons = [s.reason, havePrometheus() ? "" : PROMETHEUS_MISSING, fs.existsSync(AUTOSCALER_BIN) ? "" : AUTOSCALER_MISSING].filter(Boolean);
  return { ok: reasons.length === 0, reason: reasons.join("; ") };
})();

/**
 * A policy block as HashiCorp's HCL parser returns it (labelled blocks: objects keyed by
 * label) turned into the shape Nomad stores and returns in ScalingPolicy.Policy: every block
 * a list, a labelled block a list of {label: [body]} (the autoscaler's parser.go reads
 * exactly that; its test fixtures policy/nomad/test-fixtures/*.json.golden were recorded
 * from a real Nomad).
 */
function nomadPolicyShape(policy: any): any {
  const labelled = (blocks: Record<string, any[]>, body: (b: any) => any) => Object.entries(blocks).map(([label, bodies]) => ({ [label]: bodies.map(body) }));
  const check = (c: any) => ({ ...c, ...(c.strategy ? { strategy: labelled(c.strategy, (b) => b) } : {}) });
  return { ...policy, ...(policy.check ? { check: labelled(policy.check, check) } : {}), ...(policy.target ? { target: labelled(policy.target, (b) => b) } : {}) };
}

interface ScaleRequest { job: string; count: number | null; message: string; time: number; running: number; refused?: string }
interface StandinState { jobs: Record<string, { count: number; running: number; version: number }>; scale_requests: ScaleRequest[] }

describe("the real Nomad Autoscaler 0.4.5 on a replayed load (real Prometheus, Nomad API stand-in)", () => {
  let sb: Sandbox | undefined;
  afterAll(() => {
    if (!sb) return;
    sb.cleanup();
    expect(sb.leftoverNamespaces()).toEqual([]);
  });

  itIf(realPre.ok, realPre.reason)("steady load at a ceil boundary: no change for 10 evaluations; a burst: one scale-up, one scale-down; Prometheus down and a dip of running allocations: no scale", async () => {
    // Short intervals (the description's lower bounds) so that the test takes minutes.
    const c = edited(exampleCluster(), (x) => {
      x.metrics.prometheus.scrapeInterval = "5s";
      x.metrics.autoscaling = { ...x.metrics.autoscaling, evaluationInterval: "5s", cooldown: "10s", scaleDownWindow: "30s" };
    });
    const jobs = ["web", "api", "worker"] as const;
    for (const j of jobs) expect({ j, count: c.app[j].count, ...scalingBounds(c, j) }).toEqual({ j, count: 2, min: 2, max: 4 });
    const s = (sb = new Sandbox("asr"));
    const ns = s.netns("asr");
    const NOMAD = "127.0.0.2";
    s.inNs(ns, ["ip", "address", "add", `${NOMAD}/32`, "dev", "lo"]);

    // The policies exactly as rendered into the jobspecs, as Nomad would hold them.
    const specs = renderJobspecs(c);
    const spec: { jobs: Record<string, unknown> } = { jobs: {} };
    for (const j of jobs) {
      const parsed = await parseHcl(`${j}.nomad.hcl`, specs[j]!);
      const g = groupOf(parsed.job[j][0], j);
      const scaling = g.scaling[0];
      spec.jobs[j] = { count: g.count, min: scaling.min, max: scaling.max, policy: nomadPolicyShape(scaling.policy[0]) };
    }
    const specFile = path.join(s.dir, "nomad-spec.json");
    fs.writeFileSync(specFile, JSON.stringify(spec, null, 2));
    const nomad = s.start("nomad-standin", ns, ["/usr/bin/python3", path.join(__dirname, "fixtures", "nomad-scaling-api.py"), NOMAD, String(NOMAD_HTTP_PORT), specFile]);
    const api = (method: "GET" | "PUT", p: string, body?: unknown): any => {
      const args = ["curl", "-sS", "--max-time", "10", "-X", method, `http://${NOMAD}:${NOMAD_HTTP_PORT}${p}`];
      if (body !== undefined) args.push("--data-binary", JSON.stringify(body));
      const r = s.inNs(ns, args, { timeoutMs: 15000 });
      if (r.status !== 0) throw new Error(`${method} ${p}: ${r.stderr}`);
      return JSON.parse(r.stdout || "null");
    };
    const load = (l: Record<string, number | null>) => api("PUT", "/test/load", l);
    const state = (): StandinState => api("GET", "/test/state");
    await waitFor("the Nomad stand-in answering", () => { try { state(); return true; } catch { return false; } }, 15000, () => s.log(nomad));

    // Phase 1 load: at the ceil boundary of web (40 rps at a target of 20 on 2 instances:
    // the old policy flipped 2↔3 here), api at 2 × its target, and a worker backlog hidden
    // by Celery's prefetch: ready alternates 0 and 32 (what flapped the old worker policy).
    const steady = { web_rps: 40, api_in_flight: 12, worker_ready: 32, worker_ready_alternate: 0 };
    load(steady);

    // Prometheus scraping the replay as the metrics job scrapes HAProxy and the exporter.
    const si = c.metrics.prometheus.scrapeInterval;
    const promConfig = {
      global: { scrape_interval: si, evaluation_interval: si },
      scrape_configs: [
        { job_name: "haproxy", metrics_path: "/haproxy/metrics", static_configs: [{ targets: [`${NOMAD}:${NOMAD_HTTP_PORT}`] }] },
        { job_name: "celery-queue", metrics_path: "/queue/metrics", static_configs: [{ targets: [`${NOMAD}:${NOMAD_HTTP_PORT}`] }] },
      ],
    };
    const prom = await startPrometheus(s, ns, JSON.stringify(promConfig, null, 2));

    // The autoscaler with the rendered agent config; the Nomad template's node address filled
    // in as the client would. DEBUG logs show each evaluation ("received policy for evaluation").
    const config = path.join(s.dir, "nomad-autoscaler.hcl");
    fs.writeFileSync(config, renderAutoscalerConfig(c).replace('{{ env "attr.unique.network.ip-address" }}', NOMAD));
    fs.mkdirSync(path.join(s.dir, "plugins"));
    const autoscaler = s.start("nomad-autoscaler", ns, [AUTOSCALER_BIN, "agent", "-config", config, "-log-level", "debug", "-plugin-dir", path.join(s.dir, "plugins")]);
    const alog = () => s.log(autoscaler);
    const diag = () => `${JSON.stringify(state(), null, 1).slice(-3000)}\n--- autoscaler\n${alog().slice(-4000)}\n--- prometheus\n${prom.log().slice(-1000)}`;
    await waitFor("the autoscaler healthy", () => s.inNs(ns, ["curl", "-sf", `http://127.0.0.1:${AUTOSCALER_HTTP_PORT}/v1/health`]).status === 0, 30000, diag, 500);

    const policyId: Record<string, string> = Object.fromEntries(api("GET", "/v1/scaling/policies").map((p: any) => [p.Target.Job, p.ID]));
    /** Evaluations of a job's policy so far (each dequeued evaluation logs this once). */
    const evaluations = (j: string) => alog().split("\n").filter((l) => l.includes("received policy for evaluation") && l.includes(`policy_id=${policyId[j]}`)).length;
    const requests = (j: string) => state().scale_requests.filter((r) => r.job === j);

    // Steady: every query has data, then 10 evaluations of each policy without any scaling.
    await waitFor("every query with a value", () => jobs.every((j) => prom.query(scalingQuery(c, j)).length === 1), 60000, diag, 1000);
    const before = Object.fromEntries(jobs.map((j) => [j, evaluations(j)]));
    let flip = false;
    await waitFor("10 evaluations of each policy at steady load", () => {
      flip = !flip; // ±5 % noise around the boundary
      load({ ...steady, web_rps: flip ? 42 : 38, api_in_flight: flip ? 12.6 : 11.4 });
      return jobs.every((j) => evaluations(j) - before[j] >= 10);
    }, 180000, diag, 3500); // 3.5 s: not a multiple of the 5 s scrape, so both sides of the noise are scraped
    load(steady);
    for (const j of jobs) expect({ j, scaleRequests: requests(j) }).toEqual({ j, scaleRequests: [] });

    // Burst: each load rises past (1 + threshold) × 2 × target, within 3 × target.
    const tBurst = Date.now();
    load({ web_rps: 56, api_in_flight: 17, worker_ready: 26, worker_ready_alternate: null });
    await waitFor("one scale-up of each job", () => jobs.every((j) => requests(j).length >= 1), 150000, diag, 1000);
    const upSeconds = Object.fromEntries(jobs.map((j) => [j, Number((requests(j)[0].time - tBurst / 1000).toFixed(1))]));
    const evalsAtUp = Object.fromEntries(jobs.map((j) => [j, evaluations(j)]));
    await waitFor("6 more evaluations of each policy during the burst", () => jobs.every((j) => evaluations(j) - evalsAtUp[j] >= 6), 120000, diag, 1000);
    for (const j of jobs) expect({ j, counts: requests(j).map((r) => r.count) }).toEqual({ j, counts: [3] });

    // After the burst: lower load; one scale-down once the scale-down window has passed.
    const tCalm = Date.now();
    load({ web_rps: 30, api_in_flight: 8, worker_ready: 8, worker_ready_alternate: null });
    await waitFor("one scale-down of each job", () => jobs.every((j) => requests(j).length >= 2), 200000, diag, 1000);
    const downSeconds = Object.fromEntries(jobs.map((j) => [j, Number((requests(j)[1].time - tCalm / 1000).toFixed(1))]));
    const evalsAtDown = Object.fromEntries(jobs.map((j) => [j, evaluations(j)]));
    await waitFor("6 more evaluations of each policy after the scale-down", () => jobs.every((j) => evaluations(j) - evalsAtDown[j] >= 6), 120000, diag, 1000);
    for (const j of jobs) expect({ j, counts: requests(j).map((r) => r.count), refused: requests(j).filter((r) => r.refused) }).toEqual({ j, counts: [3, 2], refused: [] });
    // Never sooner than the scale-down window after the load fell.
    for (const j of jobs) expect(downSeconds[j]).toBeGreaterThanOrEqual(30);
    // docs/operations.md ("Autoscaling policies that settle") cites them from docs/generated/test-measurements.md.
    const settings = `scrapes and evaluations every ${c.metrics.autoscaling.evaluationInterval}, cooldown ${c.metrics.autoscaling.cooldown}, scale-down window ${c.metrics.autoscaling.scaleDownWindow}`;
    const keys = {
      web: ["autoscaling.scale-up-web", "autoscaling.scale-down-web"],
      api: ["autoscaling.scale-up-api", "autoscaling.scale-down-api"],
      worker: ["autoscaling.scale-up-worker", "autoscaling.scale-down-worker"],
    } as const;
    for (const j of jobs) {
      recordMeasurement({ key: keys[j][0], what: `real Nomad Autoscaler: ${j}'s load bursts → its scale-up request (${settings})`, value: upSeconds[j], unit: "s", decimals: 1 });
      recordMeasurement({ key: keys[j][1], what: `real Nomad Autoscaler: ${j}'s load falls → its scale-down request (${settings})`, value: downSeconds[j], unit: "s", decimals: 1 });
    }

    // Prometheus down, then running allocations dip below min (a drain, a restart back-off):
    // every evaluation fails on its query (on_error = "fail") and nothing is scaled.
    await prom.stop();
    const evalsAtStop = Object.fromEntries(jobs.map((j) => [j, evaluations(j)]));
    const requestsAtStop = state().scale_requests.length;
    api("PUT", "/test/running", { job: "web", running: 1 });
    api("PUT", "/test/running", { job: "api", running: 0 });
    await waitFor("4 evaluations of each policy with Prometheus down", () => jobs.every((j) => evaluations(j) - evalsAtStop[j] >= 4), 120000, diag, 1000);
    expect(state().scale_requests.slice(requestsAtStop)).toEqual([]);
    expect(alog()).toMatch(/failed to run check/);

    // The test can fail: with the description's min in the Nomad scaling block (the old
    // policy), the same dip makes the real autoscaler scale before any query.
    api("PUT", "/test/running", { job: "web", running: 1, min: 2 });
    await waitFor("the old min check scaling web with Prometheus down", () => state().scale_requests.length > requestsAtStop, 60000, diag, 1000);
    expect(state().scale_requests.slice(requestsAtStop)[0]).toMatchObject({ job: "web", count: 2, message: expect.stringMatching(/lower than policy min value of 2/) });
  }, 900000);
});
