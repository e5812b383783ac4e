/**
 * System test, per provider generation: the install scripts synthesized from
 * clusters/provider-<year>.yaml, run over SSH through a real bastion sshd on a namespace
 * VM, against that year's REAL Consul servers, with only what that year's provider
 * publishes:
 *
 * - interface names and overlay addresses (vxlan100 for 2022/2023, vxlan4 / vxlan5 for the
 *   2024 / 2025 files' team index), real interfaces on per-year overlay segments;
 * - the servers: a real Consul 1.14.11 server per year, configured as that year's playbook
 *   configures it (consul.ts, providerServerConfig): 2022 a per-team instance on a provider
 *   host at the group's consul_address (172.16.2.N), datacenter dc1; 2023 the team's main
 *   VM, datacenter = the team, advertising its vxlan100 address and also holding the group's
 *   consul_address (playbook/roles/network: vxlan_extra_addresses); 2024/2025 the VM with
 *   host index 100. Our rendered client config runs in the REAL agent on the VM (started as
 *   the provider's unit starts it: provider-standins.ts, vmSystemctl): validate, start, join,
 *   the servers' catalog, DNS on the overlay port 53; a client of another datacenter is
 *   refused by the real server ("wrong datacenter"). Nomad stays a stand-in
 *   (provider-standins.ts documents each behaviour);
 * - names: the provider's public resolvers (1.1.1.1, 1.0.0.1: dnsmasq in the bastion
 *   namespace) answer only what that year's provider publishes: 2023's terraform/records.tf
 *   publishes `<group>.internal.<domain>` → the group's consul_address; 2022 writes its zone
 *   to a local file only (playbook/roles/instructions/templates/zone) and 2024/2025 publish
 *   nothing of the kind in the repository. Hence the shipped descriptions join addresses;
 * - the link's DNS routing: 2022's link routes no DNS (the host resolves through its
 *   uplink's resolver); 2023+ sends `*.consul` and `internal.<domain>` to the VM's own
 *   overlay address, port 53, where the real agent answers and forwards what it does not
 *   own to its `recursors`.
 *
 * The VM's /etc, /var, /opt are private to it (overlays or tmpfs in a private mount
 * namespace): nothing reaches this machine.
 */
import * as fs from "fs";
import * as path from "path";
import { cleanup as cleanupSynth, edited, itIf, REPO_ROOT, synthCluster, type SynthOutput } from "../helpers/synth";
import { loadDescriptionFile } from "../../constructs/description/load";
import type { Cluster } from "../../constructs/description/schema";
import { nodesStackName } from "../../constructs/nodes-stack";
import { serversHttpUrl } from "../../constructs/render/scripts";
import { Sandbox, systemTestPrerequisites, waitFor, type RunResult } from "./sandbox";
import { INVALID_MARKER, PROVIDER_SERVER_CONFIGS, generationProfile, vmPrograms, writeProfile, type ProviderProfile } from "./provider-standins";
import { CONSUL_BIN, CONSUL_MISSING, catalogNodes, forgetNode, haveConsul, providerServerConfig, startConsul, waitForLeader, type ConsulAgent } from "./consul";

const system = systemTestPrerequisites(["ip", "unshare", "setsid", "ssh", "scp", "ssh-keygen", "/usr/sbin/sshd", "dnsmasq", "getent", "curl"]);
const pre = !system.ok || haveConsul() ? system : { ok: false, reason: CONSUL_MISSING };
jest.setTimeout(180000);

const YEARS = ["2022", "2023", "2024", "2025"] as const;
type Year = (typeof YEARS)[number];
/**
 * The group's consul_address (playbook group_vars primary.yml, "IP interne utilisée par
 * Consul et Nomad" in the mail): 2022 the provider host's instance, 2023 an extra address
 * of the main VM. From 2024 the servers are the VM with host index 100 (servers.vm).
 */
const GROUP_ADDRESS: Partial<Record<Year, string>> = { "2022": "172.16.2.7", "2023": "172.16.2.3" };
/** What each year's provider publishes in public DNS (2023: terraform/records.tf, internal_groups). */
const PUBLISHED: Record<Year, Record<string, string>> = {
  "2022": {},
  "2023": { "team-2023.internal.example.org": "172.16.2.3" },
  "2024": {},
  "2025": {},
};
const RECURSORS = ["1.1.1.1", "1.0.0.1"];
const isIp = (s: string) => /^\d+\.\d+\.\d+\.\d+$/.test(s);

