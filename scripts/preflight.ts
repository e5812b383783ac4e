/**
 * `npm run preflight [-- --node NAME]... [--json]`: before any apply, checks on every node
 * what a deploy needs and would otherwise find out half-way through a rollout (issue 21).
 * Read-only: nothing is written on a node, no agent is started or stopped.
 *
 * How: like `npm run drift`, one OpenSSH connection per node through the bastion
 * (ProxyJump), only the host keys pinned in the description trusted (temporary known_hosts,
 * StrictHostKeyChecking yes, BatchMode yes). The client offers the host-key algorithms in
 * the order of the engines' Go SSH client (golang.org/x/crypto/ssh `supportedHostKeyAlgos`,
 * the same list in v0.35.0 of Terraform 1.11.4 and v0.38.0 of our OpenTofu), so the server
 * presents the key the engines will be shown: a pinned key of another type fails here as it
 * would fail the apply. On the node, one script gathers facts (no secret is read: the
 * operator's files are tested for presence only) and this program judges them.
 *
 * One line per check and node, with a remedy for each failure. Exit: 0 all good, 2
 * something to fix, 1 could not check (a node unreachable, sudo refused: checks that need
 * it are "could not check").
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { selectNodes, writeSshConfig } from "./lib/remote-nodes";
import type { Cluster, ClusterNode } from "../constructs/description/schema";
import { CONSUL_DATA_DIR, CONSUL_HTTP_PORT, NOMAD_DATA_DIR, NOMAD_HTTP_PORT, consulSecretFiles, nomadSecretFiles } from "../constructs/render/agents";
import { serversHttpUrl, serversPlacementQuery, sh } from "../constructs/render/scripts";
import { ipToInt, parseCidr } from "../constructs/description/rules";

const USAGE = "usage: npm run preflight -- [--node NAME]... [--json]";

/**
 * golang.org/x/crypto/ssh's default host-key algorithms, in its order (certificate types
 * left out: nobody pins a certificate here). Read with `go doc` / the module source of
 * v0.38.0 (engines/opentofu/go.sum) and v0.25.0 and v0.14.0 from the module cache: the
 * same list in all three; Terraform 1.11.4 is built with v0.35.0 (`go version -m`).
 */
export const GO_HOST_KEY_ALGORITHMS = [
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-256",
  "rsa-sha2-512",
  "ssh-rsa",
  "ssh-dss",
  "ssh-ed25519",
];

/** Where the agents write (their data_dir, see constructs/render/agents.ts) and the least free space a deploy needs there. */
export const AGENT_DATA_DIRS = [CONSUL_DATA_DIR, NOMAD_DATA_DIR];
export const MIN_FREE_MIB = 1024;

/** Process names that may hold our reserved ports: our agents, and our jobs as Docker publishes them. */
export const OUR_LISTENERS = ["consul", "nomad", "docker-proxy", "haproxy", "grafana", "prometheus"];

export type Status = "ok" | "fail" | "error" | "skip";
export interface CheckResult {
  node: string;
  check: string;
  status: Status;
  detail: string;
  remedy?: string;
}

/** The ports a deploy will bind on a node, with who binds them. */
export function reservedPorts(c: Cluster): { port: number; proto: "tcp" | "udp"; what: string }[] {
  const hp = c.app.haproxy;
  return [
    { port: 8301, proto: "tcp", what: "Consul LAN gossip" },
    { port: 8301, proto: "udp", what: "Consul LAN gossip" },
    { port: CONSUL_HTTP_PORT, proto: "tcp", what: "Consul HTTP API" },
    { port: 53, proto: "udp", what: "Consul DNS on the overlay address" },
    { port: 53, proto: "tcp", what: "Consul DNS on the overlay address" },
    { port: NOMAD_HTTP_PORT, proto: "tcp", what: "Nomad HTTP API" },
    { port: 4647, proto: "tcp", what: "Nomad RPC" },
    { port: hp.nodePort, proto: "tcp", what: "HAProxy node port (job haproxy)" },
    { port: hp.floatingPort, proto: "tcp", what: "HAProxy floating-IP port (job haproxy)" },
    { port: hp.statsPort, proto: "tcp", what: "HAProxy health/stats port (job haproxy)" },
    ...(c.metrics.enabled ? [{ port: c.metrics.grafana.port, proto: "tcp" as const, what: "Grafana (job metrics)" }] : []),
  ];
}

