/**
 * A lab for system tests that run the real Terraform/OpenTofu (engine.ts) against VMs:
 * network namespaces "op" (the operator: engines run here) ─ "bastion" (real sshd) ─ N
 * "vm-<i>" (real sshd each), plus an overlay switch joining the VMs' overlay interfaces.
 *
 *   const lab = await buildLab({ vms: 2 });        // in beforeAll; lab.cleanup() in afterAll
 *   const cluster = lab.cluster();                 // the example description, wired to the lab
 *   lab.vms[0].read("/etc/consul.d/consul.hcl")    // a file as the VM sees it (undefined if absent)
 *   lab.vms[0].exec("sysctl -n net.ipv4.ip_nonlocal_bind")   // a command inside the VM
 *   lab.vms[0].calls()                             // stand-in calls, e.g. "systemctl restart consul"
 *   lab.vms[0].keepalivedRunning()                 // the real keepalived started by `systemctl`
 *   lab.vms[0].serveHealth(8404)                   // answers /healthz as HAProxy would (keepalived's check)
 *   lab.vms[0].holdsFloatingIp()                   // the floating IP is on its overlay interface
 *   lab.otherHostKey()                             // a fresh key (wrong-key tests)
 *
 * Addresses: bastion 10.210.1.2 (from "op"), VM i (0-based) 10.210.2.(11+i) behind the
 * bastion, overlay address 10.210.0.(1+i)/24 on interface `ovl210`; floating IP 10.210.0.100,
 * VRRP router id 210. Namespaces are private to the lab, so parallel labs do not collide.
 *
 * Each VM is isolated from this machine: its sshd runs in a private mount namespace where
 * /etc and /var are overlays on a tmpfs (writes never reach the host), /root, /tmp and /run
 * are empty tmpfs, and /usr/local/sbin holds programs standing in for what has no real
 * binary here (licence: no Consul/Nomad binaries), each appending its command line to the
 * VM's calls.log:
 *   - consul, nomad, sudo, journalctl, apt-get: the shared stand-ins of provider-standins.ts
 *     (the newest provider generation; validation fails on a file containing
 *     STANDIN_VALIDATION_FAILS);
 *   - Consul's DNS interface on <overlay address>:53: dnsmasq answering consul.service.consul
 *     (what keepalived's consul_dns check asks);
 *   - `systemctl enable|disable [--now]|start|stop|restart|reload|is-active|is-enabled|
 *     daemon-reload` for consul/nomad units: state files only; for keepalived: the REAL
 *     keepalived 2.2 daemon, started with the installed /etc/keepalived/keepalived.conf,
 *     reloaded with SIGHUP (what its unit's ExecReload does), stopped with SIGTERM.
 * keepalived -t, ip, sysctl (per network namespace) and useradd run for real.
 */
import * as fs from "fs";
import * as path from "path";
import { edited, exampleCluster } from "../helpers/synth";
import type { Cluster } from "../../constructs/description/schema";
import { Sandbox, systemTestPrerequisites, waitFor, type RunResult } from "./sandbox";
import { INVALID_MARKER, SYSTEMCTL_ARGS, agentStandIns, generationProfile, systemStandIns, writeProfile } from "./provider-standins";

export const labPrerequisites = systemTestPrerequisites(["ip", "unshare", "nsenter", "ssh-keygen", "/usr/sbin/sshd", "keepalived", "useradd", "curl", "/usr/bin/python3"]);

/** A file containing this string fails the stand-in `consul validate` / `nomad config validate`. */
export const STANDIN_VALIDATION_FAILS = INVALID_MARKER;
export const LAB_OVERLAY_INTERFACE = "ovl210";
export const LAB_FLOATING_IP = "10.210.0.100";

