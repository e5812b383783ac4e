/**
 * `npm run bench:engine -- --peer ansible [--vms 2,8,16]` (issue 24): our nodes stack, the
 * Ansible peer (scripts/bench/ansible/nodes.yml) and the floor (scripts/bench/floor.sh: one
 * SSH session per node) on the same lab VMs of the 2025 generation's shape, in one run.
 *
 * Per VM count, one lab; phases interleaved, each tool in turn (floor, Ansible, ours: ours
 * last, so Terraform's state always matches the files on the nodes):
 *   - fresh install (the VMs reset between tools: agents stopped, their config files and
 *     our restart markers removed, the Consul data dir and so the node identity kept);
 *   - check of an unchanged cluster: our no-op plan plus `npm run drift` (the plan alone
 *     never reads a node: a hand edit shows only in drift) against
 *     `ansible-playbook --check --diff`;
 *   - one-node change (node-1's Nomad meta: a new value for each tool);
 *   - every-node change (a Consul setting, a new value for each tool), in 25 % batches.
 * Each tool's run is timed around its process; SSH connections and sessions per node are
 * counted from the VMs' and the bastion's sshd logs (LogLevel VERBOSE).
 *
 * The figures, the machine's load average and whether it was idle go to stdout and to
 * docs/generated/engine-peer.md (generated: `--no-write` leaves it alone).
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import type { Cluster } from "../../constructs/description/schema";
import { serversHttpUrl } from "../../constructs/render/scripts";
import { writeSshConfig } from "../lib/remote-nodes";
import type { Lab } from "../../__tests__/system/lab";
import type { Workspace } from "../../__tests__/system/engine";

const REPO = path.resolve(__dirname, "..", "..");
export const PLAYBOOK = path.join(REPO, "scripts", "bench", "ansible", "nodes.yml");
export const ANSIBLE_CFG = path.join(REPO, "scripts", "bench", "ansible", "ansible.cfg");
export const FLOOR_SCRIPT = path.join(REPO, "scripts", "bench", "floor.sh");
export const PEER_FIGURES_FILE = path.join(REPO, "docs", "generated", "engine-peer.md");
const ROLLOUT_BATCH = "25%";
const VRRP_PASSWORD = "Bn7.pw-q";

export interface Run {
  ms: number;
  /** CPU seconds of the tool's process tree (GNU time). */
  cpuS: number;
  /** SSH connections (authenticated) and sessions per node at the VMs' sshd, and connections at the bastion. */
  connectionsPerNode: number;
  sessionsPerNode: number;
  bastionConnections: number;
  /** Nodes the tool reported changed (Ansible's recap); undefined where not reported. */
  changedHosts?: number;
}

type Tool = "ours" | "ansible" | "floor";
type PhaseName = "fresh" | "check" | "oneNode" | "everyNode";
const PHASES: { key: PhaseName; title: string }[] = [
  { key: "fresh", title: "fresh install" },
  { key: "check", title: "check of an unchanged cluster" },
  { key: "oneNode", title: "one-node change" },
  { key: "everyNode", title: `every-node change (${ROLLOUT_BATCH} batches)` },
];

export interface SizeFigures {
  vms: number;
  load: { before: number[]; after: number[] };
  runs: Partial<Record<PhaseName, Partial<Record<Tool, Run>>>>;
  /**
   * The one-node change, every round (wall ms per tool, in round order; runs.oneNode holds
   * each tool's median round), and ours' no-op plan of the same stack timed in the same
   * rounds: the part of ours the floor never does.
   */
  oneNodeRounds?: { ms: Record<Tool, number[]>; oursPlanMs: number[] };
}

/** Rounds of the one-node change; the tools' order rotates each round (no tool always runs in Ansible's wake). */
export const ONE_NODE_ORDERS: Tool[][] = [
  ["floor", "ansible", "ours"],
  ["ours", "floor", "ansible"],
  ["ansible", "ours", "floor"],
];

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

