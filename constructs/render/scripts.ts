/**
 * Provisioning scripts run on the nodes by Terraform's remote-exec (as root, through sudo).
 * Plain bash, `set -euo pipefail`, idempotent: a second run with the same files changes
 * nothing and restarts nothing. Pure: description in, script text out.
 */
import { commentText } from "../escape";
import type { Cluster, ClusterNode } from "../description/schema";
import {
  CONSUL_ACL_TOKENS_FILE, CONSUL_CONFIG_DIR, CONSUL_HTTP_PORT, NOMAD_CONFIG_DIR, NOMAD_HTTP_PORT, NOMAD_OPERATOR_TOKEN_FILE,
  consulSecretFiles, nomadSecretFiles,
} from "./agents";

import { shellQuote } from "../escape";

/** Quotes a value for bash: the one shell-quoting helper (`shellQuote`, constructs/escape.ts). */
export const sh = shellQuote;

export type AgentKind = "consul" | "nomad";

/** A file the install script moves into place: `source` in the staging dir → `target` on the node. */
export interface ManagedFile {
  source: string;
  target: string;
  mode: string;
}

export interface AgentScriptSpec {
  agent: AgentKind;
  files: ManagedFile[];
  /** Files the operator places on the node (secrets); their absence stops the install. */
  requiredFiles: string[];
  /** Managed files of earlier deploys to remove when absent now (e.g. extraConfig dropped). */
  removableTargets: string[];
}

/**
 * The bash functions every provisioning script shares: logging and the overlay preflight.
 * `exactAddress`: the script needs the node's described overlayAddress itself on the
 * interface even with `overlay.addressing: interface` (keepalived's unicast_src_ip is a
 * literal address).
 */
export function preamble(c: Cluster, n: ClusterNode, tag: string, opts: { exactAddress?: boolean } = {}): string {
  const expected = c.overlay.addressing === "static" || opts.exactAddress ? n.overlayAddress : "";
  return `set -euo pipefail

readonly NODE_NAME=${sh(n.name)}
readonly OVERLAY_IFACE=${sh(c.overlay.interface)}
readonly OVERLAY_PREFIX=${sh(c.overlay.prefix)}
# Empty when the agents look the address up themselves (overlay.addressing: interface).
readonly EXPECTED_ADDRESS=${sh(expected)}
# The floating IP is never this node's own address, even while the node holds it.
readonly FLOATING_IP=${sh(c.floatingIp.address)}

log() { printf '[%s %s] %s\\n' ${sh(tag)} "$NODE_NAME" "$*"; }
fail() { printf '[%s %s] ERROR: %s\\n' ${sh(tag)} "$NODE_NAME" "$*" >&2; exit 1; }

ip_to_int() {
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  echo $(( (a << 24) + (b << 16) + (c << 8) + d ))
}

in_prefix() { # in_prefix ADDRESS NETWORK/BITS
  local net=\${2%/*} bits=\${2#*/} mask
  mask=$(( bits == 0 ? 0 : (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF ))
  (( ($(ip_to_int "$1") & mask) == ($(ip_to_int "$net") & mask) ))
}

# Prints the node's overlay address; fails when the interface is missing or has no
# address of the overlay prefix (the agents would advertise an unreachable address).
overlay_address() {
  local addrs addr
  if ! addrs=$(ip -o -4 addr show dev "$OVERLAY_IFACE" 2>/dev/null); then
    fail "overlay interface $OVERLAY_IFACE does not exist on this VM (check overlay.interface)"
  fi
  while read -r addr; do
    [[ -n "$addr" && "$addr" != "$FLOATING_IP" ]] || continue
    if in_prefix "$addr" "$OVERLAY_PREFIX"; then
      if [[ -z "$EXPECTED_ADDRESS" || "$addr" == "$EXPECTED_ADDRESS" ]]; then
        echo "$addr"
        return 0
      fi
    fi
  done < <(awk '{ split($4, a, "/"); print a[1] }' <<<"$addrs")
  if [[ -n "$EXPECTED_ADDRESS" ]]; then
    fail "interface $OVERLAY_IFACE has no address $EXPECTED_ADDRESS (nodes[].overlayAddress); it has: $(awk '{print $4}' <<<"$addrs" | tr '\\n' ' ')"
  fi
  fail "interface $OVERLAY_IFACE has no address inside $OVERLAY_PREFIX (overlay.prefix)"
}
`;
}

