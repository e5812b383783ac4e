/**
 * Autoscaling of web, api and worker by the Nomad Autoscaler (issue 15, settled in issue 23).
 * Pure: the description in, the group's scaling `policy` block, its PromQL queries and the
 * jobspec's count variable out.
 *
 * How the Nomad Autoscaler (hashicorp/nomad-autoscaler v0.4.5, the pinned image; run as
 * itself in __tests__/system/autoscaling.test.ts) turns a query into a count, read in its
 * source:
 * - target-value (plugins/builtin/strategy/target-value/plugin/plugin.go): it takes the
 *   LAST value of the query, factor = value / target, no action while factor is within
 *   1 ± threshold; else new count = ceil(count × factor), at most `max_scale_down` below
 *   the count; then capped into the policy's min..max. `count` is the number of RUNNING
 *   allocations (plugins/builtin/target/nomad/plugin/state.go: status.Running). So each
 *   query returns the load PER RUNNING INSTANCE: count × (total / instances) / target ≈
 *   total / target.
 * - fail static: a query error (Prometheus down, timeout) fails the check; with one check
 *   and `on_error = "fail"` the whole evaluation fails and nothing is scaled
 *   (policyeval/base_worker.go: `case sdk.ScalingPolicyOnErrorFail: return err`). An EMPTY
 *   result (no series) is "no metrics available": no scaling. A NaN (0/0) is an error. Each
 *   query therefore returns no series (never 0) when its inputs are missing.
 * - BEFORE any query, base_worker.go scales a count below the policy's `min` up to `min`
 *   (and one above `max` down to `max`). The count being the running allocations, a dip
 *   (a drain, a restart back-off) below min would force a scale with Prometheus down, and
 *   from 5 instances to min at that. So the Nomad scaling block says `min = 0` (nothing
 *   to check before the query: see `nomadScalingMin`) and the description's min is a floor
 *   inside each query instead (`clamp_min(load, min × target)`): it scales back to min only
 *   when Prometheus answers. `max` stays in the block: running above it is no dip.
 *
 * Settling (issue 23: the worker flapped, web and api flipped at the ceil boundary):
 * - the load is smoothed over the query window, and scale-DOWN uses the highest smoothed
 *   load of the scale-down window (`max_over_time` of a subquery), so a lull shorter than
 *   the window (Celery's prefetch hiding the backlog: ready 0 while workers are busy) never
 *   scales down; scale-up uses the current smoothed load (the max includes it);
 * - `threshold` SCALE_THRESHOLD instead of the default 0.01: from n instances the load
 *   must exceed (1 + threshold) × n × target to scale up, and must fall to n − 1 targets
 *   to go back: a dead band of 20 % at every boundary (40 rps at a target of 20 stays at
 *   2 up to 48 rps, and 3 stays 3 until 40 over the whole window);
 * - `max_scale_down` MAX_SCALE_DOWN: one instance per action (each followed by the
 *   cooldown), so a wrong low reading costs one instance, not the job.
 */
import type { Cluster } from "../../description/schema";
import { durationToSeconds } from "../../description/schema";
import { str } from "../hcl";

/** Jobs whose instance count comes from the description (haproxy is a system job: one per eligible node). */
export const SCALED_JOBS = ["web", "api", "worker"] as const;
export type ScaledJob = (typeof SCALED_JOBS)[number];

/** Autoscaler bounds: the description's, or min = count, max = 2 × count (schema default). */
export function scalingBounds(c: Cluster, job: ScaledJob): { min: number; max: number } {
  const s = c.app[job];
  return s.scaling ?? { min: s.count, max: 2 * s.count };
}

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
 * The total load of a job now, smoothed over the query window (one series, no labels):
 * - web: HTTP requests per second at HAProxy's web backend, summed over every HAProxy (one
 *   per floating-IP-eligible node);
 * - api: requests in flight (on an instance or queued in HAProxy) in the api and
 *   api_uploads backends, averaged over the window, summed over every HAProxy;
 * - worker: tasks READY in Celery's queue (passive queue.declare by the queue exporter:
 *   the only depth the shared broker gives a team; its management API with the unacked
 *   count is the provider's, not offered, see autoscaler.ts), averaged over the window.
 */
