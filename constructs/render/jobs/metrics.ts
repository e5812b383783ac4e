/**
 * Jobspec of the metrics job (metrics.enabled): one group on one node, host network mode,
 * with Prometheus (loopback only: it has no access control, and its only clients run in
 * this group), Grafana (loopback too, reached through an SSH tunnel; password login, no
 * anonymous access) and, with a receiver in metrics.alerting, Alertmanager (loopback).
 * Their data lives on the group's sticky, migrated ephemeral disk: Docker volumes are
 * disabled on the clients (agents.ts).
 *
 * Every config file is rendered by constructs/render/metrics/* and delivered by a template
 * (also readable in the synth output under rendered/metrics/). A change of one is a change
 * of the jobspec: Nomad replaces the allocation, on the same node when it can (sticky disk),
 * else moving the data (migrate).
 */
import type { Cluster } from "../../description/schema";
import { str, tidy } from "../hcl";
import {
  ROLLOUT,
  consulSecretsPrefix,
  heredoc,
  jobHeader,
  jobPlacement,
  resourcesBlock,
  secretsInNomadVariables,
  secretsTemplate,
  serviceProviderLine,
  variablePath,
} from "./common";
import { GRAFANA_DIRS, grafanaFiles } from "../metrics/grafana";
import { autoscalingEnabled } from "./scaling";
import { autoscalingTasks } from "./autoscaler";
import { PROMETHEUS_LISTEN, PROMETHEUS_RULE_FILE, nomadPrometheusRuntime, renderPrometheusConfig } from "../metrics/prometheus";
import { renderAlertRules } from "../metrics/alerts";
import {
  ALERTMANAGER_CONFIG_PATH,
  ALERTMANAGER_LISTEN,
  alertSecretItems,
  alertingEnabled,
  alertmanagerArgs,
  renderAlertmanagerConfig,
} from "../metrics/alertmanager";
import { commentText } from "../../escape";

// ---- Hooks for the other tasks of the metrics group (the autoscaler side) -------------
/**
 * Extra task blocks of the metrics group (the Nomad Autoscaler and its queue-depth
 * exporter), rendered at group level with a 4-space indent. Empty until those exist.
 */
export function metricsGroupExtraTasks(c: Cluster): string {
  return autoscalingEnabled(c) ? autoscalingTasks(c, "    ") : "";
}
// ----------------------------------------------------------------------------------------

/** Where Prometheus keeps its TSDB: on the group's sticky ephemeral disk. */
export const PROMETHEUS_DATA_DIR = "/alloc/data/prometheus";
export const PROMETHEUS_CONFIG_PATH = "/local/prometheus.yml";
/** Grafana's secret (its admin password) reaches the task as this env variable (Grafana's own setting). */
export const GRAFANA_ADMIN_PASSWORD_ENV = "GF_SECURITY_ADMIN_PASSWORD";

/**
 * consul-template delimiters of the config templates: Grafana's legend formats use `{{ }}`
 * themselves, and no file is a template (they are delivered verbatim).
 */
export const TEMPLATE_DELIMITERS = { left: "[[~", right: "~]]" } as const;

/** Task logs kept by Nomad on the same ephemeral disk (files × MiB per task). */
const LOGS = { maxFiles: 3, maxFileSizeMiB: 10 } as const;
/**
 * Disk kept apart from the TSDB: Grafana's database, Alertmanager's silences and
 * notification log (a few KiB) and every task's logs (up to 5 tasks).
 */
const GRAFANA_DATA_MIB = 64;
const TASKS_RESERVED = 5;

/**
 * Prometheus' --storage.tsdb.retention.size (MiB): below the ephemeral disk, after Grafana's
 * data and the tasks' logs, with 30% left for the write-ahead log and compaction (which
 * the size cap does not count). At least 32 MiB.
 */
export function prometheusRetentionSizeMiB(c: Cluster): number {
  const free = c.metrics.prometheus.diskMiB - GRAFANA_DATA_MIB - TASKS_RESERVED * LOGS.maxFiles * LOGS.maxFileSizeMiB;
  return Math.max(32, Math.floor(free * 0.7));
}

/** A template delivering `text` verbatim to `destination` (relative to the task directory). */
function fileTemplate(text: string, destination: string, changeMode: string, indent: string): string {
  for (const d of [TEMPLATE_DELIMITERS.left, TEMPLATE_DELIMITERS.right]) {
    if (text.includes(d)) throw new Error(`${destination} contains the template delimiter ${d}`);
  }
  return [
    `${indent}template {`,
    `${indent}  data            = ${heredoc(text, indent)}`,
    `${indent}  destination     = ${str(destination.replace(/^\//, ""))}`,
    `${indent}  left_delimiter  = ${str(TEMPLATE_DELIMITERS.left)}`,
    `${indent}  right_delimiter = ${str(TEMPLATE_DELIMITERS.right)}`,
    changeMode,
    `${indent}}`,
  ].join("\n");
}