/**
 * Run inside `output=$(… 2>&1)`: both streams are captured, so the validator's message
 * reaches the operator (a `>/dev/null` here would come before `2>&1` and swallow it).
 */
function validateCommand(agent: AgentKind): string {
  return agent === "consul" ? `consul validate "$candidate"` : `nomad config validate "$candidate"`;
}

/**
 * Shell: prints the agent token of the operator-managed acl-tokens.hcl (`agent = "…"`,
 * on its own line or inline as in `acl { tokens { agent = "…" } }`).
 */
const CONSUL_AGENT_TOKEN = `$(sed -n 's/^\\(.*[{[:space:]]\\)\\{0,1\\}agent[[:space:]]*=[[:space:]]*"\\([^"]*\\)".*/\\2/p' ${sh(CONSUL_ACL_TOKENS_FILE)} | head -n 1)`;

/**
 * Tokens for the agents' CLIs on the node when ACLs are on: read from the operator-managed
 * files, exported to the CLI only, never printed.
 */
function cliTokens(c: Cluster, agent: AgentKind): string {
  if (agent === "consul" && c.consul.acl) {
    return `# The agent token (node:write on itself) lets \`consul members\` see this node.
CONSUL_HTTP_TOKEN=${CONSUL_AGENT_TOKEN}
[[ -n "$CONSUL_HTTP_TOKEN" ]] || fail "no agent token (agent = ...) in ${CONSUL_ACL_TOKENS_FILE}"
export CONSUL_HTTP_TOKEN
`;
  }
  if (agent === "nomad" && c.nomad.acl) {
    return `NOMAD_TOKEN=$(<${sh(NOMAD_OPERATOR_TOKEN_FILE)})
export NOMAD_TOKEN
`;
  }
  return "";
}

/** Where this node's scripts find the local Nomad agent's environment (read by decommission.sh). */
export const NOMAD_CLI_ENV_FILE = `${NOMAD_CONFIG_DIR}/cli.env`;

/**
 * Shell: writes NOMAD_ADDR (and, with TLS, the CLI's certificate settings) for the local
 * agent to ${NOMAD_CLI_ENV_FILE} and exports them. The address is known only on the node
 * (overlay.addressing: interface); the agent's certificate names client.<region>.nomad,
 * not the overlay address.
 */
function nomadCliEnv(c: Cluster): string {
  const tls = c.nomad.tls;
  // The file is sourced as root: each value is written by bash's own quoting (%q), so a
  // value is data whatever it contains (no $(...), no word splitting, no line breaks).
  const lines = [
    `printf 'NOMAD_ADDR=%q\\n' "${tls ? "https" : "http"}://$address:${NOMAD_HTTP_PORT}"`,
    ...(tls
      ? [
          `printf 'NOMAD_CACERT=%q\\n' ${sh(tls.caFile)}`,
          `printf 'NOMAD_CLIENT_CERT=%q\\n' ${sh(tls.certFile)}`,
          `printf 'NOMAD_CLIENT_KEY=%q\\n' ${sh(tls.keyFile)}`,
          `printf 'NOMAD_TLS_SERVER_NAME=%q\\n' ${sh(`client.${c.region}.nomad`)}`,
        ]
      : []),
  ];
  return `# How the Nomad CLI reaches this node's agent (decommission.sh reads the same file).
mkdir -p "$CONFIG_DIR"
{
${lines.map((l) => `  ${l}`).join("\n")}
} >${sh(NOMAD_CLI_ENV_FILE)}.new
mv -f ${sh(NOMAD_CLI_ENV_FILE)}.new ${sh(NOMAD_CLI_ENV_FILE)}
set -a
# shellcheck disable=SC1090
. ${sh(NOMAD_CLI_ENV_FILE)}
set +a`;
}

function verifyFunction(agent: AgentKind): string {
  if (agent === "consul") {
    return `# Joined: this node is an alive member advertising its overlay address, and it sees an
# alive server (an agent lists itself from the start, joined or not).
joined() {
  consul members -http-addr=http://127.0.0.1:${CONSUL_HTTP_PORT} -status=alive 2>/dev/null \\
    | awk -v n="$NODE_NAME" -v a="$1:" '$4 == "server" { s = 1 } $1 == n && index($2, a) == 1 { m = 1 } END { exit !(s && m) }'
}
describe_membership() { consul members -http-addr=http://127.0.0.1:${CONSUL_HTTP_PORT} 2>&1 | head -n 20 || true; }`;
  }
  return `# Joined: the servers see this node ready, advertising its overlay address.
joined() {
  local status
  status=$(nomad node status -self -t '{{ .Status }} {{ .HTTPAddr }}' 2>/dev/null) || return 1
  [[ "$status" == "ready $1:${NOMAD_HTTP_PORT}" ]]
}
describe_membership() { nomad node status -self 2>&1 | head -n 20 || true; }`;
}