function load(year: Year): Cluster {
  const r = loadDescriptionFile(path.join(REPO_ROOT, "clusters", `provider-${year}.yaml`));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.cluster;
}

/** Where that year's servers answer: their advertised address first, then every other address they hold. */
function serverAddresses(year: Year): string[] {
  const c = load(year);
  return [...new Set([c.servers.vm?.overlayAddress, GROUP_ADDRESS[year], ...c.servers.join.filter(isIp)].filter((a): a is string => !!a))];
}

describe("provider generations: install scripts on a namespace VM of each year (real sshd, real Consul servers and agent, stand-in Nomad)", () => {
  let sb: Sandbox;
  let state: string;
  let vmNs: string;
  let opNs: string;
  let sshConfig: string;
  let keyFile: string;
  let hostKeys: { bastion: string; vm: string };
  const servers: Partial<Record<Year, ConsulAgent>> = {};
  const synths: SynthOutput[] = [];

  const onVm = (cmd: string): RunResult => sb.inNs(opNs, ["ssh", "-F", sshConfig, "-J", "bastion", "vm-a", cmd], { timeoutMs: 120000 });
  const calls = () => (fs.existsSync(path.join(state, "calls.log")) ? fs.readFileSync(path.join(state, "calls.log"), "utf8").split("\n").filter(Boolean) : []);

  /** The year's description, pointed at this sandbox's bastion and VM (everything else as shipped). */
  function sandboxed(year: Year, edit: (c: Cluster) => void = () => {}): Cluster {
    return edited(load(year), (c) => {
      c.bastion = { host: "10.214.1.2", port: 22, user: "root", hostKey: hostKeys.bastion };
      c.ssh = { ...c.ssh, user: "root", privateKey: { file: keyFile } };
      c.nodes[0] = { ...c.nodes[0], address: "10.214.2.2", hostKey: hostKeys.vm };
      edit(c);
    });
  }

  /** Uploads vm-a's rendered files of `agent` and runs its install.sh as the provisioner does (sudo bash). */
  function install(c: Cluster, agent: "consul" | "nomad"): { ok: boolean; output: string; rendered: Record<string, string> } {
    const out = synthCluster(c);
    synths.push(out);
    const files = out.files[nodesStackName(c)];
    const prefix = `rendered/${c.nodes[0].name}/${agent}/`;
    const local = path.join(sb.dir, `upload-${agent}`);
    fs.rmSync(local, { recursive: true, force: true });
    fs.mkdirSync(local);
    for (const [f, text] of Object.entries(files)) if (f.startsWith(prefix)) fs.writeFileSync(path.join(local, f.slice(prefix.length)), text);
    // unique to this sandbox: /tmp is the machine's own (other runs of this test may be going on)
    const stage = `/tmp/stage-${sb.id}-${agent}`;
    expect(onVm(`rm -rf ${stage}`).status).toBe(0);
    const up = sb.inNs(opNs, ["scp", "-O", "-q", "-r", "-F", sshConfig, "-J", "bastion", local, `vm-a:${stage}`], { timeoutMs: 60000 });
    expect(up.stderr).toBe("");
    const r = onVm(`JOIN_TIMEOUT_SECONDS=40 sudo bash ${stage}/install.sh`);
    return { ok: r.status === 0, output: r.stdout + r.stderr, rendered: Object.fromEntries(Object.entries(files).filter(([f]) => f.startsWith(prefix)).map(([f, t]) => [f.slice(prefix.length), t])) };
  }

  /** A fresh VM of `year`: agents stopped, no agent config or data, unknown to every server, the year's profile. */
  function resetVm(profile: ProviderProfile) {
    expect(onVm("systemctl stop consul nomad keepalived; if [ -s /run/server.pid ]; then kill $(cat /run/server.pid); rm -f /run/server.pid; fi; rm -rf /etc/consul.d /etc/nomad.d /etc/systemd/system/consul.service.d /opt/consul /opt/nomad /var/lib/nomad-client /root/server-data && mkdir -p /etc/consul.d /etc/nomad.d").status).toBe(0);
    for (const year of YEARS) forgetNode(sb, servers[year]!, load(year).nodes[0].name);
    for (const f of fs.readdirSync(state)) if (/^(active|enabled)\.|^calls\.log$|^consul-agent\.log$/.test(f)) fs.rmSync(path.join(state, f));
    writeProfile(state, profile);
  }

  beforeAll(async () => {
    if (!pre.ok) return;
    sb = new Sandbox("gen");
    const d = sb.dir;
    state = path.join(d, "vm-state");
    fs.mkdirSync(state);
    opNs = sb.netns("op");
    const bastionNs = sb.netns("bastion");
    vmNs = sb.netns("vm");
    const sw = sb.netns("sw");
    sb.link(opNs, "eth0", "10.214.1.1/24", bastionNs, "eth0", "10.214.1.2/24");
    sb.link(bastionNs, "eth1", "10.214.2.1/24", vmNs, "eth0", "10.214.2.2/24");
    // The uplink's public resolvers, reached through the VM's uplink (eth0).
    for (const r of RECURSORS) {
      sb.must(["ip", "-n", bastionNs, "address", "add", `${r}/32`, "dev", "lo"]);
      sb.must(["ip", "-n", vmNs, "route", "add", `${r}/32`, "via", "10.214.2.1"]);
    }
    sb.start("public-resolvers", bastionNs, [
      "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=", "--log-facility=-",
      ...RECURSORS.map((r) => `--listen-address=${r}`), "--bind-interfaces", "--port=53",
      ...YEARS.flatMap((y) => Object.entries(PUBLISHED[y]).map(([name, a]) => `--host-record=${name},${a}`)),
    ]);
    // Each generation's overlay segment (a bridge), with node vm-a's interface and the servers.
    const segments: [string, string, string[]][] = [
      ["vxlan100", "b100", ["172.16.1.21/16", "172.16.1.31/16"]], // 2022 and 2023 (shared /16)
      ["vxlan4", "b4", ["172.16.4.101/24"]], // 2024 (team index 4)
      ["vxlan5", "b5", ["172.16.5.101/24"]], // 2025 (team index 5)
    ];
    let port = 0;
    const plug = (ns: string, iface: string, bridge: string, addrs: string[]) => {
      const p = `p${port++}`;
      sb.must(["ip", "-n", ns, "link", "add", iface, "type", "veth", "peer", "name", p, "netns", sw]);
      sb.must(["ip", "-n", sw, "link", "set", p, "master", bridge, "up"]);
      for (const a of addrs) sb.must(["ip", "-n", ns, "address", "add", a, "dev", iface]);
      sb.must(["ip", "-n", ns, "link", "set", iface, "up"]);
    };
    for (const [iface, bridge, addrs] of segments) {
      sb.must(["ip", "-n", sw, "link", "add", bridge, "type", "bridge"]);
      sb.must(["ip", "-n", sw, "link", "set", bridge, "up"]);
      plug(vmNs, iface, bridge, addrs);
    }
    // That year's Consul server, as its playbook configures it, on the year's segment.
    for (const year of YEARS) {
      const c = load(year);
      const bits = c.overlay.prefix.split("/")[1];
      const addrs = serverAddresses(year);
      const ns = sb.netns(`s${year}`);
      plug(ns, "ovl", { "vxlan100": "b100", "vxlan4": "b4", "vxlan5": "b5" }[c.overlay.interface]!, addrs.map((a) => `${a}/${bits}`));
      servers[year] = startConsul(sb, ns, {
        name: `server-${year}`,
        configText: providerServerConfig(year, { nodeName: `provider-${year}`, address: addrs[0], team: c.servers.datacenter }),
        http: `http://${addrs[0]}:8500`,
      });
    }

    for (const k of ["operator", "bastion_host", "vm_host"]) sb.must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", path.join(d, k)]);
    keyFile = path.join(d, "operator");
    fs.copyFileSync(path.join(d, "operator.pub"), path.join(d, "authorized_keys"));
    const pub = (k: string) => fs.readFileSync(path.join(d, `${k}.pub`), "utf8").trim().split(" ").slice(0, 2).join(" ");
    hostKeys = { bastion: pub("bastion_host"), vm: pub("vm_host") };
    const sshdConfig = (name: string, listen: string) => {
      const file = path.join(d, `${name}_sshd_config`);
      fs.writeFileSync(file, [
        `ListenAddress ${listen}`, `HostKey ${path.join(d, `${name}_host`)}`, `AuthorizedKeysFile ${path.join(d, "authorized_keys")}`,
        "PidFile none", "StrictModes no", "UsePAM no", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitTTY no", "PrintMotd no", "PrintLastLog no", "Subsystem sftp internal-sftp", "",
      ].join("\n"));
      return file;
    };
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    sb.start("sshd-bastion", bastionNs, ["/usr/sbin/sshd", "-D", "-e", "-f", sshdConfig("bastion", "10.214.1.2")]);

    const bin = path.join(d, "vm-bin");
    fs.mkdirSync(bin);
    for (const [name, text] of Object.entries(vmPrograms(state, "vm-a", CONSUL_BIN))) fs.writeFileSync(path.join(bin, name), text, { mode: 0o755 });
    const priv = path.join(d, "vm-private");
    fs.mkdirSync(priv);
    sb.start("sshd-vm", vmNs, ["unshare", "--mount", "--propagation", "private", "bash", "-c", `set -euo pipefail
mount -t tmpfs tmpfs ${priv}
for dir in etc var; do
  mkdir -p ${priv}/$dir-upper ${priv}/$dir-work
  mount -t overlay overlay -o lowerdir=/$dir,upperdir=${priv}/$dir-upper,workdir=${priv}/$dir-work /$dir
done
for dir in /root /run /opt; do mount -t tmpfs tmpfs $dir; done
mkdir -p -m 0755 /run/sshd
mount --bind ${bin} /usr/local/sbin
exec /usr/sbin/sshd -D -e -f ${sshdConfig("vm", "10.214.2.2")}`]);

    const knownHosts = path.join(d, "known_hosts");
    fs.writeFileSync(knownHosts, `10.214.1.2 ${hostKeys.bastion}\n10.214.2.2 ${hostKeys.vm}\n`);
    const common = [`  IdentityFile ${keyFile}`, "  IdentitiesOnly yes", `  UserKnownHostsFile ${knownHosts}`, "  StrictHostKeyChecking yes", "  BatchMode yes", "  ConnectTimeout 5", "  LogLevel ERROR"].join("\n");
    sshConfig = path.join(d, "ssh_config");
    fs.writeFileSync(sshConfig, `Host bastion\n  HostName 10.214.1.2\n  User root\n${common}\nHost vm-a\n  HostName 10.214.2.2\n  User root\n${common}\n`);
    await waitFor("ssh to the VM through the bastion", () => onVm("true").status === 0, 20000, () => onVm("true").stderr);
    for (const year of YEARS) await waitForLeader(sb, servers[year]!);
  });

  afterAll(() => {
    for (const s of synths) cleanupSynth(s);
    if (!sb) return;
    onVm("systemctl stop consul");
    for (const agent of ["consul", "nomad"]) fs.rmSync(`/tmp/stage-${sb.id}-${agent}`, { recursive: true, force: true });
    sb.cleanup();
    expect(sb.leftoverNamespaces()).toEqual([]);
  });

  describe.each(YEARS)("%s", (year) => {
    const profile = (): ProviderProfile => {
      const c = load(year);
      // the Nomad stand-in answers for that year's servers
      return generationProfile(year, serverAddresses(year)[0], c.servers.datacenter);
    };
    const server = () => servers[year]!;
    const serverLog = () => server().log();

    itIf(pre.ok, pre.reason)("a client node installs Consul and Nomad: version, server, datacenter/region and join checks pass against that year's real servers", () => {
      resetVm(profile());
      const c = sandboxed(year);
      for (const agent of ["consul", "nomad"] as const) {
        const r = install(c, agent);
        expect({ agent, ok: r.ok, output: r.output }).toMatchObject({ ok: true });
        expect(r.output).toContain(`joined with address ${c.nodes[0].overlayAddress}`);
        expect(onVm(`cat /etc/${agent}.d/${agent}.hcl`).stdout).toBe(r.rendered[`${agent}.hcl`]);
      }
      // the real servers' catalog has the node at its overlay address
      expect(catalogNodes(sb, server())[c.nodes[0].name]).toBe(c.nodes[0].overlayAddress);
      // the join check asked the servers (their catalog), not only the local gossip view
      expect(calls()).toEqual(expect.arrayContaining([`consul catalog nodes -http-addr=${serversHttpUrl(c, "consul")}`]));
      expect(calls().some((l) => l.startsWith("consul members") && l.includes("-detailed"))).toBe(true);
      expect(calls().some((l) => l.startsWith("nomad server members"))).toBe(true);
      const validated = calls().filter((l) => l.startsWith("nomad config validate"));
      // Nomad 1.2 has no `config validate`: the script never calls it (the stand-in would exit 127)
      expect(validated).toHaveLength(year === "2022" ? 0 : 1);
    });

    itIf(pre.ok, pre.reason)("servers of another datacenter: the install fails naming both and writes nothing; the real server refuses such a client", async () => {
      // e.g. our earlier notes' "datacenter = team name" against 2022's dc1, or the reverse on 2023+
      const wrong = year === "2022" ? "team-2022" : "dc1";
      resetVm(profile());
      const c = sandboxed(year, (x) => (x.servers.datacenter = wrong));
      const r = install(c, "consul");
      expect(r.ok).toBe(false);
      expect(r.output).toContain(`the Consul servers run in datacenter '${profile().serversDatacenter}', the description says servers.datacenter '${wrong}'`);
      expect(onVm("ls -A /etc/consul.d").stdout.trim()).toBe("");
      expect(calls().filter((l) => /^systemctl (restart|start)/.test(l))).toEqual([]);
      // Without our check: that rendered config, started by hand, is refused by the server itself.
      expect(onVm(`cp /tmp/stage-${sb.id}-consul/consul.hcl /etc/consul.d/consul.hcl && systemctl start consul`).status).toBe(0);
      // Consul's serf merge delegate: "Member '<node>' part of wrong datacenter '<dc>'" (logged by both ends).
      const agentLog = () => (fs.existsSync(path.join(state, "consul-agent.log")) ? fs.readFileSync(path.join(state, "consul-agent.log"), "utf8") : "");
      await waitFor("the server refusing the client of another datacenter", () => /wrong datacenter/.test(serverLog() + agentLog()), 30000, () => agentLog().split("\n").slice(-10).join("\n"));
      expect(catalogNodes(sb, server())[c.nodes[0].name]).toBeUndefined();
      onVm("systemctl stop consul");
    });

    itIf(pre.ok, pre.reason)("a VM whose agents are servers (the provider's server-VM configs, or a running server agent) is refused, untouched", async () => {
      resetVm(profile());
      const c = sandboxed(year);
      for (const agent of ["consul", "nomad"] as const) {
        fs.writeFileSync(path.join(sb.dir, "server.hcl"), PROVIDER_SERVER_CONFIGS[agent]);
        expect(sb.inNs(opNs, ["scp", "-O", "-q", "-F", sshConfig, "-J", "bastion", path.join(sb.dir, "server.hcl"), `vm-a:/etc/${agent}.d/${agent}.hcl`]).status).toBe(0);
        const r = install(c, agent);
        expect(r.ok).toBe(false);
        expect(r.output).toContain(`/etc/${agent}.d configures a ${agent} SERVER on this VM`);
        expect(onVm(`cat /etc/${agent}.d/${agent}.hcl`).stdout).toBe(PROVIDER_SERVER_CONFIGS[agent]);
      }
      // No config file, but the running agent is a server: a real Consul server (the provider's
      // config, kept outside /etc/consul.d) and the Nomad stand-in's "server = true".
      resetVm({ ...profile(), thisVmIsServer: true });
      const serverConfig = providerServerConfig(year, { nodeName: "vm-a", address: c.nodes[0].overlayAddress, team: c.servers.datacenter });
      fs.writeFileSync(path.join(sb.dir, "vm-server.hcl"), serverConfig);
      expect(sb.inNs(opNs, ["scp", "-O", "-q", "-F", sshConfig, "-J", "bastion", path.join(sb.dir, "vm-server.hcl"), "vm-a:/root/server.hcl"]).status).toBe(0);
      expect(onVm(`mkdir -p /root/server-data; CHECKPOINT_DISABLE=1 setsid ${CONSUL_BIN} agent -config-file=/root/server.hcl -data-dir=/root/server-data -client=127.0.0.1 -pid-file=/run/server.pid </dev/null >/root/server.log 2>&1 &`).status).toBe(0);
      try {
        await waitFor("the VM's own Consul server", () => onVm("curl -fsS http://127.0.0.1:8500/v1/status/leader").stdout.includes(":8300"), 30000, () => onVm("cat /root/server.log").stdout);
        for (const agent of ["consul", "nomad"] as const) {
          const r = install(c, agent);
          expect(r.ok).toBe(false);
          expect(r.output).toContain(`the running ${agent} agent on this VM is a SERVER`);
        }
      } finally {
        onVm("kill $(cat /run/server.pid); rm -f /run/server.pid; rm -rf /root/server-data");
      }
      expect(onVm("ls -A /etc/consul.d /etc/nomad.d | grep -c hcl || true").stdout.trim()).toBe("0");
      expect(calls().filter((l) => l.startsWith("systemctl"))).toEqual([]);
    });

    itIf(pre.ok, pre.reason)("a binary older than the description's versions is refused before anything is written", () => {
      resetVm({ ...profile(), nomadVersion: "1.1.6", consulVersion: "1.10.12" });
      for (const [agent, old] of [["nomad", "1.1.6"], ["consul", "1.10.12"]] as const) {
        const r = install(sandboxed(year), agent);
        expect(r.ok).toBe(false);
        expect(r.output).toContain(`${agent} on this VM is ${old}, older than versions.${agent} ${load(year).versions[agent]}`);
        expect(onVm(`ls -A /etc/${agent}.d`).stdout.trim()).toBe("");
      }
    });

    itIf(pre.ok, pre.reason)("a Nomad config the version rejects is never left installed: validated offline (1.3+) or rolled back after the restart (1.2)", () => {
      resetVm(profile());
      const good = sandboxed(year);
      expect(install(good, "nomad").ok).toBe(true);
      const before = onVm("cat /etc/nomad.d/nomad.hcl").stdout;
      const r = install(sandboxed(year, (c) => (c.nomad.extraConfig = `# ${INVALID_MARKER}\nlog_level = "DEBUG"\n`)), "nomad");
      expect(r.ok).toBe(false);
      if (year === "2022") {
        expect(r.output).toContain("nomad did not come up with the new configuration; the previous files are back.");
        expect(calls().filter((l) => l === "systemctl restart nomad").length).toBeGreaterThanOrEqual(3); // install, the bad one, the restore
      } else {
        expect(r.output).toContain("the new nomad configuration does not validate; nothing was changed.");
      }
      expect(onVm("cat /etc/nomad.d/nomad.hcl").stdout).toBe(before);
      expect(onVm("ls /etc/nomad.d").stdout.split("\n")).not.toContain("zz-extra.hcl");
    });

    itIf(pre.ok, pre.reason)("host DNS as the link routes it, answered by the real agent: *.consul and the provider's published names where the docs say", async () => {
      resetVm(profile());
      const c = sandboxed(year);
      const overlay = c.nodes[0].overlayAddress;
      // The host's resolver: 2023+ the link sends the internal domain and ~consul to the VM's
      // own overlay address (one link here: everything goes there); 2022 the uplink's resolver.
      const resolver = c.overlay.linkDns === "agent" ? overlay : RECURSORS[0];
      expect(onVm(`rm -f /etc/resolv.conf && printf 'nameserver %s\\n' ${resolver} >/etc/resolv.conf`).status).toBe(0);
      const resolvConf = onVm("cat /etc/resolv.conf").stdout;
      expect(install(c, "consul").ok).toBe(true);
      expect(onVm("cat /etc/resolv.conf").stdout).toBe(resolvConf); // the install never touches host DNS
      const resolves = (name: string) => onVm(`getent hosts ${name}`).stdout.split(/\s+/)[0];
      const agentAnswers = (name: string) => onVm(`dig +short +time=2 +tries=1 @${overlay} -p 53 ${name} A`).stdout.trim();

      // The agent's DNS on the overlay port 53 (HAProxy's resolver): the servers' consul service.
      await waitFor("the agent answering consul.service.consul", () => agentAnswers("consul.service.consul") === serverAddresses(year)[0], 30000, () => agentAnswers("consul.service.consul"));
      // The host: *.consul only where the link routes it to the agent.
      expect(resolves("consul.service.consul")).toBe(c.overlay.linkDns === "agent" ? serverAddresses(year)[0] : "");
      // What the provider publishes resolves on the host (through the agent's recursors on 2023+);
      // nothing else of the provider's does.
      for (const [name, address] of Object.entries(PUBLISHED[year])) expect(resolves(name)).toBe(address);
      expect(resolves(`team-${year}.internal.example.org`)).toBe(PUBLISHED[year][`team-${year}.internal.example.org`] ?? "");
      if (c.overlay.linkDns === "agent" && Object.keys(PUBLISHED[year]).length > 0) {
        // The earlier output (no recursors) on this link: the published names never resolve.
        const r = install(edited(c, (x) => (x.consul.recursors = [])), "consul");
        expect(r.ok).toBe(true);
        await waitFor("the agent restarted without recursors", () => agentAnswers("consul.service.consul") !== "", 30000);
        for (const name of Object.keys(PUBLISHED[year])) expect(resolves(name)).toBe("");
        expect(resolves("consul.service.consul")).toBe(serverAddresses(year)[0]);
      }
    });
  });
});
