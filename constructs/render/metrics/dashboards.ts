/**
 * Grafana dashboards of the metrics job, generated from typed panel specs. Pure. Grafana
 * loads them from files (provisioning), read-only; grafana.ts renders the provisioning.
 *
 * Every query reads series our own scrape jobs produce (prometheus.ts):
 * - HAProxy's exporter (2.6): haproxy_backend_* per backend (= per route: /image… → api and
 *   api_uploads, the rest → web), haproxy_frontend_* of the public frontend, and
 *   haproxy_listener_* per bind (option socket-stats), which tells the node the floating
 *   IP's traffic arrives at;
 * - Nomad's client telemetry (publish_node_metrics, publish_allocation_metrics):
 *   nomad_client_host_* per node, nomad_client_allocs_* per allocation (Nomad's `job` label
 *   becomes `exported_job`, the scrape job's own `job` label winning);
 * - the worker's queue depth from the autoscaler's exporter (WORKER_QUEUE_DEPTH_METRIC);
 * - the Consul agents of the HAProxy nodes, relayed by HAProxy (consul-agent scrape job;
 *   names from Consul's telemetry reference, go-metrics' Prometheus sink: counters without
 *   a _total suffix, timers as summaries);
 * - the Nomad Autoscaler's own telemetry (v0.4.5, policyeval/base_worker.go:
 *   scale.invoke.success_count / error_count, labelled policy_id and target_name).
 */
import type { Cluster } from "../../description/schema";
import { QUEUE_METRICS, SCALED_JOBS, autoscalingEnabled, scalingBounds, scalingQuery, scalingTarget } from "../jobs/scaling";
import { relaysConsulMetrics } from "../jobs/haproxy-cfg";
import { runningAllocations } from "./alerts";

/** The Prometheus datasource's uid (grafana.ts provisions it under this uid). */
export const DATASOURCE_UID = "prometheus";
const DATASOURCE = { type: "prometheus", uid: DATASOURCE_UID } as const;

/**
 * Tasks waiting in the Celery queue, from the queue-depth exporter the autoscaler's side of
 * the metrics group runs (constructs/render/jobs/autoscaler.ts, names in scaling.ts).
 */
export const WORKER_QUEUE_DEPTH_METRIC = QUEUE_METRICS.messages;

/** Backends of the public frontend, i.e. the routes (haproxy-cfg.ts). */
export const ROUTE_BACKENDS = ["web", "api", "api_uploads"] as const;
const ROUTES = `proxy=~"${ROUTE_BACKENDS.join("|")}"`;

/** Which scrape job's series a query reads (the system test produces all but the autoscaler's). */
export type QuerySource = "haproxy" | "nomad-client" | "prometheus" | "autoscaler" | "consul-agent";

export interface PanelQuery {
  expr: string;
  legend: string;
  source: QuerySource;
}

export interface PanelSpec {
  title: string;
  /** What the panel means (shown in Grafana's panel info, and in docs/metrics.md). */
  description: string;
  unit: string;
  queries: PanelQuery[];
}

export interface GrafanaTarget {
  refId: string;
  datasource: typeof DATASOURCE;
  expr: string;
  legendFormat: string;
  range: true;
}

export interface GrafanaPanel {
  id: number;
  type: "timeseries";
  title: string;
  description: string;
  datasource: typeof DATASOURCE;
  gridPos: { x: number; y: number; w: number; h: number };
  targets: GrafanaTarget[];
  fieldConfig: { defaults: { unit: string; min?: number }; overrides: [] };
  options: { legend: { displayMode: "list"; placement: "bottom"; showLegend: true }; tooltip: { mode: "multi"; sort: "desc" } };
}

export interface GrafanaDashboard {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  editable: false;
  schemaVersion: number;
  version: number;
  refresh: string;
  time: { from: string; to: string };
  timezone: "browser";
  panels: GrafanaPanel[];
}

/** Rate window: Grafana's $__rate_interval (at least four scrape intervals). */
const W = "$__rate_interval";

/** The overview dashboard's panels, in display order. */
export function overviewPanels(c: Cluster): PanelSpec[] {
  return [...trafficPanels(), ...(relaysConsulMetrics(c) ? consulPanels() : [])];
}

/** The Consul agents of the HAProxy nodes (relayed by HAProxy): HAProxy's DNS discovery depends on them. */
export function consulPanels(): PanelSpec[] {
  return [
    {
      title: "Consul agents: RPCs to the servers",
      description: "Per node, requests the local Consul agent sends to the provider's servers per second, and those that failed. Failures mean the servers are unreachable: service lookups then come from the agent's cache (fail static) and go stale.",
      unit: "reqps",
      queries: [
        { expr: `sum by (node) (rate(consul_client_rpc[${W}]))`, legend: "{{node}}", source: "consul-agent" },
        { expr: `sum by (node) (rate(consul_client_rpc_failed[${W}]))`, legend: "{{node}} failed", source: "consul-agent" },
      ],
    },
    {
      title: "Consul agents: DNS queries and memory",
      description: "Per node, DNS queries the agent answers per second (HAProxy's service lookups among them) and the agent's allocated memory in MiB.",
      unit: "short",
      queries: [
        { expr: `sum by (node) (rate(consul_dns_domain_query_count[${W}]))`, legend: "{{node}} DNS queries/s", source: "consul-agent" },
        { expr: `max by (node) (consul_runtime_alloc_bytes) / 1048576`, legend: "{{node}} MiB allocated", source: "consul-agent" },
      ],
    },
  ];
}