export interface LabVm {
  name: string;
  ns: string;
  /** Address as reached from the bastion (the description's `address`). */
  address: string;
  overlayAddress: string;
  /** "ssh-ed25519 AAAA..." of its sshd. */
  hostKey: string;
  /** Every host key its sshd offers, by type (ed25519, and the lab's vmHostKeyTypes). */
  hostKeys: Record<string, string>;
  /** Host directory with the stand-ins' state and calls.log (outside the VM). */
  stateDir: string;
  /** PID of its sshd (in the VM's mount and network namespaces). */
  pid: number;
  /** Runs a bash command inside the VM (its mount and network namespaces). */
  exec(command: string, timeoutMs?: number): RunResult;
  /** A file as the VM sees it; undefined when absent. */
  read(file: string): string | undefined;
  calls(): string[];
  clearCalls(): void;
  keepalivedRunning(): boolean;
  /** Serves 200 on http://<overlayAddress>:<port>/healthz (what HAProxy's health endpoint answers keepalived). */
  serveHealth(port: number): void;
  /** Whether the floating IP is on this VM's overlay interface. */
  holdsFloatingIp(): boolean;
}

export interface Lab {
  sandbox: Sandbox;
  dir: string;
  /** The operator's namespace: run the engines here. */
  opNs: string;
  bastion: { ns: string; host: string; port: number; user: string; hostKey: string };
  vms: LabVm[];
  /** The operator's private key file (the description's `ssh.privateKey.file`). */
  operatorKey: string;
  /** Generates one more host key pair (for wrong-key tests): "ssh-ed25519 AAAA...". */
  otherHostKey(): string;
  /** The example description wired to the lab: bastion, VMs (node-1..N), keys pinned. */
  cluster(edit?: (c: Cluster) => void): Cluster;
  cleanup(): void;
}

/**
 * The shared stand-ins (provider-standins.ts: consul/nomad of the newest provider
 * generation, sudo, journalctl, apt-get), with a systemctl that runs the REAL keepalived.
 */
function standIns(state: string, node: string, overlayAddress: string): Record<string, string> {
  const head = `#!/usr/bin/env bash
set -euo pipefail
readonly STATE=${JSON.stringify(state)}
echo "$(basename "$0") $*" >>"$STATE/calls.log"
`;
  return {
    ...systemStandIns(state),
    ...agentStandIns(state, node, overlayAddress),
    systemctl: `${head}
${SYSTEMCTL_ARGS}pidfile=/run/keepalived.pid
ka_alive() { [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
ka_stop() {
  if ka_alive; then
    pid=$(cat "$pidfile"); kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -f "$STATE/active.keepalived"
}
ka_start() {
  ka_alive && return 0
  # The real daemon, as its unit starts it; it forks, so no fd may stay tied to the SSH session.
  keepalived -f /etc/keepalived/keepalived.conf -p "$pidfile" </dev/null >/dev/null 2>&1
  for _ in $(seq 100); do ka_alive && break; sleep 0.05; done
  ka_alive || { echo "keepalived.service: failed to start" >&2; exit 1; }
  touch "$STATE/active.keepalived"
}
for u in "\${units[@]}"; do
  case $verb/$u in
    enable/*) touch "$STATE/enabled.$u"; if $now; then if [[ $u == keepalived ]]; then ka_start; else touch "$STATE/active.$u"; fi; fi ;;
    disable/*) rm -f "$STATE/enabled.$u"; if $now; then if [[ $u == keepalived ]]; then ka_stop; else rm -f "$STATE/active.$u"; fi; fi ;;
    start/keepalived) ka_start ;;
    restart/keepalived) ka_stop; ka_start ;;
    stop/keepalived) ka_stop ;;
    reload/keepalived) ka_alive || { echo "keepalived.service is not active, cannot reload." >&2; exit 1; }; kill -HUP "$(cat "$pidfile")" ;;
    is-active/keepalived) ka_alive || exit 3 ;;
    start/* | restart/*) touch "$STATE/active.$u" ;;
    stop/*) rm -f "$STATE/active.$u" ;;
    reload/*) [[ -e "$STATE/active.$u" ]] || { echo "$u.service is not active, cannot reload." >&2; exit 1; } ;;
    is-active/*) [[ -e "$STATE/active.$u" ]] || exit 3 ;;
    is-enabled/*) [[ -e "$STATE/enabled.$u" ]] || exit 1 ;;
    *) echo "stand-in systemctl: $verb not supported" >&2; exit 1 ;;
  esac
done
[[ -n $verb ]] || exit 1
`,
  };
}

