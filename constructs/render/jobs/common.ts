/**
 * Pieces shared by the Nomad jobspecs of the application. Pure: description in, HCL text
 * out. Every policy number lives here, once, with the reason for it.
 */
import { commentText } from "../../escape";
import type { Cluster } from "../../description/schema";
import { OMIT, str } from "../hcl";
import { supports } from "../../versions";
import { autoscalingEnabled, nomadScalingMin, scalingBounds, scalingPolicyBlock, type ScaledJob } from "./scaling";

/** Every Nomad job this product may register: the application's four, then the metrics job (metrics.enabled). */
export const JOB_NAMES = ["haproxy", "web", "api", "worker", "metrics"] as const;
export type JobName = (typeof JOB_NAMES)[number];
/** The jobs of the application itself, always registered. */
export type AppJobName = Exclude<JobName, "metrics">;

/** The jobs this cluster registers, in JOB_NAMES order. */
export function jobNames(c: Cluster): JobName[] {
  return JOB_NAMES.filter((j) => j !== "metrics" || c.metrics.enabled);
}

/** Jobs with a Nomad Variable of their own: the application's, and the metrics job (autoscaler.ts). */
export type SecretsOwner = JobName | "metrics";

/** Nomad Variable a job reads its secrets from: a job's workload identity may read nomad/jobs/<job> without any ACL policy. */
export function variablePath(job: SecretsOwner): string {
  return `nomad/jobs/${job}`;
}

/**
 * Nomad before 1.4 has no Variables: a job's secrets then live in Consul KV under this
 * prefix (written by Terraform's consul_keys from the same sensitive variables) and the
 * template reads them with consul-template's `key`. Trade-off (docs/jobs.md): the
 * provider's Consul has no ACLs, so anyone who reaches its HTTP API reads them, where a
 * Nomad Variable is readable only by the job's own workload identity.
 */
export function consulSecretsPrefix(job: SecretsOwner): string {
  return `nomad-secrets/${job}/`;
}

/** Whether this cluster's Nomad keeps the jobs' secrets in Nomad Variables (else Consul KV). */
export function secretsInNomadVariables(c: Cluster): boolean {
  return supports(c.versions, "nomadVariables");
}

/** The service block's `provider = "consul"` line (Nomad 1.3+; before, Consul is the only provider and the key is unknown). */
export function serviceProviderLine(c: Cluster, indent: string): string {
  return supports(c.versions, "serviceProvider") ? `${indent}provider = "consul"` : OMIT;
}

/** Where a job's rendered jobspec lands in the synth output (relative to rendered/). */
export function jobspecFile(job: JobName): string {
  return `jobs/${job}.nomad.hcl`;
}

/** Name of the Nomad host_network (agents.ts) that carries the overlay. */
export const OVERLAY_HOST_NETWORK = "overlay";

/**
 * Canaries per service-job deployment. One canary proves a new version (checks passing for
 * min_healthy_time) before any old instance is stopped; with auto_promote the rollout then
 * continues one instance at a time, and auto_revert puts the last stable version back if
 * any step fails.
 */
export const CANARIES = 1;

export const ROLLOUT = {
  maxParallel: 1,
  minHealthyTime: "15s",
  healthyDeadline: "5m",
  /**
   * Must exceed healthyDeadline. Nomad resets it each time an allocation becomes healthy:
   * it bounds one step of the rollout (the canary, or one instance), not the whole of it.
   */
  progressDeadline: "15m",
  /** System job only (no canaries there): pause between nodes. */
  stagger: "30s",
} as const;

/**
 * Most instances of a job that can be registered at once: the largest scale plus the
 * canaries of a deployment running at that scale. HAProxy's server-template needs that
 * many slots (a DNS answer with more records than slots silently drops the excess).
 */
export function peakInstances(c: Cluster, job: ScaledJob): number {
  return Math.max(scalingBounds(c, job).max, c.app[job].count) + CANARIES;
}

/**
 * `distinct_hosts` is a hard constraint: when instances outnumber hosts the excess stays
 * pending (a canary that cannot be placed fails the deployment; a lost instance is not
 * replaced). It is used only when every instance, canaries and the largest scale included,
 * still gets its own host with one node lost or in maintenance. Otherwise the soft
 * `spread` alone keeps instances apart whenever possible. Counted on all described nodes,
 * not on those out of maintenance: a maintenance must not rewrite (and redeploy) every job.
 */
export function useDistinctHosts(c: Cluster, job: ScaledJob): boolean {
  return peakInstances(c, job) <= c.nodes.length - 1;
}

const DOCKER_HUB = "docker.io";
const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"]);

/** The registry host of an image reference (Docker Hub for `name:tag` and `owner/name:tag`). */
export function imageRegistry(image: string): string {
  const first = image.split("/")[0];
  const isHost = image.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  const host = isHost ? first.split(":")[0] : DOCKER_HUB;
  return DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host;
}