export function loadQuery(c: Cluster, job: ScaledJob): string {
  const w = `${queryWindowSeconds(c)}s`;
  switch (job) {
    case "web":
      return `sum(rate(${HAPROXY_METRICS.requestsTotal}{proxy="web"}[${w}]))`;
    case "api":
      return `sum(avg_over_time(${HAPROXY_METRICS.currentSessions}{proxy=~"${haproxyBackends("api").join("|")}"}[${w}]))`;
    case "worker":
      return `sum(avg_over_time(${QUEUE_METRICS.messages}{queue="${CELERY_QUEUE}"}[${w}]))`;
  }
}

/** Instances the load is shared by: UP in HAProxy (web, api), consumers of the queue (worker); at least 1. */
function instancesQuery(job: ScaledJob): string {
  return job === "worker" ? `clamp_min(sum(${QUEUE_METRICS.consumers}{queue="${CELERY_QUEUE}"}), 1)` : upInstances(job);
}

/** Seconds of the scale-down window (description: metrics.autoscaling.scaleDownWindow). */
export function scaleDownWindowSeconds(c: Cluster): number {
  return durationToSeconds(c.metrics.autoscaling.scaleDownWindow);
}

/** Dead band of the target-value strategy (its default 0.01 flips at every ceil boundary). */
export const SCALE_THRESHOLD = 0.2;
/** At most this many instances fewer per scaling action. */
export const MAX_SCALE_DOWN = 1;

/**
 * The PromQL query of a job's policy: one series, the load per running instance, namely
 * max(smoothed load over the scale-down window, min × target) / instances, and only while
 * the load has a value NOW (`and on() load`: the window's max alone would keep answering
 * from stale samples for a whole window after the inputs are gone). The subquery is
 * evaluated at the scrape interval. At zero traffic it returns min × target / instances
 * (count → min); with its inputs missing, no series (fail static); never a division by 0.
 */
export function scalingQuery(c: Cluster, job: ScaledJob): string {
  const load = loadQuery(c, job);
  const held = `max_over_time((${load})[${scaleDownWindowSeconds(c)}s:${durationToSeconds(c.metrics.prometheus.scrapeInterval)}s])`;
  const floor = scalingBounds(c, job).min * scalingTarget(c, job);
  const q = `clamp_min(${held} and on() ${load}, ${floor}) / ${instancesQuery(job)}`;
  return job === "worker" ? q : `${q}${EVERY_HAPROXY_SCRAPED}`;
}

/**
 * The `min` of the Nomad scaling block when the autoscaler owns the count: 0, so that the
 * autoscaler's min check (which runs before any query, on the RUNNING count) never fires;
 * the description's min is the floor inside the query (see the top of this file). Without
 * the autoscaler the block keeps the description's bounds (documentation for an operator).
 */
export function nomadScalingMin(c: Cluster, job: ScaledJob): number {
  return autoscalingEnabled(c) ? 0 : scalingBounds(c, job).min;
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
${i}    # Scale down by one at most; no action within ±${SCALE_THRESHOLD * 100} % of the target (no flip at a ceil boundary).
${i}    strategy ${str(STRATEGY_NAME)} {
${i}      target         = ${scalingTarget(c, job)}
${i}      threshold      = ${SCALE_THRESHOLD}
${i}      max_scale_down = ${MAX_SCALE_DOWN}
${i}    }
${i}  }
${i}}`;
}

/** Where the script that applies a deliberate count change lands (relative to rendered/). */
export const SET_COUNT_SCRIPT = "jobs/set-count.sh";

/**
 * The script a release runs (terraform_data local-exec, constructs/kept-count.ts) to apply
 * a deliberate change to a job whose count Nomad keeps (preserve_counts):
 *   set-count.sh JOB GROUP MIN MAX [COUNT]
 * With COUNT: the group is set to COUNT (kept within MIN..MAX). Without: the count Nomad has
 * now is moved into MIN..MAX. Nothing is sent when it is already that count, or when the job
 * does not exist (404: nothing to change; the next release registers it with its count).
 * Nomad's HTTP API, as documented: GET /v1/job/:job/scale (TaskGroups.<group>.Desired),
 * POST /v1/job/:job/scale {Count, Target: {Group}, Message}. Address, region, token and TLS
 * from the environment as the Nomad CLI and the provider read them (NOMAD_ADDR,
 * NOMAD_REGION, NOMAD_NAMESPACE, NOMAD_TOKEN, NOMAD_CACERT, NOMAD_CAPATH,
 * NOMAD_CLIENT_CERT, NOMAD_CLIENT_KEY, NOMAD_SKIP_VERIFY); the token travels through
 * curl's standard input, never on a command line.
 */
export function renderSetCountScript(): string {
  return `#!/usr/bin/env bash
