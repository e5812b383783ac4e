/**
 * Autoscaling of web, api and worker by the Nomad Autoscaler (issue 15). Pure: the
 * description in, the group's scaling `policy` block, its PromQL queries and the jobspec's
 * count variable out.
 *
 * How the Nomad Autoscaler (hashicorp/nomad-autoscaler v0.4.5, the pinned image) turns a
 * query into a count, read in its source:
 * - target-value (plugins/builtin/strategy/target-value/plugin/plugin.go): it takes the
 *   LAST value of the query, factor = value / target, new count = ceil(count × factor),
 *   no action while factor is within 1 ± threshold (0.01); then capped into the policy's
 *   min..max (policyeval/base_worker.go, CapCount). So each query here returns the load
 *   PER RUNNING INSTANCE: count × (total / instances) / target ≈ total / target.
 * - fail static: a query error (Prometheus down, timeout) fails the check; with one check
 *   and `on_error = "fail"` the whole evaluation fails and nothing is scaled
 *   (base_worker.go: `case sdk.ScalingPolicyOnErrorFail: return err`). An EMPTY result
 *   (no series: HAProxy or the exporter not scraped, series gone stale) is "no metrics
 *   available" → direction none, no scaling (base_worker.go, checkHandler.start). A NaN
 *   (0/0) is an error (prometheus plugin parseSample: "query result value is
 *   not-a-number"). The only scaling without data is back INTO min..max when the count is
 *   outside them (base_worker.go, before the checks run). Each query therefore returns no
 *   series (never 0) when its inputs are missing, and never divides by zero.
 */
import type { Cluster } from "../../description/schema";
import { durationToSeconds } from "../../description/schema";
import { str } from "../hcl";
import { scalingBounds, type ScaledJob } from "./common";

export const SCALED_JOBS = ["web", "api", "worker"] as const satisfies readonly ScaledJob[];

/** Whether the jobspecs carry scaling policies (and the count follows the autoscaler). */
export function autoscalingEnabled(c: Cluster): boolean {
  return c.metrics.enabled && c.metrics.autoscaling.enabled;
}

/**
 * HAProxy's native Prometheus exporter (`http-request use-service prometheus-exporter`,
 * HAProxy 2.0+; names as HAProxy 2.6 serves them, checked against the real haproxy in
 * __tests__/system): backend metrics carry the backend's name in the `proxy` label.
 */
export const HAPROXY_METRICS = {
  requestsTotal: "haproxy_backend_http_requests_total",
  /** Streams attached to the backend: on a server or waiting in the backend's queue. */
  currentSessions: "haproxy_backend_current_sessions",
  activeServers: "haproxy_backend_active_servers",
} as const;

/** The queue exporter's metrics (queue-exporter.py), labelled queue="celery". */
export const QUEUE_METRICS = {
  messages: "celery_queue_messages",
  consumers: "celery_queue_consumers",
  up: "celery_queue_broker_up",
} as const;

/** Celery's default queue, where the api sends every task (app-contract.md). */
export const CELERY_QUEUE = "celery";

/**
 * Window of the rates and averages: at least 1 minute and 4 scrapes (a rate needs two
 * samples in the window; 4 leave room for a missed scrape).
 */
export function queryWindowSeconds(c: Cluster): number {
  return Math.max(60, 4 * durationToSeconds(c.metrics.prometheus.scrapeInterval));
}

/** The HAProxy backends of a job (api: reads and uploads, see haproxy-cfg.ts). */
export function haproxyBackends(job: "web" | "api"): string[] {
  return job === "web" ? ["web"] : ["api", "api_uploads"];
}

/**
 * Instances HAProxy sees UP in a backend: the largest over the HAProxies (each one checks
 * every instance; summing would count them once per HAProxy), at least 1 (the divisor).
 * No series when no HAProxy is scraped, so the quotient has none either.
 */
function upInstances(backend: string): string {
  return `clamp_min(max(${HAPROXY_METRICS.activeServers}{proxy="${backend}"}), 1)`;
}

/**
 * Fail static on a partial loss too: the web and api loads are sums over every HAProxy, so
 * one HAProxy still registered in Consul but not scraped (up == 0: its node's overlay cut,
 * Prometheus timing out) would make the load look smaller and scale the job down. With any
 * HAProxy target down the query returns no series ("no data": no action). A HAProxy gone
 * from Consul is gone from the floating IP too, and its traffic with it.
 * (`haproxy` is the scrape job of rendered/metrics/prometheus.yml.)
 */
