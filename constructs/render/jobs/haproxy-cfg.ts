/**
 * haproxy.cfg of the HAProxy system job. Pure. The same function renders:
 * - the file Nomad puts on every node: it is the same everywhere, the node's own address
 *   comes from the environment (`"\${NODE_ADDRESS}"`, HAProxy's own variable syntax, set by
 *   the task's env block), so Terraform can deliver it in the job's Nomad Variable and a
 *   change reloads HAProxy in place (see haproxy.ts); and
 * - a concrete config for tests (runtime parts are loopback addresses), checked with the
 *   real `haproxy -c` and run against dnsmasq.
 *
 * Routing: `/image…` → api, everything else → web (the frontend builds upload URLs as
 * `new URL("/image", endpoint)`, so the backend must sit at the root of the same origin).
 * Backends come from Consul DNS SRV records: no reload when instances come and go; a
 * graceful reload only when this file changes.
 */
import { commentText } from "../../escape";
import { OMIT, tidy } from "../hcl";
import type { Cluster } from "../../description/schema";
import { consulSecretsPrefix, peakInstances, secretsInNomadVariables, variablePath } from "./common";
import type { ScaledJob } from "./scaling";
import { supports } from "../../versions";

export interface HaproxyRuntime {
  /** The node's overlay address: per-VM tunnel, health/stats listener, Consul DNS. */
  readonly overlayAddress: string;
  /** Address of the Consul DNS server ("ip:port"). */
  readonly dnsServer: string;
  /** The floating IP (static, from the description; a parameter so tests can use loopback). */
  readonly floatingAddress: string;
  /**
   * Directory of haproxy.cfg, its delivered candidate (haproxy.cfg.next), the admin socket
   * and the server-state file (the task's local/ in Nomad).
   */
  readonly runDir: string;
  /** PID of the HAProxy master the reload script signals (1 inside the container). */
  readonly masterPid: number;
}

/** Consul DNS port on every node (agents.ts serves it on the overlay address). */
export const CONSUL_DNS_PORT = 53;

/**
 * Environment variable holding the node's overlay address in the HAProxy task: the job sets
 * it from `attr.unique.network.ip-address`, the overlay address because the Nomad client
 * fingerprints the overlay interface (agents.ts, network_interface).
 */
export const NODE_ADDRESS_ENV = "NODE_ADDRESS";

/** Runtime parts as HAProxy reads them on a node: its own environment variable. */
export function nomadHaproxyRuntime(c: Cluster): HaproxyRuntime {
  const overlay = `\${${NODE_ADDRESS_ENV}}`;
  return { overlayAddress: overlay, dnsServer: `${overlay}:${CONSUL_DNS_PORT}`, floatingAddress: c.floatingIp.address, runDir: "/local", masterPid: 1 };
}

/** `host:port` as one HAProxy word; double-quoted when it holds an environment variable. */
function hostPort(hostAndPort: string): string {
  return hostAndPort.includes("${") ? `"${hostAndPort}"` : hostAndPort;
}

export const HEALTH_PATH = "/healthz";
export const STATS_PATH = "/stats";
export const METRICS_PATH = "/metrics";
/**
 * Path on HAProxy's stats listener that relays the local Consul agent's Prometheus metrics
 * (the agent's HTTP API listens on loopback only): forwarded to CONSUL_AGENT_METRICS and
 * nothing else of the Consul API.
 */
export const CONSUL_METRICS_RELAY_PATH = "/consul/metrics";
/** The Consul agent endpoint behind the relay (Consul's documented Prometheus format). */
export const CONSUL_AGENT_METRICS = { host: "127.0.0.1", port: 8500, path: "/v1/agent/metrics", query: "format=prometheus" } as const;

/**
 * Whether the stats listener relays the Consul agent's metrics: with metrics on and without
 * Consul ACLs. With consul.acl the endpoint needs a token with agent:read, which this
 * product does not hold (the agent token is the operator's file on the node): the Consul
 * agents are then not scraped (docs/metrics.md).
 */
export function relaysConsulMetrics(c: Cluster): boolean {
  return c.metrics.enabled && !c.consul.acl;
}

/** The overlay addresses that may scrape /metrics: every node of the cluster (Prometheus runs on one, in host network mode). */
export function scrapingAddresses(c: Cluster): string[] {
  return [...new Set(c.nodes.map((n) => n.overlayAddress))].sort();
}