export interface Proc {
  status: number | null;
  output: string;
  ms: number;
  cpuS: number;
}

/** Runs a command (in the operator's namespace when `ns`) under GNU time; never throws. */
function timed(cmd: string[], opts: { ns?: string; env?: NodeJS.ProcessEnv; input?: Buffer | string; cwd?: string; timeoutMs?: number }): Promise<Proc> {
  const cpuFile = path.join(os.tmpdir(), `peer-cpu-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const full = ["/usr/bin/time", "-q", "-f", "%U %S", "-o", cpuFile, ...(opts.ns ? ["ip", "netns", "exec", opts.ns] : []), ...cmd];
  const start = Date.now();
  return new Promise((resolve) => {
    const child = spawn(full[0], full.slice(1), { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b) => (out += b));
    child.stderr.on("data", (b) => (out += b));
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 1800000);
    child.on("close", (status) => {
      clearTimeout(timer);
      const ms = Date.now() - start;
      let cpuS = NaN;
      if (fs.existsSync(cpuFile)) {
        const [u, s] = fs.readFileSync(cpuFile, "utf8").trim().split(/\s+/).slice(-2).map(Number);
        cpuS = u + s;
        fs.rmSync(cpuFile, { force: true });
      }
      resolve({ status, output: out, ms, cpuS });
    });
  });
}

/** Counts of authenticated connections and sessions in the lab's sshd logs, for deltas around a run. */
function sshCounts(lab: Lab): { vm: { conn: number; sess: number }; bastion: number } {
  const count = (file: string, re: RegExp) => (fs.existsSync(file) ? (fs.readFileSync(file, "utf8").match(re) ?? []).length : 0);
  let conn = 0;
  let sess = 0;
  for (const vm of lab.vms) {
    const log = path.join(lab.dir, `sshd-${vm.name}.log`);
    conn += count(log, /Accepted publickey/g);
    sess += count(log, /Starting session:/g);
  }
  return { vm: { conn, sess }, bastion: count(path.join(lab.dir, "sshd-bastion.log"), /Accepted publickey/g) };
}

/** Puts every VM back to "nothing installed": agents stopped, our and the peer's files gone (not through SSH: not measured). */
function resetVms(lab: Lab): void {
  for (const vm of lab.vms) {
    const r = vm.exec(
      [
        "systemctl disable --now keepalived nomad consul >/dev/null 2>&1 || true",
        "rm -rf /etc/consul.d /etc/nomad.d /etc/systemd/system/consul.service.d /etc/keepalived/keepalived.conf /etc/sysctl.d/60-floating-ip.conf /var/lib/cluster-provision",
        "userdel keepalived_script >/dev/null 2>&1 || true",
        "rm -rf /root/.nomad-cluster-deploy /root/.ansible",
      ].join("\n"),
      60000,
    );
    if (r.status !== 0) throw new Error(`reset of ${vm.name} failed: ${r.stderr}`);
  }
}

/** Nodes per batch, in description order (Ansible's `serial` and our rollout.batchSize round the same way). */
function batches<T>(items: T[], spec: string): T[][] {
  const size = Math.max(1, Math.floor((items.length * Number(spec.replace("%", ""))) / 100));
  const out: T[][] = [];
  items.forEach((x, i) => (i % size === 0 ? out.push([x]) : out[out.length - 1].push(x)));
  return out;
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The Ansible peer wired to a lab: writes its inventory (from the description: node names,
 * overlay addresses, the SSH aliases of `sshConfig`, the rendered files of `renderedDir`)
 * and returns a runner of `ansible-playbook` in the operator's namespace. Each run gets a
 * fresh ControlPersist directory and its connections are closed after it.
 */
export function ansiblePeer(o: {
  cluster: Cluster;
  renderedDir: string;
  work: string;
  /** From writeSshConfig(..., "peer"): hosts peer-node-<name> through the bastion. */
  sshConfig: string;
  /** JSON file (0600) with vrrp_password. */
  varsFile: string;
  opNs: string;
  forks: number;
  env: NodeJS.ProcessEnv;
  logFile?: (run: number) => string;
  keep?: (args: string[], output: string) => void;
}): (args?: string[]) => Promise<Proc & { changedHosts: number; failedHosts: number }> {
  const c = o.cluster;
  const inventory = path.join(o.work, "inventory.json");
  fs.writeFileSync(
    inventory,
    JSON.stringify({
      all: {
        children: {
          nodes: {
            hosts: Object.fromEntries(c.nodes.map((n) => [n.name, { ansible_host: `peer-node-${n.name}`, overlay_address: n.overlayAddress, rendered: `${o.renderedDir}/${n.name}` }])),
            vars: {
              ansible_ssh_common_args: `-F ${o.sshConfig}`,
              // The lab's sudo stand-in runs its first non-option word: without `-u root`
              // (sudo's default user is root anyway).
              ansible_become_user: "",
              consul_servers_http: serversHttpUrl(c, "consul"),
              servers_datacenter: c.servers.datacenter,
            },
          },
        },
      },
    }),
  );
  let runs = 0;
  return async (args: string[] = []) => {
    // A fresh ControlPersist directory per run: no connection survives from a previous run.
    const cp = path.join(o.work, `cp${runs++}`);
    fs.mkdirSync(cp);
    const batch = typeof c.rollout.batchSize === "number" ? String(c.rollout.batchSize) : c.rollout.batchSize;
    const p = await timed(["ansible-playbook", "-i", inventory, "-e", `batch_size=${batch}`, "-e", `@${o.varsFile}`, ...args, PLAYBOOK], {
      ns: o.opNs,
      env: {
        ...o.env,
        ANSIBLE_CONFIG: ANSIBLE_CFG,
        ANSIBLE_FORKS: String(o.forks),
        ANSIBLE_SSH_CONTROL_PATH_DIR: cp,
        ANSIBLE_LOCAL_TEMP: path.join(o.work, "ansible-tmp"),
        ANSIBLE_NOCOLOR: "1",
        ANSIBLE_FORCE_COLOR: "0",
        ...(o.logFile ? { ANSIBLE_LOG_PATH: o.logFile(runs) } : {}),
      },
    });
    o.keep?.(args, p.output);
    for (const sock of fs.readdirSync(cp)) spawnSync("ssh", ["-o", `ControlPath=${path.join(cp, sock)}`, "-O", "exit", "peer"], { stdio: "ignore" });
    const recap = [...p.output.matchAll(/^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm)];
    return { ...p, changedHosts: recap.filter((m) => Number(m[2]) > 0).length, failedHosts: recap.filter((m) => m[3] !== "0" || m[4] !== "0").length };
  };
}

export interface PeerOptions {
  sizes: number[];
  engine: "terraform" | "tofu";
  parallelism: number;
  write: boolean;
}

export async function runPeerBench(o: PeerOptions): Promise<number> {
  const { buildLab } = await import("../../__tests__/system/lab");
  const { Workspace: WorkspaceClass } = await import("../../__tests__/system/engine");
  if (spawnSync("ansible-playbook", ["--version"]).status !== 0) {
    process.stderr.write("bench:engine --peer ansible: ansible-playbook not found (Debian package ansible-core)\n");
    return 2;
  }
  const started = new Date();
  const figures: SizeFigures[] = [];
  // Each tool run's output, kept after the labs are gone (for a figure that needs explaining).
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-engine-peer-"));
  process.stderr.write(`[bench:engine --peer ansible] each run's output: ${logDir}\n`);
  let logNo = 0;
  const keep = (name: string, output: string) => fs.writeFileSync(path.join(logDir, `${String(++logNo).padStart(2, "0")}-${name}.log`), output);
  for (const vms of o.sizes) {
    const log = (what: string) => process.stderr.write(`[bench:engine --peer ansible, ${vms} VMs] ${what}\n`);
    // An idle machine is the target's condition: wait (up to 10 min) for the previous size's
    // work and anything else to die down before reading the load this size starts from.
    const settled = await settle(IDLE_LOAD, 600000);
    if (!settled) log(`the 1-minute load average stayed at or above ${IDLE_LOAD} for 10 min: this size's figures will say the machine was not idle`);
    const size: SizeFigures = { vms, load: { before: os.loadavg(), after: [] }, runs: {} };
    log(`building the lab (load average ${size.load.before.map((l) => l.toFixed(2)).join(" ")})`);
    const lab = await buildLab({ vms, tag: `bp${vms}` });
    try {
      const ws: Workspace = new WorkspaceClass(lab, o.engine, { vrrp_password: VRRP_PASSWORD });
      // The 2025 generation's shape (clusters/provider-2025.yaml): versions, the link's DNS to
      // the agent, the provider's recursors; the lab's servers (dc1), addresses and keys.
      const cluster = (edit?: (c: Cluster) => void) =>
        lab.cluster((c) => {
          c.versions = { ...c.versions, consul: "1.20.5", nomad: "1.9.7" };
          c.overlay = { ...c.overlay, linkDns: "agent" };
          c.consul = { ...c.consul, recursors: ["1.1.1.1", "1.0.0.1"] };
          c.nodes.forEach((n, i) => (n.floatingIp = { eligible: true, priority: 200 - i }));
          c.rollout = { ...c.rollout, batchSize: ROLLOUT_BATCH };
          edit?.(c);
        });
      const work = fs.mkdtempSync(path.join(lab.dir, "peer-"));
      const c0 = cluster();
      ws.synth(c0);
      const sshConfig = writeSshConfig(c0, c0.nodes, work, "peer");
      const secretDir = path.join(work, "secret");
      fs.mkdirSync(secretDir, { mode: 0o700 });
      fs.writeFileSync(path.join(secretDir, "vrrp_password"), VRRP_PASSWORD, { mode: 0o600 });
      fs.writeFileSync(path.join(secretDir, "vars.json"), JSON.stringify({ vrrp_password: VRRP_PASSWORD }), { mode: 0o600 });
      const record = (phase: PhaseName, tool: Tool, run: Run) => {
        (size.runs[phase] ??= {})[tool] = run;
        log(`${phase} ${tool}: ${(run.ms / 1000).toFixed(1)} s (CPU ${run.cpuS.toFixed(1)} s; per node ${run.connectionsPerNode.toFixed(1)} SSH connections, ${run.sessionsPerNode.toFixed(1)} sessions${run.changedHosts === undefined ? "" : `; ${run.changedHosts} changed`})`);
      };
      /** Runs `go` and turns the sshd log deltas into per-node figures. */
      const measured = async (phase: PhaseName, tool: Tool, go: () => Promise<{ ms: number; cpuS: number; changedHosts?: number }>) => {
        const before = sshCounts(lab);
        const r = await go();
        const after = sshCounts(lab);
        const run: Run = {
          ...r,
          connectionsPerNode: (after.vm.conn - before.vm.conn) / vms,
          sessionsPerNode: (after.vm.sess - before.vm.sess) / vms,
          bastionConnections: after.bastion - before.bastion,
        };
        record(phase, tool, run);
        return run;
      };
      const must = (what: string, p: Proc, ok = (s: number | null) => s === 0): Proc => {
        if (!ok(p.status)) throw new Error(`${what}: exit ${p.status}\n${p.output.slice(-4000)}`);
        return p;
      };
      const rendered = () => path.join(ws.stackDir(), "rendered");

      // --- the tools
      const opEnv = { PATH: process.env.PATH, HOME: path.join(work, "home"), LC_ALL: "C.UTF-8" };
      fs.mkdirSync(opEnv.HOME, { recursive: true });
      const ansible = ansiblePeer({ cluster: c0, renderedDir: rendered(), work, sshConfig, varsFile: path.join(secretDir, "vars.json"), opNs: lab.opNs, forks: o.parallelism, env: opEnv, logFile: (run) => path.join(logDir, `${vms}vms-ansible-${run}-timestamped.log`), keep: (args, output) => keep(`${vms}vms-ansible${args.length ? "-check" : ""}`, output) });
      const floorScript = fs.readFileSync(FLOOR_SCRIPT, "utf8");
      const floor = async (nodes: string[]) => {
        const start = Date.now();
        let cpuS = 0;
        for (const batch of batches(nodes, ROLLOUT_BATCH)) {
          const runs = await Promise.all(
            batch.map((name) => {
              const n = c0.nodes.find((x) => x.name === name)!;
              const tar = spawnSync("tar", ["-c", "-C", `${rendered()}/${name}`, "consul", "keepalived", "nomad", "-C", secretDir, "vrrp_password"]);
              if (tar.status !== 0) throw new Error(`tar of ${name}: ${tar.stderr}`);
              const remote = `sudo bash -c ${shq(floorScript)} floor ${shq(name)} ${shq(n.overlayAddress)} ${shq(serversHttpUrl(c0, "consul"))} ${shq(c0.servers.datacenter)}`;
              return timed(["ssh", "-F", sshConfig, `peer-node-${name}`, remote], { ns: lab.opNs, env: opEnv, input: tar.stdout });
            }),
          );
          runs.forEach((r, i) => keep(`${vms}vms-floor-${batch[i]}`, r.output));
          runs.forEach((r, i) => must(`floor on ${batch[i]}`, r));
          cpuS += runs.reduce((a, r) => a + r.cpuS, 0);
        }
        return { ms: Date.now() - start, cpuS };
      };
      const clusterFile = path.join(work, "cluster.yaml");
      const drift = (c: Cluster) => {
        fs.writeFileSync(clusterFile, YAML.stringify(c));
        return timed([path.join(REPO, "node_modules", ".bin", "tsx"), path.join(REPO, "scripts", "drift.ts")], { ns: lab.opNs, cwd: REPO, env: { ...opEnv, CLUSTER_FILE: clusterFile } });
      };
      const p = [`-parallelism=${o.parallelism}`];
      const all = c0.nodes.map((n) => n.name);

      // --- fresh install
      ws.measureCpu = true;
      must("init", await ws.init().then((r) => ({ status: r.status, output: r.output, ms: r.ms, cpuS: r.cpuSeconds ?? NaN })));
      await measured("fresh", "floor", () => floor(all));
      resetVms(lab);
      await measured("fresh", "ansible", async () => {
        const r = await ansible();
        must("ansible fresh install", r);
        return r;
      });
      resetVms(lab);
      await measured("fresh", "ours", async () => {
        const r = await ws.apply({ args: p, timeoutMs: 1800000 });
        if (!r.ok) throw new Error(`fresh apply: exit ${r.status}\n${r.output.slice(-4000)}`);
        return { ms: r.ms, cpuS: r.cpuSeconds ?? NaN };
      });

      // --- check of the unchanged cluster
      await measured("check", "ansible", async () => {
        const r = await ansible(["--check", "--diff"]);
        must("ansible --check --diff", r);
        if (r.changedHosts !== 0) throw new Error(`ansible --check on the unchanged cluster reports ${r.changedHosts} changed hosts:\n${r.output.slice(-4000)}`);
        return r;
      });
      await measured("check", "ours", async () => {
        const plan = await ws.plan({ detailedExitcode: true, args: p });
        if (plan.status !== 0) throw new Error(`no-op plan: exit ${plan.status}\n${plan.output.slice(-4000)}`);
        const d = must("npm run drift", await drift(c0));
        return { ms: plan.ms + d.ms, cpuS: (plan.cpuSeconds ?? NaN) + d.cpuS };
      });

      // --- one-node change: node-1's Nomad meta, a new value per tool and round. The tools'
      // order rotates each round and the machine is quiet before each run, so that no tool
      // always starts in the wake of Ansible's load; each tool's median round is reported.
      // Ours' no-op plan of the same stack is timed in the same rounds (the part of ours the
      // floor never does). Ours' last value is "ours", which the every-node phase keeps.
      const meta = (v: string) => (c: Cluster) => (c.nodes[0].meta = { bench: v });
      const rounds: NonNullable<SizeFigures["oneNodeRounds"]> = { ms: { ours: [], ansible: [], floor: [] }, oursPlanMs: [] };
      const oneNodeRuns: Record<Tool, Run[]> = { ours: [], ansible: [], floor: [] };
      for (const [round, order] of ONE_NODE_ORDERS.entries()) {
        const value = (tool: Tool) => (tool === "ours" && round === ONE_NODE_ORDERS.length - 1 ? "ours" : `${tool}-${round}`);
        for (const tool of order) {
          await quiet();
          ws.synth(cluster(meta(value(tool))));
          const run = await measured("oneNode", tool, async () => {
            if (tool === "floor") return floor([all[0]]);
            if (tool === "ansible") return must("ansible one-node change", await ansible()) as Proc & { changedHosts: number };
            const r = await ws.apply({ args: p });
            if (!r.ok) throw new Error(`one-node apply: exit ${r.status}\n${r.output.slice(-4000)}`);
            return { ms: r.ms, cpuS: r.cpuSeconds ?? NaN };
          });
          oneNodeRuns[tool].push(run);
          rounds.ms[tool].push(run.ms);
        }
        // Ours' no-op plan: the description ours last applied, so nothing to change.
        await quiet();
        ws.synth(cluster(meta(value("ours"))));
        const plan = await ws.plan({ detailedExitcode: true, args: p });
        if (plan.status !== 0) throw new Error(`no-op plan after the one-node change: exit ${plan.status}\n${plan.output.slice(-4000)}`);
        rounds.oursPlanMs.push(plan.ms);
        log(`oneNode round ${round + 1}: ours' no-op plan ${(plan.ms / 1000).toFixed(1)} s`);
      }
      for (const tool of ["ours", "ansible", "floor"] as Tool[]) {
        const m = median(rounds.ms[tool]);
        (size.runs.oneNode ??= {})[tool] = oneNodeRuns[tool].find((r) => r.ms === m)!;
      }
      size.oneNodeRounds = rounds;

      // --- every-node change: a Consul setting, a new value per tool
      const consulSetting = (level: string) => (c: Cluster) => {
        meta("ours")(c);
        c.consul = { ...c.consul, extraConfig: `log_level = "${level}"\n` };
      };
      ws.synth(cluster(consulSetting("DEBUG")));
      await measured("everyNode", "floor", () => floor(all));
      ws.synth(cluster(consulSetting("TRACE")));
      await measured("everyNode", "ansible", async () => must("ansible every-node change", await ansible()) as Proc & { changedHosts: number });
      ws.synth(cluster(consulSetting("WARN")));
      await measured("everyNode", "ours", async () => {
        const r = await ws.apply({ args: p, timeoutMs: 1800000 });
        if (!r.ok) throw new Error(`every-node apply: exit ${r.status}\n${r.output.slice(-4000)}`);
        return { ms: r.ms, cpuS: r.cpuSeconds ?? NaN };
      });
    } finally {
      lab.cleanup();
    }
    size.load.after = os.loadavg();
    figures.push(size);
    // Written after each VM count: a run cut short still leaves the sizes it measured.
    if (o.write) {
      const pending = o.sizes.slice(o.sizes.indexOf(vms) + 1);
      const note = pending.length ? `\n(run in progress: ${pending.join(", ")} VMs not measured yet)\n` : "";
      fs.mkdirSync(path.dirname(PEER_FIGURES_FILE), { recursive: true });
      fs.writeFileSync(PEER_FIGURES_FILE, `${peerReport(figures, { started, engine: o.engine, parallelism: o.parallelism })}${note}\n`);
    }
  }
  process.stdout.write(`${peerReport(figures, { started, engine: o.engine, parallelism: o.parallelism })}\n`);
  if (o.write) process.stderr.write(`written to ${path.relative(REPO, PEER_FIGURES_FILE)}\n`);
  return 0;
}

/** Idle: a quarter of a core per core of 1-minute load average. */
const IDLE_LOAD = os.cpus().length / 4;

/**
 * Idle: the 1-minute load average below IDLE_LOAD when the size starts (the bench waits for
 * it). The load after is the bench's own work (the lab, the three tools) and is reported, not
 * judged: a 1-minute average cannot tell it from other work.
 */
function idle(f: SizeFigures): boolean {
  return f.load.before[0] < IDLE_LOAD;
}

/** /proc/stat's busy and total jiffies (all CPUs). */
function cpuJiffies(): { busy: number; total: number } {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const idleJ = f[3] + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idleJ, total };
}

