/**
 * Which Consul and Nomad version has each command, config key and job feature the
 * product uses. Renderers ask `supports(versions, "<feature>")` and write either the
 * feature or its documented alternative; nothing checks a version number anywhere else.
 *
 * Each entry cites where the minimum comes from (HashiCorp's versioned docs, changelog or
 * the pull request that added it). Features present in every version we accept (the
 * floors below) are listed too, with their source, so that a reviewer sees they were
 * checked rather than assumed.
 */

/** A dotted version such as 1.11.5. */
export type Version = string;

export interface AgentVersions {
  consul: Version;
  nomad: Version;
}

export interface Feature {
  product: "consul" | "nomad";
  /** First version that has it. */
  since: Version;
  /** What uses it in our output. */
  usedBy: string;
  /** Where the minimum comes from. */
  source: string;
}

/**
 * The oldest versions the product supports at all (the provider's 2022 generation). A
 * description naming an older one is refused at synth time with the field, the version and
 * this minimum.
 */
export const MINIMUM_VERSIONS: AgentVersions = { consul: "1.11.0", nomad: "1.2.0" };

export const FEATURES = {
  // ---- Nomad: CLI on the node -------------------------------------------------------
  nomadConfigValidate: {
    product: "nomad",
    since: "1.3.0",
    usedBy: "install.sh validates the candidate Nomad config directory before installing it",
    source: "hashicorp/nomad PR #9198 (cli: add config command and config validate subcommand), merged 2022-02, first in 1.3.0; absent from the v1.2.x command docs",
  },
  nomadNodeStatusSelf: {
    product: "nomad",
    since: "0.9.0",
    usedBy: "join check and maintenance (nomad node status -self -t, nomad node drain -self, nomad node eligibility -self)",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/commands/node/status (-self, -t); node drain/eligibility -self since 0.8",
  },
  // ---- Nomad: job specification -----------------------------------------------------
  nomadVariables: {
    product: "nomad",
    since: "1.4.0",
    usedBy: "secrets and haproxy.cfg in Nomad Variables (nomad_variable), read by `nomadVar` templates",
    source: "Nomad 1.4.0 changelog (hashicorp/nomad PR #14509: changelog entry for the variables feature); developer.hashicorp.com/nomad/docs/concepts/variables",
  },
  templateChangeScript: {
    product: "nomad",
    since: "1.4.0",
    usedBy: "haproxy.cfg template: change_mode = \"script\" runs haproxy -c before the reload",
    source: "hashicorp/nomad PR #13972 (template: custom change_mode scripts), released in 1.4.0; not in the v1.2.x template docs",
  },
  serviceProvider: {
    product: "nomad",
    since: "1.3.0",
    usedBy: "service { provider = \"consul\" } in every job",
    source: "Nomad 1.3.0 changelog: native service discovery added the service `provider` field (GH-12368)",
  },
  hostNetwork: {
    product: "nomad",
    since: "0.12.0",
    usedBy: "client host_network \"overlay\" and port host_network in the jobs",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/configuration/client#host_network",
  },
  scalingBlock: {
    product: "nomad",
    since: "0.11.0",
    usedBy: "group scaling { min, max } of the service jobs",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/job-specification/scaling",
  },
  scalingPolicy: {
    product: "nomad",
    since: "0.11.0",
    usedBy: "scaling { policy { … } } of web, api and worker, read by the Nomad Autoscaler (opaque to Nomad); `count = var.<job>_count` (HCL2 variables are parsed by the Terraform provider, jobspec2, not by Nomad)",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/job-specification/scaling#policy (\"policy - The autoscaling policy. This is opaque to Nomad\"); keys per the Nomad Autoscaler v0.4.5 policy parser (policy/nomad/source.go, parser.go)",
  },
  memoryMax: {
    product: "nomad",
    since: "1.1.0",
    usedBy: "app.<job>.resources.memoryMax (resources memory_max)",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/job-specification/resources#memory_max (added in 1.1.0)",
  },
  ephemeralDiskMigrate: {
    product: "nomad",
    since: "0.6.0",
    usedBy: "metrics job: ephemeral_disk { sticky = true, migrate = true, size } keeps Prometheus' and Grafana's data across updates and reschedules",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/job-specification/ephemeral_disk (migrate, sticky, size); migrate added in 0.6.0 (changelog)",
  },
  templateChangeSignal: {
    product: "nomad",
    since: "0.5.0",
    usedBy: "metrics job: prometheus.yml template with change_mode = \"signal\", change_signal = \"SIGHUP\" (Prometheus reloads its config)",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/job-specification/template (change_mode, change_signal)",
  },
  templateDelimiters: {
    product: "nomad",
    since: "0.6.0",
    usedBy: "metrics job: left_delimiter / right_delimiter of the config templates (Grafana's legend formats use {{ }})",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/job-specification/template (left_delimiter, right_delimiter)",
  },
  // ---- Nomad: agent configuration --------------------------------------------------
  nomadTelemetryPrometheus: {
    product: "nomad",
    since: "0.7.0",
    usedBy: "metrics.enabled: telemetry { prometheus_metrics, disable_hostname, collection_interval } in nomad.hcl (/v1/metrics?format=prometheus)",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/configuration/telemetry (prometheus_metrics; Nomad 0.7.0 changelog: Prometheus metrics)",
  },
  nomadTelemetryPublish: {
    product: "nomad",
    since: "0.5.0",
    usedBy: "metrics.enabled: telemetry { publish_node_metrics, publish_allocation_metrics } (host CPU/memory, allocations' usage)",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/configuration/telemetry (publish_allocation_metrics, publish_node_metrics)",
  },
  nomadDisableRemoteExec: {
    product: "nomad",
    since: "0.9.2",
    usedBy: "client { disable_remote_exec = true } in nomad.hcl (no `nomad alloc exec` into our tasks)",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/configuration/client#disable_remote_exec (also in the v0.12.x docs; added with `nomad alloc exec`, Nomad 0.9.2 changelog)",
  },
  nomadDisableUpdateCheck: {
    product: "nomad",
    since: "0.4.0",
    usedBy: "disable_update_check = true in nomad.hcl (no call to HashiCorp's checkpoint service)",
    source: "developer.hashicorp.com/nomad/docs/v1.2.x/configuration#disable_update_check",
  },
  // ---- Consul: agent configuration -------------------------------------------------
  consulDisableUpdateCheck: {
    product: "consul",
    since: "0.5.0",
    usedBy: "disable_update_check = true in consul.hcl (the agent otherwise calls HashiCorp's checkpoint service at every start)",
    source: "developer.hashicorp.com/consul/docs/v1.11.x/agent/options#disable_update_check",
  },
  consulTelemetryPrometheus: {
    product: "consul",
    since: "1.1.0",
    usedBy: "metrics.enabled: telemetry { prometheus_retention_time, disable_hostname } in consul.hcl (/v1/agent/metrics?format=prometheus)",
    source: "developer.hashicorp.com/consul/docs/v1.11.x/agent/options#telemetry-prometheus_retention_time (Consul 1.1.0 changelog: metrics in Prometheus format); disable_hostname in the same table",
  },
  consulTlsBlock: {
    product: "consul",
    since: "1.12.0",
    usedBy: "consul.tls: the tls { defaults { … } internal_rpc { … } } block (older agents read top-level ca_file/cert_file/key_file/verify_*)",
    source: "developer.hashicorp.com/consul/docs/reference/agent/configuration-file/tls: \"tls: Added in Consul 1.12, for previous versions see Deprecated Options\"",
  },
  consulUiConfig: {
    product: "consul",
    since: "1.9.0",
    usedBy: "ui_config { enabled = false } in the client config",
    source: "developer.hashicorp.com/consul/docs/v1.11.x/agent/options#ui_config (added in 1.9.0)",
  },
  consulRecursors: {
    product: "consul",
    since: "0.3.0",
    usedBy: "recursors (client DNS forwards what it does not own)",
    source: "developer.hashicorp.com/consul/docs/v1.11.x/agent/options#recursors",
  },
  consulMembersStatus: {
    product: "consul",
    since: "0.3.0",
    usedBy: "join check: consul members -status=alive",
    source: "developer.hashicorp.com/consul/commands/members (-status, -detailed)",
  },
} as const satisfies Record<string, Feature>;

export type FeatureName = keyof typeof FEATURES;

/** Numeric comparison of dotted versions (1.10.0 > 1.9.7). */
export function compareVersions(a: Version, b: Version): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Whether the described version of the feature's product has it. */
export function supports(v: AgentVersions, feature: FeatureName): boolean {
  const f: Feature = FEATURES[feature];
  return compareVersions(v[f.product], f.since) >= 0;
}

/** The `major.minor` the install script compares the node's binary against. */
export function minorOf(v: Version): string {
  return v.split(".").slice(0, 2).join(".");
}