/** The file HAProxy runs, and the candidate Nomad's template writes (installed only after `haproxy -c`). */
export const HAPROXY_CFG = "haproxy.cfg";
export const HAPROXY_CFG_CANDIDATE = "haproxy.cfg.next";

/**
 * Backend health checks. `timeout check` is the read timeout of a check: without it
 * HAProxy allows only `inter` (it was 1 s), so an api busy for a second answered 503 to
 * everyone. An instance is DOWN after 1 failed check at `inter` then 2 more at `fastinter`
 * (≈ 4 s when it hangs, at once when it refuses: connection failures are retried on another
 * server meanwhile, see `retries`), UP again after `rise` good ones.
 */
export const CHECK = { inter: "2s", fastinter: "1s", downinter: "2s", fall: 3, rise: 2, timeout: "2s" } as const;

/**
 * Consul DNS resolution (seconds). HAProxy re-resolves a name once its last answer is
 * older than `holdValid` (looked at every `timeoutResolve`), and keeps a server whose
 * record vanished for `holdObsolete` more.
 */
export const RESOLVER = { holdValid: 5, holdObsolete: 5, timeoutResolve: 1, timeoutRetry: 1, retries: 3 } as const;

/**
 * Longest time HAProxy may still send new requests to an instance after Consul stopped
 * returning it: the answer that still held it may be `holdValid` old, the next resolution
 * waits up to one `timeoutResolve` tick, then the record stays `holdObsolete`.
 */
export function obsoleteRecordHoldSeconds(): number {
  return RESOLVER.holdValid + RESOLVER.timeoutResolve + RESOLVER.holdObsolete;
}

/**
 * Nomad `shutdown_delay` of the services HAProxy routes to (web, api): the time between
 * the deregistration from Consul and the stop signal. It must exceed
 * obsoleteRecordHoldSeconds(), plus a margin for Consul itself (the agent syncs the
 * deregistration to the servers, which answer DNS), so no new request reaches a stopping
 * instance. Requests already running continue meanwhile.
 */
export const CONSUL_DEREGISTRATION_MARGIN_S = 4;
export function serviceShutdownDelay(): string {
  return `${obsoleteRecordHoldSeconds() + CONSUL_DEREGISTRATION_MARGIN_S}s`;
}

/**
 * Memory model of one HAProxy process (HAProxy 2.6, tune.bufsize 16 KiB): a fixed part,
 * and per connection HAProxy's worst case, two full buffers (request and response
 * channels) plus the session, the stream and two connection structures. Measured far less
 * in practice (docs/jobs.md, Routing, maxconn), the rest of the limit being left to kernel
 * socket buffers, which cgroup v2 charges to the task too.
 */
export const HAPROXY_MEMORY = { baseMiB: 24, perConnectionKiB: 40 } as const;

/**
 * `maxconn` of the HAProxy process, from the job's memory: during a reload the old
 * worker keeps its connections (up to hard-stop-after) while the new one accepts as many,
 * so the memory is shared by two workers' worth of connections. Rounded down to 50.
 * Throws when the memory cannot hold even 100 connections (rules.ts reports it first).
 */
export function haproxyMaxconn(memoryMiB: number): number {
  const perWorker = ((memoryMiB - HAPROXY_MEMORY.baseMiB) * 1024) / HAPROXY_MEMORY.perConnectionKiB / 2;
  const maxconn = Math.floor(perWorker / 50) * 50;
  if (maxconn < 100) throw new Error(`app.haproxy.resources.memory ${memoryMiB} MiB holds fewer than 100 connections`);
  return maxconn;
}
/** Least HAProxy memory that gives maxconn ≥ 100 (the description rule). */
export const HAPROXY_MIN_MEMORY_MIB = Math.ceil(HAPROXY_MEMORY.baseMiB + (100 * 2 * HAPROXY_MEMORY.perConnectionKiB) / 1024);

/**
 * Concurrent requests one api instance gets from one HAProxy, split between uploads and
 * everything else (reads). gunicorn gthread serves workers × threads requests at once;
 * every eligible node runs a HAProxy that may route to the same instance (the floating IP
 * and the per-VM tunnels), so the instance's threads are shared between them, after
 * keeping one per health check that may run at once (each HAProxy checks an instance from
 * both api backends, plus Consul's check). Slow uploads can then never take the thread
 * /health needs, and, in a backend of their own, never the threads reads need: the excess
 * waits in HAProxy's queue (`timeout queue`) instead of inside gunicorn.
 */
