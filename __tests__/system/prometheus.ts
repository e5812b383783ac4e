/**
 * Real Prometheus (v2.53.3, the metrics job's image version, built from the Go module proxy
 * by `npm run engines` into .engines/bin: Debian 12's prometheus 2.42+ds is built without
 * the consul and nomad service discoveries) for system tests, and a stand-in of the Nomad
 * client's /v1/metrics (Nomad may not be used here; Consul is real: consul.ts). Generic: any test that renders a
 * prometheus.yml (the metrics job, the autoscaler's policies) starts it with its config
 * inside a namespace of its own Sandbox, waits until it is ready, runs instant queries,
 * and stops it by PID (Sandbox.stop / Sandbox.cleanup).
 *
 * Queries go through `ip netns exec <ns> curl`: Prometheus listens on loopback inside the
 * namespace, as it does in the metrics job (127.0.0.1 only), and the root namespace never
 * addresses the sandbox's namespaces.
 */
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { hasCommand } from "../helpers/synth";
import { Sandbox, waitFor } from "./sandbox";

const ENGINES_BIN = path.resolve(__dirname, "..", "..", ".engines", "bin");
export const PROMETHEUS_BIN = path.join(ENGINES_BIN, "prometheus");
export const PROMTOOL_BIN = path.join(ENGINES_BIN, "promtool");
/** How to get them (the reason a test names when they are missing). */
export const PROMETHEUS_MISSING = "no .engines/bin/prometheus and promtool: run npm run engines (builds Prometheus v2.53.3 from engines/prometheus)";

/** Whether the built prometheus and promtool (and curl, for queries) are there. */
export function havePrometheus(): boolean {
  return fs.existsSync(PROMETHEUS_BIN) && fs.existsSync(PROMTOOL_BIN) && hasCommand("curl");
}