/** Prometheus' and Grafana's own restart policy: a broken one fails the allocation, which is rescheduled. */
function coreRestartBlock(indent: string): string {
  return `${indent}restart {
${indent}  attempts = 3
${indent}  interval = "5m"
${indent}  delay    = "15s"
${indent}  mode     = "fail"
${indent}}`;
}

/**
 * A template writing one secret item verbatim into the task's secrets/ directory (tmpfs,
 * mounted in this task's container only), for programs that read a secret from a file.
 */
function secretFileTemplate(c: Cluster, item: string, destination: string, indent: string): string {
  const data = secretsInNomadVariables(c)
    ? `{{ with nomadVar ${JSON.stringify(variablePath("metrics"))} }}{{ .${item} }}{{ end }}`
    : `{{ key ${JSON.stringify(consulSecretsPrefix("metrics") + item)} }}`;
  const origin = secretsInNomadVariables(c) ? `the Nomad Variable ${variablePath("metrics")}` : `Consul KV ${consulSecretsPrefix("metrics")} (Nomad ${commentText(c.versions.nomad)} has no Variables)`;
  return [
    `${indent}template {`,
    `${indent}  # ${item} from ${origin} (written by Terraform).`,
    `${indent}  data        = ${str(data)}`,
    `${indent}  destination = ${str(destination.replace(/^\//, ""))}`,
    // Readable by the container's user (Alertmanager runs as nobody; Nomad writes the file
    // as root): the task's secrets/ is mounted in this task's container only.
    `${indent}  perms       = "0444"`,
    `${indent}  change_mode = "restart"`,
    `${indent}}`,
  ].join("\n");
}

/** The Alertmanager task (only with a receiver in metrics.alerting). */
function alertmanagerTask(c: Cluster): string {
  if (!alertingEnabled(c)) return "";
  const i = "      ";
  return `
    task "alertmanager" {
      driver = "docker"

      config {
        image        = ${str(c.metrics.images.alertmanager)}
        network_mode = "host"
        args = [
${alertmanagerArgs().map((a) => `          ${str(a)},`).join("\n")}
        ]
      }

      # alertmanager.yml (rendered/metrics/alertmanager.yml): no secret in it; SIGHUP reloads it.
${fileTemplate(renderAlertmanagerConfig(c), ALERTMANAGER_CONFIG_PATH, `        change_mode     = "signal"\n        change_signal   = "SIGHUP"`, i)}

${alertSecretItems(c)
  .map((s) => secretFileTemplate(c, s.item, s.file, i))
  .join("\n\n")}

${logsBlock(i)}

      resources {
        cpu    = ${ALERTMANAGER_RESOURCES.cpu}
        memory = ${ALERTMANAGER_RESOURCES.memory}
      }
    }`;
}

/** Alertmanager's share: a few alerts, one receiver (~30 MiB RSS). */
export const ALERTMANAGER_RESOURCES = { cpu: 50, memory: 64 } as const;

function logsBlock(indent: string): string {
  return `${indent}logs {
${indent}  max_files     = ${LOGS.maxFiles}
${indent}  max_file_size = ${LOGS.maxFileSizeMiB}
${indent}}`;
}

