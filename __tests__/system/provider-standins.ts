/**
 * What the provider's VM offers besides the real Consul (consul.ts), one shared fixture per
 * provider generation. Nomad may not be used here (its Go module is marked not to use), so
 * Nomad is a stand-in; what each generation is comes from its provisioning code
 * (playbook/ at that year's commit, docs/operations.md "Supported provider generations");
 * what the Nomad stand-in does follows Nomad's documented CLI on exactly the points the
 * install scripts rely on:
 *
 * - `nomad version`: first line "Nomad v<version> (<commit>)" (CLI docs, `nomad version`).
 * - `nomad agent-info`: "server = true" in its nomad section on a server agent.
 * - `nomad server members`: last column Region. `nomad node status -self -t <template>`
 *   (Go template over the node's API object: Status, HTTPAddr, Datacenter,
 *   SchedulingEligibility, as documented for `node status -t`).
 * - A command a version lacks fails as that version fails: `nomad config validate` on Nomad
 *   1.2 is an unknown command, the CLI prints its usage and exits 127 (mitchellh/cli).
 * - Nomad 1.2's own check of a config is its start: an agent whose config it cannot load
 *   exits, and `nomad agent-info` then cannot reach it.
 *
 * Consul is real everywhere; on a VM the `consul` on the PATH is the real binary behind
 * `consulWrapper` (it logs calls and reports the generation's version).
 *
 * The profile of the generation lives in $STATE/provider.env, so a test switches
 * generation (or plants a server on the VM) without restarting anything.
 */
import * as fs from "fs";
import * as path from "path";

/** Marker that makes the stand-in validators (and Nomad 1.2's start) reject a config. */
export const INVALID_MARKER = "STANDIN_VALIDATION_FAILS";

export interface ProviderProfile {
  year: "2022" | "2023" | "2024" | "2025";
  consulVersion: string;
  nomadVersion: string;
  /** The servers' Consul datacenter (2022: dc1; later: the team name). */
  serversDatacenter: string;
  serversRegion: string;
  /** Address the servers advertise (what their members/catalog print). */
  serversAddress: string;
  /** Whether THIS VM runs the servers (the 2023+ server VM, as the provider configures it). */
  thisVmIsServer: boolean;
}

/** The four generations, as the provider's playbook sets them. */
export function generationProfile(year: ProviderProfile["year"], serversAddress: string, team: string): ProviderProfile {
  const versions = { "2022": ["1.11.5", "1.2.6"], "2023": ["1.15.2", "1.5.3"], "2024": ["1.18.1", "1.7.7"], "2025": ["1.20.5", "1.9.7"] }[year];
  return {
    year,
    consulVersion: versions[0],
    nomadVersion: versions[1],
    serversDatacenter: year === "2022" ? "dc1" : team,
    serversRegion: "global",
    serversAddress,
    thisVmIsServer: false,
  };
}

export function writeProfile(state: string, p: ProviderProfile): void {
  const lines = [
    `YEAR=${p.year}`,
    `CONSUL_VERSION=${p.consulVersion}`,
    `NOMAD_VERSION=${p.nomadVersion}`,
    `SERVERS_DC=${p.serversDatacenter}`,
    `SERVERS_REGION=${p.serversRegion}`,
    `SERVERS_ADDR=${p.serversAddress}`,
    `THIS_VM_IS_SERVER=${p.thisVmIsServer}`,
  ];
  fs.writeFileSync(path.join(state, "provider.env"), `${lines.join("\n")}\n`);
}

/**
 * The provider's own server configuration files on the 2023+ server VM (shape of
 * playbook/roles/{consul,nomad}/templates at the 2023 commit: `server = true`,
 * `server { enabled = true }`), to plant on a VM the install must refuse.
 */
export const PROVIDER_SERVER_CONFIGS = {
  consul: `datacenter = "team"\ndata_dir = "/opt/consul"\nclient_addr = "0.0.0.0"\nserver = true\nbootstrap_expect = 1\n`,
  nomad: `datacenter = "team"\ndata_dir = "/opt/nomad"\nbind_addr = "0.0.0.0"\n\nserver {\n  enabled = true\n  bootstrap_expect = 1\n}\n\nclient {\n  enabled = false\n}\n`,
};

/**
 * The real Consul on a VM, behind a wrapper that appends each command line to
 * $STATE/calls.log (what the tests read) and answers `consul version` as the generation's
 * binary does: the lab runs Consul 1.14.11 for every generation (docs/lab.md, "The version
 * gap"), while the install's version floor must see what the provider installed that year.
 * Everything else is the real CLI.
 */
export function consulWrapper(state: string, realConsul: string): string {
  return `#!/usr/bin/env bash
set -euo pipefail
readonly STATE=${JSON.stringify(state)}
echo "consul $*" >>"$STATE/calls.log"
if [[ \${1:-} == version ]]; then
  # shellcheck disable=SC1091
  . "$STATE/provider.env"
  echo "Consul v$CONSUL_VERSION"
  echo "Revision engines"
  echo "Protocol 2 spoken by default, understands 2 to 3 (agent will automatically use protocol >2 when speaking to compatible agents)"
  exit 0
fi
exec ${JSON.stringify(realConsul)} "$@"
`;
}

