/**
 * haproxy.cfg of the HAProxy system job. Pure. The same function renders:
 * - the consul-template text Nomad renders on each node (runtime parts are template
 *   expressions, see `nomadHaproxyRuntime`), and
 * - a concrete config for tests (runtime parts are loopback addresses), checked with the
 *   real `haproxy -c` and run against dnsmasq.
 *
 * Routing: `/image…` → api, everything else → web (the frontend builds upload URLs as
 * `new URL("/image", endpoint)`, so the backend must sit at the root of the same origin).
 * Backends come from Consul DNS SRV records: no reload when instances come and go; a
 * reload (SIGUSR2, see the job) only when this file changes.
 */
import type { Cluster } from "../../description/schema";
import { peakInstances, type ScaledJob } from "./common";

export interface HaproxyRuntime {
  /** The node's overlay address: per-VM tunnel, health/stats listener, Consul DNS. */
  readonly overlayAddress: string;
  /** Address of the Consul DNS server ("ip:port"). */
  readonly dnsServer: string;
  /** The floating IP (static, from the description; a parameter so tests can use loopback). */
  readonly floatingAddress: string;
}

/** Consul DNS port on every node (agents.ts serves it on the overlay address). */
export const CONSUL_DNS_PORT = 53;

/**
 * Runtime parts as Nomad renders them. `attr.unique.network.ip-address` is the overlay
 * address because the Nomad client fingerprints the overlay interface (agents.ts,
 * network_interface); templates read node attributes with `env`.
 */
export function nomadHaproxyRuntime(c: Cluster): HaproxyRuntime {
  const overlay = `{{ env "attr.unique.network.ip-address" }}`;
  return { overlayAddress: overlay, dnsServer: `${overlay}:${CONSUL_DNS_PORT}`, floatingAddress: c.floatingIp.address };
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
  server-template ${job} ${peakInstances(c, job)} _${job}._tcp.service.consul resolvers consul resolve-opts allow-dup-ip resolve-prefer ipv4 init-addr none check`;
}

export function renderHaproxyConfig(c: Cluster, rt: HaproxyRuntime): string {
  const hp = c.app.haproxy;
  return `# HAProxy for cluster ${c.name}: rendered by Nomad from the jobspec's template on each node.
# Runs in master-worker mode (the image's entrypoint passes -W -db); SIGUSR2 reloads it
# gracefully: old workers finish their connections while new ones take the sockets.

global
  log stdout format raw local0 info
  maxconn 4096
  # A reload must not keep old workers forever (long uploads get this long to finish).
  hard-stop-after 60s

defaults
  mode http
  log global
  option httplog
  option dontlognull
  option forwardfor
  # A request that could not connect to a server is retried on another one.
  option redispatch
  retries 2
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
  nameserver consul ${rt.dnsServer}
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
  bind ${rt.overlayAddress}:${hp.nodePort} name node
  bind ${rt.floatingAddress}:${hp.floatingPort} name floating
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
  bind ${rt.overlayAddress}:${hp.statsPort} name stats
  monitor-uri ${HEALTH_PATH}
  http-request use-service prometheus-exporter if { path ${METRICS_PATH} }
  stats enable
  stats uri ${STATS_PATH}
  stats refresh 10s
  stats show-legends
`;
}
