/**
 * Consul and Nomad client agent configurations for one node. Pure: description in, file
 * text out. Both agents run as CLIENTS only: the provider's single servers must not gain
 * peers (a client joining as a server breaks their quorum).
 */
import { commentText } from "../escape";
import { FLOATING_IP_META, type Cluster, type ClusterNode } from "../description/schema";
// HCL1 quoting: Consul and Nomad read their agent configs with the HCL1 parser.
import { hcl1MapLines as mapLines, hcl1Str as str, hcl1StrList as strList, tidy, when } from "./hcl";
import { supports } from "../versions";

export const CONSUL_CONFIG_DIR = "/etc/consul.d";
export const NOMAD_CONFIG_DIR = "/etc/nomad.d";
export const CONSUL_HTTP_PORT = 8500;
export const NOMAD_HTTP_PORT = 4646;
/**
 * The Nomad client's data_dir, in every provider year: outside /opt/nomad, which the
 * provider's Nomad role owns (2025's runs `chown -R nomad:nomad /opt/nomad` on every
 * playbook run, taking the alloc directories from Prometheus (nobody) and Grafana (uid
 * 472)). One directory for every year keeps one code path and survives a provider that
 * starts doing the same in another year. Nodes installed with the previous one move their
 * state at the next install (scripts.ts, dataDirMoveStep; docs/operations.md).
 */
export const NOMAD_DATA_DIR = "/var/lib/nomad-client";
/** The Consul client's data_dir (the provider's unit and its /opt/consul, owned by consul). */
export const CONSUL_DATA_DIR = "/opt/consul";
/** Where the client kept its state before (the provider's own Nomad data directory). */
export const PREVIOUS_NOMAD_DATA_DIR = "/opt/nomad";

/** Operator-managed files holding secrets on the node; never synthesized, checked before install. */
export function consulSecretFiles(c: Cluster): string[] {
  return [
    ...(c.consul.gossipEncryption ? [`${CONSUL_CONFIG_DIR}/gossip.hcl`] : []),
    ...(c.consul.acl ? [CONSUL_ACL_TOKENS_FILE] : []),
    ...(c.consul.tls ? [c.consul.tls.caFile, c.consul.tls.certFile, c.consul.tls.keyFile] : []),
  ];
}

/** With Consul ACLs: Nomad's Consul token (`consul { token = "…" }`), placed by the operator. */
export const NOMAD_CONSUL_TOKEN_FILE = `${NOMAD_CONFIG_DIR}/consul-token.hcl`;
/**
 * With Nomad ACLs: a bare token with agent:read (the `-self` commands resolve the local node
 * through the agent) and node:write, used on the node by the provisioning scripts (join
 * check, maintenance drain, decommission). Placed by the operator.
 */
export const NOMAD_OPERATOR_TOKEN_FILE = `${NOMAD_CONFIG_DIR}/operator.token`;
/** With Consul ACLs: the agent token, in HCL (`acl { tokens { agent = "…" } }`). */
export const CONSUL_ACL_TOKENS_FILE = `${CONSUL_CONFIG_DIR}/acl-tokens.hcl`;

export function nomadSecretFiles(c: Cluster): string[] {
  return [
    ...(c.nomad.acl ? [NOMAD_OPERATOR_TOKEN_FILE] : []),
    ...(c.consul.acl ? [NOMAD_CONSUL_TOKEN_FILE] : []),
    ...(c.nomad.tls ? [c.nomad.tls.caFile, c.nomad.tls.certFile, c.nomad.tls.keyFile] : []),
  ];
}

/**
 * The address agents bind and advertise: the node's overlay address, or go-sockaddr's
 * interface lookup so that a re-addressed VM keeps working without a new deploy.
 */
export function overlayAddressExpr(c: Cluster, n: ClusterNode): string {
  return c.overlay.addressing === "interface" ? `{{ GetInterfaceIP "${c.overlay.interface}" }}` : n.overlayAddress;
}

