/**
 * The metrics job and its files, as synthesized from the example: the jobspec read back by
 * HashiCorp's HCL parser, prometheus.yml checked by the real `promtool`, haproxy.cfg's scrape
 * surface checked by the real `haproxy -c`, the dashboards' JSON checked for the structure
 * Grafana needs and every query's syntax checked by promtool. The real-Prometheus run is in
 * system/metrics-scrape.test.ts.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { parse as parseYaml } from "yaml";
import { jobsStackName } from "../constructs/jobs-stack";
import { jobNames, variablePath } from "../constructs/render/jobs/common";
import { renderJobspecs } from "../constructs/render/jobs";
import { CONSUL_METRICS_RELAY_PATH, nomadHaproxyRuntime, renderHaproxyConfig } from "../constructs/render/jobs/haproxy-cfg";
import { GRAFANA_ADMIN_PASSWORD_ENV, PROMETHEUS_CONFIG_PATH, TEMPLATE_DELIMITERS, prometheusRetentionSizeMiB, renderMetricsJob } from "../constructs/render/jobs/metrics";
import { PROMETHEUS_LISTEN, nomadPrometheusRuntime, renderPrometheusConfig, scrapeConfigs } from "../constructs/render/metrics/prometheus";
import { AUTOSCALING_UID, DATASOURCE_UID, autoscalingDashboard, autoscalingPanels, overviewDashboard, overviewPanels, renderDashboards, type GrafanaDashboard } from "../constructs/render/metrics/dashboards";
import { scalingQuery, scalingTarget } from "../constructs/render/jobs/scaling";
import { GRAFANA_DIRS, grafanaFiles } from "../constructs/render/metrics/grafana";
import { alertRules, renderAlertRules } from "../constructs/render/metrics/alerts";
import { cleanup, edited, exampleCluster, hasCommand, itIf, parseHcl, resourcesOf, synthCluster, type SynthOutput } from "./helpers/synth";
import { groupOf, jobsOf, type SynthJob } from "./helpers/jobs";
import { PROMETHEUS_MISSING, havePrometheus, promtoolCheckConfig, promtoolCheckExpressions } from "./system/prometheus";

const HAVE_HAPROXY = hasCommand("haproxy");
const HAVE_PROMTOOL = havePrometheus();

function haproxyCheck(text: string): { status: number | null; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "haproxy-metrics-"));
  try {
    fs.writeFileSync(path.join(dir, "haproxy.cfg"), text);
    const r = spawnSync("haproxy", ["-c", "-f", path.join(dir, "haproxy.cfg")], { encoding: "utf8", env: { ...process.env, NODE_ADDRESS: "172.16.1.11" } });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Template of a parsed task whose destination is `dest` (relative to the task directory). */
function templateAt(task: any, dest: string): any {
  const t = (task.template ?? []).find((x: any) => x.destination === dest);
  if (!t) throw new Error(`no template with destination ${dest}`);
  return t;
}

