/**
 * keepalived for the floating IP: the configuration of one node and its install script.
 * Pure: description in, file text out. The design and its reasons are in
 * docs/floating-ip.md; the short version:
 *
 * - VRRPv2, unicast between the team's own eligible nodes over the overlay (the overlay is
 *   shared by every team: no multicast, a configurable virtual_router_id, a password);
 * - every node starts as BACKUP with `nopreempt`: the floating IP moves only when its
 *   holder fails, never back when a preferred node returns (one interruption, not two);
 * - the instance tracks the local HAProxy health endpoint with weight 0: a node whose
 *   HAProxy is unhealthy goes to FAULT and gives the floating IP away (a negative weight
 *   would not move it: with `nopreempt` a backup never takes over from a master of lower
 *   priority);
 * - the VRRP password is a secret: the rendered config holds a placeholder, and the
 *   install script splices the value Terraform uploads at apply time.
 */
import { commentText } from "../escape";
import type { Cluster, ClusterNode } from "../description/schema";
import { parseCidr } from "../description/rules";
import { RESTART_PENDING_DIR, preamble, sh } from "./scripts";

export const KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf";
/** The unprivileged user keepalived runs the health check as (created by the install script). */
export const KEEPALIVED_SCRIPT_USER = "keepalived_script";
/** Stands for the VRRP password in the rendered config; replaced on the node only. */
export const VRRP_PASSWORD_PLACEHOLDER = "@@VRRP_PASSWORD@@";
/** Name of the staged file holding the password (uploaded by Terraform, deleted by the script). */
export const VRRP_PASSWORD_FILE = "vrrp_password";
/**
 * Characters allowed in the password: no blank, quote or comment character can break the
 * config line. VRRPv2 PASS authentication carries 8 characters (keepalived would silently
 * truncate a longer one), so at most 8. Also enforced by the Terraform variable's validation.
 */
export const VRRP_PASSWORD_PATTERN = "^[A-Za-z0-9._~+=@%^*-]{1,8}$";
export const NONLOCAL_BIND_SYSCTL_FILE = "/etc/sysctl.d/60-floating-ip.conf";
/** Priority of a node under maintenance: it holds the floating IP only if no peer can. */
export const MAINTENANCE_PRIORITY = 1;
/** The VRRP instance name (also what `journalctl -u keepalived` shows). */
export const VRRP_INSTANCE = "floating_ip";

/**
 * The HAProxy health check. A refused connection fails at once; a hung HAProxy fails
 * after `curlMaxTime`. `fall` 2 × `interval` 2 s: an unhealthy HAProxy loses the floating
 * IP within 2-4 s (+1 s when it hangs), no slower than a crashed node loses it
 * (3 × advert_int + skew ≈ 3.6 s), while a single slow answer does not cause a failover.
 * `rise` 2: a recovered HAProxy must answer twice before its node is a candidate again.
 * keepalived's own `timeout` is above curl's so that curl's verdict is the one that counts.
 */
export const HEALTH_CHECK = { interval: 2, timeout: 2, fall: 2, rise: 2, curlMaxTime: 1 } as const;

/**
 * The local Consul DNS check: HAProxy on this node finds every backend through the node's
 * own Consul agent (resolvers consul, the overlay address, port 53). An agent that does not
 * answer at all leaves HAProxy with its last answers only until they expire, so the node
 * must give the floating IP to a peer whose agent answers. `dig` exits 0 on any DNS reply
 * (also SERVFAIL: the agent is alive but cannot reach the servers; that is shared by every
 * node with the provider's single server, and moving the floating IP would not help) and 9
 * when no reply comes within `+time`. Same cadence as the HAProxy check.
 */
export const CONSUL_DNS_CHECK = { interval: 2, timeout: 2, fall: 2, rise: 2, digTime: 1, name: "consul.service.consul" } as const;
/** dig (Debian/Ubuntu package bind9-dnsutils; the install script adds it when missing). */
export const DIG = "/usr/bin/dig";
export const DIG_PACKAGE = "bind9-dnsutils";
/** Consul's DNS port on the overlay address (agents.ts). */
const CONSUL_DNS_PORT = 53;

export function consulDnsCheckCommand(n: ClusterNode): string {
  const d = CONSUL_DNS_CHECK;
  return `${DIG} +time=${d.digTime} +tries=1 +short -p ${CONSUL_DNS_PORT} @${n.overlayAddress} ${d.name} A`;
}

