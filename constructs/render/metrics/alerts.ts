/**
 * Prometheus alert rules of the metrics job. Pure: the description in, typed rules and the
 * rule file's YAML out. They make visible what "fail static" hides: with a query without
 * data, a target down or the broker unreachable the autoscaler silently holds the count
 * (scaling.ts), so nobody would otherwise notice until the load outgrows it.
 *
 * Every rule reads series our own scrape jobs produce (prometheus.ts) and is tested with
 * the real `promtool test rules` (__tests__/metrics-alert-rules-promtool.test.ts): each
 * fires on the failure it names and none fires on a healthy replay.
 *
 * Delivered to the team by Alertmanager (alertmanager.ts) when metrics.alerting names a
 * receiver; without one the rules still show on Prometheus' alert page (through the SSH
 * tunnel) and nothing is sent.
 */
import { stringify } from "yaml";
import type { Cluster } from "../../description/schema";
import { durationToSeconds } from "../../description/schema";
import { QUEUE_METRICS, SCALED_JOBS, autoscalingEnabled, scalingBounds, scalingQuery, type ScaledJob } from "../jobs/scaling";

export interface AlertRule {
  alert: string;
  expr: string;
  /** How long the condition must hold (Prometheus duration). */
  for: string;
  labels: { severity: "warning" | "critical"; scaled_job?: ScaledJob };
  annotations: { summary: string; description: string };
}

/** The 5xx surge: this share of the public frontend's responses, and at least this rate (a handful of errors at night is no surge). */
export const FIVE_XX_SURGE = { ratio: 0.05, minPerSecond: 0.2, window: "5m", for: "5m" } as const;
/** The TSDB's size (blocks and write-ahead log) over its size cap (--storage.tsdb.retention.size). */
export const TSDB_NEAR_CAP_RATIO = 0.9;
/** A job at its scaling.max this long is "pinned": the autoscaler wants more than it may give. */
export const PINNED_AT_MAX_FOR = "15m";

/**
 * How long a scaling query may return nothing before it is an alert: a fresh Prometheus
 * needs a window's worth of samples, and a target's scrape may fail now and then.
 */
function noDataFor(c: Cluster): string {
  return `${Math.max(300, 3 * durationToSeconds(c.metrics.autoscaling.evaluationInterval))}s`;
}

/** Running allocations of a job, as the Nomad clients report them (publish_allocation_metrics). */
export function runningAllocations(job: ScaledJob): string {
  return `count(count by (alloc_id) (nomad_client_allocs_memory_usage{exported_job="${job}"}))`;
}

/** Jobs the autoscaler may move (a range to move in: max above min). */
function scaledJobs(c: Cluster): ScaledJob[] {
  if (!autoscalingEnabled(c)) return [];
  return SCALED_JOBS.filter((j) => scalingBounds(c, j).max > scalingBounds(c, j).min);
}