/** The read-only script run on a node: `key<TAB>value` lines, values on one line. */
export function remoteFactsScript(c: Cluster): string {
  const files = [...consulSecretFiles(c), ...nomadSecretFiles(c)];
  const lines = [
    "export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "fact() { printf '%s\\t%s\\n' \"$1\" \"$(printf '%s' \"$2\" | tr '\\t\\n' '  ')\"; }",
    'if out=$(sudo -n true 2>&1); then fact sudo ok; else fact sudo "fail ${out:-exit $?}"; fi',
    'SUDO=""; sudo -n true 2>/dev/null && SUDO="sudo -n"',
    'for b in consul nomad keepalived; do fact "bin.$b" "$(command -v $b || true)"; done',
    'fact version.consul "$(consul version 2>/dev/null | head -n 1)"',
    'fact version.nomad "$(nomad version 2>/dev/null | head -n 1)"',
    'fact version.keepalived "$(keepalived --version 2>&1 | head -n 1)"',
    `SERVERS_HTTP=${sh(serversHttpUrl(c, "consul"))}`,
    `fact servers.datacenter "$(${serversPlacementQuery(c, "consul")})"`,
    `SERVERS_HTTP=${sh(serversHttpUrl(c, "nomad"))}`,
    `fact servers.region "$(${serversPlacementQuery(c, "nomad")})"`,
    ...c.servers.join.flatMap((j, i) => [
      `a=$(getent ahostsv4 ${sh(j)} | awk 'NR == 1 { print $1 }'); fact join.${i}.address "$a"`,
      ...[8301, 4647].map((p) => `if [[ -n "$a" ]] && timeout 3 bash -c "exec 3<>/dev/tcp/$a/${p}" 2>/dev/null; then fact join.${i}.${p} open; else fact join.${i}.${p} closed; fi`),
    ]),
    `fact dns.resolvectl "$(command -v resolvectl >/dev/null && resolvectl dns ${sh(c.overlay.interface)} 2>&1)"`,
    ...files.map((f, i) => `if [[ -z "$SUDO" ]]; then fact file.${i} nosudo; elif $SUDO test -s ${sh(f)}; then fact file.${i} present; elif $SUDO test -e ${sh(f)}; then fact file.${i} empty; else fact file.${i} absent; fi`),
    ...AGENT_DATA_DIRS.map((d, i) => `d=${sh(d)}; while [[ ! -e "$d" ]]; do d=$(dirname "$d"); done; fact disk.${i} "$d $(df -Pk "$d" | awk 'NR == 2 { print $4 }')"`),
    'fact docker.ping "$(curl -s --max-time 3 --unix-socket /var/run/docker.sock http://docker/_ping 2>/dev/null)"',
    `fact overlay.link "$(ip -o link show dev ${sh(c.overlay.interface)} 2>&1)"`,
    `fact overlay.addr "$(ip -o -4 addr show dev ${sh(c.overlay.interface)} 2>/dev/null | awk '{ print $4 }' | tr '\\n' ' ')"`,
    'fact listeners "$($SUDO ss -Htulnp 2>/dev/null | awk \'{ print $1 "|" $5 "|" $7 }\' | tr \'\\n\' \' \')"',
  ];
  return `${lines.join("\n")}\n`;
}

export function parseFacts(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split("\n")) {
    const tab = line.indexOf("\t");
    if (tab > 0) m.set(line.slice(0, tab), line.slice(tab + 1).trim());
  }
  return m;
}

const minorOf = (v: string) => v.split(".").slice(0, 2).map(Number);
const older = (have: string, want: string) => {
  const [a, b] = minorOf(have);
  const [x, y] = minorOf(want);
  return a < x || (a === x && b < y);
};