export function apiServerMaxconn(c: Cluster): { reads: number; uploads: number } {
  // One HAProxy per floating-IP-eligible node (the system job's constraint).
  const haproxies = Math.max(1, c.nodes.filter((n) => n.floatingIp.eligible).length);
  const slots = c.app.api.workers * c.app.api.threads;
  const reservedForChecks = 2 * haproxies + 1;
  const share = Math.max(2, Math.floor((slots - reservedForChecks) / haproxies));
  const uploads = Math.max(1, Math.floor(share / 2));
  return { reads: share - uploads, uploads };
}

function backend(c: Cluster, name: string, job: ScaledJob, healthPath: string): string {
  const limits = job === "api" ? apiServerMaxconn(c) : undefined;
  const maxconn = limits ? (name === "api" ? limits.reads : limits.uploads) : undefined;
  const why = limits
    ? `\n  # maxconn ${maxconn}: this HAProxy's share of an instance's ${c.app.api.workers} workers × ${c.app.api.threads} threads for
  # ${name === "api" ? "reads" : "uploads"} (${limits.reads} reads + ${limits.uploads} uploads; apiServerMaxconn), beyond it requests queue here.`
    : "";
  return `backend ${name}
  balance roundrobin
  option httpchk GET ${healthPath}
  http-check expect status 200
  # ${peakInstances(c, job)} slots = largest scale (scaling.max) + one canary; unused slots stay in MAINT.
  # init-addr last: a reloaded worker starts from the saved state instead of empty slots.${why}
  server-template ${job} ${peakInstances(c, job)} _${job}._tcp.service.consul resolvers consul resolve-opts allow-dup-ip resolve-prefer ipv4 init-addr last,none check${maxconn !== undefined ? ` maxconn ${maxconn}` : ""}`;
}

function consulMetricsRelayBackend(): string {
  const a = CONSUL_AGENT_METRICS;
  return `
# The local Consul agent's metrics for the collector (${CONSUL_METRICS_RELAY_PATH} on the stats listener):
# its HTTP API listens on loopback only. Path and query are replaced whatever was asked, so
# no other Consul endpoint is reachable through here; no credential is passed on.
backend consul_agent_metrics
  http-request deny deny_status 405 unless METH_GET
  http-request del-header X-Consul-Token
  http-request del-header Authorization
  http-request set-path ${a.path}
  http-request set-query ${a.query}
  server consul ${a.host}:${a.port}`;
}

export function renderHaproxyConfig(c: Cluster, rt: HaproxyRuntime): string {
  const hp = c.app.haproxy;
  const metrics = c.metrics.enabled;
  const relay = relaysConsulMetrics(c);
  const withReloadScript = supports(c.versions, "templateChangeScript");
  const stored = secretsInNomadVariables(c)
    ? `Nomad Variable ${variablePath("haproxy")},\n# item haproxy_cfg`
    : `Consul KV\n# ${consulSecretsPrefix("haproxy")}haproxy_cfg: Nomad ${commentText(c.versions.nomad)} has no Variables`;
  return tidy(`# HAProxy for cluster ${commentText(c.name)}: the same file on every node (${stored}, written by Terraform); "\${${NODE_ADDRESS_ENV}}" is the node's overlay address.
# Runs in master-worker mode (the image's entrypoint passes -W -db); SIGUSR2 reloads it
# gracefully: old workers finish their connections while new ones take the sockets. ${
    withReloadScript
      ? `The
# reload script saves the servers' state first (see renderHaproxyReloadScript).`
      : `Nomad
# ${commentText(c.versions.nomad)} sends the signal itself (no change_script before 1.4): no state is saved first.`
  }

global
  log stdout format raw local0 info
  # Local admin socket (inside the task directory only)${
    withReloadScript
      ? `: the reload script saves the
  # servers' state through it, so a new worker does not start with empty backends.`
      : `, for an operator's look at the
  # servers (nomad alloc exec ... socat); a reload starts new workers from DNS.`
  }
  stats socket ${rt.runDir}/haproxy.sock mode 600 level admin
  server-state-file ${rt.runDir}/haproxy.state
  # From the job's memory (${hp.resources.memory} MiB): ~${HAPROXY_MEMORY.perConnectionKiB} KiB per connection, twice
  # over during a reload (old and new worker), above a ~${HAPROXY_MEMORY.baseMiB} MiB base (haproxyMaxconn).
  maxconn ${haproxyMaxconn(hp.resources.memory)}
  # A reload must not keep old workers forever: connections open at a reload (long
  # uploads) get this long to finish. (A stop of the task allows its kill_timeout, 30 s.)
  hard-stop-after 60s

