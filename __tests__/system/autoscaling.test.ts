/**
 * System test: the three scaling policies' queries (rendered into the jobspecs) evaluated
 * by a real Prometheus (v2.53.3 as the pinned image, built by npm run engines; helper m's harness) scraping the real HAProxy (the
 * rendered haproxy.cfg, native Prometheus exporter on its stats listener) in front of
 * stand-in web and api instances, and the real queue exporter (rendered script) against a
 * real RabbitMQ, all in one network namespace. Load is applied, then removed:
 * - each query returns exactly one series, 0 at rest;
 * - under load the target-value strategy's count (formula of nomad-autoscaler v0.4.5,
 *   helpers/target-value.ts: the binary is not run here) rises above the running count,
 *   and falls back to it at rest; the time from load start to the first rise is printed;
 * - HAProxy and the exporter stopped: every query returns NO series (the autoscaler's "no
 *   metrics available": fail static), never 0.
 * Stand-ins: web instances answer at once; api instances answer /image… after 0.5 s (an
 * S3 read), /health at once; dnsmasq answers the SRV records Consul DNS would.
 */
import * as fs from "fs";
import * as path from "path";
import { edited, exampleCluster, itIf } from "../helpers/synth";
import { targetValueDesired } from "../helpers/target-value";
import { renderHaproxyConfig } from "../../constructs/render/jobs/haproxy-cfg";
import { scalingBounds } from "../../constructs/render/jobs/common";
import { scalingQuery, scalingTarget } from "../../constructs/render/jobs/scaling";
import { autoscalingScrapeConfigs, renderQueueExporter } from "../../constructs/render/jobs/autoscaler";
import { RABBITMQ_PREREQUISITES, CELERY_QUEUE_PY, holdingConsumer, publishTasks, startRabbitmq } from "./rabbitmq";
import { PROMETHEUS_MISSING, havePrometheus, startPrometheus } from "./prometheus";
import { Sandbox, sleep, systemTestPrerequisites, waitFor } from "./sandbox";

