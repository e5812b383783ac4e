/**
 * Provisioning scripts run on the nodes by Terraform's remote-exec (as root, through sudo).
 * Plain bash, `set -euo pipefail`, idempotent: a second run with the same files changes
 * nothing and restarts nothing. Pure: description in, script text out.
 */
import { commentText } from "../escape";
import type { Cluster, ClusterNode } from "../description/schema";
import {
  CONSUL_ACL_TOKENS_FILE, CONSUL_CONFIG_DIR, CONSUL_HTTP_PORT, NOMAD_CONFIG_DIR, NOMAD_HTTP_PORT, NOMAD_OPERATOR_TOKEN_FILE,
  NOMAD_DATA_DIR, PREVIOUS_NOMAD_DATA_DIR, consulSecretFiles, nomadSecretFiles,
} from "./agents";
import { minorOf, supports } from "../versions";

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

/** Where install scripts note a restart (or reload) still owed after an interrupted run. */
export const RESTART_PENDING_DIR = "/var/lib/cluster-provision/restart-pending";

/**
 * The bash functions every provisioning script shares: logging and the overlay preflight.
 * `exactAddress`: the script needs the node's described overlayAddress itself on the
 * interface even with `overlay.addressing: interface` (keepalived's unicast_src_ip is a
 * literal address).
 */
export function preamble(c: Cluster, n: ClusterNode, tag: string, opts: { exactAddress?: boolean } = {}): string {
  const expected = c.overlay.addressing === "static" || opts.exactAddress ? n.overlayAddress : "";
  return `set -euo pipefail
# Modes this script does not state are the usual ones whatever the provisioner's session
# has: it writes the staged files under umask 077.
umask 022

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
 * Whether the described version validates a config directory without starting an agent:
 * `consul validate` (every supported Consul), `nomad config validate` (Nomad 1.3+). Nomad
 * 1.2 is checked by the agent itself after the restart, with the previous files put back
 * when it does not come up (see renderAgentInstallScript).
 */
export function canValidateOffline(c: Cluster, agent: AgentKind): boolean {
  return agent === "consul" || supports(c.versions, "nomadConfigValidate");
}

/** How this node reaches the servers' HTTP API: the server VM's overlay address when described, else the first join address. */
export function serversHttpUrl(c: Cluster, agent: AgentKind): string {
  const tls = agent === "consul" ? c.consul.tls : c.nomad.tls;
  const host = c.servers.vm?.overlayAddress ?? c.servers.join[0];
  const port = agent === "consul" ? (tls ? 8501 : CONSUL_HTTP_PORT) : NOMAD_HTTP_PORT;
  return `${tls ? "https" : "http"}://${host}:${port}`;
}

/**
 * Shell: the binary on the node is at least the described major.minor (every feature of
 * the output was chosen for that version); a newer one is noted, not refused.
 */
function binaryVersionCheck(c: Cluster, agent: AgentKind): string {
  const described = agent === "consul" ? c.versions.consul : c.versions.nomad;
  return `# The output was written for ${agent} ${commentText(described)} (versions.${agent}); an older binary may lack some of it.
readonly DESCRIBED_VERSION=${sh(described)}
# First line of \`${agent} version\`: "${agent === "consul" ? "Consul" : "Nomad"} v<version>…".
installed_version=$("$AGENT" version 2>/dev/null | awk 'NR == 1 { sub(/^v/, "", $2); print $2 }')
[[ "$installed_version" =~ ^[0-9]+\\.[0-9]+ ]] || fail "cannot read the version of $AGENT on this VM ($AGENT version)"
IFS=. read -r have_major have_minor _ <<<"$installed_version"
IFS=. read -r want_major want_minor _ <<<${sh(minorOf(described) + ".0")}
if ((have_major < want_major || (have_major == want_major && have_minor < want_minor))); then
  fail "$AGENT on this VM is $installed_version, older than versions.${agent} $DESCRIBED_VERSION of the description: describe the version the provider installed"
elif [[ "$installed_version" != "$DESCRIBED_VERSION" ]]; then
  log "$AGENT $installed_version on this VM (described: $DESCRIBED_VERSION)"
fi`;
}

/**
 * Shell: refuses a node whose agent is a server (the provider's server VM, 2023-2025):
 * either a config file here makes it one, or the running agent says so.
 */
