/**
 * System test: the metrics job's Prometheus, run for real (v2.53.3, the image's version, built
 * by `npm run engines`) with the production prometheus.yml (renderPrometheusConfig; only the
 * rule file's path is the sandbox's), scraping the real HAProxy running the production
 * haproxy.cfg (only its runtime parts are test values), in network namespaces:
 *
 *   lb    (node-1, overlay 10.215.1.1, floating IP 10.215.1.100): HAProxy; dnsmasq standing in
 *         for Consul DNS (SRV records, as in jobs-haproxy.test.ts); python backends; a Consul
 *         agent HTTP stand-in on 127.0.0.1:8500 serving the documented
 *         /v1/agent/metrics?format=prometheus (and, to catch leaks, other endpoints); a Nomad
 *         agent stand-in on the overlay address serving /v1/metrics?format=prometheus with
 *         metric names from Nomad's metrics reference (host and allocation metrics);
 *   mon   (node-2, overlay 10.215.1.2, not floating-IP-eligible: no HAProxy): Prometheus on
 *         127.0.0.1:9090, its node's Nomad agent stand-in, and a Consul agent stand-in on
 *         127.0.0.1:8500 whose catalog holds FAKE registrations (a `haproxy` at another
 *         team's address, one claiming node-1's name): Prometheus must never ask it;
 *   other (10.215.2.3): another team on the shared overlay.
 *
 * Checks: the scrape surface (a cluster node gets /metrics and the relayed Consul metrics,
 * another source gets 403, no other Consul path is reachable through the relay); exactly the
 * description's targets, up, labelled with their node, and no catalog request; HAProxy's
 * request counters moving under a bounded load; every dashboard panel's query evaluated by
 * this Prometheus and returning data (but the autoscaler's, whose tasks are not run here:
 * parsed only); the alert rules loaded, none firing.
 */
import * as fs from "fs";
import * as path from "path";
import { edited, exampleCluster, itIf } from "../helpers/synth";
import { CONSUL_METRICS_RELAY_PATH, renderHaproxyConfig, type HaproxyRuntime } from "../../constructs/render/jobs/haproxy-cfg";
import { renderPrometheusConfig } from "../../constructs/render/metrics/prometheus";
import { overviewPanels } from "../../constructs/render/metrics/dashboards";
import { renderAlertRules } from "../../constructs/render/metrics/alerts";
import { Sandbox, systemTestPrerequisites, waitFor } from "./sandbox";
import { PROMETHEUS_MISSING, havePrometheus, startConsulStandin, startPrometheus, type RunningPrometheus } from "./prometheus";

const sys = systemTestPrerequisites(["haproxy", "dnsmasq", "ip", "curl", "/usr/bin/python3"]);
const pre = { ok: sys.ok && havePrometheus(), reason: [sys.reason, havePrometheus() ? "" : PROMETHEUS_MISSING].filter(Boolean).join("; ") };

const LB = "10.215.1.1";
const MON = "10.215.1.2";
const OTHER = "10.215.2.3";
const VIP = "10.215.1.100";
const DNS_PORT = 5353;
const NOMAD_PORT = 4646;

/** The example with the namespaces' addresses; a 5 s scrape interval (the schema's least) for a short test. */
function testCluster() {
  return edited(exampleCluster(), (c) => {
    c.nodes[0].overlayAddress = LB;
    c.nodes[1].overlayAddress = MON;
    // node-2 runs no HAProxy (not floating-IP-eligible): the collector's node only.
    c.nodes[1].floatingIp.eligible = false;
    c.floatingIp.address = VIP;
    c.metrics.prometheus.scrapeInterval = "5s";
    // The autoscaling tasks' loopback targets are not discovered through Consul: their
    // scrape is tested in autoscaling.test.ts.
    c.metrics.autoscaling.enabled = false;
  });
}


/** A few metrics in Consul's Prometheus format (names from Consul's telemetry reference). */
const CONSUL_METRICS = `# HELP consul_runtime_alloc_bytes consul_runtime_alloc_bytes
# TYPE consul_runtime_alloc_bytes gauge
consul_runtime_alloc_bytes 1.2345e+07
# HELP consul_client_rpc consul_client_rpc
# TYPE consul_client_rpc counter
consul_client_rpc 42
# HELP consul_client_rpc_failed consul_client_rpc_failed
# TYPE consul_client_rpc_failed counter
consul_client_rpc_failed 1
# HELP consul_dns_domain_query consul_dns_domain_query
# TYPE consul_dns_domain_query summary
consul_dns_domain_query{quantile="0.5"} 0.1
consul_dns_domain_query_sum 12.5
consul_dns_domain_query_count 125
`;