/**
 * Whether a job's image is pulled with the description's registry credentials: only when
 * the image lives on that registry (credentials sent to another registry make a public pull fail).
 */
export function usesRegistryAuth(c: Cluster, image: string): boolean {
  if (!c.app.registry) return false;
  const server = c.app.registry.server.toLowerCase();
  return imageRegistry(image) === (DOCKER_HUB_ALIASES.has(server) ? DOCKER_HUB : server);
}

/** Env name the registry password reaches the task driver under (template env = true). */
export const REGISTRY_PASSWORD_ENV = "REGISTRY_PASSWORD";

/**
 * The docker `auth` block. Nomad interpolates the task environment, including variables
 * from `template { env = true }`, into the driver config before the image pull
 * (hashicorp/nomad#9740), so the password comes from the job's Nomad Variable and never
 * appears in the jobspec.
 */
export function dockerAuth(c: Cluster, image: string, indent: string): string {
  if (!usesRegistryAuth(c, image)) return OMIT;
  const r = c.app.registry!;
  return [
    `${indent}auth {`,
    `${indent}  server_address = ${str(r.server)}`,
    `${indent}  username       = ${str(r.username)}`,
    `${indent}  password       = "\${${REGISTRY_PASSWORD_ENV}}"`,
    `${indent}}`,
  ].join("\n");
}

/**
 * A heredoc whose body Nomad reads back exactly as `text`: Nomad's HCL2 would interpolate
 * `${` and `%{` inside it, so they are escaped; `<<-` strips the indentation added here.
 */