describe("metrics job (example cluster, metrics on by default)", () => {
  const c = exampleCluster();
  const STACK = jobsStackName(c);
  let out: SynthOutput;
  let jobs: Record<string, SynthJob>;
  let group: any;

  beforeAll(async () => {
    out = synthCluster(c);
    jobs = await jobsOf(out, c);
    group = groupOf(jobs.metrics.job, "metrics");
  });
  afterAll(() => cleanup(out));

  it("is registered as nomad_job.metrics after its Nomad Variable, listed with the other jobs", () => {
    const res = resourcesOf(out.stacks[STACK], "nomad_job");
    expect(jobNames(c)).toEqual(["haproxy", "web", "api", "worker", "metrics"]);
    expect(res.metrics.depends_on).toEqual(["nomad_variable.metrics"]);
    expect(out.stacks[STACK].output.job_names.value).toContain("metrics");
    expect(resourcesOf(out.stacks[STACK], "nomad_variable").metrics.path).toBe(variablePath("metrics"));
  });

  it("one group, host network mode, data on a sticky and migrated ephemeral disk of the described size", () => {
    const job = jobs.metrics.job;
    expect(job.type).toBe("service");
    expect(Object.keys(job.group)).toEqual(["metrics"]);
    expect(group.count).toBe(1);
    expect(group.ephemeral_disk).toEqual([{ sticky: true, migrate: true, size: c.metrics.prometheus.diskMiB }]);
    // no canary: a second Prometheus would start on an empty disk
    expect(job.update[0].canary).toBeUndefined();
    for (const t of ["prometheus", "grafana"]) expect(group.task[t][0].config[0].network_mode).toBe("host");
    // no port on the overlay: every task of the group listens on loopback only
    expect(group.network).toBeUndefined();
  });

  it("a crash-looping helper task never fails the allocation (group restart mode delay); Prometheus and Grafana fail theirs (rescheduled)", () => {
    // Nomad's restart block: restarts are per task; a task that uses up its attempts in mode
    // "fail" fails, its siblings are killed and the allocation is rescheduled; in mode
    // "delay" it waits the interval and tries again, its siblings untouched. A task-level
    // block replaces the group's for that task.
    expect(group.restart[0].mode).toBe("delay");
    for (const t of ["prometheus", "grafana"]) expect([t, group.task[t][0].restart[0].mode]).toEqual([t, "fail"]);
    const helpers = Object.keys(group.task).filter((t) => t !== "prometheus" && t !== "grafana");
    expect(helpers.sort()).toEqual(["autoscaler", "queue-exporter"]);
    for (const t of helpers) expect([t, group.task[t][0].restart?.[0]?.mode ?? "group's"]).not.toEqual([t, "fail"]);
  });

  it("Prometheus: loopback only, retention by time and by a size below the disk, its config from a template reloaded by SIGHUP", () => {
    const task = group.task.prometheus[0];
    const args: string[] = task.config[0].args;
    expect(task.config[0].image).toBe(c.metrics.images.prometheus);
    expect(args).toContain(`--web.listen-address=${PROMETHEUS_LISTEN.host}:${PROMETHEUS_LISTEN.port}`);
    expect(PROMETHEUS_LISTEN.host).toBe("127.0.0.1");
    expect(args).toContain(`--storage.tsdb.retention.time=${c.metrics.prometheus.retentionDays}d`);
    const size = Number(/^--storage\.tsdb\.retention\.size=(\d+)MB$/.exec(args.find((a) => a.startsWith("--storage.tsdb.retention.size="))!)![1]);
    expect(size).toBe(prometheusRetentionSizeMiB(c));
    expect(size).toBeLessThan(c.metrics.prometheus.diskMiB * 0.75);
    expect(args.some((a) => a.startsWith("--storage.tsdb.path=/alloc/data/"))).toBe(true);
    const tpl = templateAt(task, PROMETHEUS_CONFIG_PATH.slice(1));
    expect(tpl).toMatchObject({ change_mode: "signal", change_signal: "SIGHUP", left_delimiter: TEMPLATE_DELIMITERS.left, right_delimiter: TEMPLATE_DELIMITERS.right });
    // The template delivers exactly the readable file of the synth output.
    expect(tpl.data).toBe(out.files[STACK]["rendered/metrics/prometheus.yml"]);
    expect(tpl.data).toBe(renderPrometheusConfig(c, nomadPrometheusRuntime()));
  });

  it("retention size stays below the disk for the smallest and a large disk", () => {
    for (const diskMiB of [256, 1024, 2048, 100000]) {
      const s = prometheusRetentionSizeMiB(edited(c, (x) => (x.metrics.prometheus.diskMiB = diskMiB)));
      expect(s).toBeGreaterThanOrEqual(32);
      expect(s).toBeLessThan(diskMiB * 0.75);
    }
  });

  it("Grafana: on loopback, its own /metrics off, anonymous access off, admin password from the job's Nomad Variable, provisioning from templates", () => {
    const task = group.task.grafana[0];
    expect(task.config[0].image).toBe(c.metrics.images.grafana);
    expect(task.env[0]).toMatchObject({
      GF_SERVER_HTTP_ADDR: "127.0.0.1",
      GF_SERVER_HTTP_PORT: String(c.metrics.grafana.port),
      GF_METRICS_ENABLED: "false",
      GF_AUTH_ANONYMOUS_ENABLED: "false",
      GF_USERS_ALLOW_SIGN_UP: "false",
      GF_PATHS_PROVISIONING: GRAFANA_DIRS.provisioning,
    });
    expect(task.env[0]).not.toHaveProperty(GRAFANA_ADMIN_PASSWORD_ENV);
    const secrets = templateAt(task, "secrets/app.env");
    expect(secrets.env).toBe(true);
    expect(secrets.data).toContain(`{{ with nomadVar "${variablePath("metrics")}" -}}`);
    expect(secrets.data).toContain(`${GRAFANA_ADMIN_PASSWORD_ENV}={{ .${GRAFANA_ADMIN_PASSWORD_ENV} | toJSON }}`);
    for (const [p, text] of Object.entries(grafanaFiles(c))) {
      const tpl = templateAt(task, p.slice(1));
      expect(tpl.data).toBe(text);
      expect(tpl.change_mode).toBe("restart");
      // readable in the synth output too
      expect(out.files[STACK][`rendered/metrics/grafana/${p.slice("/local/grafana/".length)}`]).toBe(text);
    }
    // registered without a port (the catalog tells the node); checked from inside the container
    expect(task.service[0].name).toBe("grafana");
    expect(task.service[0].port).toBeUndefined();
    expect(task.service[0].check[0]).toMatchObject({ type: "script", command: "wget", args: ["-q", "-O", "/dev/null", `http://127.0.0.1:${c.metrics.grafana.port}/api/health`] });
  });

  it("before Nomad 1.4 (no Variables) Grafana's password comes from Consul KV, written by consul_keys.metrics", async () => {
    const old = edited(c, (x) => (x.versions.nomad = "1.3.5"));
    const job = (await parseHcl("metrics.hcl", renderMetricsJob(old))).job.metrics[0];
    const secrets = templateAt(job.group.metrics[0].task.grafana[0], "secrets/app.env");
    expect(secrets.data).toContain(`{{ key "nomad-secrets/metrics/${GRAFANA_ADMIN_PASSWORD_ENV}" | toJSON }}`);
    const o = synthCluster(old);
    try {
      // (next to the autoscaler side's items)
      expect(resourcesOf(o.stacks[jobsStackName(old)], "consul_keys").metrics.key).toContainEqual(
        { path: `nomad-secrets/metrics/${GRAFANA_ADMIN_PASSWORD_ENV}`, value: "${var.grafana_admin_password}", delete: true },
      );
    } finally {
      cleanup(o);
    }
  });

  it("uses only jobspec keys documented in every supported Nomad (1.2 to 1.9)", () => {
    // developer.hashicorp.com/nomad/docs/v1.2.x/job-specification/{job,update,group,ephemeral_disk,network,
    // restart,reschedule,task,template,logs,resources,service,check}: every key below is on those
    // pages and still on the v1.9.x ones (none removed in between).
    const documented: Record<string, string[]> = {
      job: ["region", "datacenters", "type", "update", "group"],
      update: ["max_parallel", "health_check", "min_healthy_time", "healthy_deadline", "progress_deadline", "auto_revert"],
      group: ["count", "ephemeral_disk", "network", "restart", "reschedule", "task"],
      ephemeral_disk: ["sticky", "migrate", "size"],
      network: ["port"],
      port: ["static", "host_network"],
      restart: ["attempts", "interval", "delay", "mode"],
      reschedule: ["delay", "delay_function", "max_delay", "unlimited"],
      task: ["driver", "config", "template", "logs", "resources", "env", "service", "restart"],
      template: ["data", "destination", "left_delimiter", "right_delimiter", "change_mode", "change_signal", "env", "perms"],
      logs: ["max_files", "max_file_size"],
      resources: ["cpu", "memory"],
      service: ["name", "provider", "port", "tags", "check"],
      check: ["name", "type", "path", "interval", "timeout", "command", "args"],
    };
    const unknownKeys = (job: any): string[] => {
      const unknown: string[] = [];
      const walk = (body: any, kind: string) => {
        for (const [k, v] of Object.entries(body)) {
          if (!documented[kind]?.includes(k)) unknown.push(`${kind}.${k}`);
          if (kind === "task" && (k === "config" || k === "env")) continue; // driver options and env names
          if (!documented[k] || typeof v !== "object" || v === null) continue;
          // blocks: [body] or, labelled (group "x", task "y", port "z"), { label: [body] }
          const bodies = Array.isArray(v) ? v : Object.values(v as object).flat();
          for (const b of bodies) walk(b, k);
        }
      };
      walk(job, "job");
      return unknown;
    };
    const job = jobs.metrics.job;
    // (the walk does reach the tasks' blocks: an unknown key there is reported)
    const probe = structuredClone(job);
    probe.group.metrics[0].task.grafana[0].template[0].no_such_key = true;
    expect(unknownKeys(probe)).toEqual(["template.no_such_key"]);
    const unknown = unknownKeys(job);
    expect(unknown).toEqual([]);
  });

  it("is absent, with its files, variable and secret, when metrics are off; the application's jobs are then unchanged", async () => {
    const off = edited(c, (x) => (x.metrics.enabled = false));
    const specs = renderJobspecs(off);
    expect(specs.metrics).toBeUndefined();
    // (the autoscaler, which needs metrics, changes the scaled jobs' count: compare without it)
    const on = renderJobspecs(edited(c, (x) => (x.metrics.autoscaling.enabled = false)));
    for (const j of ["web", "api", "worker"] as const) expect(specs[j]).toBe(on[j]);
    // haproxy.cfg (in its Nomad Variable, not the jobspec) is the one that changes: see below
    expect(specs.haproxy).toBe(renderJobspecs(c).haproxy);
    const o = synthCluster(off);
    try {
      const stack = o.stacks[jobsStackName(off)];
      expect(Object.keys(resourcesOf(stack, "nomad_job")).sort()).toEqual(["api", "haproxy", "web", "worker"]);
      expect(Object.keys(stack.variable)).not.toContain("grafana_admin_password");
      expect(Object.keys(o.files[jobsStackName(off)]).filter((f) => f.includes("metrics"))).toEqual([]);
      expect(stack.output.job_names.value).toEqual(["haproxy", "web", "api", "worker"]);
    } finally {
      cleanup(o);
    }
  });
});