export function alertRules(c: Cluster): AlertRule[] {
  const rules: AlertRule[] = [];
  for (const job of scaledJobs(c)) {
    rules.push({
      alert: "ScalingQueryNoData",
      expr: `absent(${scalingQuery(c, job)})`,
      for: noDataFor(c),
      labels: { severity: "critical", scaled_job: job },
      annotations: {
        summary: `${job}: its scaling query returns no data, so the autoscaler holds the count`,
        description: `The Nomad Autoscaler takes no action for ${job} while its query has no result (fail static): a HAProxy or the queue exporter is not scraped, or a target is down. The count stays where it is whatever the load does. See the ScrapeTargetDown and BrokerUnreachable alerts for the cause.`,
      },
    });
  }
  for (const job of scaledJobs(c)) {
    const { max } = scalingBounds(c, job);
    rules.push({
      alert: "ScaledJobPinnedAtMax",
      expr: `${runningAllocations(job)} >= ${max}`,
      for: PINNED_AT_MAX_FOR,
      labels: { severity: "warning", scaled_job: job },
      annotations: {
        summary: `${job} runs at its scaling.max (${max}) for ${PINNED_AT_MAX_FOR}`,
        description: `The autoscaler cannot add ${job} instances beyond app.${job}.scaling.max (${max}). If the load stays, raise the max (and check the nodes have room) or expect slower answers.`,
      },
    });
  }
  rules.push({
    alert: "ScrapeTargetDown",
    expr: `up == 0`,
    for: "5m",
    labels: { severity: "critical" },
    annotations: {
      summary: "{{ $labels.job }} on {{ $labels.node }} ({{ $labels.instance }}) is not scraped",
      description: "Prometheus cannot scrape this target. A HAProxy down makes the web and api scaling queries return nothing (fail static); the queue exporter or the autoscaler down stops worker scaling; an agent down means that node's metrics are missing.",
    },
  });
  if (autoscalingEnabled(c)) {
    rules.push({
      alert: "BrokerUnreachable",
      expr: `${QUEUE_METRICS.up} == 0`,
      for: "5m",
      labels: { severity: "critical" },
      annotations: {
        summary: "The queue exporter cannot reach the broker",
        description: "The passive queue.declare on the team's vhost fails: the worker's scaling query has no data (the count is held) and, most likely, the api cannot queue tasks nor the workers take them. Check app.broker and the broker's password (rabbitmq_password).",
      },
    });
  }
  rules.push({
    alert: "PrometheusTsdbNearSizeCap",
    expr: `(prometheus_tsdb_storage_blocks_bytes + prometheus_tsdb_wal_storage_size_bytes) / (prometheus_tsdb_retention_limit_bytes > 0) > ${TSDB_NEAR_CAP_RATIO}`,
    for: "30m",
    labels: { severity: "warning" },
    annotations: {
      summary: `Prometheus' storage is above ${TSDB_NEAR_CAP_RATIO * 100}% of its size cap`,
      description: `At the cap Prometheus deletes its oldest blocks: the history kept is shorter than metrics.prometheus.retentionDays (${c.metrics.prometheus.retentionDays} d). Raise metrics.prometheus.diskMiB (${c.metrics.prometheus.diskMiB} MiB) or accept the shorter history.`,
    },
  });
  const w = FIVE_XX_SURGE.window;
  const errors = `sum(rate(haproxy_frontend_http_responses_total{proxy="public",code="5xx"}[${w}]))`;
  rules.push({
    alert: "Http5xxSurge",
    expr: `(${errors} / sum(rate(haproxy_frontend_http_requests_total{proxy="public"}[${w}])) > ${FIVE_XX_SURGE.ratio}) and on() (${errors} > ${FIVE_XX_SURGE.minPerSecond})`,
    for: FIVE_XX_SURGE.for,
    labels: { severity: "critical" },
    annotations: {
      summary: `More than ${FIVE_XX_SURGE.ratio * 100}% of the public requests end in a 5xx`,
      description: `More than ${FIVE_XX_SURGE.ratio * 100}% of the requests the public frontend answered over ${w} were server errors (at least ${FIVE_XX_SURGE.minPerSecond}/s): instances failing, or none UP (HAProxy's 503). The dashboard's "5xx responses per second, by route" panel shows which route.`,
    },
  });
  return rules;
}

/** Where the rule file lands in the synth output (relative to rendered/). */
export const ALERT_RULES_FILE = "metrics/alert-rules.yml";
export const ALERT_RULES_GROUP = "fail-static";

export function renderAlertRules(c: Cluster): string {
  const doc = {
    groups: [
      {
        name: ALERT_RULES_GROUP,
        rules: alertRules(c).map((r) => ({ alert: r.alert, expr: r.expr, for: r.for, labels: r.labels, annotations: r.annotations })),
      },
    ],
  };
  return `# Alert rules of cluster ${c.name.replace(/[\r\n]/g, " ")} (metrics job): what "fail static" hides.
# Rendered from the cluster description (constructs/render/metrics/alerts.ts).
${stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false })}`;
}