const system = systemTestPrerequisites(["ip", "haproxy", "dnsmasq", "curl", ...RABBITMQ_PREREQUISITES]);
const pre = { ok: system.ok && havePrometheus(), reason: [system.reason, havePrometheus() ? "" : PROMETHEUS_MISSING].filter(Boolean).join("; ") };

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

  itIf(pre.ok, pre.reason)("load moves each policy's target-value count above the running count and back at rest; metrics gone: no series", async () => {
    const c = edited(exampleCluster(), (x) => {
      x.app.haproxy = { ...x.app.haproxy, nodePort: 18080, floatingPort: 18081, statsPort: 18404 };
    });
    const s = (sb = new Sandbox("as"));
    const ns = s.netns("as");
    for (const a of [OVERLAY, FLOATING, ...BACKENDS.map((b) => b.addr)]) s.inNs(ns, ["ip", "address", "add", `${a}/32`, "dev", "lo"]);

    // Stand-in instances, Consul DNS stand-in, the real HAProxy with the rendered config.
    fs.writeFileSync(path.join(s.dir, "load.py"), LOAD_PY);
    for (const b of BACKENDS) s.start(b.name, ns, ["/usr/bin/python3", path.join(__dirname, "fixtures", "backend.py"), b.name, b.addr, String(BACKEND_PORT), b.service === "api" ? String(API_DELAY_S) : "0"]);
    s.start("dnsmasq", ns, [
      "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=", "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53", "--log-facility=-",
      ...BACKENDS.flatMap((b) => [`--srv-host=_${b.service}._tcp.service.consul,${b.name}.node.consul,${BACKEND_PORT},1,10`, `--host-record=${b.name}.node.consul,${b.addr}`]),
    ]);
    const cfg = path.join(s.dir, "haproxy.cfg");
    fs.writeFileSync(cfg, renderHaproxyConfig(c, { overlayAddress: OVERLAY, floatingAddress: FLOATING, dnsServer: "127.0.0.1:53", runDir: s.dir, masterPid: 0 }));
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
    const evaluate = (j: (typeof jobs)[number]) => {
      const r = prom.query(queries[j]);
      if (r.length !== 1) return { series: r.length, value: NaN, desired: count };
      const { min, max } = scalingBounds(c, j);
      return { series: 1, value: r[0].value, desired: targetValueDesired({ count, value: r[0].value, target: scalingTarget(c, j), min, max }) };
    };

    // Two worker-like consumers (prefetch 1), the queue declared: the worker's running count.
    holdingConsumer(s, ns, mq, "consumer1", 1);
    holdingConsumer(s, ns, mq, "consumer2", 1);
    const diag = () => `${JSON.stringify(Object.fromEntries(jobs.map((j) => [j, evaluate(j)])))}\n${prom.log().slice(-1500)}\n${s.log(haproxy).slice(-1500)}\n${s.log(exporter).slice(-800)}`;
    await waitFor("both instances UP in HAProxy, two consumers, every query one series at 0", () => {
      const up = prom.query(`max(haproxy_backend_active_servers{proxy=~"web|api"}) by (proxy)`);
      const consumers = prom.query(`celery_queue_consumers{queue="celery"}`);
      return up.length === 2 && up.every((x) => x.value === 2) && consumers[0]?.value === 2 && jobs.every((j) => evaluate(j).series === 1 && evaluate(j).value === 0);
    }, 90000, diag, 1000);
    const rest = Object.fromEntries(jobs.map((j) => [j, evaluate(j)]));
    for (const j of jobs) expect({ j, ...rest[j] }).toEqual({ j, series: 1, value: 0, desired: count });

    // Load: web ~100 requests/s, api 20 clients back to back on slow reads, 60 tasks queued.
    const t0 = Date.now();
    const webLoad = s.start("load-web", ns, ["/usr/bin/python3", path.join(s.dir, "load.py"), FLOATING, String(c.app.haproxy.floatingPort), "/", "4", "25", "150"]);
    const apiLoad = s.start("load-api", ns, ["/usr/bin/python3", path.join(s.dir, "load.py"), FLOATING, String(c.app.haproxy.floatingPort), "/image/AbCd1234", "20", "0", "150"]);
    publishTasks(mq, 60);
    const rose: Partial<Record<(typeof jobs)[number], { seconds: number; value: number; desired: number }>> = {};
    const peak: Record<string, number> = { web: 0, api: 0, worker: 0 };
    await waitFor("every policy's count above the running count", () => {
      for (const j of jobs) {
        const e = evaluate(j);
        expect(e.series).toBe(1);
        peak[j] = Math.max(peak[j], e.value);
        if (!rose[j] && e.desired > count) rose[j] = { seconds: (Date.now() - t0) / 1000, value: e.value, desired: e.desired };
      }
      return jobs.every((j) => rose[j]);
    }, 140000, diag, 2000);
    // eslint-disable-next-line no-console
    console.log(
      `scale-up (load start → target-value count above ${count}; Prometheus scraping every ${c.metrics.prometheus.scrapeInterval}, windows ${queries.web.match(/\[(\d+s)\]/)![1]}):\n` +
        jobs.map((j) => `  ${j}: ${rose[j]!.seconds.toFixed(1)} s (value ${rose[j]!.value.toFixed(2)} per instance vs target ${scalingTarget(c, j)} → count ${rose[j]!.desired})`).join("\n"),
    );

    // Rest: loads stopped, the queue emptied.
    await s.stop(webLoad, "SIGKILL");
    await s.stop(apiLoad, "SIGKILL");
    mq.kombu(`${CELERY_QUEUE_PY}with kombu.Connection(os.environ["URL"]) as c:
    q(c.default_channel).purge()
`);
    const t1 = Date.now();
    await waitFor("every policy back at the running count", () => jobs.every((j) => evaluate(j).desired <= count), 150000, diag, 2000);
    // eslint-disable-next-line no-console
    console.log(`back at rest ${((Date.now() - t1) / 1000).toFixed(1)} s after the load stopped; peaks per instance: ${JSON.stringify(peak)}`);

    // Metrics gone: HAProxy and the exporter stop; their series go stale at the next scrape.
    await s.stop(haproxy, "SIGTERM", 10000);
    await s.stop(exporter, "SIGTERM", 10000);
    await waitFor("no series for any policy (fail static)", () => jobs.every((j) => prom.query(queries[j]).length === 0), 30000, diag, 1000);
    await sleep(0);
  });
});
