/**
 * HAProxy's configuration checked and run by the real programs: `haproxy -c`, then a
 * functional run on loopback addresses only (127.0.0.0/8): dnsmasq stands in for the
 * node's Consul DNS (SRV records for _api._tcp / _web._tcp.service.consul), python
 * backends answer with their own name, and HAProxy runs as the official image runs it
 * (`haproxy -W -db -f FILE`, master-worker).
 *
 * Every process started here is recorded by PID and stopped by PID in afterAll; HAProxy's
 * workers (children of the master we started) are found through /proc and stopped too.
 */
import { spawn, spawnSync, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { HAPROXY_RELOAD_SIGNAL } from "../constructs/render/jobs/haproxy";
import { peakInstances } from "../constructs/render/jobs/common";
import {
  HAPROXY_CFG,
  HAPROXY_CFG_CANDIDATE,
  nomadHaproxyRuntime,
  renderHaproxyConfig,
  renderHaproxyReloadScript,
  renderHaproxyStartScript,
  type HaproxyRuntime,
} from "../constructs/render/jobs/haproxy-cfg";
import type { Cluster } from "../constructs/description/schema";
import { edited, exampleCluster, hasCommand, itIf } from "./helpers/synth";
import { recordMeasurement } from "./helpers/measurements";

const HAVE_HAPROXY = hasCommand("haproxy");
const HAVE_DNSMASQ = hasCommand("dnsmasq");

/** The test's "node": overlay address, floating IP and DNS on loopback. */
const OVERLAY = "127.0.0.2";
const FLOATING = "127.0.0.3";
const DNS_ADDR = "127.0.0.1";
const BACKENDS = [
  { name: "api1", service: "api", addr: "127.0.0.11" },
  { name: "api2", service: "api", addr: "127.0.0.12" },
  { name: "web1", service: "web", addr: "127.0.0.21" },
  { name: "web2", service: "web", addr: "127.0.0.22" },
] as const;

function checkConfig(text: string): { status: number | null; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "haproxy-check-"));
  try {
    const file = path.join(dir, "haproxy.cfg");
    fs.writeFileSync(file, text);
    const r = spawnSync("haproxy", ["-c", "-f", file], { encoding: "utf8" });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("haproxy.cfg checked by the real haproxy", () => {
  const c = exampleCluster();
  const testRuntime: HaproxyRuntime = { overlayAddress: "172.16.1.11", dnsServer: "172.16.1.11:53", floatingAddress: c.floatingIp.address, runDir: "/local", masterPid: 1 };

  itIf(HAVE_HAPROXY, "haproxy is not installed (apt-get install haproxy)")("the example's config passes haproxy -c", () => {
    const r = checkConfig(renderHaproxyConfig(c, testRuntime));
    expect(r.output).toContain("Configuration file is valid");
    expect(r.status).toBe(0);
  });

  itIf(HAVE_HAPROXY, "haproxy is not installed (apt-get install haproxy)")("so does the file Nomad delivers to every node, with the node's address in NODE_ADDRESS", () => {
    const file = renderHaproxyConfig(c, nomadHaproxyRuntime(c));
    expect(file).toContain('"${NODE_ADDRESS}:8080"');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "haproxy-check-"));
    try {
      fs.writeFileSync(path.join(dir, "haproxy.cfg"), file);
      const r = spawnSync("haproxy", ["-c", "-f", path.join(dir, "haproxy.cfg")], { encoding: "utf8", env: { ...process.env, NODE_ADDRESS: "172.16.1.12" } });
      expect(r.status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  itIf(HAVE_HAPROXY, "haproxy is not installed (apt-get install haproxy)")("and a config with other ports and scale bounds", () => {
    const other = edited(c, (x) => {
      x.app.haproxy = { ...x.app.haproxy, nodePort: 18080, floatingPort: 18081, statsPort: 18404 };
      x.app.api.scaling = { min: 1, max: 12 };
    });
    const cfg = renderHaproxyConfig(other, testRuntime);
    expect(cfg).toContain("server-template api 13 ");
    expect(checkConfig(cfg).status).toBe(0);
  });

  itIf(hasCommand("shellcheck"), "shellcheck is not installed (apt-get install shellcheck)")("the reload and start scripts are shellcheck-clean", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reload-sh-"));
    try {
      for (const [name, text] of [["reload.sh", renderHaproxyReloadScript(nomadHaproxyRuntime(c))], ["start.sh", renderHaproxyStartScript(nomadHaproxyRuntime(c))]]) {
        const file = path.join(dir, name);
        fs.writeFileSync(file, text);
        const r = spawnSync("shellcheck", ["-S", "warning", file], { encoding: "utf8" });
        expect({ name, out: r.stdout }).toEqual({ name, out: "" });
        expect(r.status).toBe(0);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  itIf(HAVE_HAPROXY, "haproxy is not installed (apt-get install haproxy)")("(the check does catch errors: a broken config fails)", () => {
    const broken = renderHaproxyConfig(c, testRuntime).replace("balance roundrobin", "balance no-such-algorithm");
    const r = checkConfig(broken);
    expect(r.status).not.toBe(0);
  });
});

// ---------------------------------------------------------------------------------------
// Functional run

interface Reply {
  status: number;
  body: string;
}

function get(host: string, port: number, urlPath: string, timeoutMs = 2000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path: urlPath, method: "GET", agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

async function who(host: string, port: number, urlPath: string): Promise<string> {
  const r = await get(host, port, urlPath);
  if (r.status !== 200) throw new Error(`GET ${urlPath}: ${r.status} ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body).who;
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function until<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
}

/** Parsed `/stats;csv`: one row per proxy/server. */
async function stats(port: number): Promise<Record<string, string>[]> {
  const r = await get(OVERLAY, port, "/stats;csv");
  if (r.status !== 200) throw new Error(`stats: ${r.status}`);
  const [header, ...lines] = r.body.trim().split("\n");
  const cols = header.replace(/^# /, "").split(",");
  return lines.map((l) => Object.fromEntries(l.split(",").map((v, i) => [cols[i], v])));
}

function childrenOf(pid: number): number[] {
  const result: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) result.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return result;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}


const FUNCTIONAL_REASON = "needs haproxy and dnsmasq (apt-get install haproxy dnsmasq)";

describe("HAProxy with Consul-DNS-like discovery (real haproxy + dnsmasq, loopback only)", () => {
  const enabled = HAVE_HAPROXY && HAVE_DNSMASQ;
  const started: { name: string; proc: ChildProcess }[] = [];
  const logs: Record<string, string> = {};
  let dir: string;
  let cluster: Cluster;
  let cfgFile: string;
  let candidate: string;
  let ports: { node: number; floating: number; stats: number; dns: number; backends: Record<string, number> };
  let haproxyPid: number;

  function start(name: string, cmd: string, args: string[]): ChildProcess {
    const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    if (proc.pid === undefined) throw new Error(`${name} did not start`);
    started.push({ name, proc });
    logs[name] = "";
    const keep = (d: Buffer) => (logs[name] = (logs[name] + d.toString()).slice(-8000));
    proc.stdout!.on("data", keep);
    proc.stderr!.on("data", keep);
    return proc;
  }

  function runtime(): HaproxyRuntime {
    return { overlayAddress: OVERLAY, floatingAddress: FLOATING, dnsServer: `${DNS_ADDR}:${ports.dns}`, runDir: dir, masterPid: haproxyPid ?? 0 };
  }
  function renderFor(c: Cluster): string {
    return renderHaproxyConfig(c, runtime());
  }
  /** What Nomad does when the template output changes: new candidate file, then the change script. */
  async function reload(): Promise<void> {
    const script = path.join(dir, "reload.sh");
    fs.writeFileSync(script, renderHaproxyReloadScript(runtime()), { mode: 0o755 });
    // Asynchronously: the request loops keep running meanwhile.
    const sh = spawn("/bin/sh", [script], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    sh.stderr!.on("data", (d) => (err += d));
    const code = await new Promise<number | null>((resolve) => sh.on("exit", resolve));
    if (code !== 0) throw new Error(`reload script: ${code} ${err}`);
  }

  async function serverRows(service: "api" | "web"): Promise<Record<string, string>[]> {
    return (await stats(ports.stats)).filter((r) => r.pxname === service && r.svname !== "BACKEND" && r.svname !== "FRONTEND");
  }

  beforeAll(async () => {
    if (!enabled) return;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "haproxy-func-"));
    ports = {
      node: await freePort(OVERLAY),
      floating: await freePort(FLOATING),
      stats: await freePort(OVERLAY),
      dns: await freePort(DNS_ADDR),
      backends: {},
    };
    for (const b of BACKENDS) ports.backends[b.name] = await freePort(b.addr);
    cluster = edited(exampleCluster(), (x) => {
      x.app.haproxy = { ...x.app.haproxy, nodePort: ports.node, floatingPort: ports.floating, statsPort: ports.stats };
    });

    // The stand-in instance shared with the system tests (any GET → 200 {"who", "path"}).
    const script = path.join(__dirname, "system", "fixtures", "backend.py");
    for (const b of BACKENDS) start(b.name, "/usr/bin/python3", [script, b.name, b.addr, String(ports.backends[b.name])]);

    const srv = BACKENDS.flatMap((b) => [
      `--srv-host=_${b.service}._tcp.service.consul,${b.name}.node.consul,${ports.backends[b.name]},1,10`,
      `--host-record=${b.name}.node.consul,${b.addr}`,
    ]);
    start("dnsmasq", "dnsmasq", [
      "--keep-in-foreground",
      "--conf-file=/dev/null",
      "--no-resolv",
      "--no-hosts",
      "--pid-file=",
      `--listen-address=${DNS_ADDR}`,
      "--bind-interfaces",
      `--port=${ports.dns}`,
      "--log-facility=-",
      ...srv,
    ]);

    cfgFile = path.join(dir, HAPROXY_CFG);
    candidate = path.join(dir, HAPROXY_CFG_CANDIDATE);
    // As the task starts: Nomad's template wrote the candidate; start.sh checks and installs
    // it, then execs haproxy -W -db (master-worker, foreground) in its own process.
    fs.writeFileSync(candidate, renderFor(cluster));
    fs.writeFileSync(path.join(dir, "start.sh"), renderHaproxyStartScript(runtime()), { mode: 0o755 });
    haproxyPid = start("haproxy", "/bin/sh", [path.join(dir, "start.sh")]).pid!;

    // Up when HAProxy's own checks see both instances of both services.
    await until("all four backends UP in HAProxy", 20000, async () => {
      const rows = [...(await serverRows("api")), ...(await serverRows("web"))].filter((r) => r.status === "UP");
      return rows.length === 4 ? rows : undefined;
    }).catch((e) => {
      throw new Error(`${e.message}\n--- logs ---\n${Object.entries(logs).map(([k, v]) => `[${k}] ${v}`).join("\n")}`);
    });
  }, 40000);

  afterAll(async () => {
    const workers = haproxyPid ? childrenOf(haproxyPid) : [];
    for (const { proc } of started) if (proc.pid && alive(proc.pid)) proc.kill("SIGTERM");
    await until("started processes to end", 3000, async () => (started.every(({ proc }) => !proc.pid || !alive(proc.pid)) ? true : undefined)).catch(() => undefined);
    for (const { proc } of started) if (proc.pid && alive(proc.pid)) proc.kill("SIGKILL");
    // HAProxy workers leave with their master; any left over is one of ours, by PID.
    for (const pid of workers) if (alive(pid)) process.kill(pid, "SIGKILL");
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  itIf(enabled, FUNCTIONAL_REASON)("routes /image… to api and everything else to web, on both tunnels", async () => {
    for (const host of [OVERLAY, FLOATING]) {
      const port = host === OVERLAY ? ports.node : ports.floating;
      expect(await who(host, port, "/image/AbCd1234")).toMatch(/^api[12]$/);
      expect(await who(host, port, "/image")).toMatch(/^api[12]$/);
      expect(await who(host, port, "/image/AbCd1234/small")).toMatch(/^api[12]$/);
      expect(await who(host, port, "/")).toMatch(/^web[12]$/);
      expect(await who(host, port, "/config.json")).toMatch(/^web[12]$/);
      expect(await who(host, port, "/assets/index.js")).toMatch(/^web[12]$/);
    }
  });

  itIf(enabled, FUNCTIONAL_REASON)("spreads requests over both instances of each service", async () => {
    const count = async (p: string) => {
      const seen: Record<string, number> = {};
      for (let i = 0; i < 20; i++) {
        const w = await who(OVERLAY, ports.node, p);
        seen[w] = (seen[w] ?? 0) + 1;
      }
      return seen;
    };
    const t = Date.now();
    const api = await count("/image/AbCd1234");
    // eslint-disable-next-line no-console
    console.log(`20 sequential requests through HAProxy: ${Date.now() - t} ms`);
    const web = await count("/");
    expect(Object.keys(api).sort()).toEqual(["api1", "api2"]);
    expect(Object.keys(web).sort()).toEqual(["web1", "web2"]);
    for (const n of [...Object.values(api), ...Object.values(web)]) expect(n).toBeGreaterThanOrEqual(8);
  });

  itIf(enabled, FUNCTIONAL_REASON)("serves /healthz and /stats on the overlay stats listener only", async () => {
    expect((await get(OVERLAY, ports.stats, "/healthz")).status).toBe(200);
    const st = await get(OVERLAY, ports.stats, "/stats");
    expect(st.status).toBe(200);
    expect(st.body).toContain("api");
    expect((await get(OVERLAY, ports.stats, "/metrics")).body).toContain("haproxy_process");
    // The public listeners know neither: those paths go to the frontend like any page.
    expect(await who(OVERLAY, ports.node, "/healthz")).toMatch(/^web[12]$/);
    expect(await who(FLOATING, ports.floating, "/stats")).toMatch(/^web[12]$/);
    // Slots: scaling.max + canary, unused ones in maintenance.
    expect(await serverRows("api")).toHaveLength(peakInstances(cluster, "api"));
  });

  itIf(enabled, FUNCTIONAL_REASON)("takes a killed instance out of rotation within a bound, without failing requests", async () => {
    const victim = started.find((s) => s.name === "web1")!.proc;
    const victimAddr = `127.0.0.21:${ports.backends.web1}`;
    let failures = 0;
    let requests = 0;
    victim.kill("SIGKILL");
    const t0 = Date.now();
    const downAfter = await until("web1 marked DOWN", 10000, async () => {
      try {
        requests++;
        await who(OVERLAY, ports.node, "/");
      } catch {
        failures++;
      }
      const row = (await serverRows("web")).find((r) => r.addr === victimAddr);
      return row && row.status.startsWith("DOWN") ? Date.now() - t0 : undefined;
    });
    expect(downAfter).toBeLessThan(5000);
    // Connection refused is retried on another server (option redispatch, retries).
    expect(requests).toBeGreaterThan(0);
    expect(failures).toBe(0);
    // docs/operations.md cites it (Failure scenarios) from docs/generated/test-measurements.md.
    recordMeasurement({ key: "haproxy.killed-backend-out-of-rotation", what: "a killed web instance (SIGKILL) marked DOWN by HAProxy's checks (rendered haproxy.cfg)", value: downAfter / 1000, unit: "s", decimals: 1 });
    for (let i = 0; i < 10; i++) expect(await who(OVERLAY, ports.node, "/")).toBe("web2");
  });

  itIf(enabled, FUNCTIONAL_REASON)(`reloads on ${HAPROXY_RELOAD_SIGNAL} to the master, with a new config, losing no request under load`, async () => {
    const workersBefore = childrenOf(haproxyPid);
    expect(workersBefore.length).toBeGreaterThan(0);
    let stop = false;
    let ok = 0;
    const failed: string[] = [];
    const loop = async () => {
      while (!stop) {
        try {
          await who(OVERLAY, ports.node, ok % 2 ? "/image/AbCd1234" : "/");
          ok++;
        } catch (e) {
          failed.push(String(e).slice(0, 120));
        }
      }
    };
    const loops = Array.from({ length: 4 }, () => loop());
    await new Promise((r) => setTimeout(r, 500));

    // What Nomad does when the template output changes: new file, then the change script
    // (server state saved, then SIGUSR2 to the master).
    const bigger = edited(cluster, (x) => (x.app.api.scaling = { min: 2, max: 7 }));
    fs.writeFileSync(candidate, renderFor(bigger));
    const t0 = Date.now();
    await reload();
    const reloadedAfter = await until("the new config in effect", 10000, async () =>
      (await serverRows("api")).length === peakInstances(bigger, "api") ? Date.now() - t0 : undefined,
    );
    // A second reload straight after, as a template re-render could do.
    await reload();
    expect(fs.readFileSync(path.join(dir, "haproxy.state"), "utf8")).toContain("_api._tcp.service.consul");
    // The accepted candidate is now the file a restart would use.
    expect(fs.readFileSync(cfgFile, "utf8")).toBe(renderFor(bigger));
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await Promise.all(loops);

    const workersAfter = childrenOf(haproxyPid);
    // eslint-disable-next-line no-console
    console.log(`reload: new config served after ${reloadedAfter} ms; ${ok} requests during two reloads, ${failed.length} failed; workers ${workersBefore} -> ${workersAfter}`);
    expect(alive(haproxyPid)).toBe(true);
    expect(workersAfter.some((p) => !workersBefore.includes(p))).toBe(true);
    expect(peakInstances(bigger, "api")).toBe(8);
    expect(ok).toBeGreaterThan(100);
    expect(failed).toEqual([]);
  }, 30000);
});

describe("the file Nomad delivers, run by the real haproxy", () => {
  itIf(HAVE_HAPROXY, "haproxy is not installed (apt-get install haproxy)")(
    "binds the node's address taken from NODE_ADDRESS, the same file serving any node",
    async () => {
      const node = "127.0.0.5";
      const other = "127.0.0.6";
      const ports = { nodePort: await freePort(node), floatingPort: await freePort("127.0.0.7"), statsPort: await freePort(node) };
      const c = edited(exampleCluster(), (x) => (x.app.haproxy = { ...x.app.haproxy, ...ports }));
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "haproxy-env-"));
      // The production text; only the run directory and the floating IP are test values.
      const cfg = renderHaproxyConfig(c, { ...nomadHaproxyRuntime(c), floatingAddress: "127.0.0.7", runDir: dir });
      expect(cfg).toContain(`"\${NODE_ADDRESS}:${ports.statsPort}"`);
      fs.writeFileSync(path.join(dir, "haproxy.cfg"), cfg);
      const proc = spawn("haproxy", ["-db", "-f", path.join(dir, "haproxy.cfg")], { env: { ...process.env, NODE_ADDRESS: node }, stdio: "ignore" });
      try {
        const health = await until("haproxy /healthz on the node address", 10000, async () => {
          const r = await get(node, ports.statsPort, "/healthz");
          return r.status === 200 ? r : undefined;
        });
        expect(health.status).toBe(200);
        // nothing on another address: the bind really took NODE_ADDRESS
        await expect(get(other, ports.statsPort, "/healthz", 500)).rejects.toThrow(/ECONNREFUSED/);
      } finally {
        if (proc.pid) process.kill(proc.pid, "SIGKILL");
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe("the reload and start scripts: a file haproxy -c rejects is never installed", () => {
  const reason = "haproxy is not installed (apt-get install haproxy)";
  const c = exampleCluster();
  const broken = (rt: HaproxyRuntime) => renderHaproxyConfig(c, rt).replace("balance roundrobin", "balance no-such-algorithm");

  itIf(HAVE_HAPROXY, reason)("reload: the master is not signalled and haproxy.cfg stays the running one", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "haproxy-reload-"));
    // A stand-in master: SIGUSR2's default action would end it.
    const master = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      const rt = { ...nomadHaproxyRuntime(c), runDir: dir, masterPid: master.pid! };
      const running = renderHaproxyConfig(c, rt);
      fs.writeFileSync(path.join(dir, HAPROXY_CFG), running);
      fs.writeFileSync(path.join(dir, HAPROXY_CFG_CANDIDATE), broken(rt));
      fs.writeFileSync(path.join(dir, "reload.sh"), renderHaproxyReloadScript(rt), { mode: 0o755 });
      const r = spawnSync("/bin/sh", [path.join(dir, "reload.sh")], { encoding: "utf8", env: { ...process.env, NODE_ADDRESS: "127.0.0.5" } });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("does not pass haproxy -c");
      expect(master.exitCode).toBeNull();
      expect(() => process.kill(master.pid!, 0)).not.toThrow();
      expect(fs.readFileSync(path.join(dir, HAPROXY_CFG), "utf8")).toBe(running);
    } finally {
      if (master.pid) process.kill(master.pid, "SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  itIf(HAVE_HAPROXY, reason)("start: a task restart after a rejected change runs the last accepted file; without one it fails", async () => {
    const node = "127.0.0.8";
    const ports = { nodePort: await freePort(node), floatingPort: await freePort("127.0.0.9"), statsPort: await freePort(node) };
    const cc = edited(c, (x) => (x.app.haproxy = { ...x.app.haproxy, ...ports }));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "haproxy-start-"));
    const env = { ...process.env, NODE_ADDRESS: node };
    let proc: ChildProcess | undefined;
    try {
      const rt = { ...nomadHaproxyRuntime(cc), floatingAddress: "127.0.0.9", runDir: dir };
      const good = renderHaproxyConfig(cc, rt);
      fs.writeFileSync(path.join(dir, "start.sh"), renderHaproxyStartScript(rt), { mode: 0o755 });
      fs.writeFileSync(path.join(dir, HAPROXY_CFG_CANDIDATE), broken(rt));

      // No accepted file yet: the task fails, HAProxy never starts.
      const first = spawnSync("/bin/sh", [path.join(dir, "start.sh")], { encoding: "utf8", env, timeout: 10000 });
      expect(first.status).toBe(1);
      expect(first.stderr).toContain("no accepted one exists");
      expect(fs.existsSync(path.join(dir, HAPROXY_CFG))).toBe(false);

      // The last accepted file is there: HAProxy starts on it and serves.
      fs.writeFileSync(path.join(dir, HAPROXY_CFG), good);
      let stderr = "";
      proc = spawn("/bin/sh", [path.join(dir, "start.sh")], { env, stdio: ["ignore", "ignore", "pipe"] });
      proc.stderr!.on("data", (d) => (stderr += d));
      const health = await until("haproxy /healthz from the last accepted file", 10000, async () => {
        const r = await get(node, ports.statsPort, "/healthz");
        return r.status === 200 ? r : undefined;
      });
      expect(health.status).toBe(200);
      expect(stderr).toContain("starting with the last accepted one");
      expect(fs.readFileSync(path.join(dir, HAPROXY_CFG), "utf8")).toBe(good);
    } finally {
      const workers = proc?.pid ? childrenOf(proc.pid) : [];
      if (proc?.pid && alive(proc.pid)) process.kill(proc.pid, "SIGKILL");
      for (const pid of workers) if (alive(pid)) process.kill(pid, "SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
