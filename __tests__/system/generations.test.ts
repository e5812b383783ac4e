/**
 * System test, per provider generation: the install scripts synthesized from
 * clusters/provider-<year>.yaml, run over SSH through a real bastion sshd on a namespace
 * VM that reproduces that year's distinctive facts:
 *
 * - interface names and overlay addresses (vxlan100 for 2022/2023, vxlan4 / vxlan5 for the
 *   2024 / 2025 files' team index), real interfaces inside the VM's network namespace;
 * - the servers' datacenter and region, their placement (the 2023+ server VM's own config
 *   files, as the provider's playbook writes them), and the versions' CLI surface, through
 *   the shared stand-ins of provider-standins.ts (each documents the behaviour it
 *   reproduces: a client of another datacenter is refused; `nomad config validate` is an
 *   unknown command on Nomad 1.2; `server = true` in `consul info` / `nomad agent-info`);
 * - the link's DNS routing: 2022's link routes no DNS (the host resolves through its
 *   uplink's resolver); 2023+ sends `*.consul` and `internal.<domain>` to a DNS server on
 *   the VM's own overlay address, port 53. The provider's internal names are public
 *   records (its terraform/records.tf): a "public recursor" at 1.1.1.1 (dnsmasq in the
 *   bastion namespace) serves them. The Consul agent's DNS is stood in by dnsmasq
 *   configured from the INSTALLED consul.hcl: it listens on `addresses.dns`:`ports.dns`,
 *   answers `*.consul` itself and forwards other names only to `recursors` (Consul's
 *   documented behaviour; without recursors it answers nothing else).
 *
 * The VM's /etc and /var are overlays on a tmpfs in a private mount namespace: nothing
 * reaches this machine.
 */
import * as fs from "fs";
import * as path from "path";
import { cleanup as cleanupSynth, edited, itIf, parseHcl, REPO_ROOT, synthCluster, type SynthOutput } from "../helpers/synth";
import { loadDescriptionFile } from "../../constructs/description/load";
import type { Cluster } from "../../constructs/description/schema";
import { nodesStackName } from "../../constructs/nodes-stack";
import { Sandbox, systemTestPrerequisites, waitFor, type RunResult } from "./sandbox";
import { INVALID_MARKER, PROVIDER_SERVER_CONFIGS, agentStandIns, generationProfile, systemStandIns, writeProfile, type ProviderProfile } from "./provider-standins";

const pre = systemTestPrerequisites(["ip", "unshare", "ssh", "scp", "ssh-keygen", "/usr/sbin/sshd", "dnsmasq", "getent"]);
jest.setTimeout(180000);

const YEARS = ["2022", "2023", "2024", "2025"] as const;
type Year = (typeof YEARS)[number];
/** The public records the provider publishes for the teams' servers (terraform/records.tf). */
const PUBLIC_RECORDS: Record<Year, string> = { "2022": "172.16.2.7", "2023": "172.16.2.3", "2024": "172.16.4.120", "2025": "172.16.5.120" };
const RECURSOR = "1.1.1.1";

function load(year: Year): Cluster {
  const r = loadDescriptionFile(path.join(REPO_ROOT, "clusters", `provider-${year}.yaml`));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.cluster;
}