/**
 * Nomad client metrics in Prometheus format (Nomad's metrics reference: nomad.client.host.*
 * with publish_node_metrics, nomad.client.allocs.* with publish_allocation_metrics; labels
 * job, task_group, alloc_id, task, namespace on allocation metrics).
 */
const NOMAD_METRICS = (() => {
  const node = 'datacenter="dc1",node_class="none",node_id="6b1c2f1e-0000-4000-8000-000000000001",node_pool="default",node_scheduling_eligibility="eligible",node_status="ready"';
  const alloc = (job: string, id: string) => `alloc_id="${id}",job="${job}",namespace="default",task="${job}",task_group="${job}"`;
  return [
    "# TYPE nomad_client_host_cpu_total gauge",
    `nomad_client_host_cpu_total{cpu="cpu0",${node}} 23.5`,
    `nomad_client_host_cpu_total{cpu="cpu1",${node}} 41.5`,
    "# TYPE nomad_client_host_cpu_user gauge",
    `nomad_client_host_cpu_user{cpu="cpu0",${node}} 20`,
    "# TYPE nomad_client_host_memory_total gauge",
    `nomad_client_host_memory_total{${node}} 4.294967296e+09`,
    "# TYPE nomad_client_host_memory_used gauge",
    `nomad_client_host_memory_used{${node}} 1.073741824e+09`,
    "# TYPE nomad_client_allocs_memory_usage gauge",
    `nomad_client_allocs_memory_usage{${alloc("web", "a1")}} 3.1e+07`,
    `nomad_client_allocs_memory_usage{${alloc("api", "a2")}} 9.1e+07`,
    `nomad_client_allocs_memory_usage{${alloc("worker", "a3")}} 1.2e+08`,
    `nomad_client_allocs_memory_usage{${alloc("worker", "a4")}} 1.1e+08`,
    "# TYPE nomad_client_allocs_cpu_total_percent gauge",
    `nomad_client_allocs_cpu_total_percent{${alloc("worker", "a3")}} 12.5`,
    `nomad_client_allocs_cpu_total_percent{${alloc("worker", "a4")}} 3.5`,
    "",
  ].join("\n");
})();

jest.setTimeout(180000);