/** GARP: a burst when becoming master, a second one 1 s later, and a refresh every minute. */
export const GARP = { masterDelay: 1, masterRepeat: 3, masterRefresh: 60, masterRefreshRepeat: 1 } as const;

export interface KeepalivedRenderOptions {
  /**
   * User the health check runs as (default `keepalived_script`, created by the install
   * script). Tests on a machine without that user pass e.g. `nobody`.
   */
  scriptUser?: string;
}

/** The eligible nodes: the ones that run keepalived and may hold the floating IP. */
export function floatingIpCandidates(c: Cluster): ClusterNode[] {
  return c.nodes.filter((n) => n.floatingIp.eligible);
}

/** The VRRP priority a node runs with: its described one, or 1 under maintenance. */
export function effectivePriority(n: ClusterNode): number {
  return n.maintenance ? MAINTENANCE_PRIORITY : n.floatingIp.priority;
}

export function healthCheckUrl(c: Cluster, n: ClusterNode): string {
  return `http://${n.overlayAddress}:${c.app.haproxy.statsPort}/healthz`;
}

/** keepalived.conf of one eligible node, with the password placeholder. */
export function renderKeepalivedConfig(c: Cluster, n: ClusterNode, opts: KeepalivedRenderOptions = {}): string {
  if (!n.floatingIp.eligible) throw new Error(`node ${n.name} is not eligible for the floating IP: it runs no keepalived`);
  const scriptUser = opts.scriptUser ?? KEEPALIVED_SCRIPT_USER;
  const peers = floatingIpCandidates(c).filter((p) => p.name !== n.name);
  const prefixLength = parseCidr(c.overlay.prefix).bits;
  const iface = c.overlay.interface;
  const fip = c.floatingIp;
  const h = HEALTH_CHECK;
  const priority = effectivePriority(n);
  const priorityComment = n.maintenance
    ? `# Maintenance (nodes[].maintenance: true): priority ${MAINTENANCE_PRIORITY} instead of ${n.floatingIp.priority}.\n  # This node takes the floating IP only if no peer can hold it.`
    : `# nodes[].floatingIp.priority. With nopreempt it only decides who wins when nodes start\n  # together; it never takes the floating IP back from a healthy holder.`;
  const unicast =
    peers.length > 0
      ? `  # Unicast VRRP with the team's other eligible nodes only, over the overlay.
  unicast_src_ip ${n.overlayAddress}
  unicast_peer {
${peers.map((p) => `    ${p.overlayAddress}    # ${p.name}`).join("\n")}
  }
  # Never fall back to multicast on the shared overlay; drop adverts from non-peers.
  unicast_fault_no_peer
  check_unicast_src`
      : `  # The only eligible node: VRRP needs no peer and keepalived allows no unicast
  # instance without one, so it advertises by multicast (virtual_router_id and the
  # password keep other teams' routers out). Add a second eligible node for failover.`;

  return `# keepalived for node ${commentText(n.name)} of cluster ${commentText(c.name)}: the floating IP ${commentText(fip.address)}.
# Rendered from the cluster description; a deploy overwrites local edits.
# Design and operations: docs/floating-ip.md. Who holds the floating IP:
#   ip -br address show dev ${commentText(iface)}   (on each eligible node)

global_defs {
  router_id ${n.name}
  # The health check runs as an unprivileged user; keepalived refuses scripts that a
  # non-root user could modify.
  enable_script_security
  script_user ${scriptUser}
  # Gratuitous ARP: a burst when taking over, a second one ${GARP.masterDelay} s later, and a refresh
  # every ${GARP.masterRefresh} s so that every host on the overlay (the provider's tunnel proxy) learns
  # the new holder even if it missed the burst.
  vrrp_garp_master_delay ${GARP.masterDelay}
  vrrp_garp_master_repeat ${GARP.masterRepeat}
  vrrp_garp_master_refresh ${GARP.masterRefresh}
  vrrp_garp_master_refresh_repeat ${GARP.masterRefreshRepeat}
  # VRRPv2: the version with authentication (v3 has none).
  vrrp_version 2
}

# The local HAProxy answers ${commentText(healthCheckUrl(c, n))} while it can serve.
# weight 0: failing ${h.fall} times in a row puts the instance in FAULT, which gives the
# floating IP away at once (a negative weight would not: with nopreempt a backup never
# takes over from a master of lower priority).
vrrp_script haproxy_health {
  script "/usr/bin/curl -fsS --max-time ${h.curlMaxTime} -o /dev/null ${healthCheckUrl(c, n)}"
  interval ${h.interval}
  timeout ${h.timeout}
  fall ${h.fall}
  rise ${h.rise}
  weight 0
}

# The local Consul agent's DNS (${n.overlayAddress}:${CONSUL_DNS_PORT}), where this node's HAProxy finds its
# backends. dig exits 0 on any DNS reply (SERVFAIL too: an agent alive without the servers
# is the same on every node) and 9 when the agent does not answer: FAULT, as above.
vrrp_script consul_dns {
  script "${consulDnsCheckCommand(n)}"
  interval ${CONSUL_DNS_CHECK.interval}
  timeout ${CONSUL_DNS_CHECK.timeout}
  fall ${CONSUL_DNS_CHECK.fall}
  rise ${CONSUL_DNS_CHECK.rise}
  weight 0
}

vrrp_instance ${VRRP_INSTANCE} {
  # Every node starts as BACKUP and none preempts: the floating IP moves only when its
  # holder fails or stops, never back when a recovered node returns (one interruption
  # instead of two; see docs/floating-ip.md). nopreempt requires state BACKUP everywhere.
  state BACKUP
  nopreempt
  interface ${iface}
  virtual_router_id ${fip.virtualRouterId}
  ${priorityComment}
  priority ${priority}
  advert_int ${fip.advertInterval}

${unicast}

  # VRRPv2 PASS (8 characters): keeps routers of other teams and stray adverts out.
  # The value is the Terraform variable vrrp_password, spliced in on the node.
  authentication {
    auth_type PASS
    auth_pass ${VRRP_PASSWORD_PLACEHOLDER}
  }

  virtual_ipaddress {
    ${fip.address}/${prefixLength} dev ${iface}
  }

  track_script {
    haproxy_health
    consul_dns
  }
}
`;
}