function header(c: Cluster, n: ClusterNode, what: string, extraFile: string): string {
  return [
    `# ${what} for node ${commentText(n.name)} of cluster ${commentText(c.name)}.`,
    `# Rendered from the cluster description; a deploy overwrites local edits.`,
    `# Local additions belong in the description's extraConfig (installed as ${extraFile}).`,
  ].join("\n");
}

/** Why the agent serves DNS on the overlay address, as the provider's link routes it. */
function dnsComment(c: Cluster): string {
  return c.overlay.linkDns === "agent"
    ? `# DNS on the overlay address, port 53: the provider's systemd-networkd sends *.consul AND
# the internal domain there (Domains=~consul internal.<domain>, DNS=<this address>), and
# HAProxy's resolvers use it for service discovery.`
    : `# DNS on the overlay address, port 53, for HAProxy's resolvers. The provider's link has no
# DNS server (Domains=internal.<domain> only): the host keeps resolving through its uplink,
# and *.consul is not resolvable by host programs.`;
}

/**
 * Agent telemetry (metrics.enabled). Consul keeps a Prometheus gauge or counter this long
 * after its last update; it must exceed the longest scrape interval the description
 * allows (300 s), or a slow scrape finds metrics gone. A constant: changing the scrape
 * interval does not rewrite consul.hcl (no agent restart).
 */
export const CONSUL_PROMETHEUS_RETENTION = "10m";
/**
 * Nomad samples its host and allocation metrics this often; at most the shortest scrape
 * interval the description allows (5 s), per Nomad's telemetry docs.
 */
export const NOMAD_TELEMETRY_COLLECTION_INTERVAL = "5s";

/**
 * Consul's telemetry block: /v1/agent/metrics?format=prometheus answers only when
 * prometheus_retention_time is set. The HTTP API stays on loopback: HAProxy's stats
 * frontend relays that one endpoint to the cluster's nodes (haproxy-cfg.ts).
 */
function consulTelemetry(): string {
  return `
# Metrics (metrics.enabled): Prometheus format on /v1/agent/metrics?format=prometheus (the
# HTTP API stays on loopback; HAProxy's stats frontend relays only that endpoint). Gauges
# without the host name prefix: the node is a label added by Prometheus.
telemetry {
  prometheus_retention_time = ${str(CONSUL_PROMETHEUS_RETENTION)}
  disable_hostname          = true
}`;
}

/** Nomad's telemetry block: /v1/metrics?format=prometheus on the agent's HTTP API (overlay). */
function nomadTelemetry(): string {
  return `
# Metrics (metrics.enabled): Prometheus format on /v1/metrics?format=prometheus (the HTTP
# API on the overlay address), with the node's CPU/memory/disk and every allocation's
# resource usage.
telemetry {
  collection_interval        = ${str(NOMAD_TELEMETRY_COLLECTION_INTERVAL)}
  disable_hostname           = true
  prometheus_metrics         = true
  publish_allocation_metrics = true
  publish_node_metrics       = true
}`;
}

