/**
 * Grafana's provisioning files in the metrics job. Pure. Grafana reads them at start
 * (GF_PATHS_PROVISIONING): the Prometheus datasource on loopback, and a file provider for
 * the dashboards of dashboards.ts, read-only (a change comes from the description).
 */
import { stringify } from "yaml";
import type { Cluster } from "../../description/schema";
import { DATASOURCE_UID, renderDashboards } from "./dashboards";
import { PROMETHEUS_URL } from "./prometheus";

/** Where the task's templates put Grafana's files (inside the task's local/ directory). */
export const GRAFANA_LOCAL_DIR = "/local/grafana";
export const GRAFANA_DIRS = {
  provisioning: `${GRAFANA_LOCAL_DIR}/provisioning`,
  dashboards: `${GRAFANA_LOCAL_DIR}/dashboards`,
  /** On the sticky, migrated ephemeral disk: users, preferences and sessions survive an update. */
  data: "/alloc/data/grafana",
} as const;

export function renderGrafanaDatasource(c: Cluster): string {
  return `# Grafana datasource: the metrics job's Prometheus, on loopback in the same group.
# timeInterval is the scrape interval: the least step of a query and the floor of
# $__rate_interval (four of it), so panels do not gap when scrapes are further apart than
# Grafana's default 15 s.
${stringify(
  {
    apiVersion: 1,
    datasources: [
      {
        name: "Prometheus",
        type: "prometheus",
        uid: DATASOURCE_UID,
        access: "proxy",
        url: PROMETHEUS_URL,
        isDefault: true,
        editable: false,
        jsonData: { timeInterval: c.metrics.prometheus.scrapeInterval },
      },
    ],
  },
  { lineWidth: 0 },
)}`;
}

export function renderGrafanaDashboardProvider(_c: Cluster): string {
  return `# Grafana dashboards from files (the job's templates), read-only in the UI.
${stringify(
  {
    apiVersion: 1,
    providers: [
      {
        name: "cluster",
        orgId: 1,
        type: "file",
        disableDeletion: true,
        allowUiUpdates: false,
        updateIntervalSeconds: 60,
        options: { path: GRAFANA_DIRS.dashboards, foldersFromFilesStructure: false },
      },
    ],
  },
  { lineWidth: 0 },
)}`;
}

/**
 * Every file of Grafana's, by path relative to the task directory (local/…), as the job's
 * templates write them and as the synth output shows them (rendered/metrics/grafana/…).
 */
export function grafanaFiles(c: Cluster): Record<string, string> {
  const files: Record<string, string> = {
    [`${GRAFANA_DIRS.provisioning}/datasources/prometheus.yaml`]: renderGrafanaDatasource(c),
    [`${GRAFANA_DIRS.provisioning}/dashboards/cluster.yaml`]: renderGrafanaDashboardProvider(c),
  };
  for (const [name, text] of Object.entries(renderDashboards(c))) files[`${GRAFANA_DIRS.dashboards}/${name}`] = text;
  return files;
}