defaults
  mode http
  load-server-state-from-file global
  log global
  option httplog
  option dontlognull
  option forwardfor
  # A request that could not connect to a server is retried on another one; a GET/HEAD
  # whose server died mid-way too (a POST upload is never sent twice).
  option redispatch
  retries 2
  # (not response-timeout: measured to add ~20 ms to every request with HAProxy 2.6)
  retry-on conn-failure empty-response
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  timeout http-keep-alive 5s
  timeout queue 10s
  # Read timeout of a health check (default: inter). A busy instance answers /health from a
  # thread kept free for checks (backend api, maxconn) within milliseconds; 2 s is slack.
  timeout check ${CHECK.timeout}
  default-server inter ${CHECK.inter} fastinter ${CHECK.fastinter} downinter ${CHECK.downinter} fall ${CHECK.fall} rise ${CHECK.rise}

# Consul DNS of this node. Records are re-read every hold-valid period; a failing
# answer keeps the last good one for a while so a Consul restart does not empty backends.
# A record gone from the answer stays hold-obsolete longer: the services' shutdown_delay
# (${serviceShutdownDelay()}) exceeds hold valid + timeout resolve + hold obsolete (${obsoleteRecordHoldSeconds()} s).
resolvers consul
  nameserver consul ${hostPort(rt.dnsServer)}
  accepted_payload_size 8192
  resolve_retries ${RESOLVER.retries}
  timeout resolve ${RESOLVER.timeoutResolve}s
  timeout retry ${RESOLVER.timeoutRetry}s
  hold valid ${RESOLVER.holdValid}s
  hold other 30s
  hold refused 30s
  hold nx 5s
  hold timeout 30s
  hold obsolete ${RESOLVER.holdObsolete}s

# Public entry: the per-VM tunnel (overlay address) and the floating-IP tunnel. Binding
# the floating IP on a node that does not hold it needs net.ipv4.ip_nonlocal_bind=1, set
# by the keepalived provisioning; without it HAProxy fails to start on backup nodes.
frontend public
  bind ${hostPort(`${rt.overlayAddress}:${hp.nodePort}`)} name node
  bind ${hostPort(`${rt.floatingAddress}:${hp.floatingPort}`)} name floating
${metrics ? `  # Per-listener counters (haproxy_listener_*{listener="node"|"floating"}): the dashboard shows
  # which node's HAProxy receives the floating IP's traffic.
  option socket-stats` : OMIT}
  # Only idempotent requests are retried after reaching a server (an upload is never sent twice).
  http-request disable-l7-retry unless METH_GET || METH_HEAD
  acl is_api path_beg /image
  # Uploads in a backend of their own: slow uploads never hold the api threads reads need.
  use_backend api_uploads if is_api METH_POST
  use_backend api if is_api
  default_backend web

${backend(c, "api", "api", "/health")}

${backend(c, "api_uploads", "api", "/health")}

${backend(c, "web", "web", "/config.json")}

# Health and statistics, on the overlay address only. ${HEALTH_PATH} says "this HAProxy is
# up": keepalived tracks it to place the floating IP and Nomad's check uses it. It does not
# depend on the backends, so an application outage neither moves the floating IP around
# nor blocks HAProxy's own rollout; backend state is on ${STATS_PATH} and in Consul.
frontend stats
  bind ${hostPort(`${rt.overlayAddress}:${hp.statsPort}`)} name stats
  monitor-uri ${HEALTH_PATH}
  # ${STATS_PATH} and ${METRICS_PATH} from this node only (an operator comes through SSH): the
  # overlay is shared by every team. (${HEALTH_PATH} is answered above, for anyone.)
  acl this_node src 127.0.0.0/8 ${hostPort(rt.overlayAddress)}