export function renderMetricsJob(c: Cluster): string {
  const m = c.metrics;
  const prometheusYml = renderPrometheusConfig(c, nomadPrometheusRuntime());
  const grafana = grafanaFiles(c);
  return tidy(`
${jobHeader(c, "metrics", "Prometheus and Grafana (and the autoscaler's tasks).")}

job "metrics" {
${jobPlacement(c)}
  type        = "service"

  # One instance: no canary (a second Prometheus would start on an empty disk). An update
  # stops the old allocation, then starts the new one on the same node (sticky disk).
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = ${str(ROLLOUT.minHealthyTime)}
    healthy_deadline  = ${str(ROLLOUT.healthyDeadline)}
    progress_deadline = ${str(ROLLOUT.progressDeadline)}
    auto_revert       = true
  }

  group "metrics" {
    count = 1

    # Prometheus' TSDB and Grafana's database (alloc/data): kept across updates on the same
    # node (sticky) and copied to the new node when the allocation moves (migrate).
    ephemeral_disk {
      sticky  = true
      migrate = true
      size    = ${m.prometheus.diskMiB}
    }

    # No port on the overlay: every task listens on loopback only (host network mode):
    # Prometheus ${PROMETHEUS_LISTEN.host}:${PROMETHEUS_LISTEN.port}, Grafana 127.0.0.1:${m.grafana.port}${alertingEnabled(c) ? `, Alertmanager ${ALERTMANAGER_LISTEN.host}:${ALERTMANAGER_LISTEN.port}` : ""}.

    # Nomad restarts a task alone; a task that uses up its attempts in mode "fail" fails
    # the whole allocation (its siblings are killed, then the allocation is rescheduled).
    # "delay" here: a crash-looping helper task (autoscaler, queue exporter, Alertmanager)
    # keeps retrying after the interval and never takes Prometheus and Grafana down with it.
    # Prometheus and Grafana set "fail" for themselves (a broken one is rescheduled).
    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }
    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
      unlimited      = true
    }

    task "prometheus" {
      driver = "docker"

      config {
        image        = ${str(m.images.prometheus)}
        network_mode = "host"
        args = [
          "--config.file=${PROMETHEUS_CONFIG_PATH}",
          "--storage.tsdb.path=${PROMETHEUS_DATA_DIR}",
          "--storage.tsdb.retention.time=${m.prometheus.retentionDays}d",
          # Below the ${m.prometheus.diskMiB} MiB disk: Grafana's data, the logs and the WAL need the rest.
          "--storage.tsdb.retention.size=${prometheusRetentionSizeMiB(c)}MB",
          # Loopback only: Prometheus has no access control and the overlay is shared.
          "--web.listen-address=${PROMETHEUS_LISTEN.host}:${PROMETHEUS_LISTEN.port}",
        ]
      }

      # prometheus.yml (readable in the synth output as rendered/metrics/prometheus.yml):
      # SIGHUP makes Prometheus re-read it without losing data.
${fileTemplate(prometheusYml, PROMETHEUS_CONFIG_PATH, `        change_mode     = "signal"\n        change_signal   = "SIGHUP"`, "      ")}

      # Alert rules (rendered/metrics/alert-rules.yml), re-read on SIGHUP too.
${fileTemplate(renderAlertRules(c), PROMETHEUS_RULE_FILE, `        change_mode     = "signal"\n        change_signal   = "SIGHUP"`, "      ")}

${coreRestartBlock("      ")}

${logsBlock("      ")}

${resourcesBlock(m.prometheus.resources, "      ")}
    }

    task "grafana" {
      driver = "docker"

      config {
        image        = ${str(m.images.grafana)}
        network_mode = "host"
      }

      # Loopback only (an SSH tunnel reaches it): the overlay is shared with other teams.
      # Grafana's own /metrics off: nothing scrapes it, and it would be open to anyone
      # reaching the port.
      env {
        GF_SERVER_HTTP_ADDR            = "127.0.0.1"
        GF_SERVER_HTTP_PORT            = "${m.grafana.port}"
        GF_METRICS_ENABLED             = "false"
        GF_PATHS_PROVISIONING          = ${str(GRAFANA_DIRS.provisioning)}
        GF_PATHS_DATA                  = ${str(GRAFANA_DIRS.data)}
        GF_SECURITY_ADMIN_USER         = "admin"
        GF_AUTH_ANONYMOUS_ENABLED      = "false"
        GF_USERS_ALLOW_SIGN_UP         = "false"
        GF_ANALYTICS_REPORTING_ENABLED = "false"
        GF_ANALYTICS_CHECK_FOR_UPDATES = "false"
      }

      # The admin password (Terraform variable grafana_admin_password). Grafana sets it when
      # it creates its database only: a later change needs grafana cli admin reset-admin-password.
${secretsTemplate(c, "metrics", [GRAFANA_ADMIN_PASSWORD_ENV], "restart", "      ")}

      # Datasource, dashboard provider and dashboards (rendered/metrics/grafana/...); Grafana
      # reads its provisioning at start: a change restarts it.
${Object.entries(grafana)
  .map(([p, text]) => fileTemplate(text, p, `        change_mode     = "restart"`, "      "))
  .join("\n\n")}

${coreRestartBlock("      ")}

${logsBlock("      ")}

${resourcesBlock(m.grafana.resources, "      ")}

      # Registered without a port (Grafana is on loopback): the catalog tells which node
      # runs it. The check runs inside the container (busybox wget of the Alpine image):
      # Consul's own HTTP checks would reach the node's overlay address, not loopback.
      service {
        name = "grafana"
${serviceProviderLine(c, "        ")}
        tags = ["metrics"]

        check {
          name     = "grafana health"
          type     = "script"
          command  = "wget"
          args     = ["-q", "-O", "/dev/null", "http://127.0.0.1:${m.grafana.port}/api/health"]
          interval = "10s"
          timeout  = "3s"
        }
      }
    }
${alertmanagerTask(c)}
${metricsGroupExtraTasks(c)}
  }
}
`);
}