/** The autoscaling dashboard's panels: per scaled job its policy's input and the counts, then the scaling actions. */
export function autoscalingPanels(c: Cluster): PanelSpec[] {
  if (!autoscalingEnabled(c)) return [];
  const perJob = SCALED_JOBS.flatMap((job): PanelSpec[] => {
    const target = scalingTarget(c, job);
    const { min, max } = scalingBounds(c, job);
    const value = scalingQuery(c, job);
    const inputSource: QuerySource = job === "worker" ? "autoscaler" : "haproxy";
    return [
      {
        title: `${job}: policy value against target`,
        description: `The query of ${job}'s scaling policy, evaluated here as the autoscaler evaluates it (load per instance), against its target (${target}). No line: the query has no data and the autoscaler holds the count (fail static).`,
        unit: "short",
        queries: [
          { expr: value, legend: "value", source: inputSource },
          { expr: `vector(${target})`, legend: "target", source: "prometheus" },
        ],
      },
      {
        title: `${job}: desired against running`,
        description: `Running allocations of ${job} (Nomad clients) and the count the target-value strategy asks for from them: ceil(running × value ÷ target) within scaling.min..max (${min}..${max}), before the policy's threshold and cooldown.`,
        unit: "short",
        queries: [
          { expr: runningAllocations(job), legend: "running", source: "nomad-client" },
          { expr: `clamp(ceil((${value}) * scalar(${runningAllocations(job)}) / ${target}), ${min}, ${max})`, legend: "desired", source: inputSource },
          { expr: `vector(${max})`, legend: "max", source: "prometheus" },
        ],
      },
    ];
  });
  return [
    ...perJob,
    {
      title: "Scaling actions",
      description: "Scaling actions the Nomad Autoscaler submitted to Nomad (each one a new job version), and those Nomad refused, per policy. Nothing before the first action.",
      unit: "short",
      queries: [
        { expr: `sum by (policy_id) (increase(nomad_autoscaler_scale_invoke_success_count[${W}]))`, legend: "submitted {{policy_id}}", source: "autoscaler" },
        { expr: `sum by (policy_id) (increase(nomad_autoscaler_scale_invoke_error_count[${W}]))`, legend: "failed {{policy_id}}", source: "autoscaler" },
      ],
    },
  ];
}