/** The sysctl file: HAProxy binds the floating IP also on the nodes that do not hold it. */
export function renderNonlocalBindSysctl(c: Cluster): string {
  return `# Managed by the deployment of cluster ${commentText(c.name)} (keepalived, floating IP ${commentText(c.floatingIp.address)}).
# HAProxy binds the floating IP on every eligible node, also while another node holds it.
net.ipv4.ip_nonlocal_bind = 1
`;
}

/** Files staged for one node's keepalived: what the install script expects. */
export const KEEPALIVED_STAGED = { config: "keepalived.conf", sysctl: "60-floating-ip.conf", script: "install.sh" } as const;

/**
 * Install script of an eligible node: installs keepalived if absent, the sysctl, the
 * config with the password spliced in (validated by `keepalived -t` first), and reloads
 * keepalived only when the config changed. Idempotent.
 */
export function renderKeepalivedInstallScript(c: Cluster, n: ClusterNode): string {
  const prefixLength = parseCidr(c.overlay.prefix).bits;
  return `#!/usr/bin/env bash
# Installs keepalived (floating IP ${commentText(c.floatingIp.address)}) on node ${commentText(n.name)} (cluster ${commentText(c.name)}).
# Run as root from the directory the file provisioners uploaded. Idempotent: keepalived is
# reloaded only when its config changed; a config that fails \`keepalived -t\` is never
# installed, so the running keepalived keeps its previous config.
${preamble(c, n, "keepalived", { exactAddress: true })}
umask 077
STAGE_DIR="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
readonly STAGE_DIR
readonly CONF=${sh(KEEPALIVED_CONF)}
readonly SYSCTL_FILE=${sh(NONLOCAL_BIND_SYSCTL_FILE)}
readonly SCRIPT_USER=${sh(KEEPALIVED_SCRIPT_USER)}
readonly FLOATING_IP_CIDR=${sh(`${c.floatingIp.address}/${prefixLength}`)}
readonly MAINTENANCE=${n.maintenance ? "true" : "false"}
readonly PLACEHOLDER=${sh(VRRP_PASSWORD_PLACEHOLDER)}
readonly PASSWORD_RE=${sh(VRRP_PASSWORD_PATTERN)}
readonly PASSWORD_FILE="$STAGE_DIR/"${sh(VRRP_PASSWORD_FILE)}
readonly TEMPLATE="$STAGE_DIR/"${sh(KEEPALIVED_STAGED.config)}
readonly SYSCTL_SOURCE="$STAGE_DIR/"${sh(KEEPALIVED_STAGED.sysctl)}
readonly APT_ATTEMPTS=\${APT_ATTEMPTS:-5}
readonly APT_RETRY_SECONDS=\${APT_RETRY_SECONDS:-10}
readonly DIG=${sh(DIG)}

work=$(mktemp -d)
# The password file is removed whatever happens (it is in the SSH user's staging dir).
trap 'rm -rf "$work"; rm -f "$PASSWORD_FILE"' EXIT

# The VRRP password: uploaded by Terraform for this run only (variable vrrp_password).
[[ -s "$PASSWORD_FILE" ]] || fail "$PASSWORD_FILE is missing or empty: Terraform uploads it from the variable vrrp_password"
password=$(<"$PASSWORD_FILE")
rm -f "$PASSWORD_FILE"
[[ "$password" =~ $PASSWORD_RE ]] || fail "vrrp_password must be 1 to 8 characters among A-Z a-z 0-9 . _ ~ + = @ % ^ * -"

# keepalived sends from, and checks HAProxy at, the node's described overlay address.
address=$(overlay_address)
log "overlay address $address on $OVERLAY_IFACE"

apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=60 "$@"; }
# keepalived, and dig for the Consul DNS check (bind9-dnsutils, on Ubuntu server images already).
packages=()
command -v keepalived >/dev/null || packages+=(keepalived)
[[ -x "$DIG" ]] || packages+=(${sh(DIG_PACKAGE)})
if ((\${#packages[@]} > 0)); then
  log "installing \${packages[*]} with apt-get"
  for ((attempt = 1; ; attempt++)); do
    # Another apt/dpkg (unattended-upgrades on a fresh VM) may hold the lock: bounded retries.
    if apt_get update && apt_get install --no-install-recommends "\${packages[@]}"; then
      break
    fi
    ((attempt < APT_ATTEMPTS)) || fail "apt-get could not install \${packages[*]} after $attempt attempts"
    log "apt-get failed (attempt $attempt of $APT_ATTEMPTS): retrying in \${APT_RETRY_SECONDS}s"
    sleep "$APT_RETRY_SECONDS"
  done
  command -v keepalived >/dev/null || fail "keepalived is still missing after apt-get install"
  [[ -x "$DIG" ]] || fail "$DIG is still missing after apt-get install"
fi

# The unprivileged user the health check runs as (enable_script_security).
if ! getent passwd "$SCRIPT_USER" >/dev/null; then
  useradd --system --no-log-init --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SCRIPT_USER"
  log "created the system user $SCRIPT_USER"
fi

# net.ipv4.ip_nonlocal_bind=1: HAProxy binds the floating IP where it is not held (yet).
if ! cmp -s "$SYSCTL_SOURCE" "$SYSCTL_FILE"; then
  install -D -m 0644 -o root -g root "$SYSCTL_SOURCE" "$SYSCTL_FILE"
  log "installed $SYSCTL_FILE"
fi
sysctl -q -p "$SYSCTL_FILE" >/dev/null

# The candidate config: the rendered template with the password, checked by keepalived.
template=$(<"$TEMPLATE")
[[ "$template" == *"$PLACEHOLDER"* ]] || fail "$TEMPLATE has no password placeholder"
candidate="$work/keepalived.conf"
printf '%s\\n' "\${template//"$PLACEHOLDER"/"$password"}" >"$candidate"
# keepalived 2.2.7 (Debian 12) \`-t\` kills itself with SIGTERM (exit 143, valid config or
# not) when script_user is not root: it checks the script as that user and then mistakes
# its own process for an orphan. The check therefore reads a copy naming root; the user
# itself exists (created above), and the running daemon uses the real file.
# unicast_fault_no_peer arrived in keepalived 2.2.7; older ones (Ubuntu 22.04: 2.2.4)
# reject the keyword. It only matters for an instance left without peers, which we never
# render, so it is dropped there rather than failing the install.
version=$(keepalived --version 2>&1 | sed -n 's/^Keepalived v\\([0-9][0-9.]*\\).*/\\1/p' | head -n 1)
if [[ -n "$version" && "$(printf '%s\\n' 2.2.7 "$version" | sort -V | head -n 1)" != 2.2.7 ]]; then
  sed -i '/^[[:space:]]*unicast_fault_no_peer$/d' "$candidate"
  log "keepalived $version predates unicast_fault_no_peer: left out of the installed config"
fi
awk '$1 == "script_user" { print "  script_user root"; next } { print }' "$candidate" >"$work/check.conf"
if ! output=$(keepalived -t -f "$work/check.conf" 2>&1); then
  fail "the new keepalived configuration does not validate; nothing was changed. \${output//"$password"/<vrrp_password>}"
fi

# Set before the config is installed, removed once keepalived has reloaded: a run cut off
# in between leaves it, and the next run reloads although the installed file matches.
readonly RELOAD_PENDING=${sh(`${RESTART_PENDING_DIR}/keepalived`)}
changed=false
if [[ -e "$RELOAD_PENDING" ]]; then
  log "an earlier run installed the configuration but did not get to reload keepalived"
  changed=true
fi
if ! cmp -s "$candidate" "$CONF"; then
  mkdir -p "$(dirname "$RELOAD_PENDING")"
  touch "$RELOAD_PENDING"
  install -D -m 0600 -o root -g root "$candidate" "$CONF"
  log "installed $CONF"
  changed=true
fi

holds_floating_ip() { [[ -n "$(ip -o -4 address show dev "$OVERLAY_IFACE" to "$FLOATING_IP/32")" ]]; }

systemctl enable --quiet keepalived
if ! systemctl is-active --quiet keepalived; then
  log "starting keepalived"
  systemctl start keepalived
elif [[ "$changed" == true ]]; then
  # SIGHUP: re-reads the config, keeps the VRRP state (no failover by itself).
  log "configuration changed: reloading keepalived"
  systemctl reload keepalived
else
  log "configuration unchanged: keepalived left running as it is"
fi

rm -f "$RELOAD_PENDING"

if [[ "$MAINTENANCE" == true ]] && holds_floating_ip; then
  # A lower priority alone does not move the floating IP (nopreempt): a restart does.
  # The stopping keepalived sends priority 0 and a healthy peer takes over at once.
  log "maintenance: handing the floating IP $FLOATING_IP_CIDR over to a peer"
  systemctl restart keepalived
fi

if holds_floating_ip; then
  log "this node holds the floating IP $FLOATING_IP"
else
  log "this node does not hold the floating IP $FLOATING_IP (a peer does, or HAProxy is not healthy here yet)"
fi
`;
}