/** `promtool check config` on a config text (and its referenced files must exist as written). */
export function promtoolCheckConfig(text: string, dir: string): { status: number | null; output: string } {
  const file = path.join(dir, `prometheus-${process.pid}-${Date.now()}.yml`);
  fs.writeFileSync(file, text);
  try {
    const r = spawnSync(PROMTOOL_BIN, ["check", "config", file], { encoding: "utf8", timeout: 30000 });
    return { status: r.status, output: `${r.stdout ?? ""}${r.stderr ?? ""}` };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/** `promtool check` of one PromQL expression's syntax (through `promtool query`-free parsing: a rule file). */
export function promtoolCheckExpressions(exprs: string[], dir: string): { status: number | null; output: string } {
  const file = path.join(dir, `rules-${process.pid}-${Date.now()}.yml`);
  const rules = exprs.map((e, i) => `      - record: "check:expr_${i}"\n        expr: ${JSON.stringify(e)}`).join("\n");
  fs.writeFileSync(file, `groups:\n  - name: check\n    rules:\n${rules}\n`);
  try {
    const r = spawnSync(PROMTOOL_BIN, ["check", "rules", file], { encoding: "utf8", timeout: 30000 });
    return { status: r.status, output: `${r.stdout ?? ""}${r.stderr ?? ""}` };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

export interface InstantSample {
  metric: Record<string, string>;
  value: number;
}

export interface PrometheusTarget {
  labels: Record<string, string>;
  discoveredLabels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
  health: "up" | "down" | "unknown";
  lastError: string;
}

export class RunningPrometheus {
  constructor(
    private readonly sb: Sandbox,
    readonly ns: string,
    /** host:port Prometheus listens on inside `ns`. */
    readonly listen: string,
    readonly proc: ReturnType<Sandbox["start"]>,
    readonly dir: string,
  ) {}

  /** GET on Prometheus' HTTP API inside the namespace; the body, or throws with the status. */
  private get(pathAndQuery: string, form?: Record<string, string>): string {
    const args = ["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}"];
    if (form) {
      args.push("-G");
      for (const [k, v] of Object.entries(form)) args.push("--data-urlencode", `${k}=${v}`);
    }
    args.push(`http://${this.listen}${pathAndQuery}`);
    const r = this.sb.inNs(this.ns, args, { timeoutMs: 15000 });
    const i = r.stdout.lastIndexOf("\n");
    const body = r.stdout.slice(0, i);
    const code = r.stdout.slice(i + 1);
    if (r.status !== 0 || code !== "200") throw new Error(`GET ${pathAndQuery} ${JSON.stringify(form ?? {})}: curl ${r.status}, HTTP ${code}: ${body.slice(0, 500)} ${r.stderr}`);
    return body;
  }

  ready(): boolean {
    try {
      this.get("/-/ready");
      return true;
    } catch {
      return false;
    }
  }

  /** An instant query (/api/v1/query); throws with Prometheus' error for a bad expression. */
  query(expr: string): InstantSample[] {
    const r = JSON.parse(this.get("/api/v1/query", { query: expr }));
    if (r.status !== "success") throw new Error(`query ${expr}: ${JSON.stringify(r)}`);
    if (r.data.resultType === "scalar") return [{ metric: {}, value: Number(r.data.result[1]) }];
    if (r.data.resultType !== "vector") throw new Error(`query ${expr}: unexpected ${r.data.resultType}`);
    return r.data.result.map((s: { metric: Record<string, string>; value: [number, string] }) => ({ metric: s.metric, value: Number(s.value[1]) }));
  }

  /** Active targets (/api/v1/targets). */
  targets(): PrometheusTarget[] {
    const r = JSON.parse(this.get("/api/v1/targets", { state: "active" }));
    return r.data.activeTargets;
  }

  log(): string {
    return this.sb.log(this.proc);
  }

  async stop(): Promise<void> {
    await this.sb.stop(this.proc, "SIGTERM", 10000);
  }
}

export interface StartPrometheusOptions {
  /** Listen address inside the namespace. Default 127.0.0.1:9090 (the metrics job's). */
  listen?: string;
  /** Process name in the sandbox (log file name). Default "prometheus". */
  name?: string;
  timeoutMs?: number;
}

/**
 * Starts Debian's Prometheus in `ns` with `configText` (a fresh TSDB in the sandbox's
 * directory) and waits until /-/ready answers. Stopped by PID with `stop()` or the
 * sandbox's cleanup.
 */
export async function startPrometheus(sb: Sandbox, ns: string, configText: string, opts: StartPrometheusOptions = {}): Promise<RunningPrometheus> {
  const name = opts.name ?? "prometheus";
  const listen = opts.listen ?? "127.0.0.1:9090";
  const dir = path.join(sb.dir, name);
  fs.mkdirSync(path.join(dir, "data"), { recursive: true });
  const config = path.join(dir, "prometheus.yml");
  fs.writeFileSync(config, configText);
  const proc = sb.start(name, ns, [
    PROMETHEUS_BIN,
    `--config.file=${config}`,
    `--storage.tsdb.path=${path.join(dir, "data")}`,
    `--web.listen-address=${listen}`,
    "--log.level=info",
  ]);
  const p = new RunningPrometheus(sb, ns, listen, proc, dir);
  await waitFor(`Prometheus ready on ${listen} in ${ns}`, () => p.ready(), opts.timeoutMs ?? 30000, () => p.log().slice(-3000), 250);
  return p;
}

// ---------------------------------------------------------------------------------------
// Nomad agent HTTP stand-in (Nomad may not be used here)

/**
 * An HTTP server (python3, in the namespace) answering fixed documents at exact paths, for
 * the Nomad client's documented GET /v1/metrics?format=prometheus (Nomad's metrics
 * reference: nomad.client.host.* with publish_node_metrics, nomad.client.allocs.* with
 * publish_allocation_metrics); anything else: 404. Every request line is appended to
 * requests.log (see `requests`).
 */
export function startNomadMetricsStandin(sb: Sandbox, ns: string, listen: { host: string; port: number }, documents: Record<string, { query?: string; contentType: string; body: string }>, name = "nomad-standin") {
  const dir = path.join(sb.dir, name);
  fs.mkdirSync(dir, { recursive: true });
  const spec = path.join(dir, "spec.json");
  fs.writeFileSync(spec, JSON.stringify({ documents }));
  const script = path.join(dir, "documents.py");
  fs.writeFileSync(script, DOCUMENTS_PY);
  const requestsLog = path.join(dir, "requests.log");
  const proc = sb.start(name, ns, ["/usr/bin/python3", script, spec, listen.host, String(listen.port), requestsLog]);
  return {
    proc,
    /** The request lines ("GET /v1/…?…") received so far. */
    requests(): string[] {
      return fs.existsSync(requestsLog) ? fs.readFileSync(requestsLog, "utf8").split("\n").filter(Boolean) : [];
    },
  };
}

const DOCUMENTS_PY = String.raw`
import json, sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from urllib.parse import urlsplit

spec = json.load(open(sys.argv[1]))
host, port, log = sys.argv[2], int(sys.argv[3]), sys.argv[4]

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, code, body, ctype):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        with open(log, "a") as f: f.write("GET " + self.path + "\n")
        u = urlsplit(self.path)
        doc = (spec.get("documents") or {}).get(u.path)
        if doc is not None and (doc.get("query") is None or doc["query"] == u.query):
            return self.reply(200, doc["body"], doc["contentType"])
        return self.reply(404, "not found: " + u.path, "text/plain")
    def log_message(self, *args):
        pass

ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer((host, port), Handler).serve_forever()
`;
