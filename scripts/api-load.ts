/**
 * Load test of the api behind HAProxy: concurrent slow uploads while health checks must stay
 * green. Runs the real gunicorn with the api job's exact command line (gunicornArgs) behind
 * the real HAProxy with the rendered haproxy.cfg (backends from dnsmasq standing in for
 * Consul DNS, as in __tests__/jobs-haproxy.test.ts), all on loopback addresses.
 *
 * The application: by default the stand-in in scripts/api-load/standin (same framework and
 * module path as the api, see its docstring), because the real code is fetched from GitHub
 * and CI cannot. `--app-dir DIR` runs the real api code instead (upstream's api/ directory,
 * e.g. a checkout of images/UPSTREAM_REF) with Debian's python3-flask, -boto3, -celery,
 * -flask-cors, -pil, an S3 stand-in (scripts/api-load/s3_standin.py) and Celery's in-memory
 * broker; opentelemetry (not in Debian) is replaced by a no-op shim.
 *
 * `--design previous` runs the settings this project had before (4 sync workers, checks
 * `inter 1s fall 2` without `timeout check`, no per-server maxconn) for comparison.
 *
 *   npx tsx scripts/api-load.ts [--design current|previous] [--app-dir DIR] [--uploads N]
 *        [--upload-kib N] [--upload-seconds S] [--seconds S]
 *   npx tsx scripts/api-load.ts --write [--app-dir DIR] [--uploads N] [--upload-seconds S] [--seconds S]
 *
 * Prints the figures; `--write` runs the cases of WRITE_CASES (the previous design, the
 * current one with small and large uploads) and writes docs/generated/api-load.md and
 * .json, the file docs/jobs.md cites. Needs gunicorn, haproxy, dnsmasq, python3-flask (Debian packages).
 * Every process is started here, recorded by PID and stopped by PID.
 */