/**
 * The Nomad maintenance step: drain with a deadline while `maintenance: true`, and end
 * the drain (eligibility back) when the flag is cleared.
 */
function maintenanceStep(c: Cluster, n: ClusterNode): string {
  return `
readonly MAINTENANCE=${n.maintenance ? "true" : "false"}
readonly DRAIN_DEADLINE=${sh(c.nomad.drainDeadline)}
if [[ "$MAINTENANCE" == true ]]; then
  log "maintenance: draining allocations (deadline $DRAIN_DEADLINE) and marking the node ineligible"
  nomad node drain -self -enable -deadline "$DRAIN_DEADLINE" -yes
else
  # Any drain or ineligibility is ended here, also one an operator set by hand: the
  # description is the source of truth for a node's schedulability.
  eligibility=$(nomad node status -self -t '{{ .SchedulingEligibility }}')
  if [[ "$eligibility" != eligible ]]; then
    log "maintenance cleared: ending the drain and making the node eligible again"
    nomad node drain -self -disable -yes >/dev/null 2>&1 || true
    nomad node eligibility -self -enable
  fi
fi`;
}

export function renderAgentInstallScript(c: Cluster, n: ClusterNode, spec: AgentScriptSpec): string {
  const { agent } = spec;
  const configDir = agent === "consul" ? CONSUL_CONFIG_DIR : NOMAD_CONFIG_DIR;
  const fileRows = spec.files.map((f) => `  ${sh(f.source)} ${sh(f.target)} ${sh(f.mode)}`).join("\n");
  return `#!/usr/bin/env bash
# Installs the ${agent} client configuration of node ${commentText(n.name)} (cluster ${commentText(c.name)}).
# Run as root from the directory the file provisioner uploaded. Idempotent: the agent is
# restarted only when one of its files changed; a config that fails validation is never
# installed, so the running agent keeps its previous config.
${preamble(c, n, agent)}
readonly AGENT=${sh(agent)}
readonly CONFIG_DIR=${sh(configDir)}
STAGE_DIR="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
readonly STAGE_DIR
readonly JOIN_TIMEOUT_SECONDS=\${JOIN_TIMEOUT_SECONDS:-120}

# staged file, target, mode
readonly -a MANAGED=(
${fileRows}
)
readonly -a REQUIRED_FILES=(${spec.requiredFiles.map(sh).join(" ")})
readonly -a REMOVABLE=(${spec.removableTargets.map(sh).join(" ")})

${verifyFunction(agent)}

command -v "$AGENT" >/dev/null || fail "$AGENT is not installed on this VM"
address=$(overlay_address)
log "overlay address $address on $OVERLAY_IFACE"
${agent === "nomad" ? nomadCliEnv(c) : ""}

for f in "\${REQUIRED_FILES[@]}"; do
  [[ -s "$f" ]] || fail "$f is missing or empty: it holds a secret and is placed on the node by the operator (see README, Security)"
done
${cliTokens(c, agent)}
# Validate the candidate config directory (our files + every other file already there)
# with the real binary before touching anything.
candidate=$(mktemp -d)
trap 'rm -rf "$candidate"' EXIT
shopt -s nullglob
for f in "$CONFIG_DIR"/*.hcl "$CONFIG_DIR"/*.json; do
  cp -p "$f" "$candidate/"
done
for target in "\${REMOVABLE[@]}"; do rm -f "$candidate/$(basename "$target")"; done
for ((i = 0; i < \${#MANAGED[@]}; i += 3)); do
  target=\${MANAGED[i + 1]}
  if [[ "$(dirname "$target")" == "$CONFIG_DIR" ]]; then
    cp "$STAGE_DIR/\${MANAGED[i]}" "$candidate/$(basename "$target")"
  fi
done
if ! output=$(${validateCommand(agent)} 2>&1); then
  fail "the new $AGENT configuration does not validate; nothing was changed. $output"
fi

changed=false
for ((i = 0; i < \${#MANAGED[@]}; i += 3)); do
  src="$STAGE_DIR/\${MANAGED[i]}" target=\${MANAGED[i + 1]} mode=\${MANAGED[i + 2]}
  if ! cmp -s "$src" "$target"; then
    install -D -m "$mode" -o root -g "$(stat -c %G "$(dirname "$target")" 2>/dev/null || echo root)" "$src" "$target"
    log "installed $target"
    changed=true
  fi
done
for target in "\${REMOVABLE[@]}"; do
  if [[ -e "$target" ]]; then
    rm -f "$target"
    log "removed $target"
    changed=true
  fi
done

systemctl daemon-reload
systemctl enable --quiet "$AGENT"
if [[ "$changed" == true ]]; then
  log "configuration changed: restarting $AGENT"
  systemctl restart "$AGENT"
elif ! systemctl is-active --quiet "$AGENT"; then
  log "configuration unchanged, $AGENT not running: starting it"
  systemctl start "$AGENT"
else
  log "configuration unchanged: $AGENT left running as it is"
fi

deadline=$((SECONDS + JOIN_TIMEOUT_SECONDS))
until joined "$address"; do
  if ((SECONDS >= deadline)); then
    describe_membership "$address" >&2
    fail "$AGENT did not report node $NODE_NAME as joined with address $address within \${JOIN_TIMEOUT_SECONDS}s (see: journalctl -u $AGENT)"
  fi
  sleep 2
done
log "joined with address $address"
${agent === "nomad" ? maintenanceStep(c, n) : ""}
`;
}