describe("provider generations: install scripts on a namespace VM of each year (real sshd, stand-in agents)", () => {
  let sb: Sandbox;
  let state: string;
  let vmNs: string;
  let opNs: string;
  let sshConfig: string;
  let keyFile: string;
  let hostKeys: { bastion: string; vm: string };
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
    const r = onVm(`JOIN_TIMEOUT_SECONDS=8 sudo bash ${stage}/install.sh`);
    return { ok: r.status === 0, output: r.stdout + r.stderr, rendered: Object.fromEntries(Object.entries(files).filter(([f]) => f.startsWith(prefix)).map(([f, t]) => [f.slice(prefix.length), t])) };
  }

  /** A fresh VM of `year`: no agent config, nothing running, the year's profile. */
  function resetVm(profile: ProviderProfile) {
    expect(onVm("rm -rf /etc/consul.d /etc/nomad.d /etc/systemd/system/consul.service.d && mkdir -p /etc/consul.d /etc/nomad.d").status).toBe(0);
    for (const f of fs.readdirSync(state)) if (/^(active|enabled)\.|^calls\.log$/.test(f)) fs.rmSync(path.join(state, f));
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
    sb.link(opNs, "eth0", "10.214.1.1/24", bastionNs, "eth0", "10.214.1.2/24");
    sb.link(bastionNs, "eth1", "10.214.2.1/24", vmNs, "eth0", "10.214.2.2/24");
    // The uplink's public resolver, reached through the VM's uplink (eth0).
    sb.must(["ip", "-n", bastionNs, "address", "add", `${RECURSOR}/32`, "dev", "lo"]);
    sb.must(["ip", "-n", vmNs, "route", "add", `${RECURSOR}/32`, "via", "10.214.2.1"]);
    // Each generation's overlay interface of node vm-a, with its address (a veth pair inside the VM).
    const overlays: [string, string[]][] = [
      ["vxlan100", ["172.16.1.21/16", "172.16.1.31/16"]], // 2022 and 2023 (shared /16)
      ["vxlan4", ["172.16.4.101/24"]], // 2024 (team index 4)
      ["vxlan5", ["172.16.5.101/24"]], // 2025 (team index 5)
    ];
    for (const [iface, addrs] of overlays) {
      sb.must(["ip", "-n", vmNs, "link", "add", iface, "type", "veth", "peer", "name", `${iface}p`]);
      for (const a of addrs) sb.must(["ip", "-n", vmNs, "address", "add", a, "dev", iface]);
      sb.must(["ip", "-n", vmNs, "link", "set", iface, "up"]);
      sb.must(["ip", "-n", vmNs, "link", "set", `${iface}p`, "up"]);
    }
    sb.start("public-recursor", bastionNs, [
      "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
      `--listen-address=${RECURSOR}`, "--bind-interfaces", "--port=53", "--log-facility=-",
      ...YEARS.map((y) => `--host-record=team-${y}.internal.example.org,${PUBLIC_RECORDS[y]}`),
    ]);

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
    for (const [name, text] of Object.entries({ ...systemStandIns(state), ...agentStandIns(state, "vm-a", "") })) fs.writeFileSync(path.join(bin, name), text, { mode: 0o755 });
    const priv = path.join(d, "vm-private");
    fs.mkdirSync(priv);
    sb.start("sshd-vm", vmNs, ["unshare", "--mount", "--propagation", "private", "bash", "-c", `set -euo pipefail
mount -t tmpfs tmpfs ${priv}
for dir in etc var; do
  mkdir -p ${priv}/$dir-upper ${priv}/$dir-work
  mount -t overlay overlay -o lowerdir=/$dir,upperdir=${priv}/$dir-upper,workdir=${priv}/$dir-work /$dir
done
mount -t tmpfs tmpfs /root
mount --bind ${bin} /usr/local/sbin
exec /usr/sbin/sshd -D -e -f ${sshdConfig("vm", "10.214.2.2")}`]);

    const knownHosts = path.join(d, "known_hosts");
    fs.writeFileSync(knownHosts, `10.214.1.2 ${hostKeys.bastion}\n10.214.2.2 ${hostKeys.vm}\n`);
    const common = [`  IdentityFile ${keyFile}`, "  IdentitiesOnly yes", `  UserKnownHostsFile ${knownHosts}`, "  StrictHostKeyChecking yes", "  BatchMode yes", "  ConnectTimeout 5", "  LogLevel ERROR"].join("\n");
    sshConfig = path.join(d, "ssh_config");
    fs.writeFileSync(sshConfig, `Host bastion\n  HostName 10.214.1.2\n  User root\n${common}\nHost vm-a\n  HostName 10.214.2.2\n  User root\n${common}\n`);
    await waitFor("ssh to the VM through the bastion", () => onVm("true").status === 0, 20000, () => onVm("true").stderr);
  });

  afterAll(() => {
    for (const s of synths) cleanupSynth(s);
    if (!sb) return;
    for (const agent of ["consul", "nomad"]) fs.rmSync(`/tmp/stage-${sb.id}-${agent}`, { recursive: true, force: true });
    sb.cleanup();
    expect(sb.leftoverNamespaces()).toEqual([]);
  });

  describe.each(YEARS)("%s", (year) => {
    const profile = (): ProviderProfile => {
      const c = load(year);
      // the agents' stand-ins print the node's address from the rendered config's view
      return generationProfile(year, c.servers.vm?.overlayAddress ?? PUBLIC_RECORDS[year], c.name);
    };

    itIf(pre.ok, pre.reason)("a client node installs Consul and Nomad: version, server, datacenter/region and join checks pass against that year's servers", () => {
      resetVm(profile());
      const c = sandboxed(year);
      for (const agent of ["consul", "nomad"] as const) {
        const r = install(c, agent);
        expect({ agent, ok: r.ok, output: r.output }).toMatchObject({ ok: true });
        expect(r.output).toContain(`joined with address ${c.nodes[0].overlayAddress}`);
        expect(onVm(`cat /etc/${agent}.d/${agent}.hcl`).stdout).toBe(r.rendered[`${agent}.hcl`]);
      }
      // the join check asked the servers (their catalog), not only the local gossip view
      expect(calls()).toEqual(expect.arrayContaining([`consul catalog nodes -http-addr=http://${c.servers.join[0]}:8500`]));
      expect(calls().some((l) => l.startsWith("consul members") && l.includes("-detailed"))).toBe(true);
      expect(calls().some((l) => l.startsWith("nomad server members"))).toBe(true);
      const validated = calls().filter((l) => l.startsWith("nomad config validate"));
      // Nomad 1.2 has no `config validate`: the script never calls it (the stand-in would exit 127)
      expect(validated).toHaveLength(year === "2022" ? 0 : 1);
    });

    itIf(pre.ok, pre.reason)("servers of another datacenter: the install fails naming both and writes nothing", () => {
      // e.g. our earlier notes' "datacenter = team name" against 2022's dc1, or the reverse on 2023+
      const wrong = year === "2022" ? "team-2022" : "dc1";
      resetVm(profile());
      const c = sandboxed(year, (x) => (x.servers.datacenter = wrong));
      const r = install(c, "consul");
      expect(r.ok).toBe(false);
      expect(r.output).toContain(`the Consul servers run in datacenter '${profile().serversDatacenter}', the description says servers.datacenter '${wrong}'`);
      expect(onVm("ls -A /etc/consul.d").stdout.trim()).toBe("");
      expect(calls().filter((l) => /^systemctl (restart|start)/.test(l))).toEqual([]);
    });

    itIf(pre.ok, pre.reason)("a VM whose agents are servers (the provider's server-VM configs, or a running server agent) is refused, untouched", () => {
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
      // no config file, but the running agent answers "server = true"
      resetVm({ ...profile(), thisVmIsServer: true });
      for (const agent of ["consul", "nomad"] as const) {
        const r = install(c, agent);
        expect(r.ok).toBe(false);
        expect(r.output).toContain(`the running ${agent} agent on this VM is a SERVER`);
      }
      expect(onVm("ls -A /etc/consul.d /etc/nomad.d | grep -c hcl || true").stdout.trim()).toBe("0");
      expect(calls().filter((l) => l.startsWith("systemctl"))).toEqual([]);
    });

    itIf(pre.ok, pre.reason)("a binary older than the description's versions is refused before anything is written", () => {
      resetVm({ ...profile(), nomadVersion: "1.1.6" });
      const r = install(sandboxed(year), "nomad");
      expect(r.ok).toBe(false);
      expect(r.output).toContain(`nomad on this VM is 1.1.6, older than versions.nomad ${load(year).versions.nomad}`);
      expect(onVm("ls -A /etc/nomad.d").stdout.trim()).toBe("");
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

    itIf(pre.ok, pre.reason)("host DNS as the link routes it: the servers' name resolves after the install, *.service.consul where the docs say", async () => {
      resetVm(profile());
      const c = sandboxed(year);
      const overlay = c.nodes[0].overlayAddress;
      // The host's resolver: 2023+ the link sends the internal domain and ~consul to the VM's
      // own overlay address (one link here: everything goes there); 2022 the uplink's resolver.
      const resolver = c.overlay.linkDns === "agent" ? overlay : RECURSOR;
      expect(onVm(`rm -f /etc/resolv.conf && printf 'nameserver %s\\n' ${resolver} >/etc/resolv.conf`).status).toBe(0);
      const resolvConf = onVm("cat /etc/resolv.conf").stdout;
      expect(install(c, "consul").ok).toBe(true);
      expect(onVm("cat /etc/resolv.conf").stdout).toBe(resolvConf); // the install never touches host DNS

      /** Consul's DNS, as the installed config sets it up (dnsmasq: see the file header). */
      const agentDns = async (hcl: string) => {
        const cfg = await parseHcl("consul.hcl", hcl);
        const t = sb.start(`agent-dns-${year}-${Date.now()}`, vmNs, [
          "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=", "--log-facility=-",
          `--listen-address=${cfg.addresses[0].dns}`, "--bind-interfaces", `--port=${cfg.ports[0].dns}`,
          "--local=/consul/", `--host-record=web.service.consul,${overlay}`,
          ...((cfg.recursors ?? []) as string[]).map((r) => `--server=${r}`),
        ]);
        await waitFor("agent DNS listening", () => sb.inNs(vmNs, ["ss", "-lun", `src ${overlay}:53`]).stdout.includes(`${overlay}:53`), 5000);
        return t;
      };
      const resolves = (name: string) => onVm(`getent hosts ${name}`).stdout.split(/\s+/)[0];

      const installed = onVm("cat /etc/consul.d/consul.hcl").stdout;
      const dns = await agentDns(installed);
      try {
        const team = `team-${year}.internal.example.org`;
        expect(resolves(team)).toBe(PUBLIC_RECORDS[year]);
        // documented: *.consul resolves on the host only where the link routes it to the agent
        expect(resolves("web.service.consul")).toBe(c.overlay.linkDns === "agent" ? overlay : "");
      } finally {
        await sb.stop(dns);
      }
      if (c.overlay.linkDns === "agent") {
        // The earlier output (no recursors) on this link: the servers' name never resolves.
        const out = synthCluster(edited(c, (x) => (x.consul.recursors = [])));
        synths.push(out);
        const old = await agentDns(out.files[nodesStackName(c)][`rendered/${c.nodes[0].name}/consul/consul.hcl`]);
        try {
          expect(resolves(`team-${year}.internal.example.org`)).toBe("");
          expect(resolves("web.service.consul")).toBe(overlay);
        } finally {
          await sb.stop(old);
        }
      }
    });
  });
});
