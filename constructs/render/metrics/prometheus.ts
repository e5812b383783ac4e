/**
 * prometheus.yml of the metrics job. Pure: description and runtime in, YAML text out. The
 * same function renders the file Nomad runs (nomadPrometheusRuntime) and the config of the
 * system tests (same runtime, or their own rule file path).
 *
 * Targets come from the description, not from Consul's catalog: the catalog is writable by
 * anyone who reaches a Consul agent of the shared datacenter (no ACLs on this provider), so
 * one fake `haproxy` registration would feed the scaling queries (issue 20). A node added to
 * or removed from the description changes this file (a SIGHUP, no restart):
 * - haproxy: HAProxy's Prometheus exporter on the stats listener of every floating-IP-
 *   eligible node (where the HAProxy system job runs), at its overlay address;
 * - consul-agent: the Consul agent of each of those nodes, relayed by the same listener at
 *   CONSUL_METRICS_RELAY_PATH (Consul's HTTP API is on loopback only); not with consul.acl;
 * - nomad-client: every node's Nomad client, /v1/metrics?format=prometheus on its HTTP API
 *   (overlay address); not with nomad.tls. Scraped directly, not relayed by HAProxy as
 *   Consul's is: the client's HTTP API must stay on the overlay anyway (the client of the
 *   node a migrated allocation moves to copies its data from there, GET
 *   /v1/client/allocation/<id>/snapshot; the autoscaler talks to it), so a relay would
 *   close nothing, and would miss the nodes without HAProxy;
 * - prometheus (itself) and the autoscaling tasks, on loopback.
 * Every node's target carries `node` (the description's node name).
 * The application's services (web, api, worker) expose no metrics endpoint (app contract);
 * their traffic is measured at HAProxy, their instances by Nomad.
 */
import { stringify } from "yaml";
import type { Cluster } from "../../description/schema";
import { NOMAD_HTTP_PORT, durationSeconds } from "../agents";
import { autoscalingEnabled } from "../jobs/scaling";
import { autoscalingScrapeConfigs } from "../jobs/autoscaler";
import { CONSUL_METRICS_RELAY_PATH, METRICS_PATH, relaysConsulMetrics } from "../jobs/haproxy-cfg";
import { ALERTMANAGER_LISTEN, alertingEnabled } from "./alertmanager";

/** Where Prometheus listens: loopback only (it has no access control); Grafana and the autoscaler run in the same group. */
export const PROMETHEUS_LISTEN = { host: "127.0.0.1", port: 9090 } as const;
export const PROMETHEUS_URL = `http://${PROMETHEUS_LISTEN.host}:${PROMETHEUS_LISTEN.port}`;

export interface PrometheusRuntime {
  /** Path of the alert rule file as Prometheus reads it (the task's template writes it there). */
  readonly ruleFile: string;
}

export const PROMETHEUS_RULE_FILE = "/local/alert-rules.yml";

export function nomadPrometheusRuntime(): PrometheusRuntime {
  return { ruleFile: PROMETHEUS_RULE_FILE };
}

/** One `scrape_configs` entry (the subset of Prometheus' schema used here). */
export interface ScrapeConfig {
  job_name: string;
  metrics_path?: string;
  params?: Record<string, string[]>;
  scheme?: "http" | "https";
  static_configs?: { targets: string[]; labels?: Record<string, string> }[];
}

/**
 * Extra scrape jobs of tasks other helpers add to the metrics group (the autoscaler's
 * queue-depth exporter: a loopback target). Empty until those tasks exist.
 */
export function metricsExtraScrapeConfigs(c: Cluster): ScrapeConfig[] {
  return autoscalingEnabled(c) ? autoscalingScrapeConfigs() : [];
}

/** Nodes running HAProxy: the system job's constraint (floating-IP-eligible nodes). */
export function haproxyNodes(c: Cluster): { name: string; overlayAddress: string }[] {
  return c.nodes.filter((n) => n.floatingIp.eligible).map((n) => ({ name: n.name, overlayAddress: n.overlayAddress }));
}

/** One static target per node, labelled with the node's name. */
function perNode(nodes: { name: string; overlayAddress: string }[], port: number): { targets: string[]; labels: Record<string, string> }[] {
  return nodes.map((n) => ({ targets: [`${n.overlayAddress}:${port}`], labels: { node: n.name } }));
}

/** The scrape jobs, in order; the ones whose targets cannot be read in this cluster's setup are left out. */
export function scrapeConfigs(c: Cluster): ScrapeConfig[] {
  const statsPort = c.app.haproxy.statsPort;
  const jobs: ScrapeConfig[] = [
    {
      job_name: "prometheus",
      static_configs: [{ targets: [`${PROMETHEUS_LISTEN.host}:${PROMETHEUS_LISTEN.port}`] }],
    },
    {
      job_name: "haproxy",
      metrics_path: METRICS_PATH,
      static_configs: perNode(haproxyNodes(c), statsPort),
    },
  ];
  if (relaysConsulMetrics(c)) {
    jobs.push({
      job_name: "consul-agent",
      metrics_path: CONSUL_METRICS_RELAY_PATH,
      static_configs: perNode(haproxyNodes(c), statsPort),
    });
  }
  if (!c.nomad.tls) {
    jobs.push({
      job_name: "nomad-client",
      metrics_path: "/v1/metrics",
      params: { format: ["prometheus"] },
      static_configs: perNode(c.nodes, NOMAD_HTTP_PORT),
    });
  }
  return [...jobs, ...metricsExtraScrapeConfigs(c)];
}

/** Which scrape jobs are left out here, and why (docs/metrics.md says the same). */
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
    // Always loaded: without a receiver the alerts still show on Prometheus' /alerts page.
    rule_files: [rt.ruleFile],
    ...(alertingEnabled(c)
      ? { alerting: { alertmanagers: [{ static_configs: [{ targets: [`${ALERTMANAGER_LISTEN.host}:${ALERTMANAGER_LISTEN.port}`] }] }] } }
      : {}),
    scrape_configs: scrapeConfigs(c),
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
