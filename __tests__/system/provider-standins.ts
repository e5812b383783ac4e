/**
 * Stand-ins for the provider's Consul and Nomad on a namespace VM, one shared fixture per
 * provider generation (no HashiCorp binaries: licence). What each generation is comes from
 * its provisioning code (playbook/ at that year's commit, docs/operations.md "Supported
 * provider generations"); what the stand-ins do follows the documented CLI on exactly the
 * points the install scripts rely on:
 *
 * - `consul version` / `nomad version`: first line "Consul v<version>" / "Nomad v<version> (<commit>)".
 * - `consul members -detailed` asked of the servers: a server's Tags hold `role=consul` and
 *   `dc=<datacenter>` (serf tags); `consul members -status=alive` on the local agent.
 * - A Consul client of another datacenter is refused by the servers (serf merge delegate:
 *   "Member '<node>' part of wrong datacenter '<dc>'"): the client then sees only itself,
 *   and the servers' catalog (`consul catalog nodes`: Node ID Address DC) never lists it.
 * - `consul info` / `nomad agent-info`: "server = true" on a server agent.
 * - `nomad server members`: last column Region. `nomad node status -self -t <template>`.
 * - A command a version lacks fails as that version fails: `nomad config validate` on Nomad
 *   1.2 is an unknown command, the CLI prints its usage and exits 127 (mitchellh/cli).
 * - Nomad 1.2's own check of a config is its start: an agent whose config it cannot load
 *   exits, and `nomad agent-info` then cannot reach it.
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
 * consul and nomad stand-ins; each appends its command line to $STATE/calls.log. The node
 * advertises `overlayAddress`, or (empty) what its installed consul.hcl says (advertise_addr).
 */
export function agentStandIns(state: string, node: string, overlayAddress: string): Record<"consul" | "nomad", string> {
  const head = `#!/usr/bin/env bash
set -euo pipefail
readonly STATE=${JSON.stringify(state)}
echo "$(basename "$0") $*" >>"$STATE/calls.log"
# shellcheck disable=SC1091
. "$STATE/provider.env"
active() { [[ -e "$STATE/active.$1" ]]; }
ver_lt() { [[ "$(printf '%s\\n%s\\n' "$1" "$2" | sort -V | head -n 1)" == "$1" && "$1" != "$2" ]]; }
`;
  return {
    consul: `${head}
http=""
for a in "$@"; do case $a in -http-addr=*) http=\${a#-http-addr=} ;; esac; done
local_agent() { [[ -z "$http" || "$http" == *127.0.0.1* ]]; }
# The datacenter this VM's client agent runs in: what its installed config says.
client_dc() { sed -n 's/^datacenter *= *"\\(.*\\)"/\\1/p' /etc/consul.d/consul.hcl 2>/dev/null | head -n 1; }
advertised() { if [[ -n ${JSON.stringify(overlayAddress)} ]]; then echo ${JSON.stringify(overlayAddress)}; else sed -n 's/^advertise_addr *= *"\\(.*\\)"/\\1/p' /etc/consul.d/consul.hcl 2>/dev/null | head -n 1; fi; }
# Joined: the agent runs and its datacenter is the servers' (another one is refused at join).
joined() { active consul && [[ "$(client_dc)" == "$SERVERS_DC" ]]; }
case \${1:-} in
  version)
    echo "Consul v$CONSUL_VERSION"
    echo "Revision 0000000"
    echo "Protocol 2 spoken by default, understands 2 to 3 (agent will automatically use protocol >2 when speaking to compatible agents)" ;;
  validate)
    if grep -rqs -- ${INVALID_MARKER} "$2"; then echo "Config validation failed: ${INVALID_MARKER} in $2" >&2; exit 1; fi
    echo "Configuration is valid!" ;;
  info)
    if local_agent; then
      if [[ "$THIS_VM_IS_SERVER" == true ]]; then role=true; elif active consul; then role=false; else echo "Error querying agent: connection refused" >&2; exit 1; fi
    else role=true; fi
    printf 'agent:\\n\\tcheck_monitors = 0\\nconsul:\\n\\tacl = disabled\\n\\tknown_servers = 1\\n\\tserver = %s\\n' "$role" ;;
  members)
    if local_agent; then
      active consul || { echo "Error retrieving members: connection refused" >&2; exit 1; }
      echo "Node  Address  Status  Type  Build  Protocol  DC  Partition  Segment"
      if joined; then echo "server-1  $SERVERS_ADDR:8301  alive  server  $CONSUL_VERSION  2  $SERVERS_DC  default  <all>"; fi
      echo "${node}  $(advertised):8301  alive  client  $CONSUL_VERSION  2  $(client_dc)  default  <default>"
    else
      # Asked of the servers: their LAN members, -detailed prints the serf tags.
      if [[ " $* " == *" -detailed "* ]]; then
        echo "Node      Address              Status  Tags"
        echo "server-1  $SERVERS_ADDR:8301  alive   build=$CONSUL_VERSION:0000000,dc=$SERVERS_DC,id=x,port=8300,role=consul,segment=<all>,vsn=2"
        if joined; then echo "${node}  $(advertised):8301  alive   build=$CONSUL_VERSION:0000000,dc=$SERVERS_DC,id=y,role=node,segment=<default>,vsn=2"; fi
      else
        echo "Node  Address  Status  Type  Build  Protocol  DC  Partition  Segment"
        echo "server-1  $SERVERS_ADDR:8301  alive  server  $CONSUL_VERSION  2  $SERVERS_DC  default  <all>"
      fi
    fi ;;
  catalog)
    [[ \${2:-} == nodes ]] || { echo "stand-in consul: catalog $2 not supported" >&2; exit 1; }
    echo "Node      ID        Address        DC"
    echo "server-1  0e4d5c11  $SERVERS_ADDR  $SERVERS_DC"
    if joined; then echo "${node}  7a1b2c3d  $(advertised)  $SERVERS_DC"; fi ;;
  leave) ;;
  *) echo "stand-in consul: $* not supported" >&2; exit 1 ;;
esac
`,
    nomad: `${head}
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
`,
  };
}

/**
 * sudo, systemctl, journalctl and apt-get on the VM. systemctl keeps unit state as files
 * in $STATE (active.<unit>, enabled.<unit>) and answers is-active/is-enabled as systemd
 * does (exit 3 / 1 when not); reload of an inactive unit fails as systemd's does.
 */
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
    systemctl: `${head}
${SYSTEMCTL_ARGS}for u in "\${units[@]}"; do
  case $verb in
    enable) touch "$STATE/enabled.$u"; if $now; then touch "$STATE/active.$u"; fi ;;
    disable) rm -f "$STATE/enabled.$u"; if $now; then rm -f "$STATE/active.$u"; fi ;;
    start | restart) touch "$STATE/active.$u" ;;
    stop) rm -f "$STATE/active.$u" ;;
    reload) [[ -e "$STATE/active.$u" ]] || { echo "$u.service is not active, cannot reload." >&2; exit 1; } ;;
    is-active) [[ -e "$STATE/active.$u" ]] || exit 3 ;;
    is-enabled) [[ -e "$STATE/enabled.$u" ]] || exit 1 ;;
    *) echo "stand-in systemctl: $verb not supported" >&2; exit 1 ;;
  esac
done
[[ -n $verb ]] || exit 1
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
