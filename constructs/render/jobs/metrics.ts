/**
 * Jobspec of the metrics job (metrics.enabled): one group on one node, host network mode,
 * with Prometheus (loopback only: it has no access control, and its only clients run in
 * this group) and Grafana (on the node's overlay address, password login, no anonymous
 * access). Their data lives on the group's sticky, migrated ephemeral disk: Docker volumes
 * are disabled on the clients (agents.ts).
 *
 * Every config file is rendered by constructs/render/metrics/* and delivered by a template
 * (also readable in the synth output under rendered/metrics/). A change of one is a change
 * of the jobspec: Nomad replaces the allocation, on the same node when it can (sticky disk),
 * else moving the data (migrate).
 */
import type { Cluster } from "../../description/schema";
import { str, tidy } from "../hcl";
import { OVERLAY_HOST_NETWORK, ROLLOUT, heredoc, jobHeader, jobPlacement, resourcesBlock, secretsTemplate, serviceProviderLine } from "./common";
import { GRAFANA_DIRS, grafanaFiles } from "../metrics/grafana";
import { autoscalingEnabled } from "./scaling";
import { autoscalingTasks } from "./autoscaler";
import { PROMETHEUS_LISTEN, nomadPrometheusRuntime, renderPrometheusConfig } from "../metrics/prometheus";

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
/** Disk kept apart from the TSDB: Grafana's database and every task's logs (up to 4 tasks). */
const GRAFANA_DATA_MIB = 64;
const TASKS_RESERVED = 4;

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

    # Grafana's port on the overlay address, reserved so that Nomad hands it to no other
    # task. Prometheus binds ${PROMETHEUS_LISTEN.host}:${PROMETHEUS_LISTEN.port} (host network mode), nowhere else.
    network {
      port "grafana" {
        static       = ${m.grafana.port}
        host_network = ${str(OVERLAY_HOST_NETWORK)}
      }
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "fail"
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

${logsBlock("      ")}

${resourcesBlock(m.prometheus.resources, "      ")}
    }

    task "grafana" {
      driver = "docker"

      config {
        image        = ${str(m.images.grafana)}
        network_mode = "host"
      }

      env {
        GF_SERVER_HTTP_ADDR            = "\${NOMAD_IP_grafana}"
        GF_SERVER_HTTP_PORT            = "\${NOMAD_PORT_grafana}"
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

${logsBlock("      ")}

${resourcesBlock(m.grafana.resources, "      ")}

      service {
        name = "grafana"
${serviceProviderLine(c, "        ")}
        port = "grafana"
        tags = ["metrics"]

        check {
          name     = "grafana health"
          type     = "http"
          path     = "/api/health"
          interval = "10s"
          timeout  = "2s"
        }
      }
    }
${metricsGroupExtraTasks(c)}
  }
}
`);
}