describe("prometheus.yml", () => {
  const c = exampleCluster();
  const text = renderPrometheusConfig(c, nomadPrometheusRuntime());

  itIf(HAVE_PROMTOOL, PROMETHEUS_MISSING)("passes promtool check config with its rule file (the production files; only the rule file's path is a temp one)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "prom-rules-"));
    try {
      const rules = path.join(dir, "alert-rules.yml");
      fs.writeFileSync(rules, renderAlertRules(c));
      const withRules = renderPrometheusConfig(c, { ruleFile: rules });
      expect(withRules).toBe(text.replace("/local/alert-rules.yml", rules));
      const r = promtoolCheckConfig(withRules, dir);
      expect(r.output).toContain(`SUCCESS: ${alertRules(c).length} rules found`);
      expect(r.status).toBe(0);
      // with a receiver: the alerting block to Alertmanager on loopback
      const hooked = edited(c, (x) => (x.metrics.alerting.webhook = { sendResolved: true }));
      fs.writeFileSync(rules, renderAlertRules(hooked));
      const h = promtoolCheckConfig(renderPrometheusConfig(hooked, { ruleFile: rules }), dir);
      expect({ status: h.status, output: h.output.includes("SUCCESS") }).toEqual({ status: 0, output: true });
      // (a missing rule file fails the check: the task's template writes it before Prometheus starts)
      expect(promtoolCheckConfig(text, dir).status).not.toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  itIf(HAVE_PROMTOOL, PROMETHEUS_MISSING)("(the check does catch errors: a scrape timeout above the interval fails)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "prom-rules-"));
    try {
      const rules = path.join(dir, "alert-rules.yml");
      fs.writeFileSync(rules, renderAlertRules(c));
      const r = promtoolCheckConfig(renderPrometheusConfig(c, { ruleFile: rules }).replace("scrape_timeout: 10s", "scrape_timeout: 1m"), dir);
      expect(r.output).toMatch(/scrape timeout greater than scrape interval/);
      expect(r.status).not.toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("scrapes HAProxy, the Consul agents (through the relay) and the Nomad clients at the description's addresses, never through Consul's catalog", () => {
    const y = parseYaml(text);
    // A registration in the catalog (writable by anyone on the shared datacenter) moves nothing.
    expect(text).not.toMatch(/consul_sd_configs|_sd_configs/);
    expect(y.global.scrape_interval).toBe(c.metrics.prometheus.scrapeInterval);
    const byName = Object.fromEntries(y.scrape_configs.map((s: any) => [s.job_name, s]));
    // (celery-queue and nomad-autoscaler: the autoscaling tasks' loopback targets, autoscaler.test.ts)
    expect(Object.keys(byName)).toEqual(["prometheus", "haproxy", "consul-agent", "nomad-client", "celery-queue", "nomad-autoscaler"]);
    expect(byName.haproxy.metrics_path).toBe("/metrics");
    expect(byName["consul-agent"].metrics_path).toBe(CONSUL_METRICS_RELAY_PATH);
    expect(byName["nomad-client"]).toMatchObject({ metrics_path: "/v1/metrics", params: { format: ["prometheus"] } });
    const perNode = (nodes: typeof c.nodes, port: number) => nodes.map((n) => ({ targets: [`${n.overlayAddress}:${port}`], labels: { node: n.name } }));
    expect(byName.haproxy.static_configs).toEqual(perNode(c.nodes, c.app.haproxy.statsPort));
    expect(byName["consul-agent"].static_configs).toEqual(perNode(c.nodes, c.app.haproxy.statsPort));
    expect(byName["nomad-client"].static_configs).toEqual(perNode(c.nodes, 4646));
    // HAProxy (a system job) runs on floating-IP-eligible nodes only: the others' stats port is no target
    const oneLb = edited(c, (x) => (x.nodes[1].floatingIp.eligible = false));
    const jobs = Object.fromEntries(scrapeConfigs(oneLb).map((j) => [j.job_name, j]));
    expect(jobs.haproxy.static_configs).toEqual(perNode(oneLb.nodes.slice(0, 1), c.app.haproxy.statsPort));
    expect(jobs["consul-agent"].static_configs).toEqual(perNode(oneLb.nodes.slice(0, 1), c.app.haproxy.statsPort));
    expect(jobs["nomad-client"].static_configs).toEqual(perNode(oneLb.nodes, 4646));
  });

  it("loads the alert rules; sends to Alertmanager on loopback only with a receiver", () => {
    const y = parseYaml(text);
    expect(y.rule_files).toEqual(["/local/alert-rules.yml"]);
    expect(c.metrics.alerting).toEqual({});
    expect(y.alerting).toBeUndefined();
    const hooked = edited(c, (x) => (x.metrics.alerting.webhook = { sendResolved: true }));
    expect(parseYaml(renderPrometheusConfig(hooked, nomadPrometheusRuntime())).alerting).toEqual({ alertmanagers: [{ static_configs: [{ targets: ["127.0.0.1:9093"] }] }] });
  });

  it("leaves out what cannot be read, and says so: the Consul agents with consul.acl, the Nomad clients with nomad.tls", () => {
    const tls = { caFile: "/etc/nomad.d/ca.pem", certFile: "/etc/nomad.d/c.pem", keyFile: "/etc/nomad.d/k.pem" };
    const locked = edited(c, (x) => {
      x.consul.acl = true;
      x.nomad.tls = tls;
      // (a description with nomad.tls must turn autoscaling off: rules.ts)
      x.metrics.autoscaling.enabled = false;
    });
    expect(scrapeConfigs(locked).map((s) => s.job_name)).toEqual(["prometheus", "haproxy"]);
    const t = renderPrometheusConfig(locked, nomadPrometheusRuntime());
    expect(t).toMatch(/# Not scraped: Consul agents: with consul.acl/);
    expect(t).toMatch(/# Not scraped: Nomad clients: with nomad.tls/);
    // and HAProxy does not relay the Consul endpoint then
    expect(renderHaproxyConfig(locked, nomadHaproxyRuntime(locked))).not.toContain(CONSUL_METRICS_RELAY_PATH);
  });

  it("a scrape interval under 10 s gets an equal timeout (Prometheus refuses a longer one)", () => {
    const fast = edited(c, (x) => (x.metrics.prometheus.scrapeInterval = "5s"));
    expect(parseYaml(renderPrometheusConfig(fast, nomadPrometheusRuntime())).global.scrape_timeout).toBe("5s");
  });
});

describe("haproxy.cfg scrape surface (metrics.enabled)", () => {
  const c = exampleCluster();

  it("allows /metrics and the Consul relay from the cluster's node addresses only, and relays one Consul endpoint", () => {
    const cfg = renderHaproxyConfig(c, nomadHaproxyRuntime(c));
    expect(cfg).toContain(`acl cluster_node src ${c.nodes.map((n) => n.overlayAddress).sort().join(" ")}\n`);
    expect(cfg).toContain(`acl metrics_path path /metrics ${CONSUL_METRICS_RELAY_PATH}\n`);
    expect(cfg).toMatch(/backend consul_agent_metrics\n(.*\n)*  http-request set-path \/v1\/agent\/metrics\n  http-request set-query format=prometheus\n  server consul 127\.0\.0\.1:8500\n/);
    expect(cfg).toContain("option socket-stats");
  });

  it("metrics off: the stats listener answers the node itself only, as before", () => {
    const cfg = renderHaproxyConfig(edited(c, (x) => (x.metrics.enabled = false)), nomadHaproxyRuntime(c));
    expect(cfg).not.toContain("cluster_node");
    expect(cfg).not.toContain("consul_agent_metrics");
    expect(cfg).not.toContain("socket-stats");
    expect(cfg).toContain("http-request deny deny_status 403 unless this_node\n");
  });

  itIf(HAVE_HAPROXY, "haproxy is not installed (apt-get install haproxy)")("passes haproxy -c with metrics on, off, and with consul.acl (no relay)", () => {
    for (const x of [c, edited(c, (y) => (y.metrics.enabled = false)), edited(c, (y) => (y.consul.acl = true))]) {
      const r = haproxyCheck(renderHaproxyConfig(x, nomadHaproxyRuntime(x)));
      expect({ status: r.status, out: r.output.includes("Configuration file is valid") }).toEqual({ status: 0, out: true });
    }
  });
});

describe("Grafana dashboards", () => {
  const c = exampleCluster();
  const d: GrafanaDashboard = JSON.parse(grafanaFiles(c)[`${GRAFANA_DIRS.dashboards}/${overviewDashboard(c).uid}.json`]);

  it("have the structure Grafana's provisioning needs: uid, title, panels with id, datasource, targets with expr, gridPos", () => {
    expect(d.uid).toMatch(/^[A-Za-z0-9_-]{1,40}$/);
    expect(d.title).toContain(c.name);
    expect(typeof d.schemaVersion).toBe("number");
    expect(d.panels.length).toBe(overviewPanels(c).length);
    const ids = new Set<number>();
    for (const p of d.panels) {
      expect(ids.has(p.id)).toBe(false);
      ids.add(p.id);
      expect(p.title).toEqual(expect.any(String));
      expect(p.datasource).toEqual({ type: "prometheus", uid: DATASOURCE_UID });
      expect(p.targets.length).toBeGreaterThan(0);
      const refIds = p.targets.map((t) => t.refId);
      expect(new Set(refIds).size).toBe(refIds.length);
      for (const t of p.targets) {
        expect(t.expr.trim()).not.toBe("");
        expect(t.datasource.uid).toBe(DATASOURCE_UID);
      }
      const g = p.gridPos;
      expect(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.y >= 0 && g.h > 0).toBe(true);
    }
    // no two panels overlap on Grafana's grid
    for (const a of d.panels) {
      for (const b of d.panels) {
        if (a.id >= b.id) continue;
        const overlap = a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w && a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h;
        expect({ a: a.title, b: b.title, overlap }).toEqual({ a: a.title, b: b.title, overlap: false });
      }
    }
  });

  it("the datasource they name is the one provisioned, on Prometheus' loopback address, its timeInterval the scrape interval", () => {
    const ds = parseYaml(grafanaFiles(c)[`${GRAFANA_DIRS.provisioning}/datasources/prometheus.yaml`]);
    expect(ds.datasources).toEqual([expect.objectContaining({ uid: DATASOURCE_UID, type: "prometheus", url: `http://127.0.0.1:${PROMETHEUS_LISTEN.port}` })]);
    expect(ds.datasources[0].jsonData).toEqual({ timeInterval: c.metrics.prometheus.scrapeInterval });
    const slow = edited(c, (x) => (x.metrics.prometheus.scrapeInterval = "1m"));
    expect(parseYaml(grafanaFiles(slow)[`${GRAFANA_DIRS.provisioning}/datasources/prometheus.yaml`]).datasources[0].jsonData.timeInterval).toBe("1m");
    const prov = parseYaml(grafanaFiles(c)[`${GRAFANA_DIRS.provisioning}/dashboards/cluster.yaml`]);
    expect(prov.providers[0]).toMatchObject({ type: "file", options: { path: GRAFANA_DIRS.dashboards }, allowUiUpdates: false });
  });

  it("cover what the issue asks: per-route rate, 5xx and latency, instances, node CPU/memory, worker activity, floating-IP holder", () => {
    const exprs = d.panels.flatMap((p) => p.targets.map((t) => t.expr)).join("\n");
    for (const m of [
      "haproxy_backend_http_requests_total",
      'code="5xx"',
      "haproxy_backend_total_time_average_seconds",
      "haproxy_backend_active_servers",
      "nomad_client_allocs_memory_usage",
      "nomad_client_host_cpu_total",
      "nomad_client_host_memory_used",
      'exported_job="worker"',
      'listener="floating"',
    ]) expect(exprs).toContain(m);
  });

  it("the Consul agents have their panels (with the relay), the autoscaler a dashboard of its own (with autoscaling)", () => {
    expect(d.panels.map((p) => p.title).filter((t) => t.startsWith("Consul agents"))).toEqual(["Consul agents: RPCs to the servers", "Consul agents: DNS queries and memory"]);
    expect(overviewPanels(edited(c, (x) => (x.consul.acl = true))).some((p) => p.title.startsWith("Consul"))).toBe(false);
    expect(Object.keys(renderDashboards(c)).sort()).toEqual([`${AUTOSCALING_UID}.json`, `${overviewDashboard(c).uid}.json`]);
    expect(Object.keys(renderDashboards(edited(c, (x) => (x.metrics.autoscaling.enabled = false))))).toEqual([`${overviewDashboard(c).uid}.json`]);
    const a = autoscalingDashboard(c);
    // per job: the policy's own query against its target, running against desired
    for (const job of ["web", "api", "worker"] as const) {
      const value = a.panels.find((p) => p.title === `${job}: policy value against target`)!;
      expect(value.targets.map((t) => t.expr)).toEqual([scalingQuery(c, job), `vector(${scalingTarget(c, job)})`]);
      const counts = a.panels.find((p) => p.title === `${job}: desired against running`)!;
      expect(counts.targets.map((t) => t.legendFormat)).toEqual(["running", "desired", "max"]);
      expect(counts.targets[1].expr).toContain(scalingQuery(c, job));
    }
    expect(new Set(a.panels.map((p) => p.id)).size).toBe(a.panels.length);
    expect(new Set(a.panels.map((p) => `${p.gridPos.x},${p.gridPos.y}`)).size).toBe(a.panels.length);
    expect(JSON.parse(renderDashboards(c)[`${AUTOSCALING_UID}.json`])).toEqual(a);
    expect(a.panels.find((p) => p.title === "Scaling actions")!.targets.map((t) => t.expr).join(" ")).toMatch(/nomad_autoscaler_scale_invoke_success_count[\s\S]*nomad_autoscaler_scale_invoke_error_count/);
  });

  itIf(HAVE_PROMTOOL, PROMETHEUS_MISSING)("every query parses (promtool check rules, Grafana's $__rate_interval as 1m)", () => {
    const exprs = [...d.panels, ...autoscalingPanels(c).map((p) => ({ targets: p.queries }))].flatMap((p) => p.targets.map((t) => t.expr.replace(/\$__rate_interval/g, "1m")));
    const r = promtoolCheckExpressions(exprs, os.tmpdir());
    expect(r.output).toContain("SUCCESS");
    expect(r.status).toBe(0);
    // (and a broken one fails)
    expect(promtoolCheckExpressions(["sum by (proxy (up)"], os.tmpdir()).status).not.toBe(0);
  });

  it("no config file of the job holds the templates' delimiters (they are delivered verbatim)", () => {
    const files = [renderPrometheusConfig(c, nomadPrometheusRuntime()), ...Object.values(grafanaFiles(c))];
    for (const f of files) for (const dl of Object.values(TEMPLATE_DELIMITERS)) expect(f.includes(dl)).toBe(false);
    // Grafana's legends do use {{ }}: without the delimiters consul-template would read them.
    expect(files.some((f) => f.includes("{{proxy}}"))).toBe(true);
  });
});
