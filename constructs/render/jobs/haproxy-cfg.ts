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
import type { Cluster } from "../../description/schema";
import { peakInstances, type ScaledJob } from "./common";

export interface HaproxyRuntime {
  /** The node's overlay address: per-VM tunnel, health/stats listener, Consul DNS. */
  readonly overlayAddress: string;
  /** Address of the Consul DNS server ("ip:port"). */
  readonly dnsServer: string;
  /** The floating IP (static, from the description; a parameter so tests can use loopback). */
  readonly floatingAddress: string;
  /** Directory of the admin socket and the server-state file (the task's local/ in Nomad). */
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

/** Backend health checks: a dead instance is out of rotation after fall × inter ≈ 2 s. */
const CHECK = { inter: "1s", fastinter: "500ms", downinter: "2s", fall: 2, rise: 2 };

function backend(c: Cluster, job: ScaledJob, healthPath: string): string {
  return `backend ${job}
  balance roundrobin
  option httpchk GET ${healthPath}
  http-check expect status 200
  # ${peakInstances(c, job)} slots = largest scale (scaling.max) + one canary; unused slots stay in MAINT.
  # init-addr last: a reloaded worker starts from the saved state instead of empty slots.
  server-template ${job} ${peakInstances(c, job)} _${job}._tcp.service.consul resolvers consul resolve-opts allow-dup-ip resolve-prefer ipv4 init-addr last,none check`;
}

export function renderHaproxyConfig(c: Cluster, rt: HaproxyRuntime): string {
  const hp = c.app.haproxy;
  return `# HAProxy for cluster ${commentText(c.name)}: the same file on every node (Nomad Variable nomad/jobs/haproxy,
# item haproxy_cfg, written by Terraform); "\${${NODE_ADDRESS_ENV}}" is the node's overlay address.
# Runs in master-worker mode (the image's entrypoint passes -W -db); SIGUSR2 reloads it
# gracefully: old workers finish their connections while new ones take the sockets. The
# reload script saves the servers' state first (see renderHaproxyReloadScript).

global
  log stdout format raw local0 info
  # Local admin socket (inside the task directory only): the reload script saves the
  # servers' state through it, so a new worker does not start with empty backends.
  stats socket ${rt.runDir}/haproxy.sock mode 600 level admin
  server-state-file ${rt.runDir}/haproxy.state
  maxconn 4096
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
  default-server inter ${CHECK.inter} fastinter ${CHECK.fastinter} downinter ${CHECK.downinter} fall ${CHECK.fall} rise ${CHECK.rise}

# Consul DNS of this node. Records are re-read every hold-valid period; a failing
# answer keeps the last good one for a while so a Consul restart does not empty backends.
resolvers consul
  nameserver consul ${hostPort(rt.dnsServer)}
  accepted_payload_size 8192
  resolve_retries 3
  timeout resolve 1s
  timeout retry 1s
  hold valid 5s
  hold other 30s
  hold refused 30s
  hold nx 5s
  hold timeout 30s
  hold obsolete 5s

# Public entry: the per-VM tunnel (overlay address) and the floating-IP tunnel. Binding
# the floating IP on a node that does not hold it needs net.ipv4.ip_nonlocal_bind=1, set
# by the keepalived provisioning; without it HAProxy fails to start on backup nodes.
frontend public
  bind ${hostPort(`${rt.overlayAddress}:${hp.nodePort}`)} name node
  bind ${hostPort(`${rt.floatingAddress}:${hp.floatingPort}`)} name floating
  # Only idempotent requests are retried after reaching a server (an upload is never sent twice).
  http-request disable-l7-retry unless METH_GET || METH_HEAD
  acl is_api path_beg /image
  use_backend api if is_api
  default_backend web

${backend(c, "api", "/health")}

${backend(c, "web", "/config.json")}

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
  http-request deny deny_status 403 unless this_node
  http-request use-service prometheus-exporter if { path ${METRICS_PATH} }
  stats enable
  stats uri ${STATS_PATH}
  stats refresh 10s
  stats show-legends
`;
}

/**
 * What Nomad runs when the template output changes (change_mode = "script"): save the
 * running worker's server state (addresses learnt from DNS) to the server-state file, then
 * SIGUSR2 to the master. Without the saved state a new worker starts with its DNS slots
 * empty and answers 503 until its first resolution (measured: a few requests per reload).
 * The official image is Debian-based: perl-base (Essential) provides the socket client.
 * Saving is best effort; the reload itself always happens.
 */
export function renderHaproxyReloadScript(rt: HaproxyRuntime): string {
  return `#!/bin/sh
# Graceful HAProxy reload: check the new file, save server state, then SIGUSR2 to the
# master (master-worker). A file haproxy rejects is not loaded: the running one stays.
if ! haproxy -c -q -f ${rt.runDir}/haproxy.cfg; then
  echo "reload.sh: the new haproxy.cfg does not pass haproxy -c; HAProxy keeps running the previous one" >&2
  exit 1
fi
state=${rt.runDir}/haproxy.state
perl -MIO::Socket::UNIX -e '
  my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or exit 1;
  print $s "show servers state\\n";
  print while <$s>;
' ${rt.runDir}/haproxy.sock > "$state.new" && mv -f "$state.new" "$state" || rm -f "$state.new"
# The shell's built-in kill: the Debian-slim based image has no /bin/kill (procps).
kill -USR2 ${rt.masterPid}
`;
}