export function renderConsulConfig(c: Cluster, n: ClusterNode): string {
  const addr = overlayAddressExpr(c, n);
  return tidy(`
${header(c, n, "Consul client agent", `${CONSUL_CONFIG_DIR}/zz-extra.hcl`)}

# The servers' datacenter (servers.datacenter): Consul refuses a client of another one.
datacenter = ${str(c.servers.datacenter)}
node_name  = ${str(n.name)}
data_dir   = ${str(CONSUL_DATA_DIR)}
server     = false
log_level  = "INFO"

# No call to HashiCorp's checkpoint service at every start (version and bulletin check):
# the node tells no outside service what it runs.
disable_update_check = true

# The overlay does not carry the default route: bind and advertise it explicitly, or the
# agent would advertise the default-route address that other nodes cannot use.
bind_addr      = ${str(addr)}
advertise_addr = ${str(addr)}

${c.consul.httpOnOverlay
    ? `# HTTP/gRPC on loopback (CLI, local Nomad agent) and, as the description asks
# (consul.httpOnOverlay), on the overlay, where other teams reach it too.
client_addr = ${str(`127.0.0.1 ${addr}`)}`
    : `# HTTP/gRPC on loopback only (CLI, local Nomad agent): other teams share the overlay
# (consul.httpOnOverlay: true opens it there). Defence in depth, not a closure: without
# Nomad ACLs a job anyone submits can run here with host networking (docs/trust-model.md).
client_addr = "127.0.0.1"`}

${dnsComment(c)}
addresses {
  dns = ${str(addr)}
}
ports {
  dns = 53
}
dns_config {
  # Service lookups answered from the agent's cache, kept fresh by blocking queries:
  # while the provider's single server is unreachable, lookups keep returning the last
  # known instances ("fail static") instead of failing; HAProxy's checks still drop
  # instances that are really down.
  use_cache       = true
  allow_stale     = true
  enable_truncate = true
}
${when(c.overlay.linkDns === "agent" && c.consul.recursors.length > 0, () => `# Names this agent does not own (the provider's internal domain, the Internet) are
# forwarded upstream, as the provider's own servers do: the link sends the host's lookups
# here. Consul has no per-source control: anyone on the overlay may use it as a resolver
# (docs/trust-model.md).
recursors = ${strList(c.consul.recursors)}`)}

retry_join     = ${strList(c.servers.join)}
retry_interval = "15s"

# A restart for a config change must not deregister this node's services; the node
# leaves the cluster explicitly (consul leave) only when it is decommissioned.
leave_on_terminate      = false
skip_leave_on_interrupt = true
rejoin_after_leave      = true

# Script checks run in Nomad, not in Consul: keep Consul's script execution off.
enable_script_checks       = false
enable_local_script_checks = false

ui_config {
  enabled = false
}
${when(c.metrics.enabled, () => consulTelemetry())}
${when(c.consul.gossipEncryption, `
# Gossip encryption: the key is in ${CONSUL_CONFIG_DIR}/gossip.hcl, placed on the node by the operator.
encrypt_verify_incoming = true
encrypt_verify_outgoing = true`)}
${when(c.consul.tls && !supports(c.versions, "consulTlsBlock"), () => `
# Consul ${commentText(c.versions.consul)} predates the tls block (1.12): the top-level keys it reads.
ca_file                = ${str(c.consul.tls!.caFile)}
cert_file              = ${str(c.consul.tls!.certFile)}
key_file               = ${str(c.consul.tls!.keyFile)}
verify_outgoing        = true
verify_server_hostname = true`)}
${when(c.consul.tls && supports(c.versions, "consulTlsBlock"), () => `
tls {
  defaults {
    ca_file         = ${str(c.consul.tls!.caFile)}
    cert_file       = ${str(c.consul.tls!.certFile)}
    key_file        = ${str(c.consul.tls!.keyFile)}
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = true
  }
}`)}
${when(c.consul.acl, `
# ACLs: tokens are in ${CONSUL_CONFIG_DIR}/acl-tokens.hcl, placed on the node by the operator.
acl {
  enabled                  = true
  default_policy           = "deny"
  enable_token_persistence = true
}`)}
`);
}