/**
 * An awk program that exits 0 when the agent config files it reads make the agent a server:
 * Consul's top-level `server` / `bootstrap` / `bootstrap_expect`, Nomad's `server.enabled`,
 * set to anything but false/0. Keys in any letter case (HCL1 and mapstructure match them
 * case-insensitively), HCL (blocks, `key = { }`, lists of objects, comments, heredocs) or
 * JSON. Files are read one after the other, each from a clean state.
 */
const CONFIG_SAYS_SERVER_AWK = String.raw`
function reset() { pending = ""; assign = 0 }
function path(   i, p) {
  p = ""
  for (i = 1; i <= depth; i++) if (frame[i] != "") p = (p == "" ? frame[i] : p "." frame[i])
  return p
}
function scalar(key, v,   p) {
  p = path()
  if (v == "false" || v == "f" || v == "0" || v == "0.0" || v == "") return
  if (agent == "consul" && p == "" && (key == "server" || key == "bootstrap" || key == "bootstrap_expect")) found = 1
  if (agent == "nomad" && p == "server" && key == "enabled") found = 1
}
function word(w) {
  w = tolower(w)
  if (assign && pending != "") { scalar(pending, w); reset() }
  else if (pending == "") pending = w
}
function open_block(name) { depth++; frame[depth] = name; reset() }
FNR == 1 { depth = 0; reset(); incomment = 0; heredoc = "" }
{
  line = $0
  if (heredoc != "") {
    t = line
    gsub(/^[ \t]+|[ \t\r]+$/, "", t)
    if (t == heredoc) { heredoc = ""; word("heredoc") }
    next
  }
  n = length(line)
  i = 1
  while (i <= n) {
    c = substr(line, i, 1)
    two = substr(line, i, 2)
    if (incomment) { if (two == "*/") { incomment = 0; i += 2 } else i++; continue }
    if (c == "#" || two == "//") break
    if (two == "/*") { incomment = 1; i += 2; continue }
    if (two == "<<") {
      heredoc = substr(line, i + 2)
      sub(/^-/, "", heredoc)
      gsub(/[ \t\r]+$/, "", heredoc)
      break
    }
    if (c == "\"") {
      s = ""
      i++
      while (i <= n) {
        c = substr(line, i, 1)
        if (c == "\\") { s = s substr(line, i + 1, 1); i += 2; continue }
        if (c == "\"") break
        s = s c
        i++
      }
      i++
      word(s)
      continue
    }
    if (c == "{") { open_block(pending); i++; continue }
    if (c == "[") { open_block(assign ? pending : ""); i++; continue }
    if (c == "}" || c == "]") { if (depth > 0) depth--; reset(); i++; continue }
    if (c == "=" || c == ":") { if (pending != "") assign = 1; i++; continue }
    if (c == ",") { reset(); i++; continue }
    if (match(substr(line, i), /^[A-Za-z0-9_.+-]+/)) { word(substr(line, i, RLENGTH)); i += RLENGTH; continue }
    i++
  }
  # A value may follow its key on the next line in JSON; a key alone on a line is done.
  if (!assign) reset()
}
END { exit(found ? 0 : 1) }
`;

/** Shell: `config_says_server AGENT` (0: a file in $CONFIG_DIR makes AGENT a server, 1: none does, 2+: unreadable). */
export function configSaysServerFunction(): string {
  return `# 0 when an agent config file in $CONFIG_DIR (*.hcl, *.json) makes agent $1 (consul or
# nomad) a server, 1 when none does, more when one cannot be read. Keys in any letter case,
# HCL or JSON, as the agents themselves read them.
config_says_server() {
  local restore files
  restore=$(shopt -p nullglob || true)
  shopt -s nullglob
  files=("$CONFIG_DIR"/*.hcl "$CONFIG_DIR"/*.json)
  eval "$restore"
  ((\${#files[@]} > 0)) || return 1
  awk -v agent="$1" '${CONFIG_SAYS_SERVER_AWK}' "\${files[@]}"
}`;
}