function sshdConfig(dir: string, name: string, listen: string, port: number, authorizedKeys: string, extraHostKeys: string[] = []): string {
  const file = path.join(dir, `${name}_sshd_config`);
  fs.writeFileSync(
    file,
    [
      `ListenAddress ${listen}:${port}`,
      `HostKey ${path.join(dir, `${name}_host`)}`,
      ...extraHostKeys.map((k) => `HostKey ${path.join(dir, k)}`),
      `AuthorizedKeysFile ${authorizedKeys}`,
      "PidFile none",
      "StrictModes no",
      "UsePAM no",
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitTTY yes",  // Terraform and OpenTofu request a PTY for every command
      "PrintMotd no",
      "PrintLastLog no",
      "MaxStartups 100:30:200",
      "MaxSessions 50",
      "Subsystem sftp internal-sftp",
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
  );
  return file;
}

/**
 * Builds the lab and waits until every sshd accepts TCP connections. `bastionPort` (22)
 * tests the known_hosts pattern `[host]:port`.
 * `vmHostKeyTypes`: host key types each VM's sshd offers besides Ed25519 (a stock
 * Debian/Ubuntu VM has ECDSA and RSA keys too); their public keys are in `LabVm.hostKeys`.
 */
export async function buildLab(opts: { vms: number; tag?: string; bastionPort?: number; vmHostKeyTypes?: ("ecdsa" | "rsa")[] }): Promise<Lab> {
  const sb = new Sandbox(opts.tag ?? "lab");
  try {
    return await build(sb, opts);
  } catch (e) {
    sb.cleanup();
    throw e;
  }
}

async function build(sb: Sandbox, opts: { vms: number; bastionPort?: number; vmHostKeyTypes?: ("ecdsa" | "rsa")[] }): Promise<Lab> {
  const d = sb.dir;
  const bastionPort = opts.bastionPort ?? 22;
  const opNs = sb.netns("op");
  const bastionNs = sb.netns("bastion");
  const switchNs = sb.netns("ovl");
  sb.link(opNs, "eth0", "10.210.1.1/24", bastionNs, "eth0", "10.210.1.2/24");
  sb.must(["ip", "-n", bastionNs, "link", "add", "vms", "type", "bridge"]);
  sb.must(["ip", "-n", bastionNs, "address", "add", "10.210.2.1/24", "dev", "vms"]);
  sb.must(["ip", "-n", bastionNs, "link", "set", "vms", "up"]);
  sb.must(["ip", "-n", switchNs, "link", "add", "ovl", "type", "bridge"]);
  sb.must(["ip", "-n", switchNs, "link", "set", "ovl", "up"]);

  const keygen = (name: string) => sb.must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path.join(d, name)]);
  const pub = (name: string) => fs.readFileSync(path.join(d, `${name}.pub`), "utf8").trim().split(" ").slice(0, 2).join(" ");
  keygen("operator");
  keygen("bastion_host");
  const authorizedKeys = path.join(d, "authorized_keys");
  fs.copyFileSync(path.join(d, "operator.pub"), authorizedKeys);
  // sshd's privilege separation directory (what the openssh-server service creates).
  fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  sb.start("sshd-bastion", bastionNs, ["/usr/sbin/sshd", "-D", "-e", "-f", sshdConfig(d, "bastion", "10.210.1.2", bastionPort, authorizedKeys)]);

  const vms: LabVm[] = [];
  for (let i = 0; i < opts.vms; i++) {
    const name = `node-${i + 1}`;
    const ns = sb.netns(`vm${i + 1}`);
    const address = `10.210.2.${11 + i}`;
    const overlayAddress = `10.210.0.${1 + i}`;
    sb.must(["ip", "-n", bastionNs, "link", "add", `v${i + 1}`, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    sb.must(["ip", "-n", bastionNs, "link", "set", `v${i + 1}`, "master", "vms", "up"]);
    sb.must(["ip", "-n", ns, "address", "add", `${address}/24`, "dev", "eth0"]);
    sb.must(["ip", "-n", ns, "link", "set", "eth0", "up"]);
    sb.must(["ip", "-n", switchNs, "link", "add", `o${i + 1}`, "type", "veth", "peer", "name", LAB_OVERLAY_INTERFACE, "netns", ns]);
    sb.must(["ip", "-n", switchNs, "link", "set", `o${i + 1}`, "master", "ovl", "up"]);
    sb.must(["ip", "-n", ns, "address", "add", `${overlayAddress}/24`, "dev", LAB_OVERLAY_INTERFACE]);
    sb.must(["ip", "-n", ns, "link", "set", LAB_OVERLAY_INTERFACE, "up"]);

    keygen(`${name}_host`);
    const extraKeys = (opts.vmHostKeyTypes ?? []).map((type) => {
      sb.must(["ssh-keygen", "-q", "-t", type, "-N", "", "-C", `${name}_${type}`, "-f", path.join(d, `${name}_host_${type}`)]);
      return `${name}_host_${type}`;
    });
    const stateDir = path.join(d, `${name}-state`);
    const bin = path.join(d, `${name}-bin`);
    const priv = path.join(d, `${name}-private`);
    for (const dir of [stateDir, bin, priv]) fs.mkdirSync(dir);
    for (const [file, text] of Object.entries(standIns(stateDir, name, overlayAddress))) fs.writeFileSync(path.join(bin, file), text, { mode: 0o755 });
    // The servers the stand-ins answer for: the newest generation, the example's datacenter.
    writeProfile(stateDir, { ...generationProfile("2025", "10.210.9.9", "unused"), serversDatacenter: exampleCluster().servers.datacenter });
    const setup = `set -euo pipefail
mount -t tmpfs tmpfs ${priv}
for dir in etc var; do
  mkdir -p ${priv}/$dir-upper ${priv}/$dir-work
  mount -t overlay overlay -o lowerdir=/$dir,upperdir=${priv}/$dir-upper,workdir=${priv}/$dir-work /$dir
done
mount --bind ${bin} /usr/local/sbin
# Private /root, /tmp and /run; the lab directory (sshd config, keys, stand-in state) stays
# visible at its path through a bind mount parked on /mnt while /tmp is covered.
mount -t tmpfs tmpfs /mnt
mkdir /mnt/lab
mount --bind ${d} /mnt/lab
for dir in /root /tmp /run; do mount -t tmpfs tmpfs $dir; done
chmod 1777 /tmp
mkdir -p ${d}
mount --bind /mnt/lab ${d}
mkdir -p -m 0755 /run/sshd
exec /usr/sbin/sshd -D -e -f ${sshdConfig(d, name, address, 22, authorizedKeys, extraKeys)}`;
    const proc = sb.start(`sshd-${name}`, ns, ["unshare", "--mount", "--propagation", "private", "bash", "-c", setup]);
    // Stand-in for the Consul agent's DNS interface (consul.hcl: DNS on the overlay address,
    // port 53), which keepalived's consul_dns check queries with dig: documented behaviour
    // reproduced is only "answers A queries for consul.service.consul" (the servers' address).
    sb.start(`consul-dns-${name}`, ns, [
      "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
      `--listen-address=${overlayAddress}`, "--bind-interfaces", "--port=53", "--address=/consul.service.consul/10.210.9.9",
    ]);
    const exec = (command: string, timeoutMs = 20000) =>
      sb.run(["nsenter", "-t", String(proc.pid), "-m", "-n", "--", "bash", "-c", command], { timeoutMs });
    const callsFile = path.join(stateDir, "calls.log");
    vms.push({
      name,
      ns,
      address,
      overlayAddress,
      hostKey: pub(`${name}_host`),
      hostKeys: Object.fromEntries([["ed25519", pub(`${name}_host`)], ...(opts.vmHostKeyTypes ?? []).map((t) => [t, pub(`${name}_host_${t}`)])]),
      stateDir,
      pid: proc.pid,
      exec,
      read: (file) => {
        const r = exec(`cat ${JSON.stringify(file)}`);
        return r.status === 0 ? r.stdout : undefined;
      },
      calls: () => (fs.existsSync(callsFile) ? fs.readFileSync(callsFile, "utf8").split("\n").filter(Boolean) : []),
      clearCalls: () => fs.rmSync(callsFile, { force: true }),
      keepalivedRunning: () => exec("[ -s /run/keepalived.pid ] && kill -0 $(cat /run/keepalived.pid)").status === 0,
      serveHealth: (port) => {
        const www = path.join(d, `${name}-www`);
        fs.mkdirSync(www, { recursive: true });
        fs.writeFileSync(path.join(www, "healthz"), "ok\n");
        sb.start(`health-${name}`, ns, ["python3", "-m", "http.server", "--bind", overlayAddress, "--directory", www, String(port)]);
      },
      holdsFloatingIp: () => sb.inNs(ns, ["ip", "-o", "-4", "address", "show", "dev", LAB_OVERLAY_INTERFACE]).stdout.includes(` ${LAB_FLOATING_IP}/`),
    });
  }

  // Every sshd listens (probing from the bastion, which reaches them all, and from "op").
  let lastProbe = "";
  const listening = (ns: string, addr: string, port: number) => {
    const r = sb.inNs(ns, ["bash", "-c", `exec 3<>/dev/tcp/${addr}/${port}`], { timeoutMs: 10000 });
    lastProbe = `probe ${ns} → ${addr}:${port}: status ${r.status} ${r.stderr}`;
    return r.status === 0;
  };
  const diagnostics = (log: string) => () =>
    [lastProbe, fs.readFileSync(path.join(d, log), "utf8"), sb.run(["ip", "-n", bastionNs, "-br", "address"]).stdout, sb.inNs(bastionNs, ["ss", "-ltn"]).stdout].join("\n");
  await waitFor("the bastion's sshd", () => listening(opNs, "10.210.1.2", bastionPort), 60000, diagnostics("sshd-bastion.log"), 200);
  for (const vm of vms) await waitFor(`${vm.name}'s sshd`, () => listening(bastionNs, vm.address, 22), 60000, diagnostics(`sshd-${vm.name}.log`), 200);

  let extraKeys = 0;
  const lab: Lab = {
    sandbox: sb,
    dir: d,
    opNs,
    bastion: { ns: bastionNs, host: "10.210.1.2", port: bastionPort, user: "root", hostKey: pub("bastion_host") },
    vms,
    operatorKey: path.join(d, "operator"),
    otherHostKey: () => {
      const name = `other_${extraKeys++}`;
      keygen(name);
      return pub(name);
    },
    cluster: (edit) =>
      edited(exampleCluster(), (c) => {
        c.name = `lab-${sb.id}`;
        c.bastion = { host: lab.bastion.host, port: bastionPort, user: "root", hostKey: lab.bastion.hostKey };
        c.ssh = { ...c.ssh, user: "root", privateKey: { file: lab.operatorKey } };
        c.overlay = { ...c.overlay, interface: LAB_OVERLAY_INTERFACE, prefix: "10.210.0.0/24", addressing: "static", linkDns: "none" };
        c.floatingIp = { address: LAB_FLOATING_IP, virtualRouterId: 210, advertInterval: 1 };
        const template = c.nodes[0];
        c.nodes = vms.map((vm, i) => ({
          ...structuredClone(template),
          name: vm.name,
          address: vm.address,
          overlayAddress: vm.overlayAddress,
          hostKey: vm.hostKey,
          floatingIp: { eligible: true, priority: 150 - 10 * i },
          maintenance: false,
        }));
        edit?.(c);
      }),
    cleanup: () => sb.cleanup(),
  };
  return lab;
}