/**
 * Decommission, run at destroy time when a node leaves the description. It is static (the
 * same for every node) because a destroy-time provisioner may read only its own resource:
 * the node name and drain deadline come as arguments from the resource's stored input.
 *
 * Order matters: the floating IP leaves first (keepalived stops and sends priority 0),
 * then allocations drain, then Nomad stops, then Consul leaves gracefully.
 */
export function renderDecommissionScript(): string {
  return `#!/usr/bin/env bash
# Decommissions this node: usage decommission.sh NODE_NAME OVERLAY_ADDRESS DRAIN_DEADLINE
# Each step tolerates an already-stopped service, so a re-run after a failure is safe.
set -euo pipefail

readonly NODE_NAME=$1 ADDRESS=$2 DRAIN_DEADLINE=$3
log() { printf '[decommission %s] %s\\n' "$NODE_NAME" "$*"; }

# With ACLs, the operator-managed tokens (see README, Security); harmless without them.
if [[ -s ${sh(NOMAD_OPERATOR_TOKEN_FILE)} ]]; then
  NOMAD_TOKEN=$(<${sh(NOMAD_OPERATOR_TOKEN_FILE)})
  export NOMAD_TOKEN
fi
if [[ -s ${sh(CONSUL_ACL_TOKENS_FILE)} ]]; then
  CONSUL_HTTP_TOKEN=${CONSUL_AGENT_TOKEN}
  export CONSUL_HTTP_TOKEN
fi

if systemctl is-active --quiet keepalived; then
  log "stopping keepalived: the floating IP moves to a peer now"
  systemctl disable --now --quiet keepalived
fi

# The local agent's address (and TLS settings) as the Nomad install wrote them.
if [[ -r ${sh(NOMAD_CLI_ENV_FILE)} ]]; then
  set -a
  # shellcheck disable=SC1090
  . ${sh(NOMAD_CLI_ENV_FILE)}
  set +a
else
  export NOMAD_ADDR="http://$ADDRESS:${NOMAD_HTTP_PORT}"
fi

if systemctl is-active --quiet nomad; then
  log "draining Nomad allocations (deadline $DRAIN_DEADLINE)"
  nomad node drain -self -enable -deadline "$DRAIN_DEADLINE" -yes \\
    || log "drain did not complete cleanly; continuing (allocations are rescheduled when the node goes down)"
  systemctl disable --now --quiet nomad
  log "nomad stopped and disabled"
fi

if systemctl is-active --quiet consul; then
  log "leaving the Consul cluster"
  consul leave -http-addr=http://127.0.0.1:${CONSUL_HTTP_PORT} || log "consul leave failed; stopping the agent anyway"
  systemctl disable --now --quiet consul
  log "consul stopped and disabled"
fi

# Whatever was running or not: nothing may come back at the next boot. A keepalived that
# restarted with its stale config, no longer anyone's peer, would claim the floating IP.
systemctl disable --now --quiet keepalived nomad consul 2>/dev/null || true
rm -f /etc/keepalived/keepalived.conf
log "done"
`;
}

export { nomadSecretFiles, consulSecretFiles };