function refuseServerNode(c: Cluster, agent: AgentKind): string {
  // `consul info` / `nomad agent-info` print "server = true" in their consul/nomad section on a server.
  const agentSaysServer =
    agent === "consul"
      ? `consul info -http-addr=http://127.0.0.1:${CONSUL_HTTP_PORT} 2>/dev/null`
      : c.nomad.tls
        ? // A loopback probe sending no token: the agent's certificate names no address.
          `nomad agent-info -address=https://127.0.0.1:${NOMAD_HTTP_PORT} -tls-skip-verify -client-cert=${sh(c.nomad.tls.certFile)} -client-key=${sh(c.nomad.tls.keyFile)} 2>/dev/null`
        : `nomad agent-info -address=http://127.0.0.1:${NOMAD_HTTP_PORT} 2>/dev/null`;
  return `# Never turn a server into a client: on 2023-2025 VMs one of the team's VMs runs the only
# servers, and overwriting its config would destroy them.
${configSaysServerFunction()}
server_config=0
config_says_server ${agent} || server_config=$?
if ((server_config == 0)); then
  fail "$CONFIG_DIR configures a $AGENT SERVER on this VM: it is not a client node (servers.vm?); nothing was changed"
elif ((server_config != 1)); then
  fail "cannot read the $AGENT config files in $CONFIG_DIR to tell whether this VM runs a server; nothing was changed"
fi
# Captured first: under pipefail, \`cmd | grep -q\` fails when grep exits before cmd is done
# writing (SIGPIPE), and a real \`consul info\` writes more than the pipe holds.
agent_info=$(${agentSaysServer} || true)
if grep -Eq '^[[:space:]]*server[[:space:]]*=[[:space:]]*true' <<<"$agent_info"; then
  fail "the running $AGENT agent on this VM is a SERVER: it is not a client node (servers.vm?); nothing was changed"
fi`;
}

/** CLI options to reach the servers' HTTP API (TLS files when the description has them). */
function serversCliOptions(c: Cluster, agent: AgentKind): string {
  if (agent === "consul") {
    const t = c.consul.tls;
    return [`-http-addr="$SERVERS_HTTP"`, ...(t ? [`-ca-file=${sh(t.caFile)}`, `-client-cert=${sh(t.certFile)}`, `-client-key=${sh(t.keyFile)}`] : [])].join(" ");
  }
  const t = c.nomad.tls;
  return [`-address="$SERVERS_HTTP"`, ...(t ? [`-ca-cert=${sh(t.caFile)}`, `-client-cert=${sh(t.certFile)}`, `-client-key=${sh(t.keyFile)}`] : [])].join(" ");
}

/**
 * Shell: asks the servers which datacenter (Consul) or region (Nomad) they run in, before
 * anything is written; a client of another one would be refused or never scheduled.
 */
/**
 * Shell (needs SERVERS_HTTP set): prints the servers' Consul datacenter, or their Nomad
 * region, as they report it themselves; empty when they cannot be asked. Shared with
 * `npm run preflight`, which asks the same question before any deploy.
 */
export function serversPlacementQuery(c: Cluster, agent: AgentKind): string {
  return agent === "consul"
    ? `consul members ${serversCliOptions(c, agent)} -detailed 2>/dev/null \
    | awk '$3 == "alive" && $4 ~ /(^|,)role=consul(,|$)/ { n = split($4, t, ","); for (i = 1; i <= n; i++) if (t[i] ~ /^dc=/) { print substr(t[i], 4); exit } }'`
    : `nomad server members ${serversCliOptions(c, agent)} 2>/dev/null | awk 'NR > 1 && $4 == "alive" { print $NF; exit }'`;
}