const EVERY_HAPROXY_SCRAPED = ` unless on() (up{job="haproxy"} == 0)`;

/**
 * The PromQL query of a job's policy: one series, the load per running instance.
 * - web: HTTP requests per second at HAProxy's web backend, summed over every HAProxy (one
 *   per floating-IP-eligible node), divided by the instances UP.
 * - api: requests in flight (on an instance or queued in HAProxy) in the api and
 *   api_uploads backends, averaged over the window, summed over every HAProxy, divided by
 *   the instances UP in the api backend.
 * - worker: tasks ready in Celery's queue (passive queue.declare by the queue exporter),
 *   divided by the queue's consumers (one per worker instance), at least 1.
 * At zero traffic each returns 0 (scale down towards min); with its inputs missing, no
 * series (fail static).
 */
export function scalingQuery(c: Cluster, job: ScaledJob): string {
  const w = `${queryWindowSeconds(c)}s`;
  switch (job) {
    case "web":
      return `sum(rate(${HAPROXY_METRICS.requestsTotal}{proxy="web"}[${w}])) / ${upInstances("web")}${EVERY_HAPROXY_SCRAPED}`;
    case "api":
      return `sum(avg_over_time(${HAPROXY_METRICS.currentSessions}{proxy=~"${haproxyBackends("api").join("|")}"}[${w}])) / ${upInstances("api")}${EVERY_HAPROXY_SCRAPED}`;
    case "worker":
      return `sum(${QUEUE_METRICS.messages}{queue="${CELERY_QUEUE}"}) / clamp_min(sum(${QUEUE_METRICS.consumers}{queue="${CELERY_QUEUE}"}), 1)`;
  }
}

/** The description's target for a job (per instance). */
export function scalingTarget(c: Cluster, job: ScaledJob): number {
  const a = c.metrics.autoscaling;
  return job === "web" ? a.webRequestsPerSecond : job === "api" ? a.apiRequestsInFlight : a.workerQueuedTasks;
}

const TARGET_WHAT: Record<ScaledJob, string> = {
  web: "HTTP requests per second per instance (HAProxy's web backend)",
  api: "requests in flight per instance (HAProxy's api + api_uploads backends, queued included)",
  worker: "tasks waiting in Celery's queue per worker instance",
};

/** Name of the APM plugin in the autoscaler's config (autoscaler.ts) that the checks use. */
export const APM_NAME = "prometheus";
export const STRATEGY_NAME = "target-value";

/**
 * The `policy` block of a group's `scaling` block (opaque to Nomad, read by the Nomad
 * Autoscaler's Nomad policy source; keys as in its policy documentation and parser,
 * policy/nomad/parser.go v0.4.5).
 */
export function scalingPolicyBlock(c: Cluster, job: ScaledJob, indent: string): string {
  const a = c.metrics.autoscaling;
  const i = indent;
  return `${i}# Read by the Nomad Autoscaler (job "metrics"). Fail static: a failing query fails the
${i}# evaluation (on_error = "fail") and an empty one is "no data": the count stays as it is.
${i}policy {
${i}  cooldown            = ${str(a.cooldown)}
${i}  evaluation_interval = ${str(a.evaluationInterval)}

${i}  check "${job}_load" {
${i}    source       = ${str(APM_NAME)}
${i}    query        = ${str(scalingQuery(c, job))}
${i}    query_window = ${str(`${queryWindowSeconds(c)}s`)}
${i}    on_error     = "fail"

${i}    # Target: ${TARGET_WHAT[job]}.
${i}    strategy ${str(STRATEGY_NAME)} {
${i}      target = ${scalingTarget(c, job)}
${i}    }
${i}  }
${i}}`;
}

/**
 * HCL2 variable of the jobspec holding a group's count. With autoscaling the count is
 * `var.<job>_count`: Terraform passes the count running in Nomad (nomad_job's hcl2.vars,
 * see constructs/kept-count.ts), so a release keeps the autoscaler's count; the default is
 * the description's count (first deploy, or `nomad job run` by hand).
 */
export function countVariableName(job: ScaledJob): string {
  return `${job}_count`;
}

export function countVariableBlock(c: Cluster, job: ScaledJob): string {
  const { min, max } = scalingBounds(c, job);
  return `# The count running in Nomad (set by the Nomad Autoscaler), passed by Terraform at each
# release within ${min}..${max}; this default (the description's count) only on the first deploy.
variable ${str(countVariableName(job))} {
  type    = number
  default = ${c.app[job].count}
}`;
}