import { spawn, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import type { Cluster } from "../constructs/description/schema";
import { gunicornArgs } from "../constructs/render/jobs/api";
import { renderHaproxyConfig, type HaproxyRuntime } from "../constructs/render/jobs/haproxy-cfg";

export const STANDIN_APP_DIR = path.join(__dirname, "api-load", "standin");
const S3_STANDIN = path.join(__dirname, "api-load", "s3_standin.py");
const OTEL_SHIM = path.join(__dirname, "api-load", "otel-shim");

const API_ADDR = "127.0.0.31";
const OVERLAY = "127.0.0.32";
const FLOATING = "127.0.0.33";
const DNS_ADDR = "127.0.0.1";

export type Design = "current" | "previous";

/** How the run watches the instance (milliseconds); printed with the figures. */
export const SAMPLING = {
  /** HAProxy's view of the api instance (its stats CSV). */
  haproxyMs: 250,
  /** GET /health on the instance, as Nomad's check does, with the api check's timeout. */
  healthMs: 500,
  healthTimeoutMs: 3000,
  /** Short reads through HAProxy (what visitors see). */
  readsMs: 200,
  /** PSS of the gunicorn processes. */
  memoryMs: 500,
} as const;

export interface LoadOptions {
  cluster: Cluster;
  design: Design;
  /** Directory holding the image_api package (default: the stand-in). */
  appDir?: string;
  /** Concurrent slow uploads, each restarting when done. */
  uploads: number;
  uploadKiB: number;
  /** How long one upload takes to send (the slow client). */
  uploadSeconds: number;
  /** Duration of the load. */
  seconds: number;
  log?: (line: string) => void;
}

export interface LoadFigures {
  design: Design;
  app: string;
  gunicorn: string;
  uploads: { started: number; ok: number; failed: number; statuses: Record<string, number>; maxSeconds: number };
  /** HAProxy's view of the api instance, sampled every SAMPLING.haproxyMs. */
  haproxyCheck: { samples: number; notUp: number; failedChecks: number };
  /** Nomad's check as the agent runs it: GET /health on the instance (SAMPLING.health*). */
  directHealth: { probes: number; failed: number; maxMs: number; p50Ms: number };
  /** Short GETs through HAProxy meanwhile (what visitors see). */
  reads: { requests: number; served: number; status503: number; otherErrors: number; maxMs: number };
  /** Sum of the gunicorn processes' PSS (master + workers). */
  memory: { idleMiB: number; peakMiB: number };
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function request(opts: http.RequestOptions & { body?: Buffer; timeoutMs: number }): Promise<{ status: number; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ ...opts, agent: false, timeout: opts.timeoutMs }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - t0 }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** A multipart upload sent slowly: the body in 20 pieces spread over `seconds`. */
function slowUpload(host: string, port: number, kib: number, seconds: number): Promise<{ status: number; ms: number }> {
  const boundary = "----loadtest" + Math.random().toString(16).slice(2);
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const data = Buffer.alloc(kib * 1024, 0x61);
  const body = Buffer.concat([head, data, tail]);
  const pieces = 20;
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port, method: "POST", path: "/image", agent: false, timeout: 60000, headers: { "Content-Type": `multipart/form-data; boundary=${boundary}`, "Content-Length": body.length } },
      (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - t0 }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    (async () => {
      const size = Math.ceil(body.length / pieces);
      for (let i = 0; i < body.length; i += size) {
        if (req.destroyed) return;
        req.write(body.subarray(i, i + size));
        await sleep((seconds * 1000) / pieces);
      }
      req.end();
    })().catch(reject);
  });
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      if (Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** The previous design's haproxy.cfg: checks inter 1s fall 2 without timeout check, no per-server maxconn. */
function previousHaproxyConfig(cfg: string): string {
  return cfg
    .replace(/^\s*timeout check .*\n/m, "")
    .replace(/^(\s*default-server) .*$/m, "$1 inter 1s fastinter 500ms downinter 2s fall 2 rise 2")
    .replace(/ maxconn \d+$/m, "");
}

export async function runApiLoad(o: LoadOptions): Promise<LoadFigures> {
  const log = o.log ?? (() => undefined);
  const appDir = o.appDir ?? STANDIN_APP_DIR;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "api-load-"));
  const procs: ChildProcess[] = [];
  const logs: Record<string, string> = {};
  const start = (name: string, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"], cwd: opts.cwd, env: opts.env ?? process.env });
    if (p.pid === undefined) throw new Error(`${name} did not start`);
    procs.push(p);
    logs[name] = "";
    p.stderr!.on("data", (d) => (logs[name] = (logs[name] + d.toString()).slice(-4000)));
    return p;
  };
  const haproxyWorkers: number[] = [];
  try {
    const ports = { api: await freePort(API_ADDR), node: await freePort(OVERLAY), floating: await freePort(FLOATING), stats: await freePort(OVERLAY), dns: await freePort(DNS_ADDR) };
    const c: Cluster = { ...o.cluster, app: { ...o.cluster.app, haproxy: { ...o.cluster.app.haproxy, nodePort: ports.node, floatingPort: ports.floating, statsPort: ports.stats } } };

    // The real application needs S3 and a broker: stand-ins on loopback.
    const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" };
    if (appDir !== STANDIN_APP_DIR) {
      const s3Port = await freePort("127.0.0.1");
      start("s3", "/usr/bin/python3", [S3_STANDIN, "127.0.0.1", String(s3Port)]);
      Object.assign(env, {
        PYTHONPATH: OTEL_SHIM,
        S3_ENDPOINT_URL: `http://127.0.0.1:${s3Port}`,
        AWS_ACCESS_KEY_ID: "load-test",
        AWS_SECRET_ACCESS_KEY: "load-test",
        AWS_REGION_NAME: "us-east-1",
        S3_BUCKET_NAME: "images",
        CELERY_BROKER_URL: "memory://",
      });
      await sleep(500);
    }
    const bind = `${API_ADDR}:${ports.api}`;
    const gargs = o.design === "current" ? gunicornArgs(c, bind) : ["--workers", "4", "--bind", bind, "--access-logfile", "-", "image_api.web:app"];
    const gunicorn = start("gunicorn", "gunicorn", gargs, { cwd: appDir, env });

    start("dnsmasq", "dnsmasq", [
      "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
      `--listen-address=${DNS_ADDR}`, "--bind-interfaces", `--port=${ports.dns}`, "--log-facility=-",
      `--srv-host=_api._tcp.service.consul,api1.node.consul,${ports.api},1,10`, `--host-record=api1.node.consul,${API_ADDR}`,
    ]);
    const rt: HaproxyRuntime = { overlayAddress: OVERLAY, floatingAddress: FLOATING, dnsServer: `${DNS_ADDR}:${ports.dns}`, runDir: dir, masterPid: 0 };
    const rendered = renderHaproxyConfig(c, rt);
    fs.writeFileSync(path.join(dir, "haproxy.cfg"), o.design === "current" ? rendered : previousHaproxyConfig(rendered));
    const haproxy = start("haproxy", "haproxy", ["-W", "-db", "-f", path.join(dir, "haproxy.cfg")]);

    const apiRow = async (): Promise<Record<string, string> | undefined> => {
      const body = await new Promise<string>((resolve, reject) => {
        http.get({ host: OVERLAY, port: ports.stats, path: "/stats;csv", agent: false, timeout: 1000 }, (res) => {
          let b = "";
          res.on("data", (d) => (b += d));
          res.on("end", () => resolve(b));
        }).on("error", reject);
      });
      const [header, ...lines] = body.trim().split("\n");
      const cols = header.replace(/^# /, "").split(",");
      return lines.map((l) => Object.fromEntries(l.split(",").map((v, i) => [cols[i], v]))).find((r) => r.pxname === "api" && r.addr === bind);
    };
    const deadline = Date.now() + 60000;
    for (;;) {
      const row = await apiRow().catch(() => undefined);
      if (row?.status === "UP") break;
      if (Date.now() > deadline || gunicorn.exitCode !== null) throw new Error(`the api did not come UP in HAProxy\n${Object.entries(logs).map(([k, v]) => `[${k}] ${v}`).join("\n")}`);
      await sleep(200);
    }
    for (const pid of childrenOf(haproxy.pid!)) haproxyWorkers.push(pid);
    await sleep(1000);
    const gunicornPss = () => [gunicorn.pid!, ...childrenOf(gunicorn.pid!)].reduce((a, p) => a + pssKiB(p), 0);
    const idle = gunicornPss();
    const failedChecksBefore = Number((await apiRow())?.chkfail ?? 0);
    log(`load: ${o.design} design, ${o.uploads} slow uploads of ${o.uploadKiB} KiB over ${o.uploadSeconds} s each, ${o.seconds} s, gunicorn ${gargs.join(" ")}`);

    const end = Date.now() + o.seconds * 1000;
    const f: LoadFigures = {
      design: o.design,
      app: appDir === STANDIN_APP_DIR ? "stand-in (scripts/api-load/standin)" : appDir,
      gunicorn: gargs.join(" "),
      uploads: { started: 0, ok: 0, failed: 0, statuses: {}, maxSeconds: 0 },
      haproxyCheck: { samples: 0, notUp: 0, failedChecks: 0 },
      directHealth: { probes: 0, failed: 0, maxMs: 0, p50Ms: 0 },
      reads: { requests: 0, served: 0, status503: 0, otherErrors: 0, maxMs: 0 },
      memory: { idleMiB: idle / 1024, peakMiB: idle / 1024 },
    };
    const healthMs: number[] = [];
    const uploader = async () => {
      while (Date.now() < end) {
        f.uploads.started++;
        try {
          const r = await slowUpload(OVERLAY, ports.node, o.uploadKiB, o.uploadSeconds);
          f.uploads.statuses[r.status] = (f.uploads.statuses[r.status] ?? 0) + 1;
          if (r.status === 201) f.uploads.ok++;
          else f.uploads.failed++;
          f.uploads.maxSeconds = Math.max(f.uploads.maxSeconds, r.ms / 1000);
        } catch (e) {
          f.uploads.failed++;
          const k = String(e).slice(0, 40);
          f.uploads.statuses[k] = (f.uploads.statuses[k] ?? 0) + 1;
        }
      }
    };
    const every = async (ms: number, fn: () => Promise<void>) => {
      while (Date.now() < end) {
        const t = Date.now();
        await fn();
        await sleep(Math.max(0, ms - (Date.now() - t)));
      }
    };
    await Promise.all([
      ...Array.from({ length: o.uploads }, () => uploader()),
      every(SAMPLING.healthMs, async () => {
        f.directHealth.probes++;
        try {
          const r = await request({ host: API_ADDR, port: ports.api, path: "/health", timeoutMs: SAMPLING.healthTimeoutMs });
          if (r.status !== 200) f.directHealth.failed++;
          healthMs.push(r.ms);
        } catch {
          f.directHealth.failed++;
          healthMs.push(SAMPLING.healthTimeoutMs);
        }
      }),
      every(SAMPLING.readsMs, async () => {
        f.reads.requests++;
        try {
          const r = await request({ host: OVERLAY, port: ports.node, path: "/image/AbCd1234", timeoutMs: 15000 });
          if (r.status === 503) f.reads.status503++;
          else if (r.status === 200 || r.status === 404) f.reads.served++;
          else f.reads.otherErrors++;
          f.reads.maxMs = Math.max(f.reads.maxMs, r.ms);
        } catch {
          f.reads.otherErrors++;
        }
      }),
      every(SAMPLING.haproxyMs, async () => {
        const row = await apiRow().catch(() => undefined);
        f.haproxyCheck.samples++;
        if (row?.status !== "UP") f.haproxyCheck.notUp++;
        if (row) f.haproxyCheck.failedChecks = Number(row.chkfail) - failedChecksBefore;
      }),
      every(SAMPLING.memoryMs, async () => {
        f.memory.peakMiB = Math.max(f.memory.peakMiB, gunicornPss() / 1024);
      }),
    ]);
    healthMs.sort((a, b) => a - b);
    f.directHealth.maxMs = healthMs[healthMs.length - 1] ?? 0;
    f.directHealth.p50Ms = healthMs[Math.floor(healthMs.length / 2)] ?? 0;
    return f;
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
    const t = Date.now();
    while (procs.some((p) => p.exitCode === null && p.signalCode === null) && Date.now() - t < 5000) await sleep(50);
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    for (const pid of haproxyWorkers) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone with its master */
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function formatFigures(f: LoadFigures): string {
  return [
    `design ${f.design}; app: ${f.app}`,
    `  gunicorn ${f.gunicorn}`,
    `  uploads: ${f.uploads.started} started, ${f.uploads.ok} answered 201, ${f.uploads.failed} failed ${JSON.stringify(f.uploads.statuses)}, longest ${f.uploads.maxSeconds.toFixed(1)} s`,
    `  HAProxy's check of the instance: not UP in ${f.haproxyCheck.notUp} of ${f.haproxyCheck.samples} samples, ${f.haproxyCheck.failedChecks} failed checks`,
    `  /health as Nomad checks it (${SAMPLING.healthTimeoutMs / 1000} s timeout): ${f.directHealth.failed} of ${f.directHealth.probes} failed, median ${f.directHealth.p50Ms} ms, max ${f.directHealth.maxMs} ms`,
    `  reads through HAProxy: ${f.reads.served} of ${f.reads.requests} served, ${f.reads.status503} answered 503, ${f.reads.otherErrors} other errors, max ${f.reads.maxMs} ms`,
    `  gunicorn memory (PSS, master + workers): ${f.memory.idleMiB.toFixed(0)} MiB idle, ${f.memory.peakMiB.toFixed(0)} MiB peak`,
  ].join("\n");
}

/** docs/generated/api-load.{md,json}: the cases of `--write` (docs/README.md, "Generated figures"). */
export const API_LOAD_MD = path.join(__dirname, "..", "docs", "generated", "api-load.md");
export const API_LOAD_JSON = path.join(__dirname, "..", "docs", "generated", "api-load.json");
export const API_LOAD_HEADER = "<!-- Generated by npx tsx scripts/api-load.ts --write (scripts/api-load.ts); do not edit, run it again. -->";

export interface ApiLoadCase {
  /** What the row is, e.g. "current: 2 workers × 12 threads (gthread)". */
  settings: string;
  uploads: number;
  uploadKiB: number;
  uploadSeconds: number;
  seconds: number;
  figures: LoadFigures;
}

export interface ApiLoadReport {
  date: string;
  machine: { cpus: number; memGiB: number; node: string; loadAvgBefore: number[] };
  /** The application the cases ran: the stand-in, or the directory given with --app-dir. */
  app: string;
  sampling: typeof SAMPLING;
  cases: ApiLoadCase[];
}

/** The cases `--write` runs: the previous design, then the current one with small and large uploads. */
export const WRITE_CASES: readonly { design: Design; uploadKiB: number }[] = [
  { design: "previous", uploadKiB: 512 },
  { design: "current", uploadKiB: 512 },
  { design: "current", uploadKiB: 4096 },
];

export function caseSettings(design: Design, c: Cluster): string {
  return design === "previous"
    ? "previous: 4 sync workers, `inter 1s fall 2`, no `timeout check`, no maxconn"
    : `current: ${c.app.api.workers} workers × ${c.app.api.threads} threads (gthread), as rendered`;
}

const kib = (n: number) => (n % 1024 === 0 ? `${n / 1024} MiB` : `${n} KiB`);
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** The .md of docs/generated/api-load, from its .json (the docs test re-renders it). */
export function formatApiLoad(r: ApiLoadReport): string {
  const row = (k: ApiLoadCase) => {
    const f = k.figures;
    const other = Object.entries(f.uploads.statuses)
      .filter(([status]) => status !== "201")
      .map(([status, n]) => (/^\d+$/.test(status) ? `${n} × ${status}` : `${n} cut (${status})`));
    const uploads = `${f.uploads.ok}${other.length ? ` (${other.join(", ")})` : ""}`;
    const reads = `${f.reads.served} of ${f.reads.requests}, ${f.reads.status503} × 503${f.reads.otherErrors ? `, ${f.reads.otherErrors} other errors` : ""} (max ${secs(f.reads.maxMs)})`;
    return `| ${k.settings} | ${k.uploads} × ${kib(k.uploadKiB)}, each sent over ${k.uploadSeconds} s, for ${k.seconds} s | ${f.uploads.started} | ${uploads} | ${f.haproxyCheck.notUp} of ${f.haproxyCheck.samples} samples / ${f.haproxyCheck.failedChecks} | ${f.directHealth.failed} of ${f.directHealth.probes}, max ${secs(f.directHealth.maxMs)} | ${reads} | ${f.memory.idleMiB.toFixed(0)} → ${f.memory.peakMiB.toFixed(0)} MiB |`;
  };
  const m = r.machine;
  return [
    API_LOAD_HEADER,
    "",
    "# The api under slow uploads, behind HAProxy",
    "",
    `Run ${r.date} on ${m.cpus} cores, ${m.memGiB} GiB, node ${m.node}; load average before: ${m.loadAvgBefore.map((x) => x.toFixed(2)).join(", ")}.`,
    `Application: ${r.app}. The real gunicorn with the api job's command line behind the real HAProxy with the rendered \`haproxy.cfg\` (dnsmasq as Consul DNS), on loopback.`,
    `Watched: HAProxy's view of the instance every ${r.sampling.haproxyMs} ms, \`/health\` on the instance every ${r.sampling.healthMs} ms with a ${r.sampling.healthTimeoutMs / 1000} s timeout (as Nomad's check), a short read through HAProxy every ${r.sampling.readsMs} ms, the gunicorn processes' PSS every ${r.sampling.memoryMs} ms.`,
    "",
    "| settings | load (concurrent slow uploads) | uploads | answered 201 | HAProxy: api not UP / failed checks | `/health` (Nomad-like) failed, max | reads served, 503 | gunicorn PSS idle → peak |",
    "|---|---|---:|---|---|---|---|---|",
    ...r.cases.map(row),
    "",
  ].join("\n");
}

async function writeReport(cluster: Cluster, o: { appDir?: string; uploads: number; uploadSeconds: number; seconds: number }): Promise<void> {
  const loadAvgBefore = os.loadavg();
  const cases: ApiLoadCase[] = [];
  for (const w of WRITE_CASES) {
    const figures = await runApiLoad({ cluster, design: w.design, appDir: o.appDir, uploads: o.uploads, uploadKiB: w.uploadKiB, uploadSeconds: o.uploadSeconds, seconds: o.seconds, log: (l) => console.log(l) });
    console.log(formatFigures(figures));
    cases.push({ settings: caseSettings(w.design, cluster), uploads: o.uploads, uploadKiB: w.uploadKiB, uploadSeconds: o.uploadSeconds, seconds: o.seconds, figures });
  }
  const report: ApiLoadReport = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10, node: process.version, loadAvgBefore },
    app: cases[0].figures.app,
    sampling: SAMPLING,
    cases,
  };
  fs.mkdirSync(path.dirname(API_LOAD_MD), { recursive: true });
  fs.writeFileSync(API_LOAD_JSON, `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(API_LOAD_MD, formatApiLoad(report));
  console.log(`wrote ${path.relative(process.cwd(), API_LOAD_MD)} and ${path.basename(API_LOAD_JSON)}`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, dflt: string) => {
    const i = args.indexOf(name);
    if (i < 0) return dflt;
    const v = args[i + 1];
    if (v === undefined || v.startsWith("--")) throw new Error(`${name}: expected a value after it`);
    return v;
  };
  /** A positive number option, or a clear error naming it. */
  const num = (name: string, dflt: string) => {
    const v = opt(name, dflt);
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: expected a positive number, got ${JSON.stringify(v)}`);
    return n;
  };
  const design = opt("--design", "current");
  if (design !== "current" && design !== "previous") throw new Error(`--design: expected current or previous, got ${JSON.stringify(design)}`);
  // --write runs its own fixed cases (both designs, both upload sizes): options that pick one are refused, not ignored.
  for (const o of ["--design", "--upload-kib"]) if (args.includes("--write") && args.includes(o)) throw new Error(`${o}: not with --write, which runs every design and upload size itself`);
  // Loaded here, not at the top: the module is also imported by the jest test.
  const { loadDescriptionFile, formatProblems } = await import("../constructs/description/load");
  const file = process.env.CLUSTER_FILE ?? path.join(__dirname, "..", "clusters", "example.yaml");
  const loaded = loadDescriptionFile(file);
  if (!loaded.ok) throw new Error(formatProblems(file, loaded.problems));
  const cluster = loaded.cluster;
  const appDir = args.includes("--app-dir") ? path.resolve(opt("--app-dir", "")) : undefined;
  if (args.includes("--write")) {
    await writeReport(cluster, { appDir, uploads: num("--uploads", "12"), uploadSeconds: num("--upload-seconds", "3"), seconds: num("--seconds", "12") });
    return;
  }
  const f = await runApiLoad({
    cluster,
    design: design as Design,
    appDir,
    uploads: num("--uploads", "12"),
    uploadKiB: num("--upload-kib", "512"),
    uploadSeconds: num("--upload-seconds", "3"),
    seconds: num("--seconds", "12"),
    log: (l) => console.log(l),
  });
  console.log(formatFigures(f));
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