function serversPlacementCheck(c: Cluster, agent: AgentKind): string {
  if (agent === "consul") {
    return `# The servers' datacenter, from their own member list (\`consul members -detailed\`: a
# server's tags hold role=consul and dc=<datacenter>). Consul refuses a client of another one.
servers_datacenter() {
  ${serversPlacementQuery(c, agent)}
}
actual_datacenter=$(servers_datacenter) || true
[[ -n "$actual_datacenter" ]] || fail "cannot ask the Consul servers at $SERVERS_HTTP for their datacenter (consul members -detailed); nothing was changed"
if [[ "$actual_datacenter" != "$SERVERS_DATACENTER" ]]; then
  fail "the Consul servers run in datacenter '$actual_datacenter', the description says servers.datacenter '$SERVERS_DATACENTER': Consul would refuse this client; nothing was changed"
fi`;
  }
  return `# The servers' region (last column of \`nomad server members\`): a client of another region
# is never part of this cluster.
actual_region=$(${serversPlacementQuery(c, agent)}) || true
[[ -n "$actual_region" ]] || fail "cannot ask the Nomad servers at $SERVERS_HTTP for their region (nomad server members); nothing was changed"
if [[ "$actual_region" != "$SERVERS_REGION" ]]; then
  fail "the Nomad servers run in region '$actual_region', the description says region '$SERVERS_REGION'; nothing was changed"
fi`;
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
# Its mode said, not inherited: the provisioner's session runs under umask 077. Addresses and
# certificate paths only (the token has a file of its own), readable as the nomad CLI needs.
chmod 0644 ${sh(NOMAD_CLI_ENV_FILE)}.new
mv -f ${sh(NOMAD_CLI_ENV_FILE)}.new ${sh(NOMAD_CLI_ENV_FILE)}
set -a
# shellcheck disable=SC1090
. ${sh(NOMAD_CLI_ENV_FILE)}
set +a`;
}

function verifyFunction(c: Cluster, agent: AgentKind): string {
  if (agent === "consul") {
    return `# Joined: the local agent is an alive member advertising its overlay address (gossip),
# AND the servers' catalog has this node at that address in their datacenter (an agent
# lists itself from the start, joined or not; only the servers know it registered).
joined() {
  consul members -http-addr=http://127.0.0.1:${CONSUL_HTTP_PORT} -status=alive 2>/dev/null \\
    | awk -v n="$NODE_NAME" -v a="$1:" '$1 == n && index($2, a) == 1 { m = 1 } END { exit !m }' || return 1
  # \`consul catalog nodes\` columns: Node ID Address DC.
  consul catalog nodes ${serversCliOptions(c, agent)} 2>/dev/null \\
    | awk -v n="$NODE_NAME" -v a="$1" -v dc="$SERVERS_DATACENTER" '$1 == n && $3 == a && $4 == dc { f = 1 } END { exit !f }'
}
describe_membership() {
  echo "local gossip view:"; consul members -http-addr=http://127.0.0.1:${CONSUL_HTTP_PORT} 2>&1 | head -n 20 || true
  echo "servers' catalog ($SERVERS_HTTP):"; consul catalog nodes ${serversCliOptions(c, agent)} 2>&1 | head -n 20 || true
}`;
  }
  return `# Joined: the servers (node status is read from their state) see this node ready, in the
# described datacenter, advertising its overlay address.
joined() {
  local status
  status=$(nomad node status -self -t '{{ .Status }} {{ .HTTPAddr }} {{ .Datacenter }}' 2>/dev/null) || return 1
  [[ "$status" == "ready $1:${NOMAD_HTTP_PORT} $SERVERS_DATACENTER" ]]
}
describe_membership() { nomad node status -self 2>&1 | head -n 20 || true; }`;
}

/** The metrics job (its allocation holds Prometheus' history on a migrated ephemeral disk). */
export const METRICS_JOB_NAME = "metrics";
/** How long a drain waits for the metrics allocation to run on another node (its data copied from here). */
export const METRICS_MOVE_TIMEOUT_S = 600;

/**
 * Shell functions: whether the metrics job's allocation runs on this node, and a wait until
 * it runs on another one. Its data (Prometheus' TSDB, Grafana's database) moves with the
 * allocation (ephemeral_disk migrate): the replacement's Nomad client copies it from THIS
 * node's client (HTTP API, /v1/client/allocation/<id>/snapshot) while it starts, after the
 * drain already returned. Stopping Nomad, or the VM, before that cuts the copy and loses
 * the history. Best effort: when the job cannot be read (no metrics job, a token without
 * read-job), nothing is waited for.
 */
function metricsMoveFunctions(): string {
  return `readonly METRICS_JOB=${METRICS_JOB_NAME} METRICS_MOVE_TIMEOUT_S=${METRICS_MOVE_TIMEOUT_S}
# Node IDs of the metrics job's running allocations, one a line; fails when unreadable.
metrics_alloc_nodes() {
  nomad job allocs -t '{{ range . }}{{ if eq .ClientStatus "running" }}{{ .NodeID }}{{ "\\n" }}{{ end }}{{ end }}' "$METRICS_JOB" 2>/dev/null
}
# Waits until the metrics allocation runs on a node other than $1 (its data then copied).
wait_metrics_elsewhere() {
  local self=$1 nodes deadline=$((SECONDS + METRICS_MOVE_TIMEOUT_S))
  log "waiting for the metrics job to run on another node (its history is copied from this one)"
  while :; do
    if ! nodes=$(metrics_alloc_nodes); then
      log "cannot read the metrics job's allocations: not waiting"
      return 0
    fi
    if [[ -n "$(grep -v -x -F "$self" <<<"$nodes" || true)" ]]; then break; fi
    if ((SECONDS >= deadline)); then
      log "the metrics job does not run elsewhere after \${METRICS_MOVE_TIMEOUT_S}s (no room, or placement failed): its history may be lost if Nomad stops now (see: nomad job status $METRICS_JOB)"
      return 0
    fi
    sleep 5
  done
  log "the metrics job runs on another node"
}`;
}

/**
 * Nomad: moving the client's state from the previous data_dir (PREVIOUS_NOMAD_DATA_DIR) to
 * NOMAD_DATA_DIR, once, before the new config is installed. Only on a node that runs no
 * allocation: the state database and the allocation directories (bind-mounted into the
 * containers, with tmpfs secrets inside) cannot move under running tasks. A node under
 * `maintenance: true` is drained here first; any other node that still runs allocations is
 * refused with what to do, and nothing is changed. The node keeps its ID (client/client-id
 * moves along), so the servers see the same node come back.
 */
function dataDirMoveStep(c: Cluster, n: ClusterNode): string {
  // Without an offline validation the install restores the previous files when the agent
  // does not come up (restore_previous), and the moved state goes back with them.
  const tracked = !canValidateOffline(c, "nomad");
  const metrics = c.metrics.enabled;
  return `readonly MAINTENANCE=${n.maintenance ? "true" : "false"}
readonly DRAIN_DEADLINE=${sh(c.nomad.drainDeadline)}
${metrics ? `${metricsMoveFunctions()}
# Whether the metrics job runs here, asked before any drain (after it, it no longer does).
metrics_runs_here() {
  self_id=$(nomad node status -self -t '{{ .ID }}' 2>/dev/null || true)
  [[ -n "$self_id" ]] || return 1
  local nodes
  nodes=$(metrics_alloc_nodes 2>/dev/null) || return 1
  grep -q -x -F "$self_id" <<<"$nodes"
}
` : ""}readonly DATA_DIR=${sh(NOMAD_DATA_DIR)}
readonly PREVIOUS_DATA_DIR=${sh(PREVIOUS_NOMAD_DATA_DIR)}
# Containers Nomad runs carry this label (its docker driver sets it on every task).
running_allocation_containers() {
  docker ps -q --filter label=com.hashicorp.nomad.alloc_id | wc -l
}
${tracked ? "moved_state=false\n" : ""}move_state() {
  local from=$1 to=$2 entry
  mkdir -p "$to"
  chmod 0711 "$to"
  for entry in "$from"/* "$from"/.[!.]*; do
    if [[ -e "$entry" ]]; then mv "$entry" "$to/"; fi
  done
}
if [[ ! -e "$DATA_DIR/client/client-id" && -e "$PREVIOUS_DATA_DIR/client/client-id" ]]; then
  log "the Nomad client's data_dir moves from $PREVIOUS_DATA_DIR to $DATA_DIR (the provider's Nomad role takes $PREVIOUS_DATA_DIR over)"
  running=$(running_allocation_containers) || fail "cannot list this VM's Nomad containers (docker ps); nothing was changed"
  if ((running > 0)) && [[ "$MAINTENANCE" == true ]]; then
    log "draining this node first (maintenance: true, deadline $DRAIN_DEADLINE)"
${metrics ? `    metrics_here=false
    if metrics_runs_here; then metrics_here=true; fi
` : ""}    nomad node drain -self -enable -deadline "$DRAIN_DEADLINE" -yes
${metrics ? `    if [[ "$metrics_here" == true ]]; then wait_metrics_elsewhere "$self_id"; fi
` : ""}    until=$((SECONDS + 60))
    while running=$(running_allocation_containers) && ((running > 0 && SECONDS < until)); do sleep 2; done
  fi
  if ((running > 0)); then
    fail "this node still runs $running Nomad allocation container(s), and the client's state cannot move from $PREVIOUS_DATA_DIR to $DATA_DIR under them: set maintenance: true on node ${commentText(n.name)} and deploy (this install then drains the node and moves the state), then clear it (docs/operations.md, \\"Moving the Nomad data directory\\"); nothing was changed"
  fi
  systemctl stop nomad
  # Leftovers of stopped allocations (their secrets/ and private/ tmpfs) would be moved
  # while mounted: unmount them, deepest first.
  findmnt -rn -o TARGET | awk -v p="$PREVIOUS_DATA_DIR/" 'index($0, p) == 1' | sort -r | while read -r mnt; do
    umount "$mnt" || umount -l "$mnt"
  done
  move_state "$PREVIOUS_DATA_DIR" "$DATA_DIR"
${tracked ? "  moved_state=true\n" : ""}  # Nomad starts again with the new config below (the config changed with it).
  mkdir -p "$(dirname "$RESTART_PENDING")"
  touch "$RESTART_PENDING"
  log "moved the Nomad client's state to $DATA_DIR (node ID kept)"
fi`;
}

/**
 * The Nomad maintenance step: drain with a deadline while `maintenance: true`, and end
 * the drain (eligibility back) when the flag is cleared. With metrics, the step returns
 * only once the metrics allocation runs elsewhere: the node may be powered off then.
 */
function maintenanceStep(c: Cluster): string {
  const metrics = c.metrics.enabled;
  return `
if [[ "$MAINTENANCE" == true ]]; then
${metrics ? `  metrics_here=false
  if metrics_runs_here; then metrics_here=true; fi
` : ""}  log "maintenance: draining allocations (deadline $DRAIN_DEADLINE) and marking the node ineligible"
  nomad node drain -self -enable -deadline "$DRAIN_DEADLINE" -yes
${metrics ? `  if [[ "$metrics_here" == true ]]; then wait_metrics_elsewhere "$self_id"; fi
` : ""}else
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
# Set before the first file is installed, removed once the agent has restarted: a run cut
# off in between (Ctrl-C, a lost connection) leaves it, and the next run restarts the agent
# even though the installed files already match.
readonly RESTART_PENDING=${sh(`${RESTART_PENDING_DIR}/${agent}`)}

# staged file, target, mode
readonly -a MANAGED=(
${fileRows}
)
readonly -a REQUIRED_FILES=(${spec.requiredFiles.map(sh).join(" ")})
readonly -a REMOVABLE=(${spec.removableTargets.map(sh).join(" ")})

readonly SERVERS_HTTP=${sh(serversHttpUrl(c, agent))}
readonly SERVERS_DATACENTER=${sh(c.servers.datacenter)}
${agent === "nomad" ? `readonly SERVERS_REGION=${sh(c.region)}` : ""}

${verifyFunction(c, agent)}

command -v "$AGENT" >/dev/null || fail "$AGENT is not installed on this VM"
${binaryVersionCheck(c, agent)}
${refuseServerNode(c, agent)}
address=$(overlay_address)
log "overlay address $address on $OVERLAY_IFACE"

for f in "\${REQUIRED_FILES[@]}"; do
  [[ -s "$f" ]] || fail "$f is missing or empty: it holds a secret and is placed on the node by the operator (see docs/trust-model.md, Security)"
done
${cliTokens(c, agent)}
${serversPlacementCheck(c, agent)}
${agent === "nomad" ? nomadCliEnv(c) : ""}
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
${
  canValidateOffline(c, agent)
    ? `if ! output=$(${validateCommand(agent)} 2>&1); then
  fail "the new $AGENT configuration does not validate; nothing was changed. $output"
fi`
    : `# Nomad ${commentText(c.versions.nomad)} has no \`nomad config validate\` (1.3.0): the agent itself checks the
# new files at the restart below, and the previous ones come back if it does not come up.
backup=$(mktemp -d)
trap 'rm -rf "$candidate" "$backup"' EXIT
for ((i = 0; i < \${#MANAGED[@]}; i += 3)); do
  target=\${MANAGED[i + 1]}
  if [[ -e "$target" ]]; then cp -p "$target" "$backup/$i"; fi
done
for target in "\${REMOVABLE[@]}"; do
  if [[ -e "$target" ]]; then cp -p "$target" "$backup/removed-$(basename "$target")"; fi
done
# Up: systemd keeps it active and its HTTP API answers (nomad agent-info), within 30 s.
agent_up() {
  local until=$((SECONDS + 30))
  until systemctl is-active --quiet "$AGENT" && nomad agent-info >/dev/null 2>&1; do
    ((SECONDS < until)) || return 1
    sleep 1
  done
}
restore_previous() {${
  agent === "nomad"
    ? `
  if [[ "$moved_state" == true ]]; then
    systemctl stop "$AGENT" || true
    move_state "$DATA_DIR" "$PREVIOUS_DATA_DIR"
    moved_state=false
  fi`
    : ""
}
  for ((i = 0; i < \${#MANAGED[@]}; i += 3)); do
    target=\${MANAGED[i + 1]}
    if [[ -e "$backup/$i" ]]; then cp -p "$backup/$i" "$target"; else rm -f "$target"; fi
  done
  for target in "\${REMOVABLE[@]}"; do
    if [[ -e "$backup/removed-$(basename "$target")" ]]; then cp -p "$backup/removed-$(basename "$target")" "$target"; fi
  done
}`
}

${agent === "nomad" ? dataDirMoveStep(c, n) : ""}
changed=false
if [[ -e "$RESTART_PENDING" ]]; then
  log "an earlier run installed files but did not get to restart $AGENT"
  changed=true
fi
for ((i = 0; i < \${#MANAGED[@]}; i += 3)); do
  src="$STAGE_DIR/\${MANAGED[i]}" target=\${MANAGED[i + 1]} mode=\${MANAGED[i + 2]}
  if ! cmp -s "$src" "$target"; then
    mkdir -p "$(dirname "$RESTART_PENDING")"
    touch "$RESTART_PENDING"
    install -D -m "$mode" -o root -g "$(stat -c %G "$(dirname "$target")" 2>/dev/null || echo root)" "$src" "$target"
    log "installed $target"
    changed=true
  fi
done
for target in "\${REMOVABLE[@]}"; do
  if [[ -e "$target" ]]; then
    mkdir -p "$(dirname "$RESTART_PENDING")"
    touch "$RESTART_PENDING"
    rm -f "$target"
    log "removed $target"
    changed=true
  fi
done

systemctl daemon-reload
systemctl enable --quiet "$AGENT"
if [[ "$changed" == true ]]; then
  log "configuration changed: restarting $AGENT"
${
  canValidateOffline(c, agent)
    ? `  systemctl restart "$AGENT"`
    : `  if ! systemctl restart "$AGENT" || ! agent_up; then
    journal=$(journalctl -u "$AGENT" -n 20 --no-pager 2>&1 || true)
    restore_previous
    systemctl restart "$AGENT" || true
    fail "$AGENT did not come up with the new configuration; the previous files are back. $journal"
  fi`
}
  rm -f "$RESTART_PENDING"
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
${agent === "nomad" ? maintenanceStep(c) : ""}
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
# Modes this script does not state are the usual ones whatever the provisioner's session
# has: it writes the staged files under umask 077.
umask 022

readonly NODE_NAME=$1 ADDRESS=$2 DRAIN_DEADLINE=$3
log() { printf '[decommission %s] %s\\n' "$NODE_NAME" "$*"; }
${metricsMoveFunctions()}

# With ACLs, the operator-managed tokens (see docs/trust-model.md, Security); harmless without them.
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
  self_id=$(nomad node status -self -t '{{ .ID }}' 2>/dev/null || true)
  metrics_here=false
  if [[ -n "$self_id" ]] && nodes=$(metrics_alloc_nodes 2>/dev/null) && grep -q -x -F "$self_id" <<<"$nodes"; then metrics_here=true; fi
  log "draining Nomad allocations (deadline $DRAIN_DEADLINE)"
  nomad node drain -self -enable -deadline "$DRAIN_DEADLINE" -yes \\
    || log "drain did not complete cleanly; continuing (allocations are rescheduled when the node goes down)"
  # Nomad stops only once the metrics history left this node (or the wait timed out).
  if [[ "$metrics_here" == true ]]; then wait_metrics_elsewhere "$self_id"; fi
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