/**
 * Script of a node that is not eligible: keepalived must not run there (with a stale
 * config it would claim the floating IP on its own). Idempotent; nothing to do on a node
 * that never had keepalived.
 */
export function renderKeepalivedRemovalScript(c: Cluster, n: ClusterNode): string {
  return `#!/usr/bin/env bash
# Node ${commentText(n.name)} (cluster ${commentText(c.name)}) is not eligible for the floating IP ${commentText(c.floatingIp.address)}:
# keepalived is stopped and disabled, and its config from earlier deploys removed.
set -euo pipefail
# Modes this script does not state are the usual ones whatever the provisioner's session
# has: it writes the staged files under umask 077.
umask 022

readonly NODE_NAME=${sh(n.name)}
readonly CONF=${sh(KEEPALIVED_CONF)}
readonly SYSCTL_FILE=${sh(NONLOCAL_BIND_SYSCTL_FILE)}
log() { printf '[keepalived %s] %s\\n' "$NODE_NAME" "$*"; }

if command -v keepalived >/dev/null && systemctl is-enabled --quiet keepalived 2>/dev/null; then
  log "not eligible: stopping and disabling keepalived (a running one sends priority 0)"
  systemctl disable --now --quiet keepalived
elif command -v keepalived >/dev/null && systemctl is-active --quiet keepalived; then
  log "not eligible: stopping keepalived"
  systemctl stop keepalived
fi
for f in "$CONF" "$SYSCTL_FILE"; do
  if [[ -e "$f" ]]; then
    rm -f "$f"
    log "removed $f"
  fi
done
log "keepalived is not used on this node"
`;
}