/** Judges the facts of one node: one result per check. */
export function judge(c: Cluster, n: ClusterNode, f: Map<string, string>): CheckResult[] {
  const out: CheckResult[] = [];
  const add = (check: string, status: Status, detail: string, remedy?: string) => out.push({ node: n.name, check, status, detail, ...(remedy ? { remedy } : {}) });
  const get = (k: string) => f.get(k) ?? "";
  const sudoOk = get("sudo") === "ok";
  add("sudo", sudoOk ? "ok" : "fail", sudoOk ? "sudo -n true works" : `sudo -n true refused: ${get("sudo").replace(/^fail /, "")}`, sudoOk ? undefined : `give ${c.ssh.user} passwordless sudo on ${n.name} (the provisioners run every step under sudo -n)`);

  for (const [agent, described] of [["consul", c.versions.consul], ["nomad", c.versions.nomad]] as const) {
    const line = get(`version.${agent}`);
    const have = /v(\d+\.\d+\.\d+\S*)/.exec(line)?.[1];
    if (!get(`bin.${agent}`)) add(`${agent} binary`, "fail", `no ${agent} on the PATH`, `install ${agent} ${described} on ${n.name} (the provider's image has it), or correct versions.${agent}`);
    else if (!have) add(`${agent} binary`, "error", `cannot read the version (${agent} version: '${line}')`);
    else if (older(have, described)) add(`${agent} binary`, "fail", `${agent} ${have}, older than versions.${agent} ${described}`, `set versions.${agent}: ${have} in the description (the output then uses only what ${have} offers), or upgrade ${agent} on ${n.name}`);
    else add(`${agent} binary`, "ok", `${agent} ${have}${have === described ? "" : ` (described ${described}: newer is fine)`}`);
  }
  const ka = /v(\d+\.\d+\.\d+)/.exec(get("version.keepalived"))?.[1];
  add("keepalived binary", ka ? "ok" : "fail", ka ? `keepalived ${ka}` : "no keepalived", ka ? undefined : `install keepalived on ${n.name} (apt-get install keepalived): the floating IP needs it`);

  const dc = get("servers.datacenter");
  if (!dc) add("servers datacenter", "fail", `the Consul servers at ${serversHttpUrl(c, "consul")} do not answer consul members -detailed`, "check servers.consulHttpAddress / servers.join and that the servers run");
  else add("servers datacenter", dc === c.servers.datacenter ? "ok" : "fail", `Consul servers in datacenter '${dc}'`, dc === c.servers.datacenter ? undefined : `set servers.datacenter: ${dc} (the servers' own answer; Consul refuses a client of another datacenter)`);
  const region = get("servers.region");
  if (!region) add("servers region", "fail", `the Nomad servers at ${serversHttpUrl(c, "nomad")} do not answer nomad server members`, "check servers.nomadHttpAddress / servers.join and that the servers run");
  else add("servers region", region === c.region ? "ok" : "fail", `Nomad servers in region '${region}'`, region === c.region ? undefined : `set region: ${region} (the servers' own answer)`);

  c.servers.join.forEach((j, i) => {
    const a = get(`join.${i}.address`);
    if (!a) {
      add(`join ${j}`, "fail", `${j} does not resolve on ${n.name}`, `use an address ${n.name} can resolve in servers.join (an IP, or a name its resolver knows${c.overlay.linkDns === "none" ? "; overlay.linkDns is none: the link routes no DNS" : ""})`);
      return;
    }
    const closed = [8301, 4647].filter((p) => get(`join.${i}.${p}`) !== "open");
    add(`join ${j}`, closed.length ? "fail" : "ok", `${j} → ${a}${closed.length ? `, no answer on ${closed.map((p) => `${p}/tcp`).join(", ")}` : ", answers on 8301/tcp (Consul) and 4647/tcp (Nomad)"}`, closed.length ? `check that the servers run and that ${n.name} reaches ${a} (routes, firewall)` : undefined);
  });

  if (c.overlay.linkDns === "agent") {
    const dns = get("dns.resolvectl");
    const ok = dns.split(/\s+/).includes(n.overlayAddress);
    add("link DNS", dns ? (ok ? "ok" : "fail") : "error", dns ? `resolvectl dns ${c.overlay.interface}: ${dns}` : "resolvectl is not available: cannot read the link's DNS routing", ok ? undefined : `the provider's link should route DNS to ${n.overlayAddress}; or set overlay.linkDns: none`);
  } else add("link DNS", "skip", "overlay.linkDns is none: the link routes no DNS to the VM");

  const files = [...consulSecretFiles(c), ...nomadSecretFiles(c)];
  if (!files.length) add("operator files", "ok", "none needed (no ACLs, TLS or gossip encryption described)");
  files.forEach((file, i) => {
    const s = get(`file.${i}`);
    if (s === "nosudo") add(`file ${file}`, "error", "cannot check without sudo");
    else add(`file ${file}`, s === "present" ? "ok" : "fail", s === "present" ? "present (not read)" : s === "empty" ? "empty" : "missing", s === "present" ? undefined : `place ${file} on ${n.name} as docs/trust-model.md "Security" says: the description needs it`);
  });

  AGENT_DATA_DIRS.forEach((dir, i) => {
    const [at, kib] = get(`disk.${i}`).split(" ");
    const mib = Math.floor(Number(kib) / 1024);
    if (!at || !Number.isFinite(mib)) {
      add(`disk ${dir}`, "error", "cannot read the free space (df)");
      return;
    }
    add(`disk ${dir}`, mib >= MIN_FREE_MIB ? "ok" : "fail", `${mib} MiB free${at === dir ? "" : ` (on ${at})`}`, mib >= MIN_FREE_MIB ? undefined : `free at least ${MIN_FREE_MIB} MiB where ${dir} lives on ${n.name}`);
  });

  const docker = get("docker.ping");
  add("docker", docker === "OK" ? "ok" : "fail", docker === "OK" ? "the Docker daemon answers /_ping" : "no answer from the Docker daemon (/var/run/docker.sock)", docker === "OK" ? undefined : `start Docker on ${n.name} (systemctl start docker): Nomad runs the jobs with it`);

  const link = get("overlay.link");
  const addrs = get("overlay.addr").split(/\s+/).filter(Boolean);
  const iface = c.overlay.interface;
  if (!link || /does not exist|not found/i.test(link)) add("overlay", "fail", `no interface ${iface}`, `check overlay.interface (the provider's overlay link on ${n.name})`);
  else {
    const up = /[<,]UP[,>]/.test(link);
    const { network, bits } = parseCidr(c.overlay.prefix);
    const inPrefix = (a: string) => bits === 0 || ipToInt(a.split("/")[0]) >>> (32 - bits) === network >>> (32 - bits);
    const has = c.overlay.addressing === "static" ? addrs.some((a) => a.split("/")[0] === n.overlayAddress) : addrs.some(inPrefix);
    const want = c.overlay.addressing === "static" ? n.overlayAddress : `an address in ${c.overlay.prefix}`;
    add("overlay", up && has ? "ok" : "fail", `${iface} ${up ? "up" : "DOWN"}, addresses ${addrs.join(", ") || "none"}`, up && has ? undefined : `${iface} must be up with ${want} (nodes[].overlayAddress / overlay.prefix)`);
  }

  const listeners = get("listeners");
  if (!sudoOk) add("ports", "error", "cannot see who listens without sudo");
  else {
    const ours = new Set(["0.0.0.0", "*", "[::]", "::", "127.0.0.1", n.overlayAddress, c.floatingIp.address]);
    const clashes: string[] = [];
    for (const l of listeners.split(" ").filter(Boolean)) {
      const [proto, local, users] = l.split("|");
      const m = /^(.*):(\d+)$/.exec(local ?? "");
      if (!m) continue;
      const host = m[1].replace(/%.*$/, "");
      const port = Number(m[2]);
      const r = reservedPorts(c).find((x) => x.port === port && x.proto === proto);
      if (!r || !ours.has(host)) continue;
      const names = [...(users ?? "").matchAll(/\("([^"]+)",pid=(\d+)/g)].map((x) => `${x[1]} (pid ${x[2]})`);
      if (names.length && names.every((x) => OUR_LISTENERS.includes(x.split(" ")[0]))) continue;
      clashes.push(`${port}/${proto} on ${host} held by ${names.join(", ") || "an unknown process"} (reserved: ${r.what})`);
    }
    const uniq = [...new Set(clashes)];
    add("ports", uniq.length ? "fail" : "ok", uniq.length ? uniq.join("; ") : `no other process on ${[...new Set(reservedPorts(c).map((r) => r.port))].join(", ")}`, uniq.length ? `stop what holds these ports on ${n.name}, or move the job's port in the description (app.haproxy.*Port, metrics.grafana.port)` : undefined);
  }
  return out;
}

/** `ssh-keyscan -t` type of a host-key algorithm. */
const keyscanType = (alg: string) => (alg.startsWith("ecdsa") ? "ecdsa" : alg.includes("rsa") ? "rsa" : alg.includes("ed25519") ? "ed25519" : alg);

/**
 * The host-key check's line for a connection refused at host-key verification, read from
 * the output of the same connection made with `ssh -v` (OpenSSH passes -v on to the
 * ProxyJump hop): each hop logs "Server host key: <algorithm> …", and a hop that passed logs
 * "Host '<host>' is known and matches"; the last key logged is the one refused.
 */
export function hostKeyFailure(c: Cluster, n: ClusterNode, verbose: string): CheckResult | undefined {
  if (!/Host key verification failed/.test(verbose)) return undefined;
  const presented = [...verbose.matchAll(/Server host key: (\S+)/g)].map((m) => m[1]);
  const bastionName = c.bastion.port === 22 ? c.bastion.host : `[${c.bastion.host}]:${c.bastion.port}`;
  const bastionPassed = verbose.includes(`Host '${bastionName}' is known and matches`);
  const atBastion = !bastionPassed;
  const who = atBastion ? "the bastion" : n.name;
  const field = atBastion ? "bastion.hostKey" : `nodes[${c.nodes.indexOf(n)}].hostKey`;
  const pinned = (atBastion ? c.bastion.hostKey : n.hostKey)?.split(" ")[0];
  const alg = presented[presented.length - 1];
  const type = alg ? keyscanType(alg) : undefined;
  const scan = atBastion ? `ssh-keyscan -p ${c.bastion.port} -t ${type ?? "TYPE"} ${c.bastion.host}` : `ssh-keyscan -t ${type ?? "TYPE"} ${n.address} (on the bastion)`;
  const sameType = type !== undefined && pinned !== undefined && keyscanType(pinned) === type;
  return {
    node: n.name,
    check: "host key",
    status: "fail",
    detail: !type
      ? `${who} refused at host-key verification`
      : sameType
        ? `${who} presents an ${type} key that is not the pinned one (the host key changed, or the wrong host answers)`
        : `${who} presents its ${type} key to the engines' SSH client (it prefers ECDSA, then RSA, then Ed25519); ${field} pins a ${pinned} key`,
    remedy: sameType
      ? `check that ${atBastion ? c.bastion.host : n.address} is the host you mean, then pin its key: ${scan}, without the host name, in ${field}`
      : `pin the key the engines are shown: ${scan}, without the host name, in ${field} (docs/deploying.md "Host keys")`,
  };
}

function main(argv: string[]): number {
  const picked = selectNodes(argv, { usage: USAGE, purpose: "run the preflight", what: "preflight", flags: ["--json"] });
  if (typeof picked === "number") return picked;
  const { cluster: c, nodes } = picked;
  const json = picked.flags.has("--json");
  const supported = new Set(spawnSync("ssh", ["-Q", "HostKeyAlgorithms"], { encoding: "utf8" }).stdout.split("\n"));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "preflight-"));
  const results: CheckResult[] = [];
  try {
    const config = writeSshConfig(c, nodes, tmp, "preflight", GO_HOST_KEY_ALGORITHMS.filter((a) => supported.has(a)));
    process.stderr.write(`checking ${nodes.length} node${nodes.length === 1 ? "" : "s"} through the bastion ${c.bastion.user}@${c.bastion.host}:${c.bastion.port} (read-only)\n`);
    for (const n of nodes) {
      const r = spawnSync("ssh", ["-F", config, `preflight-node-${n.name}`, "bash -s"], { input: remoteFactsScript(c), encoding: "utf8", timeout: 120000 });
      if (r.status !== 0) {
        // Refused at a host key: the same connection again with -v says which key each hop presented.
        const verbose = /Host key verification failed/.test(r.stderr ?? "")
          ? spawnSync("ssh", ["-v", "-F", config, `preflight-node-${n.name}`, "true"], { encoding: "utf8", timeout: 60000 }).stderr ?? ""
          : "";
        const hk = hostKeyFailure(c, n, verbose);
        const why = (r.stderr || String(r.error ?? "")).trim().split("\n").slice(-2).join(" ");
        results.push(hk ?? { node: n.name, check: "connect", status: "error", detail: `ssh ${c.ssh.user}@${n.address} via the bastion failed (exit ${r.status}): ${why}`, remedy: "check the bastion, the node's address, ssh.user and the key (ssh-agent or ssh.privateKey)" });
        continue;
      }
      results.push({ node: n.name, check: "host key", status: "ok", detail: "the key presented to the engines' SSH client is the pinned one" }, ...judge(c, n, parseFacts(r.stdout)));
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const failed = results.filter((r) => r.status === "fail").length;
  const errors = results.filter((r) => r.status === "error").length;
  const code = errors ? 1 : failed ? 2 : 0;
  if (json) process.stdout.write(`${JSON.stringify({ description: picked.file, exitCode: code, results }, null, 2)}\n`);
  else {
    const mark: Record<Status, string> = { ok: "ok  ", fail: "FAIL", error: "ERR ", skip: "skip" };
    for (const r of results) process.stdout.write(`${mark[r.status]} ${r.node}: ${r.check}: ${r.detail}${r.remedy ? `\n       → ${r.remedy}` : ""}\n`);
  }
  process.stderr.write(
    code === 0 ? `preflight: all good on ${nodes.length} node${nodes.length === 1 ? "" : "s"}\n` : `preflight: ${failed} to fix${errors ? `, ${errors} could not be checked` : ""} (exit ${code})\n`,
  );
  return code;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