describe("real Prometheus scraping the real HAProxy at the description's addresses (namespaces)", () => {
  let sb: Sandbox | undefined;
  let prom: RunningPrometheus;
  let lbConsul: ReturnType<typeof startConsulStandin>;
  let nomadAgent: ReturnType<typeof startConsulStandin>;
  let monNomad: ReturnType<typeof startConsulStandin>;
  let catalog: ReturnType<typeof startConsulStandin>;
  /** Requests the catalog stand-in had before Prometheus started (the test's own readiness probe). */
  let catalogRequestsBefore = 0;
  const ns = { lb: "", mon: "", other: "" };
  const c = testCluster();
  const hp = c.app.haproxy;

  function curl(from: string, url: string, extra: string[] = []): { code: string; body: string } {
    const r = sb!.inNs(from, ["curl", "-sS", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}", ...extra, url]);
    const i = r.stdout.lastIndexOf("\n");
    return { body: r.stdout.slice(0, i), code: r.stdout.slice(i + 1) };
  }

  beforeAll(async () => {
    if (!pre.ok) return;
    const s = (sb = new Sandbox("mx"));
    ns.lb = s.netns("lb");
    ns.mon = s.netns("mon");
    ns.other = s.netns("oth");
    s.link(ns.lb, "ovl", `${LB}/24`, ns.mon, "ovl", `${MON}/24`);
    s.must(["ip", "-n", ns.lb, "address", "add", `${VIP}/32`, "dev", "ovl"]);
    s.link(ns.lb, "oth", "10.215.2.1/24", ns.other, "oth", `${OTHER}/24`);
    s.must(["ip", "-n", ns.other, "route", "add", "10.215.1.0/24", "via", "10.215.2.1"]);

    // node-1: backends, Consul DNS stand-in, Consul and Nomad agent HTTP stand-ins, HAProxy.
    const py = path.join(__dirname, "fixtures", "backend.py");
    s.start("web1", ns.lb, ["/usr/bin/python3", py, "web1", "127.0.0.21", "8001"]);
    s.start("api1", ns.lb, ["/usr/bin/python3", py, "api1", "127.0.0.11", "8002"]);
    s.start("dnsmasq", ns.lb, [
      "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
      "--listen-address=127.0.0.1", "--bind-interfaces", `--port=${DNS_PORT}`, "--log-facility=-",
      "--srv-host=_web._tcp.service.consul,web1.node.consul,8001,1,10", "--host-record=web1.node.consul,127.0.0.21",
      "--srv-host=_api._tcp.service.consul,api1.node.consul,8002,1,10", "--host-record=api1.node.consul,127.0.0.11",
    ]);
    lbConsul = startConsulStandin(s, ns.lb, { host: "127.0.0.1", port: 8500 }, {
      datacenter: "dc1",
      nodeName: c.nodes[0].name,
      documents: {
        "/v1/agent/metrics": { query: "format=prometheus", contentType: "text/plain; version=0.0.4", body: CONSUL_METRICS },
        "/v1/kv/secret": { contentType: "application/json", body: '[{"Key":"secret","Value":"c2VjcmV0"}]' },
      },
    }, "consul-lb");
    nomadAgent = startConsulStandin(s, ns.lb, { host: LB, port: NOMAD_PORT }, {
      datacenter: "dc1",
      nodeName: c.nodes[0].name,
      documents: { "/v1/metrics": { query: "format=prometheus", contentType: "text/plain; version=0.0.4", body: NOMAD_METRICS } },
    }, "nomad-lb");

    const runDir = path.join(s.dir, "haproxy");
    fs.mkdirSync(runDir);
    const rt: HaproxyRuntime = { overlayAddress: LB, dnsServer: `127.0.0.1:${DNS_PORT}`, floatingAddress: VIP, runDir, masterPid: 0 };
    fs.writeFileSync(path.join(runDir, "haproxy.cfg"), renderHaproxyConfig(c, rt));
    const haproxy = s.start("haproxy", ns.lb, ["haproxy", "-W", "-db", "-f", path.join(runDir, "haproxy.cfg")]);
    await waitFor("HAProxy /healthz", () => curl(ns.lb, `http://${LB}:${hp.statsPort}/healthz`).code === "200", 15000, () => s.log(haproxy));
    await waitFor("both backends routed", () => curl(ns.lb, `http://${LB}:${hp.nodePort}/`).code === "200" && curl(ns.lb, `http://${LB}:${hp.nodePort}/image/x`).code === "200", 20000, () => s.log(haproxy));

    // node-2: the collector, with its own Nomad client (stand-in) and a Consul agent whose
    // catalog another team has filled with fake registrations.
    monNomad = startConsulStandin(s, ns.mon, { host: MON, port: NOMAD_PORT }, {
      datacenter: "dc1",
      nodeName: c.nodes[1].name,
      documents: { "/v1/metrics": { query: "format=prometheus", contentType: "text/plain; version=0.0.4", body: "# TYPE nomad_client_uptime gauge\nnomad_client_uptime 1\n" } },
    }, "nomad-mon");
    catalog = startConsulStandin(s, ns.mon, { host: "127.0.0.1", port: 8500 }, {
      datacenter: c.servers.datacenter,
      nodeName: c.nodes[1].name,
      catalog: [
        { service: "haproxy", node: "intruder", address: OTHER, port: hp.statsPort, tags: ["lb"] },
        { service: "haproxy", node: c.nodes[0].name, address: OTHER, port: 9999, tags: ["lb"] },
        { service: "nomad-client", node: c.nodes[1].name, address: OTHER, port: NOMAD_PORT, tags: ["http"] },
      ],
    }, "consul-mon");
    await waitFor("catalog stand-in", () => curl(ns.mon, "http://127.0.0.1:8500/v1/catalog/services").code === "200", 10000);
    catalogRequestsBefore = catalog.requests().length;
    // The production file but for the rule file's path (the sandbox's copy of the rules).
    const rules = path.join(s.dir, "alert-rules.yml");
    fs.writeFileSync(rules, renderAlertRules(c));
    prom = await startPrometheus(s, ns.mon, renderPrometheusConfig(c, { ruleFile: rules }));
  }, 90000);

  afterAll(() => {
    if (!sb) return;
    sb.cleanup();
    expect(sb.leftoverNamespaces()).toEqual([]);
  });

  itIf(pre.ok, pre.reason)("HAProxy's stats listener: a cluster node gets /metrics and the relayed Consul metrics, another source 403", () => {
    const fromNode = curl(ns.mon, `http://${LB}:${hp.statsPort}/metrics`);
    expect(fromNode.code).toBe("200");
    expect(fromNode.body).toContain("haproxy_process_");
    const consul = curl(ns.mon, `http://${LB}:${hp.statsPort}${CONSUL_METRICS_RELAY_PATH}`);
    expect(consul).toEqual({ code: "200", body: CONSUL_METRICS });
    // /stats stays for the node itself (an operator through SSH)
    expect(curl(ns.mon, `http://${LB}:${hp.statsPort}/stats`).code).toBe("403");
    expect(curl(ns.lb, `http://${LB}:${hp.statsPort}/stats`).code).toBe("200");
    // another team on the overlay
    for (const p of ["/metrics", CONSUL_METRICS_RELAY_PATH, "/stats"]) expect([p, curl(ns.other, `http://${LB}:${hp.statsPort}${p}`).code]).toEqual([p, "403"]);
    expect(curl(ns.other, `http://${LB}:${hp.statsPort}/healthz`).code).toBe("200");
  });

  itIf(pre.ok, pre.reason)("the relay reaches /v1/agent/metrics?format=prometheus and nothing else of the Consul API", () => {
    const before = lbConsul.requests().length;
    const attempts = [
      `${CONSUL_METRICS_RELAY_PATH}?format=json&x=1`,
      `${CONSUL_METRICS_RELAY_PATH}/../../v1/kv/secret`,
      `/consul/v1/kv/secret`,
      `/v1/kv/secret`,
      `/v1/agent/self`,
      `${CONSUL_METRICS_RELAY_PATH}x`,
    ];
    const answers = attempts.map((p) => [p, curl(ns.mon, `http://${LB}:${hp.statsPort}${p}`, ["--path-as-is"])] as const);
    // a POST is refused before reaching Consul
    expect(curl(ns.mon, `http://${LB}:${hp.statsPort}${CONSUL_METRICS_RELAY_PATH}`, ["-X", "POST"]).code).toBe("405");
    for (const [p, a] of answers) {
      if (p.startsWith(`${CONSUL_METRICS_RELAY_PATH}?`)) expect(a).toEqual({ code: "200", body: CONSUL_METRICS });
      else expect([p, a.body.includes("c2VjcmV0") || a.body.includes("Datacenter"), a.code === "200"]).toEqual([p, false, false]);
    }
    // What the Consul agent saw: the one documented endpoint, whatever was asked.
    const seen = lbConsul.requests().slice(before);
    expect(seen.length).toBeGreaterThan(0);
    expect([...new Set(seen)]).toEqual(["GET /v1/agent/metrics?format=prometheus"]);
  });

  itIf(pre.ok, pre.reason)("scrapes exactly the description's targets, labelled with their node; the catalog's fake registrations move nothing", async () => {
    const want = [
      ["consul-agent", c.nodes[0].name, `http://${LB}:${hp.statsPort}${CONSUL_METRICS_RELAY_PATH}`],
      ["haproxy", c.nodes[0].name, `http://${LB}:${hp.statsPort}/metrics`],
      ["nomad-client", c.nodes[0].name, `http://${LB}:${NOMAD_PORT}/v1/metrics?format=prometheus`],
      ["nomad-client", c.nodes[1].name, `http://${MON}:${NOMAD_PORT}/v1/metrics?format=prometheus`],
      ["prometheus", undefined, "http://127.0.0.1:9090/metrics"],
    ];
    const seen = () => prom.targets().map((t) => [t.labels.job, t.labels.node, t.scrapeUrl]).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    await waitFor("every target up", () => prom.targets().length === want.length && prom.targets().every((t) => t.health === "up"), 60000, () => `${JSON.stringify(prom.targets().map((t) => [t.labels.job, t.health, t.lastError, t.scrapeUrl]))}\n${prom.log().slice(-2000)}`, 500);
    expect(seen()).toEqual(want);
    // Prometheus never asked the catalog (whose fake registrations a consul_sd job would have scraped).
    expect(catalogRequestsBefore).toBeGreaterThan(0);
    expect(catalog.requests().slice(catalogRequestsBefore)).toEqual([]);
    expect(nomadAgent.requests()).toContain("GET /v1/metrics?format=prometheus");
    expect(monNomad.requests()).toContain("GET /v1/metrics?format=prometheus");
    // Consul's metrics arrived through the relay, with the node label
    expect(prom.query(`consul_client_rpc{job="consul-agent"}`)).toEqual([expect.objectContaining({ value: 42, metric: expect.objectContaining({ node: c.nodes[0].name }) })]);
  });

  itIf(pre.ok, pre.reason)("HAProxy's request counters move under a bounded load, and every dashboard query returns data", async () => {
    const total = (q: string) => prom.query(q).reduce((a, s) => a + s.value, 0);
    const q = `sum(haproxy_backend_http_requests_total{proxy=~"web|api"})`;
    const before = total(q);
    const N = 60;
    // Bounded load: N requests over the node bind and N over the floating bind (one curl each, keep-alive).
    // (curl's -o applies to one URL: one per URL)
    const urls = (host: string, port: number) => Array.from({ length: N }, (_, i) => ["-o", "/dev/null", `http://${host}:${port}/${i % 2 ? "image/x" : ""}`]).flat();
    for (const [host, port] of [[LB, hp.nodePort], [VIP, hp.floatingPort]] as const) {
      const r = sb!.inNs(ns.lb, ["curl", "-sS", "-w", "%{http_code}\n", ...urls(host, port)], { timeoutMs: 30000 });
      expect(r.stdout.trim().split("\n").filter((x) => x === "200").length).toBe(N);
    }
    await waitFor(`the ${2 * N} requests in Prometheus`, () => total(q) - before >= 2 * N, 30000, () => `before ${before}, now ${total(q)}`, 1000);
    // eslint-disable-next-line no-console
    console.log(`HAProxy backend requests seen by Prometheus: ${before} -> ${total(q)}`);
    // a rate needs two samples after the load
    await new Promise((r) => setTimeout(r, 11000));

    const empty: string[] = [];
    for (const p of overviewPanels(c)) {
      for (const query of p.queries) {
        const expr = query.expr.replace(/\$__rate_interval/g, "1m");
        const result = prom.query(expr); // throws on a query Prometheus refuses
        if (query.source !== "autoscaler" && result.length === 0) empty.push(`${p.title}: ${expr}`);
      }
    }
    expect(empty).toEqual([]);
    // The floating-IP panel names node-1, the node whose HAProxy got the floating traffic.
    const holder = prom.query(overviewPanels(c).find((p) => p.title === "Floating-IP holder")!.queries[0].expr.replace(/\$__rate_interval/g, "1m"));
    expect(holder.map((s) => s.metric.node)).toEqual([c.nodes[0].name]);
    expect(holder[0].value).toBeGreaterThan(0);
    // Instances per job from Nomad's allocation metrics (exported_job: the scrape job's label wins).
    const inst = prom.query(overviewPanels(c).find((p) => p.title === "Instances per job")!.queries[0].expr);
    expect(Object.fromEntries(inst.map((s) => [s.metric.exported_job, s.value]))).toEqual({ web: 1, api: 1, worker: 2 });
  });

  itIf(pre.ok, pre.reason)("loads the alert rules (every rule healthy) and none fires on this healthy cluster", () => {
    const r = sb!.inNs(ns.mon, ["curl", "-sS", "--max-time", "10", `http://127.0.0.1:9090/api/v1/rules`]);
    const groups = JSON.parse(r.stdout).data.groups;
    const rules = groups.flatMap((g: any) => g.rules);
    expect(rules.length).toBeGreaterThan(0);
    expect(rules.filter((x: any) => x.health !== "ok").map((x: any) => [x.name, x.lastError])).toEqual([]);
    expect(rules.filter((x: any) => x.state === "firing").map((x: any) => x.name)).toEqual([]);
  });
});