/** Cores busy on the whole machine over `ms`. */
async function busyCores(ms: number): Promise<number> {
  const a = cpuJiffies();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuJiffies();
  return b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * os.cpus().length : 0;
}

/**
 * Waits (up to a minute) until the previous run's work has died down: under a third of a
 * core busy over 2 s beyond what the idle lab itself costs (16 VMs' agents and keepalived:
 * about a third of a core). A 1-minute load average would take minutes to say the same.
 */
async function quiet(): Promise<void> {
  const until = Date.now() + 60000;
  while ((await busyCores(2000)) >= 0.7 && Date.now() < until);
}

/** Waits until the 1-minute load average is below `limit`; false after `timeoutMs`. */
async function settle(limit: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (os.loadavg()[0] >= limit) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 5000));
  }
  return true;
}

export function peerReport(figures: SizeFigures[], meta: { started: Date; engine: string; parallelism: number }): string {
  const out: string[] = [];
  const secs = (ms?: number) => (ms === undefined ? "n/a" : `${(ms / 1000).toFixed(1)} s`);
  out.push(
    "<!-- Generated by npm run bench:engine -- --peer ansible (scripts/bench/peer.ts); do not edit: run it again -->",
    "",
    `### Our nodes stack, the Ansible peer and the floor — ${meta.started.toISOString()}`,
    "",
    `${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; ${meta.engine}, -parallelism=${meta.parallelism}, Ansible forks=${meta.parallelism}; rollout batches ${ROLLOUT_BATCH}; one run per case but the one-node change (below), tools interleaved per phase (floor, Ansible, ours).`,
    "",
    "| VMs | load average before (1, 5, 15 min) | after (the bench's own work) | idle machine when it started? |",
    "|---:|---|---|---|",
    ...[...figures].sort((a, b) => a.vms - b.vms).map((f) => `| ${f.vms} | ${f.load.before.map((l) => l.toFixed(2)).join(", ")} | ${f.load.after.map((l) => l.toFixed(2)).join(", ")} | ${idle(f) ? "yes" : `**no** (1-min load ≥ ${IDLE_LOAD.toFixed(1)}): not figures of an idle machine`} |`),
    "",
    "Each cell: wall time (CPU seconds of the tool's processes; SSH connections / sessions per node at the VMs' sshd). Ours: the engine's process (the check: `plan -detailed-exitcode` + `tsx scripts/drift.ts`, what `npm run drift` runs); Ansible: `ansible-playbook` and its ssh processes; the floor: one `ssh` per node (25 % batches in parallel). Sessions at the VMs count every SSH channel that runs a command or scp/sftp.",
    "",
    "| VMs | phase | ours | Ansible | floor | ours ÷ Ansible | ours ÷ floor |",
    "|---:|---|---:|---:|---:|---:|---:|",
  );
  const cell = (r?: Run) => (r ? `${secs(r.ms)} (${r.cpuS.toFixed(1)} s; ${r.connectionsPerNode.toFixed(1)} / ${r.sessionsPerNode.toFixed(1)})` : "—");
  const ratio = (a?: Run, b?: Run) => (a && b ? `${(a.ms / b.ms).toFixed(2)}×` : "—");
  for (const f of [...figures].sort((a, b) => a.vms - b.vms)) {
    for (const ph of PHASES) {
      const r = f.runs[ph.key] ?? {};
      out.push(`| ${f.vms} | ${ph.title} | ${cell(r.ours)} | ${cell(r.ansible)} | ${cell(r.floor)} | ${ratio(r.ours, r.ansible)} | ${ratio(r.ours, r.floor)} |`);
    }
  }
  out.push("");
  const withRounds = [...figures].filter((f) => f.oneNodeRounds).sort((a, b) => a.vms - b.vms);
  if (withRounds.length) {
    const ss = (ms: number[]) => ms.map((m) => (m / 1000).toFixed(1)).join(" / ");
    out.push(
      `One-node change: ${ONE_NODE_ORDERS.length} rounds, the tools' order rotated each round (${ONE_NODE_ORDERS.map((o) => o.join(", ")).join("; ")}), the machine quiet before each run; the table above shows each tool's median round. Ours' no-op plan of the same stack was timed in the same rounds: the part of ours the floor never does.`,
      "",
      "| VMs | ours, each round | Ansible, each round | floor, each round | ours' no-op plan, each round | ours ÷ floor (medians) | (ours − its no-op plan) ÷ floor (medians) |",
      "|---:|---:|---:|---:|---:|---:|---:|",
      ...withRounds.map((f) => {
        const r = f.oneNodeRounds!;
        const ours = median(r.ms.ours);
        const floor = median(r.ms.floor);
        const plan = median(r.oursPlanMs);
        return `| ${f.vms} | ${ss(r.ms.ours)} s | ${ss(r.ms.ansible)} s | ${ss(r.ms.floor)} s | ${ss(r.oursPlanMs)} s | ${(ours / floor).toFixed(2)}× | ${((ours - plan) / floor).toFixed(2)}× |`;
      }),
      "",
    );
  }
  const large = figures.reduce<SizeFigures | undefined>((a, f) => (!a || f.vms > a.vms ? f : a), undefined);
  if (large) {
    const rows: string[] = [];
    const target = (name: string, a: Run | undefined, b: Run | undefined, limit: number) => {
      const v = a && b ? a.ms / b.ms : undefined;
      rows.push(`| ${name} | ${v === undefined ? "n/a" : `${v.toFixed(2)}×`} | ≤ ${limit}× | ${v === undefined ? "n/a" : v <= limit ? "PASS" : "**FAIL**"} |`);
    };
    const r = large.runs;
    target("one-node change, ours ÷ Ansible", r.oneNode?.ours, r.oneNode?.ansible, 1);
    target("check of an unchanged cluster, ours ÷ Ansible", r.check?.ours, r.check?.ansible, 1);
    target("fresh install, ours ÷ Ansible", r.fresh?.ours, r.fresh?.ansible, 1.5);
    target(`every-node change (${ROLLOUT_BATCH}), ours ÷ Ansible`, r.everyNode?.ours, r.everyNode?.ansible, 1.5);
    target("one-node change, ours ÷ floor", r.oneNode?.ours, r.oneNode?.floor, 2);
    out.push(
      `Targets (issue 24), at ${large.vms} VMs${large.vms === 16 ? "" : " (they are set at 16 VMs: this run's largest is smaller, so they are indicative only)"}${idle(large) ? "" : "; the machine was not idle"}:`,
      "",
      "| target | value | limit | result |",
      "|---|---:|---|---|",
      ...rows,
      "",
    );
  }
  return out.join("\n");
}
