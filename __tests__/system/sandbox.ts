/**
 * A sandbox for system tests with real daemons: network namespaces the test creates,
 * processes it starts (each recorded by PID), a temp directory. `cleanup()` stops every
 * recorded process by PID, then every process left inside the sandbox's own namespaces
 * (`ip netns pids`), deletes the namespaces and the directory. It runs from `afterAll`
 * and, as a last resort, from the process's `exit` event. Nothing is ever killed by name.
 *
 * Safety rules (docs/testing-with-real-tools.md): traffic stays inside namespaces created
 * here; the root namespace never addresses them.
 */
import { spawn, spawnSync, type ChildProcess } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { hasCommand } from "../helpers/synth";

/** Root and the Debian packages the system tests need; the reason when something is missing. */
export function systemTestPrerequisites(commands: string[]): { ok: boolean; reason: string } {
  const missing = commands.filter((c) => !hasCommand(c) && !fs.existsSync(c));
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  const reasons = [
    ...(root ? [] : ["needs root (network namespaces)"]),
    ...(missing.length ? [`missing ${missing.join(", ")} (apt-get install haproxy keepalived openssh-server openssh-client dnsmasq iproute2 curl bind9-dnsutils gunicorn python3-flask)`] : []),
  ];
  return { ok: reasons.length === 0, reason: reasons.join("; ") };
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

interface Tracked {
  name: string;
  pid: number;
  child?: ChildProcess;
  log?: string;
}

const live = new Set<Sandbox>();
process.on("exit", () => {
  for (const s of live) s.cleanup();
});

export class Sandbox {
  /** Short unique prefix of every namespace name (namespace names are global). */
  readonly id: string;
  readonly dir: string;
  private readonly namespaces: string[] = [];
  private readonly procs: Tracked[] = [];
  private cleaned = false;

  constructor(tag: string) {
    this.id = `${tag}${crypto.randomBytes(3).toString("hex")}`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${this.id}-`));
    live.add(this);
  }

  /** Runs a command to completion (bounded by `timeoutMs`). Never throws. */
  run(cmd: string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): RunResult {
    const r = spawnSync(cmd[0], cmd.slice(1), {
      encoding: "utf8",
      timeout: opts.timeoutMs ?? 20000,
      input: opts.input,
      env: opts.env ?? process.env,
      killSignal: "SIGKILL",
    });
    return { status: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
  }

  /** Runs a command and throws with its output unless it exits 0. */
  must(cmd: string[], opts: { timeoutMs?: number; input?: string } = {}): string {
    const r = this.run(cmd, opts);
    if (r.status !== 0) throw new Error(`${cmd.join(" ")} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  /** A new namespace `<id>-<name>` with loopback up. */
  netns(name: string): string {
    const ns = `${this.id}-${name}`;
    this.must(["ip", "netns", "add", ns]);
    this.namespaces.push(ns);
    this.must(["ip", "-n", ns, "link", "set", "lo", "up"]);
    return ns;
  }

  /**
   * A switch: a bridge in a namespace of its own. `plug(ns, iface, addrs)` gives `ns` an
   * interface `iface` on it (a veth created inside the namespaces), with `addrs` (CIDR), up.
   */
  bridge(name: string): { ns: string; plug(ns: string, iface: string, addrs: string[]): void } {
    const sw = this.netns(name);
    this.must(["ip", "-n", sw, "link", "add", "br0", "type", "bridge"]);
    this.must(["ip", "-n", sw, "link", "set", "br0", "up"]);
    let ports = 0;
    return {
      ns: sw,
      plug: (ns, iface, addrs) => {
        const port = `p${ports++}`;
        this.must(["ip", "-n", ns, "link", "add", iface, "type", "veth", "peer", "name", port, "netns", sw]);
        this.must(["ip", "-n", sw, "link", "set", port, "master", "br0", "up"]);
        for (const a of addrs) this.must(["ip", "-n", ns, "address", "add", a, "dev", iface]);
        this.must(["ip", "-n", ns, "link", "set", iface, "up"]);
      },
    };
  }

  /** A veth pair created directly inside the namespaces (never in the root namespace). */
  link(nsA: string, ifA: string, addrA: string, nsB: string, ifB: string, addrB: string): void {
    const tmp = `t${crypto.randomBytes(4).toString("hex")}`;
    this.must(["ip", "-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", tmp, "netns", nsB]);
    this.must(["ip", "-n", nsB, "link", "set", tmp, "name", ifB]);
    this.must(["ip", "-n", nsA, "address", "add", addrA, "dev", ifA]);
    this.must(["ip", "-n", nsB, "address", "add", addrB, "dev", ifB]);
    this.must(["ip", "-n", nsA, "link", "set", ifA, "up"]);
    this.must(["ip", "-n", nsB, "link", "set", ifB, "up"]);
  }

  /** Runs `cmd` inside `ns`. */
  inNs(ns: string, cmd: string[], opts: { timeoutMs?: number; input?: string } = {}): RunResult {
    return this.run(["ip", "netns", "exec", ns, ...cmd], opts);
  }

  /**
   * Starts a long-running process inside `ns` (`ip netns exec` execs the command, so the
   * PID is the program's own), output to `<dir>/<name>.log`. Recorded for cleanup.
   */
  start(name: string, ns: string | undefined, cmd: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Tracked {
    const log = path.join(this.dir, `${name}.log`);
    const fd = fs.openSync(log, "a");
    const full = ns ? ["ip", "netns", "exec", ns, ...cmd] : cmd;
    const child = spawn(full[0], full.slice(1), { stdio: ["ignore", fd, fd], env: opts.env ?? process.env });
    fs.closeSync(fd);
    if (child.pid === undefined) throw new Error(`could not start ${name}: ${full.join(" ")}`);
    const t: Tracked = { name, pid: child.pid, child, log };
    this.procs.push(t);
    return t;
  }

  /** Records a PID read from a pid file, so that cleanup stops it too. */
  adopt(name: string, pid: number): void {
    if (!this.procs.some((p) => p.pid === pid)) this.procs.push({ name, pid });
  }

  /** Stops a started process by PID: `signal`, then SIGKILL after `graceMs`. Resolves when it is gone. */
  async stop(t: Tracked, signal: NodeJS.Signals = "SIGTERM", graceMs = 5000): Promise<void> {
    if (!alive(t)) return;
    try {
      process.kill(t.pid, signal);
    } catch {
      return;
    }
    const deadline = Date.now() + graceMs;
    while (alive(t) && Date.now() < deadline) await sleep(20);
    if (alive(t)) {
      try {
        process.kill(t.pid, "SIGKILL");
      } catch {
        /* gone */
      }
      while (alive(t) && Date.now() < deadline + 2000) await sleep(20);
    }
  }

  log(t: Tracked): string {
    return t.log && fs.existsSync(t.log) ? fs.readFileSync(t.log, "utf8") : "";
  }

  /** Stops everything by PID and deletes the namespaces and the directory. Idempotent, synchronous. */
  cleanup(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    live.delete(this);
    const pids = new Set(this.procs.filter(alive).map((p) => p.pid));
    // Processes still inside our namespaces (children of the recorded ones).
    for (const ns of this.namespaces) {
      const r = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" });
      for (const line of (r.stdout ?? "").split("\n")) if (/^\d+$/.test(line.trim())) pids.add(Number(line.trim()));
    }
    for (const pid of pids) signalPid(pid, "SIGTERM");
    const deadline = Date.now() + 3000;
    while ([...pids].some(pidAlive) && Date.now() < deadline) sleepSync(20);
    for (const pid of pids) if (pidAlive(pid)) signalPid(pid, "SIGKILL");
    for (const ns of this.namespaces) spawnSync("ip", ["netns", "del", ns]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** The sandbox's namespaces that still exist (for the cleanup assertion). */
  leftoverNamespaces(): string[] {
    const r = spawnSync("ip", ["netns", "list"], { encoding: "utf8" });
    return (r.stdout ?? "")
      .split("\n")
      .map((l) => l.split(" ")[0])
      .filter((n) => n.startsWith(`${this.id}-`));
  }
}

function alive(t: Tracked): boolean {
  if (t.child) return t.child.exitCode === null && t.child.signalCode === null;
  return pidAlive(t.pid);
}

export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Polls `check` every `intervalMs` until it returns true; returns the elapsed milliseconds.
 * Throws `what` (with `diagnostics()`) at the deadline.
 */
export async function waitFor(what: string, check: () => boolean, timeoutMs: number, diagnostics?: () => string, intervalMs = 50): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${diagnostics ? `\n${diagnostics()}` : ""}`);
    await sleep(intervalMs);
  }
}
