/**
 * prometheus.yml of the metrics job. Pure: description and runtime in, YAML text out. The
 * same function renders the file Nomad runs (nomadPrometheusRuntime: the node's Consul
 * agent on loopback) and the config of the system test (same runtime: the test's Consul
 * stand-in listens on loopback inside the collector's namespace).
 *
 * Targets come from the local Consul agent's catalog (consul_sd_configs), so nothing is
 * rewritten when instances move:
 * - haproxy: HAProxy's Prometheus exporter on its stats listener (service "haproxy",
 *   registered by the HAProxy job on the stats port of the node's overlay address);
 * - consul-agent: the Consul agent of each HAProxy node, relayed by the same listener at
 *   CONSUL_METRICS_RELAY_PATH (Consul's HTTP API is on loopback only); not with consul.acl;
 * - nomad-client: every Nomad client's /v1/metrics?format=prometheus (Nomad registers
 *   itself in Consul as "nomad-client", tag "http", on its HTTP address); not with nomad.tls;
 * - prometheus: itself, on loopback.
 * The application's services (web, api, worker) expose no metrics endpoint (app contract);
 * their traffic is measured at HAProxy, their instances by Nomad.
 */
import { stringify } from "yaml";
import type { Cluster } from "../../description/schema";
import { CONSUL_HTTP_PORT, durationSeconds } from "../agents";
import { autoscalingEnabled } from "../jobs/scaling";
import { autoscalingScrapeConfigs } from "../jobs/autoscaler";
import { CONSUL_METRICS_RELAY_PATH, METRICS_PATH, relaysConsulMetrics } from "../jobs/haproxy-cfg";

/** Where Prometheus listens: loopback only (it has no access control); Grafana and the autoscaler run in the same group. */
export const PROMETHEUS_LISTEN = { host: "127.0.0.1", port: 9090 } as const;
export const PROMETHEUS_URL = `http://${PROMETHEUS_LISTEN.host}:${PROMETHEUS_LISTEN.port}`;

/** Consul service names the scrape jobs discover (registered by our HAProxy job and by Nomad itself). */
export const DISCOVERED_SERVICES = { haproxy: "haproxy", nomadClient: "nomad-client", nomadClientTag: "http" } as const;

export interface PrometheusRuntime {
  /** host:port of the Consul agent Prometheus asks for targets (the node's own, on loopback). */
  readonly consulAddress: string;
}

export function nomadPrometheusRuntime(): PrometheusRuntime {
  return { consulAddress: `127.0.0.1:${CONSUL_HTTP_PORT}` };
}

/** One `scrape_configs` entry (the subset of Prometheus' schema used here). */
export interface ScrapeConfig {
  job_name: string;
  metrics_path?: string;
  params?: Record<string, string[]>;
  scheme?: "http" | "https";
  static_configs?: { targets: string[]; labels?: Record<string, string> }[];
  consul_sd_configs?: Record<string, unknown>[];
  relabel_configs?: Record<string, unknown>[];
}

/**
 * Extra scrape jobs of tasks other helpers add to the metrics group (the autoscaler's
 * queue-depth exporter: a loopback target). Empty until those tasks exist.
 */
export function metricsExtraScrapeConfigs(c: Cluster): ScrapeConfig[] {
  return autoscalingEnabled(c) ? autoscalingScrapeConfigs() : [];
}

/** Labels every discovered target carries: its Consul node (our node name) and the Consul service. */
const CONSUL_TARGET_RELABELLING = [
  { source_labels: ["__meta_consul_node"], target_label: "node" },
  { source_labels: ["__meta_consul_service"], target_label: "service" },
];

function consulSd(c: Cluster, rt: PrometheusRuntime, services: string[], tags?: string[]): Record<string, unknown>[] {
  return [
    {
      server: rt.consulAddress,
      // Set, so Prometheus does not ask the agent for it (/v1/agent/self).
      datacenter: c.servers.datacenter,
      services,
      ...(tags ? { tags } : {}),
      // Served by the local agent from any server, even while the leader is being elected.
      allow_stale: true,
      refresh_interval: "30s",
    },
  ];
}

/** The scrape jobs, in order; the ones whose targets cannot be read in this cluster's setup are left out. */
export function scrapeConfigs(c: Cluster, rt: PrometheusRuntime): ScrapeConfig[] {
  const jobs: ScrapeConfig[] = [
    {
      job_name: "prometheus",
      static_configs: [{ targets: [`${PROMETHEUS_LISTEN.host}:${PROMETHEUS_LISTEN.port}`] }],
    },
    {
      job_name: "haproxy",
      metrics_path: METRICS_PATH,
      consul_sd_configs: consulSd(c, rt, [DISCOVERED_SERVICES.haproxy]),
      relabel_configs: CONSUL_TARGET_RELABELLING,
    },
  ];
  if (relaysConsulMetrics(c)) {
    jobs.push({
      job_name: "consul-agent",
      metrics_path: CONSUL_METRICS_RELAY_PATH,
      consul_sd_configs: consulSd(c, rt, [DISCOVERED_SERVICES.haproxy]),
      relabel_configs: CONSUL_TARGET_RELABELLING,
    });
  }
  if (!c.nomad.tls) {
    jobs.push({
      job_name: "nomad-client",
      metrics_path: "/v1/metrics",
      params: { format: ["prometheus"] },
      consul_sd_configs: consulSd(c, rt, [DISCOVERED_SERVICES.nomadClient], [DISCOVERED_SERVICES.nomadClientTag]),
      relabel_configs: CONSUL_TARGET_RELABELLING,
    });
  }
  return [...jobs, ...metricsExtraScrapeConfigs(c)];
}

/** Which scrape jobs are left out here, and why (the README's Metrics section says the same). */
export function unscrapedTargets(c: Cluster): string[] {
  return [
    ...(c.metrics.enabled && c.consul.acl ? ["Consul agents: with consul.acl their metrics endpoint needs an agent:read token, which the metrics job does not hold"] : []),
    ...(c.nomad.tls ? ["Nomad clients: with nomad.tls their HTTP API is HTTPS with the cluster's CA, which the metrics job does not carry"] : []),
  ];
}

/** Seconds as a Prometheus duration (whole seconds, else milliseconds: no fractions there). */
function promDuration(seconds: number): string {
  return Number.isInteger(seconds) ? `${seconds}s` : `${Math.round(seconds * 1000)}ms`;
}

export function renderPrometheusConfig(c: Cluster, rt: PrometheusRuntime): string {
  const config = {
    global: {
      scrape_interval: c.metrics.prometheus.scrapeInterval,
      // A scrape may take at most the interval (Prometheus refuses a longer timeout); 10 s is its default.
      scrape_timeout: promDuration(Math.min(10, durationSeconds(c.metrics.prometheus.scrapeInterval))),
      evaluation_interval: c.metrics.prometheus.scrapeInterval,
      external_labels: { cluster: c.name },
    },
    scrape_configs: scrapeConfigs(c, rt),
  };
  const header = [
    `# Prometheus of cluster ${c.name} (metrics job). Rendered from the cluster description;`,
    `# delivered by the job's template (a change reloads Prometheus with SIGHUP).`,
    ...unscrapedTargets(c).map((u) => `# Not scraped: ${u}.`),
  ]
    .map((l) => l.replace(/[\r\n]/g, " "))
    .join("\n");
  return `${header}\n${stringify(config, { lineWidth: 0, aliasDuplicateObjects: false })}`;
}
