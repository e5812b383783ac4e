/**
 * Alertmanager of the metrics job (a task of its group, metrics.ts), only when
 * metrics.alerting names a receiver. Pure: the description in, alertmanager.yml out.
 *
 * The receiver's secret never enters this file: Alertmanager (v0.27, the pinned image)
 * reads the webhook URL from `url_file` and the SMTP password from `auth_password_file`,
 * files a Nomad template writes from the job's Nomad Variable (Consul KV before Nomad 1.4)
 * into the task's secrets/ directory, as the other tasks' secrets.
 *
 * Listens on loopback only (Prometheus, in the same host network namespace, is its only
 * client); its clustering (gossip on 0.0.0.0:9094 by default) is off: one instance.
 */
import { stringify } from "yaml";
import type { Cluster } from "../../description/schema";
import { ALERT_RULES_GROUP } from "./alerts";

export const ALERTMANAGER_LISTEN = { host: "127.0.0.1", port: 9093 } as const;
export const ALERTMANAGER_CONFIG_PATH = "/local/alertmanager.yml";
/** Silences and the notification log: on the group's sticky, migrated disk. */
export const ALERTMANAGER_DATA_DIR = "/alloc/data/alertmanager";
/** Where the secrets land inside the container (the docker driver mounts the task's secrets/ at /secrets). */
export const ALERT_SECRET_FILES = { webhookUrl: "/secrets/alert-webhook-url", smtpPassword: "/secrets/alert-smtp-password" } as const;
/** Items of the metrics job's Nomad Variable holding them. */
export const ALERT_SECRET_ITEMS = { webhookUrl: "ALERT_WEBHOOK_URL", smtpPassword: "ALERT_SMTP_PASSWORD" } as const;
/** Where the file lands in the synth output (relative to rendered/). */
export const ALERTMANAGER_CONFIG_FILE = "metrics/alertmanager.yml";
export const RECEIVER_NAME = "team";

/** Whether the metrics job runs Alertmanager: metrics on and at least one receiver. */
export function alertingEnabled(c: Cluster): boolean {
  return c.metrics.enabled && Boolean(c.metrics.alerting.webhook || c.metrics.alerting.email);
}

/** The Nomad Variable items (and their files) the Alertmanager task needs. */
export function alertSecretItems(c: Cluster): { item: string; file: string }[] {
  if (!alertingEnabled(c)) return [];
  const a = c.metrics.alerting;
  return [
    ...(a.webhook ? [{ item: ALERT_SECRET_ITEMS.webhookUrl, file: ALERT_SECRET_FILES.webhookUrl }] : []),
    ...(a.email?.username ? [{ item: ALERT_SECRET_ITEMS.smtpPassword, file: ALERT_SECRET_FILES.smtpPassword }] : []),
  ];
}

/**
 * Grouping and pacing: one notification per alert name and scaled job (a HAProxy down
 * raises ScrapeTargetDown and ScalingQueryNoData for web and api: three, not dozens),
 * a reminder every 4 hours while it lasts.
 */
export const ROUTE_TIMING = { groupWait: "30s", groupInterval: "5m", repeatInterval: "4h" } as const;

export function alertmanagerConfig(c: Cluster): Record<string, unknown> {
  const a = c.metrics.alerting;
  const receiver: Record<string, unknown> = { name: RECEIVER_NAME };
  if (a.webhook) receiver.webhook_configs = [{ url_file: ALERT_SECRET_FILES.webhookUrl, send_resolved: a.webhook.sendResolved }];
  if (a.email) {
    receiver.email_configs = [
      {
        to: a.email.to.join(", "),
        from: a.email.from,
        smarthost: `${a.email.smarthost}:${a.email.port}`,
        ...(a.email.username ? { auth_username: a.email.username, auth_password_file: ALERT_SECRET_FILES.smtpPassword } : {}),
        require_tls: a.email.requireTls,
        send_resolved: true,
      },
    ];
  }
  return {
    route: {
      receiver: RECEIVER_NAME,
      group_by: ["alertname", "scaled_job"],
      group_wait: ROUTE_TIMING.groupWait,
      group_interval: ROUTE_TIMING.groupInterval,
      repeat_interval: ROUTE_TIMING.repeatInterval,
    },
    // A target down also empties the scaling queries it feeds: tell the cause, not both.
    // (HAProxy feeds web's and api's queries, the queue exporter the worker's.)
    inhibit_rules: [
      {
        source_matchers: ['alertname="ScrapeTargetDown"', 'job="haproxy"'],
        target_matchers: ['alertname="ScalingQueryNoData"', 'scaled_job=~"web|api"'],
      },
      {
        source_matchers: ['alertname="ScrapeTargetDown"', 'job="celery-queue"'],
        target_matchers: ['alertname="ScalingQueryNoData"', 'scaled_job="worker"'],
      },
    ],
    receivers: [receiver],
  };
}

export function renderAlertmanagerConfig(c: Cluster): string {
  if (!alertingEnabled(c)) throw new Error("renderAlertmanagerConfig: metrics.alerting names no receiver");
  return `# Alertmanager of cluster ${c.name.replace(/[\r\n]/g, " ")} (metrics job): the rules of group ${ALERT_RULES_GROUP}
# (rendered/metrics/alert-rules.yml) sent to metrics.alerting's receiver. The receiver's
# secret is read from the task's secrets/ directory (url_file, auth_password_file), never
# written here.
${stringify(alertmanagerConfig(c), {
  lineWidth: 0,
  aliasDuplicateObjects: false,
  // Double-quoted with JSON escapes, on one line: a value from the description is one scalar whatever
  // it holds, and reads back the same.
  defaultStringType: "QUOTE_DOUBLE",
  defaultKeyType: "PLAIN",
  doubleQuotedAsJSON: true,
})}`;
}

/** Alertmanager's command-line arguments in the task. */
export function alertmanagerArgs(): string[] {
  return [
    `--config.file=${ALERTMANAGER_CONFIG_PATH}`,
    `--storage.path=${ALERTMANAGER_DATA_DIR}`,
    `--web.listen-address=${ALERTMANAGER_LISTEN.host}:${ALERTMANAGER_LISTEN.port}`,
    // Empty: no gossip listener (default 0.0.0.0:9094, on the shared overlay in host mode).
    "--cluster.listen-address=",
  ];
}