function trafficPanels(): PanelSpec[] {
  return [
    {
      title: "Requests per second, by route",
      description: "HTTP requests HAProxy sent to each backend, summed over every node's HAProxy: web serves the site, api the /image… reads, api_uploads the /image uploads (POST). \"all\" is every request the public frontend received, those answered by HAProxy itself included.",
      unit: "reqps",
      queries: [
        { expr: `sum by (proxy) (rate(haproxy_backend_http_requests_total{${ROUTES}}[${W}]))`, legend: "{{proxy}}", source: "haproxy" },
        { expr: `sum(rate(haproxy_frontend_http_requests_total{proxy="public"}[${W}]))`, legend: "all", source: "haproxy" },
      ],
    },
    {
      title: "5xx responses per second, by route",
      description: "Server errors per backend (from the instances, or HAProxy's 503 when no instance is UP) and, as \"all\", every 5xx the public frontend sent, HAProxy's own included.",
      unit: "reqps",
      queries: [
        { expr: `sum by (proxy) (rate(haproxy_backend_http_responses_total{${ROUTES},code="5xx"}[${W}]))`, legend: "{{proxy}}", source: "haproxy" },
        { expr: `sum(rate(haproxy_frontend_http_responses_total{proxy="public",code="5xx"}[${W}]))`, legend: "all", source: "haproxy" },
      ],
    },
    {
      title: "Response time, by route",
      description: "HAProxy's average total time of the last 1024 requests of each backend (queue, connect and response), the slowest node's HAProxy shown.",
      unit: "s",
      queries: [{ expr: `max by (proxy) (haproxy_backend_total_time_average_seconds{${ROUTES}})`, legend: "{{proxy}}", source: "haproxy" }],
    },
    {
      title: "Instances per job",
      description: "Running allocations of each Nomad job (one per allocation reporting usage), and the web/api instances HAProxy sees UP (the most any node's HAProxy sees).",
      unit: "short",
      queries: [
        { expr: `count by (exported_job) (count by (exported_job, alloc_id) (nomad_client_allocs_memory_usage))`, legend: "{{exported_job}} allocations", source: "nomad-client" },
        { expr: `max by (proxy) (haproxy_backend_active_servers{proxy=~"web|api"})`, legend: "{{proxy}} UP in HAProxy", source: "haproxy" },
      ],
    },
    {
      title: "Node CPU busy",
      description: "Per node, the average over its cores of the busy share of CPU time, as the Nomad client measures it.",
      unit: "percent",
      queries: [{ expr: `avg by (node) (nomad_client_host_cpu_total)`, legend: "{{node}}", source: "nomad-client" }],
    },
    {
      title: "Node memory used",
      description: "Per node, used memory over total memory, as the Nomad client measures it.",
      unit: "percentunit",
      queries: [{ expr: `max by (node) (nomad_client_host_memory_used / nomad_client_host_memory_total)`, legend: "{{node}}", source: "nomad-client" }],
    },
    {
      title: "Worker activity",
      description: "Tasks waiting in the Celery queue (the autoscaler's exporter), the worker allocations running, and their CPU use per node: a growing queue with busy workers means more workers are needed.",
      unit: "short",
      queries: [
        { expr: `sum(${WORKER_QUEUE_DEPTH_METRIC})`, legend: "tasks waiting", source: "autoscaler" },
        { expr: `count(count by (alloc_id) (nomad_client_allocs_memory_usage{exported_job="worker"}))`, legend: "workers running", source: "nomad-client" },
        { expr: `sum by (node) (nomad_client_allocs_cpu_total_percent{exported_job="worker"})`, legend: "worker CPU % on {{node}}", source: "nomad-client" },
      ],
    },
    {
      title: "Floating-IP holder",
      description: "Connections per second arriving on each node's floating-IP bind (HAProxy listener \"floating\"): the node shown is the one keepalived gave the floating IP to. Every eligible node binds the address (ip_nonlocal_bind), so only traffic tells the holder; with no traffic the panel is empty.",
      unit: "cps",
      queries: [{ expr: `sum by (node) (rate(haproxy_listener_sessions_total{proxy="public",listener="floating"}[${W}]))`, legend: "{{node}}", source: "haproxy" }],
    },
    {
      title: "Scrape targets up",
      description: "Targets Prometheus scraped successfully, per scrape job (haproxy, consul-agent, nomad-client, prometheus, and the autoscaling tasks): a drop means a node, an agent or HAProxy stopped answering.",
      unit: "short",
      queries: [{ expr: `sum by (job) (up)`, legend: "{{job}}", source: "prometheus" }],
    },
  ];
}

export const OVERVIEW_UID = "cluster-overview";
export const AUTOSCALING_UID = "cluster-autoscaling";

export function overviewDashboard(c: Cluster): GrafanaDashboard {
  return dashboard(c, OVERVIEW_UID, `Cluster ${c.name}`, `Traffic, instances, nodes, the floating IP and the Consul agents of cluster ${c.name} (provisioned from the cluster description; edits in Grafana are not kept).`, overviewPanels(c));
}

export function autoscalingDashboard(c: Cluster): GrafanaDashboard {
  return dashboard(c, AUTOSCALING_UID, `Autoscaling ${c.name}`, `The Nomad Autoscaler's inputs and actions for web, api and worker of cluster ${c.name} (provisioned from the cluster description).`, autoscalingPanels(c));
}

function dashboard(c: Cluster, uid: string, title: string, description: string, specs: PanelSpec[]): GrafanaDashboard {
  return {
    uid,
    title,
    description,
    tags: ["cluster", c.name],
    editable: false,
    schemaVersion: 39,
    version: 1,
    refresh: "30s",
    time: { from: "now-3h", to: "now" },
    timezone: "browser",
    panels: specs.map((p, i) => ({
      id: i + 1,
      type: "timeseries",
      title: p.title,
      description: p.description,
      datasource: DATASOURCE,
      // Two panels per row of Grafana's 24 columns.
      gridPos: { x: (i % 2) * 12, y: Math.floor(i / 2) * 8, w: 12, h: 8 },
      targets: p.queries.map((q, j) => ({ refId: String.fromCharCode(65 + j), datasource: DATASOURCE, expr: q.expr, legendFormat: q.legend, range: true })),
      fieldConfig: { defaults: { unit: p.unit, ...(p.unit.startsWith("percent") || p.unit === "short" ? { min: 0 } : {}) }, overrides: [] },
      options: { legend: { displayMode: "list", placement: "bottom", showLegend: true }, tooltip: { mode: "multi", sort: "desc" } },
    })),
  };
}

/** Every dashboard, by file name under Grafana's dashboards directory. */
export function renderDashboards(c: Cluster): Record<string, string> {
  const boards = [overviewDashboard(c), ...(autoscalingEnabled(c) ? [autoscalingDashboard(c)] : [])];
  return Object.fromEntries(boards.map((d) => [`${d.uid}.json`, `${JSON.stringify(d, null, 2)}\n`]));
}