# Applies a deliberate count change to a Nomad job whose count Nomad keeps at each release
# (nomad_job preserve_counts). Run by the jobs stack (terraform_data.<job>_count and
# <job>_scaling_bounds) after the job's registration. Usage: set-count.sh JOB GROUP MIN MAX [COUNT]
set -euo pipefail
job=$1 group=$2 min=$3 max=$4 wanted=\${5:-}
for n in "$min" "$max" \${wanted:+"$wanted"}; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "set-count: not a count: $n" >&2; exit 2; }
done
address=\${NOMAD_ADDR:-http://127.0.0.1:4646}
address=\${address%/}
query=""
[ -z "\${NOMAD_REGION:-}" ] || query="region=$NOMAD_REGION"
[ -z "\${NOMAD_NAMESPACE:-}" ] || query="\${query:+$query&}namespace=$NOMAD_NAMESPACE"
body=$(mktemp)
trap 'rm -f "$body"' EXIT

# curl to Nomad with the CLI's TLS settings; the token through stdin (never in ps or a log).
nomad_api() {
  local args=(--silent --show-error --max-time 30 --output "$body" --write-out '%{http_code}' --config -)
  [ -z "\${NOMAD_CACERT:-}" ] || args+=(--cacert "$NOMAD_CACERT")
  [ -z "\${NOMAD_CAPATH:-}" ] || args+=(--capath "$NOMAD_CAPATH")
  [ -z "\${NOMAD_CLIENT_CERT:-}" ] || args+=(--cert "$NOMAD_CLIENT_CERT")
  [ -z "\${NOMAD_CLIENT_KEY:-}" ] || args+=(--key "$NOMAD_CLIENT_KEY")
  case \${NOMAD_SKIP_VERIFY:-} in 1|true) args+=(--insecure) ;; esac
  printf 'header = "X-Nomad-Token: %s"\\n' "\${NOMAD_TOKEN:-}" | curl "\${args[@]}" "$@"
}

code=$(nomad_api "$address/v1/job/$job/scale\${query:+?$query}") || { echo "set-count: cannot reach Nomad at $address" >&2; exit 1; }
case $code in
  200) ;;
  404) echo "set-count: job $job is not registered: nothing to change"; exit 0 ;;
  *) echo "set-count: Nomad at $address answered HTTP $code for the scale status of job $job: $(head -c 300 "$body")" >&2; exit 1 ;;
esac
current=$(node -e 'const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const g = (s.TaskGroups || {})[process.argv[2]]; if (!g) process.exit(3); console.log(g.Desired)' "$body" "$group") ||
  { echo "set-count: job $job has no group $group in Nomad's scale status" >&2; exit 1; }
target=\${wanted:-$current}
(( target >= min )) || target=$min
(( target <= max )) || target=$max
if (( target == current )); then
  echo "set-count: $job/$group already at $current: nothing sent"
  exit 0
fi
if [ -n "$wanted" ]; then reason="release: the description's count $wanted"; else reason="release: the description's bounds $min..$max"; fi
payload=$(printf '{"Count": %d, "Target": {"Group": "%s"}, "Message": "%s"}' "$target" "$group" "$reason")
code=$(nomad_api -X POST --data-binary "$payload" "$address/v1/job/$job/scale\${query:+?$query}") || { echo "set-count: cannot reach Nomad at $address" >&2; exit 1; }
[ "$code" = 200 ] || { echo "set-count: Nomad refused to scale $job/$group to $target (HTTP $code): $(head -c 300 "$body")" >&2; exit 1; }
echo "set-count: $job/$group $current -> $target ($reason)"
`;
}