/** Seconds of a duration such as 90s, 5m, 1h or 500ms (the schema's `duration`). */
export function durationSeconds(d: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(d);
  if (!m) throw new Error(`not a duration: ${d}`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n / 1000 : m[2] === "s" ? n : m[2] === "m" ? n * 60 : n * 3600;
}

/** The client's max_kill_timeout: the longest kill_timeout a job asks for, at least Nomad's 30s. */
export function maxKillTimeout(c: Cluster): string {
  return `${Math.max(30, Math.ceil(durationSeconds(c.app.worker.killTimeout)))}s`;
}

export function renderNomadConfig(c: Cluster, n: ClusterNode): string {
  const addr = overlayAddressExpr(c, n);
  // Jobs constrain on this: HAProxy runs where the floating IP may land.
  const meta = { ...n.meta, [FLOATING_IP_META]: String(n.floatingIp.eligible) };
  return tidy(`
${header(c, n, "Nomad client agent", `${NOMAD_CONFIG_DIR}/zz-extra.hcl`)}

datacenter = ${str(c.servers.datacenter)}
region     = ${str(c.region)}
name       = ${str(n.name)}
# Not /opt/nomad: the provider's 2025 Nomad role runs \`chown -R nomad:nomad /opt/nomad\` on
# every playbook run, which would take the allocation directories from the tasks' users.
data_dir   = ${str(NOMAD_DATA_DIR)}
log_level  = "INFO"

# No call to HashiCorp's checkpoint service (version and bulletin check).
disable_update_check = true

# Bind and advertise the overlay address (the default route is elsewhere).
bind_addr = ${str(addr)}
advertise {
  http = ${str(addr)}
  rpc  = ${str(addr)}
  serf = ${str(addr)}
}

server {
  enabled = false
}

client {
  enabled = true
  server_join {
    retry_join     = ${strList(c.servers.join)}
    retry_interval = "15s"
    retry_max      = 0
  }
  # Fingerprint the overlay: attr.unique.network.ip-address is the overlay address.
  network_interface = ${str(c.overlay.interface)}
  # Jobs ask for ports on the overlay with host_network = "overlay".
  host_network "overlay" {
    interface = ${str(c.overlay.interface)}
${when(c.overlay.addressing === "static", `    # The node's own address only: never the floating IP while this node holds it.
    cidr      = ${str(`${n.overlayAddress}/32`)}`)}
  }
${when(n.nodeClass, () => `  node_class = ${str(n.nodeClass!)}`)}
  meta = {
${mapLines(meta, "    ")}
  }
  # Nomad caps every task's kill_timeout at this (default 30s): the Celery worker needs
  # app.worker.killTimeout to finish its tasks, or they are lost.
  max_kill_timeout = ${str(maxKillTimeout(c))}
  # No drain_on_shutdown: with it, every systemd restart for a config change would drain
  # the node (Nomad #17093). Drains are explicit: maintenance flag and decommission.
  # No \`nomad alloc exec\` into our tasks: without Nomad ACLs, anyone who reaches the
  # servers' API could run a shell in them and read their secrets (docs/trust-model.md).
  disable_remote_exec = true
}

# A client restart keeps its allocations running; never leave on a signal.
leave_on_interrupt = false
leave_on_terminate = false

consul {
  address = "127.0.0.1:${CONSUL_HTTP_PORT}"
  # Nomad registers jobs' services and checks in the local Consul agent.
  auto_advertise   = true
  client_auto_join = true
}

plugin "docker" {
  config {
    allow_privileged = false
    volumes {
      enabled = false
    }
    gc {
      image       = true
      image_delay = "1h"
      container   = true
    }
    extra_labels = ["job_name", "task_group_name", "task_name", "node_name"]
  }
}
${when(c.metrics.enabled, () => nomadTelemetry())}
${when(c.nomad.tls, () => `
tls {
  http      = true
  rpc       = true
  ca_file   = ${str(c.nomad.tls!.caFile)}
  cert_file = ${str(c.nomad.tls!.certFile)}
  key_file  = ${str(c.nomad.tls!.keyFile)}
  verify_server_hostname = true
}`)}
${when(c.nomad.acl, `
# ACLs: the provisioning scripts use the token in ${NOMAD_CONFIG_DIR}/operator.token
# (agent:read, node:write), placed on the node by the operator.
acl {
  enabled = true
}`)}
`);
}