/**
 * The Nomad stand-in (Nomad may not be used here); it appends its command line to
 * $STATE/calls.log and answers from the generation's profile (provider.env).
 */
export function nomadStandIn(state: string, node: string): string {
  const head = `#!/usr/bin/env bash
set -euo pipefail
readonly STATE=${JSON.stringify(state)}
echo "$(basename "$0") $*" >>"$STATE/calls.log"
# shellcheck disable=SC1091
. "$STATE/provider.env"
active() { [[ -e "$STATE/active.$1" ]]; }
ver_lt() { [[ "$(printf '%s\\n%s\\n' "$1" "$2" | sort -V | head -n 1)" == "$1" && "$1" != "$2" ]]; }
`;
  return `${head}
addr=\${NOMAD_ADDR:-http://127.0.0.1:4646}
for a in "$@"; do case $a in -address=*) addr=\${a#-address=} ;; esac; done
# The local agent: loopback, or the address its CLI environment names (cli.env's NOMAD_ADDR).
local_agent() { [[ "$addr" == *127.0.0.1* || "$addr" == "\${NOMAD_ADDR:-}" ]]; }
# Nomad 1.2 has no config validation command; its agent refuses a config it cannot load by exiting.
agent_running() { active nomad && ! grep -rqs -- ${INVALID_MARKER} /etc/nomad.d; }
client_dc() { sed -n 's/^datacenter *= *"\\(.*\\)"/\\1/p' /etc/nomad.d/nomad.hcl 2>/dev/null | head -n 1; }
usage() {
  echo "Usage: nomad [-version] [-help] [-autocomplete-(un)install] <command> [args]" >&2
  echo "" >&2
  echo "Common commands:" >&2
  echo "    run         Run a new job or update an existing job" >&2
  exit 127
}
case "\${1:-} \${2:-}" in
  "version "*) echo "Nomad v$NOMAD_VERSION (0000000000000000000000000000000000000000)" ;;
  "config validate")
    if ver_lt "$NOMAD_VERSION" 1.3.0; then usage; fi
    if grep -rqs -- ${INVALID_MARKER} "$3"; then echo "Config validation failed: ${INVALID_MARKER} in $3" >&2; exit 1; fi
    echo "Configuration is valid!" ;;
  "agent-info "*)
    if local_agent; then
      if [[ "$THIS_VM_IS_SERVER" == true ]]; then role=true; elif agent_running; then role=false; else echo "Error querying agent info: connection refused" >&2; exit 1; fi
    else role=true; fi
    printf 'client\\n  known_servers = 1\\nnomad\\n  server = %s\\n' "$role" ;;
  "server members")
    echo "Name             Address        Port  Status  Leader  Protocol  Build          Datacenter   Region"
    echo "server-1.global  $SERVERS_ADDR  4648  alive   true    2         $NOMAD_VERSION  $SERVERS_DC  $SERVERS_REGION" ;;
  "node status")
    agent_running || { echo "Error querying node: connection refused" >&2; exit 1; }
    template=""
    shift 2
    while (($#)); do
      case $1 in
        -t) template=$2; shift ;;
      esac
      shift
    done
    case $template in
      *SchedulingEligibility*) echo eligible ;;
      *Datacenter*) echo "ready \${addr#*://} $(client_dc)" ;;
      *Status*) echo "ready \${addr#*://}" ;;
      *) echo "ID  Name  Status"; echo "x  ${node}  ready" ;;
    esac ;;
  "node drain" | "node eligibility") ;;
  *) echo "stand-in nomad: $* not supported" >&2; exit 1 ;;
esac
`;
}

/**
 * How a systemctl stand-in reads its arguments, as systemctl does: the verb, then unit names
 * (a ".service" suffix dropped), `--now` noted, other options ignored. Sets verb, units, now.
 */
export const SYSTEMCTL_ARGS = `units=(); verb=""; now=false
for a in "$@"; do
  case $a in
    --now) now=true ;;
    -*) ;;
    *) if [[ -z $verb ]]; then verb=$a; else units+=("\${a%.service}"); fi ;;
  esac
done
`;

/** sudo, journalctl and apt-get on a VM (systemctl: vmSystemctl). */
export function systemStandIns(state: string): Record<string, string> {
  const head = `#!/usr/bin/env bash
set -euo pipefail
readonly STATE=${JSON.stringify(state)}
echo "$(basename "$0") $*" >>"$STATE/calls.log"
`;
  return {
    sudo: `#!/bin/sh
# Stand-in: the test logs in as root; drop sudo's options and run the command.
while [ "\${1#-}" != "$1" ]; do shift; done
exec "$@"
`,
    // The VM's journal is this test's, not the machine's: nothing of the host leaks into output.
    journalctl: `${head}
echo "-- No entries --"
`,
    "apt-get": `${head}
echo "stand-in apt-get: no package installs in this test" >&2
exit 100
`,
  };
}

