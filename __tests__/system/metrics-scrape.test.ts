/**
 * System test: the metrics job's Prometheus, run for real (v2.53.3, the image's version, built
 * by `npm run engines`) with the production prometheus.yml (renderPrometheusConfig; only the
 * rule file's path is the sandbox's), scraping the real HAProxy running the production
 * haproxy.cfg (only its runtime parts are test values), in network namespaces:
 *
 *   lb    (node-1, overlay 10.215.1.1, floating IP 10.215.1.100): HAProxy; the REAL Consul
 *         agent with the client config rendered for node-1 (telemetry on: its documented
 *         /v1/agent/metrics?format=prometheus on 127.0.0.1:8500; DNS on the overlay address,
 *         port 53, where HAProxy resolves web and api); python backends whose services are
 *         registered in that agent as Nomad registers them (consul.ts); a Nomad agent
 *         stand-in on the overlay address serving /v1/metrics?format=prometheus with metric
 *         names from Nomad's metrics reference (host and allocation metrics);
 *   mon   (node-2, overlay 10.215.1.2, not floating-IP-eligible: no HAProxy): Prometheus on
 *         127.0.0.1:9090, its node's real Consul agent and Nomad agent stand-in;
 *   srv   (10.215.1.250): the provider's real Consul server (2022 playbook shape);
 *   other (10.215.2.3): another team, routed to the overlay through node-1: it registers
 *         FAKE `haproxy` and `nomad-client` services in the servers' real catalog (one
 *         claiming node-1's name) pointing at an exporter of its own with inflated counters.
 *         A control Prometheus discovering through Consul (consul_sd_configs, the earlier
 *         design) finds them; the production one must never scrape them.
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
import { renderConsulConfig } from "../../constructs/render/agents";
import { renderApiJob } from "../../constructs/render/jobs/api";
import { renderWebJob } from "../../constructs/render/jobs/web";
import { Sandbox, systemTestPrerequisites, waitFor } from "./sandbox";
import { PROMETHEUS_MISSING, havePrometheus, startNomadMetricsStandin, startPrometheus, type RunningPrometheus } from "./prometheus";
import { CONSUL_MISSING, dig, haveConsul, nomadRegistrations, registerService, startConsul, startProviderServer, type ConsulAgent } from "./consul";

const sys = systemTestPrerequisites(["haproxy", "ip", "curl", "/usr/bin/dig", "/usr/bin/python3"]);
const pre = {
  ok: sys.ok && havePrometheus() && haveConsul(),
  reason: [sys.reason, havePrometheus() ? "" : PROMETHEUS_MISSING, haveConsul() ? "" : CONSUL_MISSING].filter(Boolean).join("; "),
};

const LB = "10.215.1.1";
const MON = "10.215.1.2";
const OTHER = "10.215.2.3";
const VIP = "10.215.1.100";
const SERVER = "10.215.1.250";
const NOMAD_PORT = 4646;

/** The example with the namespaces' addresses; a 5 s scrape interval (the schema's least) for a short test. */
function testCluster() {
  return edited(exampleCluster(), (c) => {
    c.nodes[0].overlayAddress = LB;
    c.nodes[1].overlayAddress = MON;
    // node-2 runs no HAProxy (not floating-IP-eligible): the collector's node only.
    c.nodes[1].floatingIp.eligible = false;
    c.floatingIp.address = VIP;
    c.servers = { ...c.servers, datacenter: "dc1", join: [SERVER] };
    c.metrics.prometheus.scrapeInterval = "5s";
    // The autoscaling tasks' loopback targets are not discovered through Consul: their
    // scrape is tested in autoscaling.test.ts.
    c.metrics.autoscaling.enabled = false;
  });
}


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
  let lbConsul: ConsulAgent;
  let nomadAgent: ReturnType<typeof startNomadMetricsStandin>;
  let monNomad: ReturnType<typeof startNomadMetricsStandin>;
  let fakeExporter: ReturnType<typeof startNomadMetricsStandin>;
  const ns = { lb: "", mon: "", other: "", srv: "" };
  const c = testCluster();
  const hp = c.app.haproxy;

  const s = () => sb!;
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
    ns.srv = s.netns("srv");
    // The overlay: a bridge joining node-1, node-2 and the provider's server.
    const overlay = s.bridge("sw");
    for (const [n, a] of [[ns.lb, LB], [ns.mon, MON], [ns.srv, SERVER]]) overlay.plug(n, "ovl", [`${a}/24`]);
    s.must(["ip", "-n", ns.lb, "address", "add", `${VIP}/32`, "dev", "ovl"]);
    // Another team, routed to the overlay through node-1 (and back).
    s.link(ns.lb, "oth", "10.215.2.1/24", ns.other, "oth", `${OTHER}/24`);
    s.must(["ip", "-n", ns.other, "route", "add", "10.215.1.0/24", "via", "10.215.2.1"]);
    for (const n of [ns.mon, ns.srv]) s.must(["ip", "-n", n, "route", "add", "10.215.2.0/24", "via", LB]);
    s.must(["ip", "netns", "exec", ns.lb, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);

    // The provider's Consul server; each node's real agent with its rendered config (node-1's
    // HTTP requests logged, to see what reaches it through HAProxy's relay).
    await startProviderServer(s, ns.srv, "2022", SERVER);
    lbConsul = startConsul(s, ns.lb, { name: c.nodes[0].name, configText: renderConsulConfig(c, c.nodes[0]), http: "http://127.0.0.1:8500", extraArgs: ["-log-level=debug"] });
    startConsul(s, ns.mon, { name: c.nodes[1].name, configText: renderConsulConfig(c, c.nodes[1]), http: "http://127.0.0.1:8500" });
    for (const [n, addr] of [[ns.lb, LB], [ns.mon, MON]] as const) await waitFor(`the agent on ${addr} answering DNS`, () => dig(s, n, addr, "consul.service.consul").includes(SERVER), 30000);

    // node-1: backends registered as Nomad registers them, Nomad agent stand-in, HAProxy.
    const py = path.join(__dirname, "fixtures", "backend.py");
    s.start("web1", ns.lb, ["/usr/bin/python3", py, "web1", "127.0.0.21", "8001"]);
    s.start("api1", ns.lb, ["/usr/bin/python3", py, "api1", "127.0.0.11", "8002"]);
    for (const [task, job, addr, port] of [["web", renderWebJob(c), "127.0.0.21", 8001], ["api", renderApiJob(c), "127.0.0.11", 8002]] as const) {
      for (const reg of await nomadRegistrations(job, { task, allocId: `alloc-${task}1`, address: addr, port })) registerService(s, lbConsul, reg);
    }
    nomadAgent = startNomadMetricsStandin(s, ns.lb, { host: LB, port: NOMAD_PORT }, { "/v1/metrics": { query: "format=prometheus", contentType: "text/plain; version=0.0.4", body: NOMAD_METRICS } }, "nomad-lb");

    const runDir = path.join(s.dir, "haproxy");
    fs.mkdirSync(runDir);
    const rt: HaproxyRuntime = { overlayAddress: LB, dnsServer: `${LB}:53`, floatingAddress: VIP, runDir, masterPid: 0 };
    fs.writeFileSync(path.join(runDir, "haproxy.cfg"), renderHaproxyConfig(c, rt));
    const haproxy = s.start("haproxy", ns.lb, ["haproxy", "-W", "-db", "-f", path.join(runDir, "haproxy.cfg")]);
    await waitFor("HAProxy /healthz", () => curl(ns.lb, `http://${LB}:${hp.statsPort}/healthz`).code === "200", 15000, () => s.log(haproxy));
    await waitFor("both backends routed (found through the real agent's SRV answers, healthy)", () => curl(ns.lb, `http://${LB}:${hp.nodePort}/`).code === "200" && curl(ns.lb, `http://${LB}:${hp.nodePort}/image/x`).code === "200", 60000, () => s.log(haproxy).slice(-2000));

    // node-2: the collector, with its own Nomad client (stand-in).
    monNomad = startNomadMetricsStandin(s, ns.mon, { host: MON, port: NOMAD_PORT }, { "/v1/metrics": { query: "format=prometheus", contentType: "text/plain; version=0.0.4", body: "# TYPE nomad_client_uptime gauge\nnomad_client_uptime 1\n" } }, "nomad-mon");

    // Another team: an exporter with inflated counters, registered in the servers' real catalog
    // (no ACL on the provider's servers) as `haproxy` and `nomad-client`, once under node-1's name.
    const inflated = "# TYPE haproxy_backend_http_requests_total counter\nhaproxy_backend_http_requests_total{proxy=\"api\"} 1e+09\n";
    fakeExporter = startNomadMetricsStandin(s, ns.other, { host: OTHER, port: hp.statsPort }, { "/metrics": { contentType: "text/plain; version=0.0.4", body: inflated } }, "fake-exporter");
    for (const reg of [
      { Node: "intruder", Address: OTHER, Service: { Service: "haproxy", Port: hp.statsPort, Tags: ["lb"] } },
      { Node: c.nodes[0].name, Address: OTHER, Service: { ID: "fake-haproxy", Service: "haproxy", Port: hp.statsPort, Tags: ["lb"] } },
      { Node: "intruder", Address: OTHER, Service: { Service: "nomad-client", Port: hp.statsPort, Tags: ["http"] } },
    ]) {
      const r = s.inNs(ns.other, ["curl", "-fsS", "--max-time", "5", "-X", "PUT", "--data-binary", JSON.stringify(reg), `http://${SERVER}:8500/v1/catalog/register`]);
      expect({ reg: reg.Service.Service, status: r.status, out: r.stdout.trim() }).toEqual({ reg: reg.Service.Service, status: 0, out: "true" });
    }
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
    expect(consul.code).toBe("200");
    // the real agent's Prometheus format (telemetry from the rendered consul.hcl)
    expect(consul.body).toMatch(/^# (HELP|TYPE) consul_/m);
    expect(consul.body).toMatch(/^consul_runtime_alloc_bytes \S+$/m);
    // /stats stays for the node itself (an operator through SSH)
    expect(curl(ns.mon, `http://${LB}:${hp.statsPort}/stats`).code).toBe("403");
    expect(curl(ns.lb, `http://${LB}:${hp.statsPort}/stats`).code).toBe("200");
    // another team on the overlay
    for (const p of ["/metrics", CONSUL_METRICS_RELAY_PATH, "/stats"]) expect([p, curl(ns.other, `http://${LB}:${hp.statsPort}${p}`).code]).toEqual([p, "403"]);
    expect(curl(ns.other, `http://${LB}:${hp.statsPort}/healthz`).code).toBe("200");
  });

  itIf(pre.ok, pre.reason)("the relay reaches /v1/agent/metrics?format=prometheus and nothing else of the Consul API", async () => {
    // What the real agent answered, from its own debug log ("Request finished: method=… url=…").
    const requests = () => [...lbConsul.log().matchAll(/Request finished: method=(\S+) url=(\S+) from=(\S+)/g)].map((m) => ({ line: `${m[1]} ${m[2]}`, from: m[3] }));
    const kv = s().inNs(ns.lb, ["curl", "-fsS", "--max-time", "5", "-X", "PUT", "--data-binary", "c2VjcmV0-value", "http://127.0.0.1:8500/v1/kv/secret"]);
    expect(kv.status).toBe(0);
    await waitFor("the agent's log of the test's own KV write", () => requests().some((r) => r.line === "PUT /v1/kv/secret"), 10000);
    const before = requests().length;
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
      if (p.startsWith(`${CONSUL_METRICS_RELAY_PATH}?`)) expect([p, a.code, /^# TYPE consul_/m.test(a.body)]).toEqual([p, "200", true]);
      else expect([p, a.body.includes("c2VjcmV0") || a.body.includes("Datacenter"), a.code === "200"]).toEqual([p, false, false]);
    }
    // What the Consul agent saw from HAProxy (not the test's own loopback calls): the one documented endpoint, whatever was asked.
    await waitFor("the agent's log of the relayed requests", () => requests().length > before, 10000);
    const seen = requests().slice(before).map((r) => r.line);
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
    expect(nomadAgent.requests()).toContain("GET /v1/metrics?format=prometheus");
    expect(monNomad.requests()).toContain("GET /v1/metrics?format=prometheus");
    // Consul's metrics arrived through the relay, with the node label
    expect(prom.query(`consul_runtime_alloc_bytes{job="consul-agent"}`)).toEqual([expect.objectContaining({ value: expect.any(Number), metric: expect.objectContaining({ node: c.nodes[0].name }) })]);

    // Control: a Prometheus that discovers HAProxy through Consul (consul_sd_configs against
    // node-2's real agent, the earlier design) takes the other team's fakes as ours.
    const control = await startPrometheus(s(), ns.mon, JSON.stringify({
      global: { scrape_interval: "5s" },
      scrape_configs: [{ job_name: "haproxy-from-catalog", consul_sd_configs: [{ server: "127.0.0.1:8500", datacenter: c.servers.datacenter, services: ["haproxy"] }] }],
    }), { listen: "127.0.0.1:9190", name: "prometheus-consul-sd" });
    await waitFor("the control Prometheus scraping the fakes", () => fakeExporter.requests().length > 0, 30000, () => JSON.stringify(control.targets().map((t) => [t.labels.job, t.scrapeUrl, t.health, t.lastError])));
    expect([...new Set(control.targets().map((t) => t.scrapeUrl))]).toEqual([`http://${OTHER}:${hp.statsPort}/metrics`]);
    await control.stop();
    const fromControl = fakeExporter.requests().length;
    // The production Prometheus: still exactly the description's targets, and not one request to the fakes.
    await new Promise((r) => setTimeout(r, 11000));
    expect(seen()).toEqual(want);
    expect(fakeExporter.requests().length).toBe(fromControl);
    expect(prom.query(`count(up{job="haproxy"})`)[0].value).toBe(c.nodes.filter((n) => n.floatingIp.eligible).length);
    expect(prom.query(`max(haproxy_backend_http_requests_total)`)[0].value).toBeLessThan(1e9);
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
