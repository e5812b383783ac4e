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
 * The provider, real (docs/lab.md): a "servers" namespace on the overlay (10.210.0.250) runs
 * a real Consul 1.14.11 server configured as the 2022 playbook configures the provider's
 * per-team instance (datacenter dc1, no ACL, no gossip key, HTTP API on the overlay), which
 * is the example description's shape; the lab's description joins its address. With
 * `neighbour: true`, another team's namespace on the same overlay (10.210.0.200) runs a real
 * Consul client of the same shared dc1, as any 2022 VM can (lab.neighbour). The public
 * resolvers the descriptions may render as recursors (1.1.1.1, 1.0.0.1) are a dnsmasq in
 * the bastion namespace that knows only the lab's names: nothing leaves the lab.
 *
 * Each VM is isolated from this machine: its sshd runs in a private mount namespace where
 * /etc and /var are overlays on a tmpfs (writes never reach the host), /root, /tmp, /run and
 * /opt are empty tmpfs, and /usr/local/sbin holds:
 *   - consul: the REAL Consul (.engines/bin/consul) behind a wrapper that appends its command
 *     line to the VM's calls.log and answers `consul version` with the version the
 *     description's generation installs (the lab's binary is 1.14.11 for every generation:
 *     the install's version floor reads that line; docs/lab.md, "The version gap");
 *   - nomad, sudo, journalctl, apt-get: the stand-ins of provider-standins.ts (Nomad may not
 *     be used here; each reproduced behaviour cites Nomad's documentation there);
 *   - `systemctl enable|disable [--now]|start|stop|restart|reload|is-active|is-enabled|
 *     daemon-reload`: for consul, the REAL agent started as the provider's unit starts it
 *     (ExecStartPre=consul validate /etc/consul.d/, ExecStart=consul agent
 *     -config-dir=/etc/consul.d/, ExecReload=kill -HUP, KillSignal=SIGTERM; as root here,
 *     User=consul there), its DNS on the overlay address port 53 as consul.hcl says; for
 *     keepalived the REAL keepalived 2.2 daemon (SIGHUP reload, SIGTERM stop); for nomad
 *     state files only.
 * keepalived -t, ip, sysctl (per network namespace) and useradd run for real.
 */
import * as fs from "fs";
import * as path from "path";
import { edited, exampleCluster } from "../helpers/synth";
import type { Cluster } from "../../constructs/description/schema";
import { Sandbox, systemTestPrerequisites, waitFor, type RunResult } from "./sandbox";
import { generationProfile, vmPrograms, writeProfile } from "./provider-standins";
import { CONSUL_BIN, CONSUL_MISSING, haveConsul, providerServerConfig, startConsul, waitForCatalogNode, waitForLeader, type ConsulAgent } from "./consul";

const system = systemTestPrerequisites(["ip", "unshare", "nsenter", "setsid", "ssh-keygen", "/usr/sbin/sshd", "keepalived", "useradd", "curl", "dig", "dnsmasq", "/usr/bin/python3"]);
export const labPrerequisites = haveConsul() || !system.ok ? system : { ok: false, reason: CONSUL_MISSING };

/**
 * An extraConfig the description accepts and the REAL `consul validate` rejects, with the
 * error it prints (for tests of a config that fails validation on the node).
 */
export const LAB_CONSUL_REJECTS = {
  extraConfig: 'log_level = "DEBUG"\ndns_config {\n  node_ttl = "one minute"\n}\n',
  message: 'invalid duration "one minute"',
};
export const LAB_OVERLAY_INTERFACE = "ovl210";
export const LAB_FLOATING_IP = "10.210.0.100";
/** The provider's Consul server (and the Nomad servers the stand-ins answer for) on the overlay. */
export const LAB_SERVERS_ADDRESS = "10.210.0.250";
/** Another team's VM on the same overlay (buildLab({ neighbour: true })). */
export const LAB_NEIGHBOUR_ADDRESS = "10.210.0.200";
/** The public resolvers a description may render as recursors, answered inside the lab. */
export const LAB_PUBLIC_RESOLVERS = ["1.1.1.1", "1.0.0.1"];

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
  /** The provider's Consul server (real, 2022 playbook shape), in its own namespace on the overlay. */
  servers: { ns: string; address: string; datacenter: string; consul: ConsulAgent };
  /** Another team's VM on the overlay, with a real Consul client of the same dc1 (only with `neighbour: true`). */
  neighbour?: { ns: string; address: string; consul: ConsulAgent };
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
export async function buildLab(opts: LabOptions): Promise<Lab> {
  const sb = new Sandbox(opts.tag ?? "lab");
  try {
    return await build(sb, opts);
  } catch (e) {
    sb.cleanup();
    throw e;
  }
}

export interface LabOptions {
  vms: number;
  tag?: string;
  bastionPort?: number;
  vmHostKeyTypes?: ("ecdsa" | "rsa")[];
  /** Another team's VM on the overlay, with a Consul client of the same shared dc1. */
  neighbour?: boolean;
}

async function build(sb: Sandbox, opts: LabOptions): Promise<Lab> {
  const d = sb.dir;
  const bastionPort = opts.bastionPort ?? 22;
  const opNs = sb.netns("op");
  const bastionNs = sb.netns("bastion");
  const overlaySwitch = sb.bridge("ovl");
  sb.link(opNs, "eth0", "10.210.1.1/24", bastionNs, "eth0", "10.210.1.2/24");
  sb.must(["ip", "-n", bastionNs, "link", "add", "vms", "type", "bridge"]);
  sb.must(["ip", "-n", bastionNs, "address", "add", "10.210.2.1/24", "dev", "vms"]);
  sb.must(["ip", "-n", bastionNs, "link", "set", "vms", "up"]);
  /** A namespace's overlay interface, on the overlay switch. */
  const onOverlay = (ns: string, address: string) => overlaySwitch.plug(ns, LAB_OVERLAY_INTERFACE, [`${address}/24`]);

  // The public resolvers (what a rendered `recursors` forwards to), reached through the VMs'
  // uplink: they know the lab's names only.
  for (const r of LAB_PUBLIC_RESOLVERS) sb.must(["ip", "-n", bastionNs, "address", "add", `${r}/32`, "dev", "lo"]);
  sb.start("public-resolvers", bastionNs, [
    "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=", "--log-facility=-",
    ...LAB_PUBLIC_RESOLVERS.map((r) => `--listen-address=${r}`), "--bind-interfaces", "--port=53",
    "--host-record=bastion.lab.internal,10.210.1.2",
  ]);

  // The provider's Consul server: one per team on a provider host, as the 2022 playbook runs it.
  const serversNs = sb.netns("servers");
  onOverlay(serversNs, LAB_SERVERS_ADDRESS);
  const serverConsul = startConsul(sb, serversNs, {
    name: "server",
    configText: providerServerConfig("2022", { nodeName: "provider-consul", address: LAB_SERVERS_ADDRESS, team: "lab" }),
    http: `http://${LAB_SERVERS_ADDRESS}:8500`,
  });

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
    for (const r of LAB_PUBLIC_RESOLVERS) sb.must(["ip", "-n", ns, "route", "add", `${r}/32`, "via", "10.210.2.1"]);
    onOverlay(ns, overlayAddress);

    keygen(`${name}_host`);
    const extraKeys = (opts.vmHostKeyTypes ?? []).map((type) => {
      sb.must(["ssh-keygen", "-q", "-t", type, "-N", "", "-C", `${name}_${type}`, "-f", path.join(d, `${name}_host_${type}`)]);
      return `${name}_host_${type}`;
    });
    const stateDir = path.join(d, `${name}-state`);
    const bin = path.join(d, `${name}-bin`);
    const priv = path.join(d, `${name}-private`);
    for (const dir of [stateDir, bin, priv]) fs.mkdirSync(dir);
    for (const [file, text] of Object.entries(vmPrograms(stateDir, name, CONSUL_BIN))) fs.writeFileSync(path.join(bin, file), text, { mode: 0o755 });
    // What the Nomad stand-in answers for: the example's versions, the lab's servers (dc1/global).
    writeProfile(stateDir, { ...generationProfile("2025", LAB_SERVERS_ADDRESS, "unused"), serversDatacenter: "dc1" });
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
for dir in /root /tmp /run /opt; do mount -t tmpfs tmpfs $dir; done
chmod 1777 /tmp
mkdir -p ${d}
mount --bind /mnt/lab ${d}
mkdir -p -m 0755 /run/sshd
exec /usr/sbin/sshd -D -e -f ${sshdConfig(d, name, address, 22, authorizedKeys, extraKeys)}`;
    const proc = sb.start(`sshd-${name}`, ns, ["unshare", "--mount", "--propagation", "private", "bash", "-c", setup]);
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

  await waitForLeader(sb, serverConsul);
  let neighbour: Lab["neighbour"];
  if (opts.neighbour) {
    // Another team's VM: any 2022 VM on the overlay can join a client to the shared dc1.
    const ns = sb.netns("neighbour");
    onOverlay(ns, LAB_NEIGHBOUR_ADDRESS);
    const consul = startConsul(sb, ns, {
      name: "neighbour",
      configText: `datacenter = "dc1"\nnode_name = "other-team-vm"\nbind_addr = "${LAB_NEIGHBOUR_ADDRESS}"\nadvertise_addr = "${LAB_NEIGHBOUR_ADDRESS}"\nclient_addr = "127.0.0.1"\nretry_join = ["${LAB_SERVERS_ADDRESS}"]\n`,
      http: "http://127.0.0.1:8500",
    });
    await waitForCatalogNode(sb, serverConsul, "other-team-vm", LAB_NEIGHBOUR_ADDRESS);
    neighbour = { ns, address: LAB_NEIGHBOUR_ADDRESS, consul };
  }

  let extraKeys = 0;
  const lab: Lab = {
    sandbox: sb,
    servers: { ns: serversNs, address: LAB_SERVERS_ADDRESS, datacenter: "dc1", consul: serverConsul },
    neighbour,
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
        // The provider's servers as its mail gives them: an IP (infrastructure.md, "What to join").
        c.servers = {
          ...c.servers,
          datacenter: "dc1",
          join: [LAB_SERVERS_ADDRESS],
          consulHttpAddress: `http://${LAB_SERVERS_ADDRESS}:8500`,
          nomadHttpAddress: `http://${LAB_SERVERS_ADDRESS}:4646`,
        };
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