/**
 * systemctl on a VM of the lab: for consul the REAL agent, started as the provider's unit
 * starts it (playbook/roles/consul/files/consul.service: ConditionFileNotEmpty=consul.hcl,
 * ExecStartPre=consul validate /etc/consul.d/, ExecStart=consul agent -config-dir=/etc/consul.d/,
 * ExecReload=kill -HUP, KillSignal=SIGTERM; as root here, User=consul there; Type=simple, so
 * a start returns once the process runs); for keepalived the REAL keepalived 2.2 daemon
 * (SIGHUP reload, SIGTERM stop); every other unit as state files in $STATE (active.<unit>,
 * enabled.<unit>), answering is-active/is-enabled as systemd does (exit 3 / 1 when not).
 */
export function vmSystemctl(state: string, realConsul: string): string {
  return `#!/usr/bin/env bash
set -euo pipefail
readonly STATE=${JSON.stringify(state)}
echo "$(basename "$0") $*" >>"$STATE/calls.log"
${SYSTEMCTL_ARGS}readonly CONSUL=${JSON.stringify(realConsul)}
# The real daemons fork off: no fd may stay tied to the SSH session.
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pid() {
  if alive "$1"; then
    local pid; pid=$(cat "$1"); kill -TERM "$pid"
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -f "$1"
}
ka_pid=/run/keepalived.pid
ka_start() {
  alive $ka_pid && return 0
  keepalived -f /etc/keepalived/keepalived.conf -p "$ka_pid" </dev/null >/dev/null 2>&1
  for _ in $(seq 100); do alive $ka_pid && break; sleep 0.05; done
  alive $ka_pid || { echo "keepalived.service: failed to start" >&2; exit 1; }
}
consul_pid=/run/consul.pid
consul_start() {
  alive $consul_pid && return 0
  [[ -s /etc/consul.d/consul.hcl ]] || return 0
  if ! out=$("$CONSUL" validate /etc/consul.d/ 2>&1); then
    echo "$out" >>"$STATE/consul-agent.log"
    echo "Job for consul.service failed because the control process exited with error code." >&2
    exit 1
  fi
  CHECKPOINT_DISABLE=1 setsid "$CONSUL" agent -config-dir=/etc/consul.d/ -pid-file=$consul_pid </dev/null >>"$STATE/consul-agent.log" 2>&1 &
  for _ in $(seq 200); do alive $consul_pid && break; sleep 0.05; done
  alive $consul_pid || { echo "consul.service: failed to start" >&2; exit 1; }
}
for u in "\${units[@]}"; do
  case $verb/$u in
    enable/*) touch "$STATE/enabled.$u"; if $now; then case $u in keepalived) ka_start ;; consul) consul_start ;; *) touch "$STATE/active.$u" ;; esac; fi ;;
    disable/*) rm -f "$STATE/enabled.$u"; if $now; then case $u in keepalived) stop_pid $ka_pid ;; consul) stop_pid $consul_pid ;; *) rm -f "$STATE/active.$u" ;; esac; fi ;;
    start/keepalived) ka_start ;;
    restart/keepalived) stop_pid $ka_pid; ka_start ;;
    stop/keepalived) stop_pid $ka_pid ;;
    reload/keepalived) alive $ka_pid || { echo "keepalived.service is not active, cannot reload." >&2; exit 1; }; kill -HUP "$(cat $ka_pid)" ;;
    is-active/keepalived) alive $ka_pid || exit 3 ;;
    start/consul) consul_start ;;
    restart/consul) stop_pid $consul_pid; consul_start ;;
    stop/consul) stop_pid $consul_pid ;;
    reload/consul) alive $consul_pid || { echo "consul.service is not active, cannot reload." >&2; exit 1; }; kill -HUP "$(cat $consul_pid)" ;;
    is-active/consul) alive $consul_pid || exit 3 ;;
    start/* | restart/*) touch "$STATE/active.$u" ;;
    stop/*) rm -f "$STATE/active.$u" ;;
    reload/*) [[ -e "$STATE/active.$u" ]] || { echo "$u.service is not active, cannot reload." >&2; exit 1; } ;;
    is-active/*) [[ -e "$STATE/active.$u" ]] || exit 3 ;;
    is-enabled/*) [[ -e "$STATE/enabled.$u" ]] || exit 1 ;;
    *) echo "stand-in systemctl: $verb not supported" >&2; exit 1 ;;
  esac
done
[[ -n $verb ]] || exit 1
`;
}

/** Everything /usr/local/sbin holds on a lab VM (consul wrapper, nomad, systemctl, sudo, journalctl, apt-get). */
export function vmPrograms(state: string, node: string, realConsul: string): Record<string, string> {
  return {
    ...systemStandIns(state),
    consul: consulWrapper(state, realConsul),
    nomad: nomadStandIn(state, node),
    systemctl: vmSystemctl(state, realConsul),
  };
}