${
  metrics
    ? `  # ${METRICS_PATH}${relay ? ` and ${CONSUL_METRICS_RELAY_PATH}` : ""} also from the cluster's own nodes: the collector (metrics job,
  # host network mode) scrapes from its node's overlay address. No other team's address.
  acl cluster_node src ${scrapingAddresses(c).join(" ")}
  acl metrics_path path ${METRICS_PATH}${relay ? ` ${CONSUL_METRICS_RELAY_PATH}` : ""}
  http-request deny deny_status 403 unless this_node || cluster_node metrics_path`
    : `  http-request deny deny_status 403 unless this_node`
}
  http-request use-service prometheus-exporter if { path ${METRICS_PATH} }
${relay ? `  use_backend consul_agent_metrics if { path ${CONSUL_METRICS_RELAY_PATH} }` : OMIT}
  stats enable
  stats uri ${STATS_PATH}
  stats refresh 10s
  stats show-legends
${relay ? consulMetricsRelayBackend() : OMIT}
`);
}

/**
 * What Nomad runs when the template output changes (change_mode = "script"). Nomad's
 * template writes the delivered file to haproxy.cfg.next, never over the running one:
 * 1. `haproxy -c` checks the candidate; a rejected file is not installed, so it is not
 *    there either for the next restart of the task (start script below);
 * 2. the running worker's server state (addresses learnt from DNS) is saved to the
 *    server-state file: without it a new worker starts with its DNS slots empty and answers
 *    503 until its first resolution (measured: a few requests per reload); perl-base is
 *    Essential in the Debian-based official image; best effort;
 * 3. the candidate replaces haproxy.cfg (copy, then rename: atomic; the candidate stays,
 *    so Nomad's template sees its destination unchanged);
 * 4. SIGUSR2 to the master: new workers on the new file, old ones finish their connections.
 */
export function renderHaproxyReloadScript(rt: HaproxyRuntime): string {
  return `#!/bin/sh
# Graceful HAProxy reload: check the candidate, save server state, install the candidate,
# then SIGUSR2 to the master (master-worker). A file haproxy rejects is never installed.
cfg=${rt.runDir}/${HAPROXY_CFG}
next=${rt.runDir}/${HAPROXY_CFG_CANDIDATE}
if ! haproxy -c -q -f "$next"; then
  echo "reload.sh: the new haproxy.cfg does not pass haproxy -c; not installed, HAProxy keeps running the previous one" >&2
  exit 1
fi
state=${rt.runDir}/haproxy.state
perl -MIO::Socket::UNIX -e '
  my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or exit 1;
  print $s "show servers state\\n";
  print while <$s>;
' ${rt.runDir}/haproxy.sock > "$state.new" && mv -f "$state.new" "$state" || rm -f "$state.new"
cp "$next" "$cfg.tmp" && mv -f "$cfg.tmp" "$cfg" || exit 1
# The shell's built-in kill: the Debian-slim based image has no /bin/kill (procps).
kill -USR2 ${rt.masterPid}
`;
}

/**
 * The HAProxy task's command: installs the delivered candidate only when `haproxy -c`
 * accepts it, else starts with the last accepted haproxy.cfg (a task restart after a
 * rejected change keeps serving), then execs HAProxy as the image's entrypoint would
 * (`haproxy -W -db`: master-worker, foreground; the master stays PID 1).
 */
export function renderHaproxyStartScript(rt: HaproxyRuntime): string {
  return `#!/bin/sh
# Start of the HAProxy task: haproxy.cfg is replaced only by a candidate haproxy -c accepts.
cfg=${rt.runDir}/${HAPROXY_CFG}
next=${rt.runDir}/${HAPROXY_CFG_CANDIDATE}
if haproxy -c -q -f "$next"; then
  cp "$next" "$cfg.tmp" && mv -f "$cfg.tmp" "$cfg" || exit 1
elif [ -s "$cfg" ]; then
  echo "start.sh: the delivered haproxy.cfg does not pass haproxy -c; starting with the last accepted one" >&2
else
  echo "start.sh: the delivered haproxy.cfg does not pass haproxy -c and no accepted one exists" >&2
  exit 1
fi
exec haproxy -W -db -f "$cfg"
`;
}