export function heredoc(text: string, indent: string): string {
  const marker = "EOT";
  const body = text.replace(/\$\{/g, () => "$${").replace(/%\{/g, () => "%%{").replace(/\n$/, "");
  if (body.split("\n").some((l) => l.trim() === marker)) throw new Error(`heredoc body contains its end marker ${marker}`);
  const lines = body.split("\n").map((l) => (l === "" ? "" : `${indent}  ${l}`));
  return `<<-${marker}\n${lines.join("\n")}\n${indent}  ${marker}`;
}

/**
 * A template rendering `KEY=<value>` lines from the job's Nomad Variable into an env file.
 * Values go through toJSON: the env-file parser (go-envparse) reads a double-quoted value
 * with JSON escapes, so a secret holding `#`, quotes or spaces arrives intact (an unquoted
 * value would end at `#`).
 */
export function secretsTemplate(c: Cluster, job: SecretsOwner, keys: readonly string[], changeMode: "restart" | "noop", indent: string): string {
  const inVariables = secretsInNomadVariables(c);
  const lines = inVariables
    ? [`{{ with nomadVar ${JSON.stringify(variablePath(job))} -}}`, ...keys.map((k) => `${k}={{ .${k} | toJSON }}`), "{{- end }}", ""].join("\n")
    : [...keys.map((k) => `${k}={{ key ${JSON.stringify(consulSecretsPrefix(job) + k)} | toJSON }}`), ""].join("\n");
  const origin = inVariables
    ? `the Nomad Variable ${variablePath(job)}`
    : `Consul KV ${consulSecretsPrefix(job)} (Nomad ${commentText(c.versions.nomad)} has no Variables)`;
  return [
    `${indent}template {`,
    `${indent}  # Secrets from ${origin} (written by Terraform); the file`,
    `${indent}  # lives in the task's secrets/ directory (tmpfs, not readable by other tasks).`,
    `${indent}  data        = ${heredoc(lines, indent)}`,
    `${indent}  destination = "secrets/app.env"`,
    `${indent}  env         = true`,
    `${indent}  change_mode = ${str(changeMode)}`,
    `${indent}}`,
  ].join("\n");
}

export function jobHeader(c: Cluster, job: JobName, what: string): string {
  return [
    `# Nomad job "${job}" of cluster ${commentText(c.name)}: ${what}`,
    `# Rendered from the cluster description by the jobs stack (${commentText(c.name)}-jobs); registered by`,
    `# Terraform (nomad_job.${job}). Edit the description, not this file.`,
  ].join("\n");
}

/** The `update` block of a service job: canary, then rolling, health-gated, reverting on failure. */
export function serviceUpdateBlock(indent: string): string {
  return `${indent}update {
${indent}  max_parallel      = ${ROLLOUT.maxParallel}
${indent}  canary            = ${CANARIES}
${indent}  auto_promote      = true
${indent}  auto_revert       = true
${indent}  health_check      = "checks"
${indent}  min_healthy_time  = ${str(ROLLOUT.minHealthyTime)}
${indent}  healthy_deadline  = ${str(ROLLOUT.healthyDeadline)}
${indent}  progress_deadline = ${str(ROLLOUT.progressDeadline)}
${indent}}`;
}

/** Placement, restart, reschedule and migration policies of a service job's group. */
export function serviceGroupPolicies(c: Cluster, job: ScaledJob, indent: string): string {
  const { min, max } = scalingBounds(c, job);
  const distinct = useDistinctHosts(c, job);
  const autoscaling = autoscalingEnabled(c);
  const i = indent;
  return `${i}# Instances on different nodes whenever possible (soft). distinct_hosts (hard) only
${i}# when ${peakInstances(c, job)} instances (scaling.max + canary) fit on the nodes minus one:
${i}# ${distinct ? "they do here." : "they do not here, so spread alone."}
${i}spread {
${i}  attribute = "\${node.unique.id}"
${i}  weight    = 100
${i}}
${
  distinct
    ? `${i}constraint {
${i}  operator = "distinct_hosts"
${i}  value    = "true"
${i}}
`
    : ""
}
${
  autoscaling
    ? `${i}# The Nomad Autoscaler keeps the count within ${min}..${max} (policy below). min is 0 here: the
${i}# autoscaler scales a RUNNING count below min up before any query, so a dip (drain, restart)
${i}# would force a scale with Prometheus down; the floor ${min} is in the query instead (scaling.ts).
${i}scaling {
${i}  enabled = true
${i}  min     = ${nomadScalingMin(c, job)}
${i}  max     = ${max}

${scalingPolicyBlock(c, job, `${i}  `)}
${i}}
`
    : `${i}# Bounds for an autoscaler (count is the description's; Nomad itself does not autoscale).
${i}scaling {
${i}  enabled = true
${i}  min     = ${min}
${i}  max     = ${max}
${i}}
`
}
${i}# A crashing task is restarted in place a few times, then the allocation is failed and
${i}# rescheduled (another node preferred), forever, with exponential back-off.
${i}restart {
${i}  attempts = 3
${i}  interval = "5m"
${i}  delay    = "15s"
${i}  mode     = "fail"
${i}}
${i}reschedule {
${i}  delay          = "30s"
${i}  delay_function = "exponential"
${i}  max_delay      = "10m"
${i}  unlimited      = true
${i}}

${i}# Node drains (maintenance, removal) move one instance at a time, healthy before the next.
${i}migrate {
${i}  max_parallel     = 1
${i}  health_check     = "checks"
${i}  min_healthy_time = ${str(ROLLOUT.minHealthyTime)}
${i}  healthy_deadline = ${str(ROLLOUT.healthyDeadline)}
${i}}`;
}

export function resourcesBlock(r: { cpu: number; memory: number; memoryMax?: number }, indent: string): string {
  return [
    `${indent}resources {`,
    `${indent}  cpu    = ${r.cpu}`,
    `${indent}  memory = ${r.memory}`,
    ...(r.memoryMax !== undefined ? [`${indent}  # Burst limit; needs memory oversubscription enabled on the Nomad servers.`, `${indent}  memory_max = ${r.memoryMax}`] : []),
    `${indent}}`,
  ].join("\n");
}

/** The job-level lines every job starts with. */
export function jobPlacement(c: Cluster): string {
  return `  region      = ${str(c.region)}
  datacenters = [${str(c.servers.datacenter)}]`;
}

/** `NAME = "value"` lines of an `env` block (a block: names are bare identifiers), sorted. */
export function envLines(env: Record<string, string>, indent: string): string {
  const names = Object.keys(env).sort();
  const bad = names.filter((n) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(n));
  if (bad.length > 0) throw new Error(`not environment variable names: ${bad.join(", ")}`);
  const width = Math.max(...names.map((n) => n.length));
  return names.map((n) => `${indent}${n.padEnd(width)} = ${str(env[n])}`).join("\n");
}

/**
 * The opening of a service job (web, api, worker) down to its group's placement and
 * policies: header, job, update block, count. The caller writes the group's network and
 * task, then closes the group and the job.
 */
export function serviceJobOpening(c: Cluster, job: ScaledJob, what: string): string {
  const autoscaling = autoscalingEnabled(c);
  return `${jobHeader(c, job, what)}

job "${job}" {
${jobPlacement(c)}
  type        = "service"

${serviceUpdateBlock("  ")}

  group "${job}" {
${
  autoscaling
    ? `    # The count of a new job: afterwards Nomad keeps the running one at each release
    # (nomad_job preserve_counts, constructs/nomad-job.ts) and the autoscaler sets it.
`
    : ""
}    count = ${c.app[job].count}

${serviceGroupPolicies(c, job, "    ")}`;
}

/** A dynamic HTTP port on the overlay address, for a service HAProxy reaches. */
export function overlayHttpPort(): string {
  return `    # A dynamic port on the overlay address: HAProxy reaches it through Consul DNS (SRV).
    network {
      port "http" {
        host_network = ${str(OVERLAY_HOST_NETWORK)}
      }
    }`;
}
