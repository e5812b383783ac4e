/**
 * Synth benchmark (issue 7): speed, scale and determinism of the cdktf app.
 *
 *   npm run bench                  # human-readable report (Markdown tables) on stdout
 *   npm run bench -- --json        # the same figures as one JSON document on stdout
 *   npm run bench -- --no-write    # print only (by default it also writes docs/generated/bench.md and .json)
 *
 * Environment: BENCH_RUNS (measured runs per case, default 5), BENCH_WARMUP (discarded
 * rounds first, default 1), BENCH_SIZES (generated cluster sizes, default "2,20,200"),
 * BENCH_KEEP=1 (keep the temp directory and print its path).
 *
 * Every case runs in a child process, interleaved round-robin with the other cases (so a
 * slow period of the machine hits all of them alike); the report gives medians. Wall time
 * is measured around the child, peak memory is the child's max RSS from GNU time (`%M`:
 * the largest single process of the child's tree, e.g. the node process under tsx).
 *
 * It is a report, not a test: it exits 0 when a target fails, non-zero only when it
 * crashes (e.g. a synth fails). Progress goes to stderr.
 *
 * The pure helpers (cluster generator, resource diff, directory diff) are exported for
 * __tests__/bench.test.ts; the benchmark itself runs only when this file is the entry point.
 */
import { createHash } from "crypto";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { performance } from "perf_hooks";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import type { SynthSet } from "../plan-review/summary";
import { listFiles, readSynthOutput } from "./lib/synth-output";
import { loadDescriptionText } from "../constructs/description/load";
import { jobsStackName, nodesStackName } from "../constructs/stack-names";

export const REPO_ROOT = path.resolve(__dirname, "..");
const EXAMPLE_FILE = path.join(REPO_ROOT, "clusters", "example.yaml");
const TIME_BIN = "/usr/bin/time";

// ---------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Documentation ranges (RFC 5737), 254 usable hosts each: 762 nodes at most. */
const TEST_NETS = ["192.0.2", "198.51.100", "203.0.113"];
export const MAX_GENERATED_NODES = TEST_NETS.length * 254;

/** SSH address of generated node i (0-based): 192.0.2.1.., then 198.51.100.1.., then 203.0.113.1.. */
export function generatedAddress(i: number): string {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_GENERATED_NODES) throw new Error(`node index ${i} outside 0..${MAX_GENERATED_NODES - 1}`);
  return `${TEST_NETS[Math.floor(i / 254)]}.${(i % 254) + 1}`;
}

/**
 * Overlay address of generated node i: 172.16.X.Y with X from 10 up (inside 172.16.0.0/16,
 * away from the example's 172.16.1.x nodes and its floating IP 172.16.3.100).
 */
export function generatedOverlayAddress(i: number): string {
  if (!Number.isInteger(i) || i < 0 || i >= 254 * 200) throw new Error(`node index ${i} out of range`);
  return `172.16.${10 + Math.floor(i / 254)}.${(i % 254) + 1}`;
}

/**
 * A well-formed ssh-ed25519 public key derived from `seed` (descriptions require pinned
 * host keys; generated nodes get placeholders that no host holds).
 */
export function placeholderHostKey(seed: string): string {
  const field = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const key = createHash("sha256").update(`placeholder host key ${seed}`).digest();
  return `ssh-ed25519 ${Buffer.concat([field(Buffer.from("ssh-ed25519")), field(key)]).toString("base64")}`;
}

/**
 * A description with `n` nodes node-1..node-n, everything else as in `baseText` (the
 * example). Nodes have no explicit priority: all default 100, which the validator accepts.
 */
export function generateClusterYaml(baseText: string, n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > MAX_GENERATED_NODES) throw new Error(`node count ${n} outside 1..${MAX_GENERATED_NODES}`);
  const doc = parseYaml(baseText) as Record<string, unknown>;
  doc.nodes = Array.from({ length: n }, (_, i) => ({
    name: `node-${i + 1}`,
    address: generatedAddress(i),
    overlayAddress: generatedOverlayAddress(i),
    hostKey: placeholderHostKey(`node-${i + 1}`),
  }));
  return stringifyYaml(doc);
}

/** `baseText` parsed, changed by `edit` (on the plain object), written back as YAML. */
export function editedYaml(baseText: string, edit: (d: any) => void): string {
  const doc = parseYaml(baseText);
  edit(doc);
  return stringifyYaml(doc);
}

/** A synthesized output directory, read back (the plan summary's reader). */
export type Snapshot = Required<SynthSet>;

/** Files (relative paths) that differ between two directories, including files present in one only. */
export function diffDirs(a: string, b: string): string[] {
  const fa = new Set(listFiles(a));
  const fb = new Set(listFiles(b));
  const all = [...new Set([...fa, ...fb])].sort();
  return all.filter((f) => !fa.has(f) || !fb.has(f) || !fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))));
}

export function dirStats(dir: string): { files: number; bytes: number } {
  const files = listFiles(dir);
  return { files: files.length, bytes: files.reduce((sum, f) => sum + fs.statSync(path.join(dir, f)).size, 0) };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Paths of the leaves that differ between a and b (`triggers.sha256_x`, `provisioner[1].file.source`). */
export function diffPaths(a: unknown, b: unknown, prefix = ""): string[] {
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => diffPaths(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    return a.flatMap((x, i) => diffPaths(x, b[i], `${prefix}[${i}]`));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix || "(root)"];
}

interface Instance {
  stack: string;
  /** Body without cdktf's "//" metadata and without for_each/count. */
  common: Record<string, unknown>;
  /** The instance's own for_each value (`each.value`), when the resource has a literal for_each. */
  each?: unknown;
}

/**
 * Resource instances of a snapshot by address (`<stack>: <type>.<name>` or
 * `<stack>: <type>.<name>["key"]`). A literal `for_each` map (or list) yields one instance
 * per key; a `for_each` that is a Terraform expression cannot be expanded here and the
 * resource counts as one. A literal `count` yields `[0]..[n-1]`.
 */
export function resourceInstances(s: Snapshot): Map<string, Instance> {
  const out = new Map<string, Instance>();
  for (const [stack, json] of Object.entries(s.stacks)) {
    for (const [type, byName] of Object.entries((json?.resource ?? {}) as Record<string, Record<string, any>>)) {
      for (const [name, body] of Object.entries(byName)) {
        const { "//": _meta, for_each: forEach, count, ...rest } = body as Record<string, unknown>;
        const base = `${stack}: ${type}.${name}`;
        if (isObject(forEach)) {
          for (const [k, v] of Object.entries(forEach)) out.set(`${base}[${JSON.stringify(k)}]`, { stack, common: rest, each: v });
        } else if (Array.isArray(forEach)) {
          for (const v of forEach) out.set(`${base}[${JSON.stringify(String(v))}]`, { stack, common: rest, each: v });
        } else if (typeof count === "number" && forEach === undefined) {
          for (let i = 0; i < count; i++) out.set(`${base}[${i}]`, { stack, common: rest });
        } else {
          const common = { ...rest, ...(forEach !== undefined ? { for_each: forEach } : {}), ...(count !== undefined ? { count } : {}) };
          out.set(base, { stack, common });
        }
      }
    }
  }
  return out;
}

export interface ResourceChange {
  address: string;
  /** Attribute paths that differ (`triggers.sha256_nomad_hcl`, `each.value.host`) and `file:<path>` for referenced files whose content changed. */
  reasons: string[];
  /**
   * True when only referenced files changed, not one attribute: Terraform would see NO
   * change unless the file is read at plan time (e.g. `file()`); a provisioner `source`
   * alone is not (a missing hash trigger).
   */
  filesOnly: boolean;
}

export interface BlastRadius {
  changed: ResourceChange[];
  created: string[];
  destroyed: string[];
}

/** Whether `text` mentions `file` as a whole path (not as a prefix of a longer path). */
function mentions(text: string, file: string): boolean {
  let at = text.indexOf(file);
  while (at >= 0) {
    const after = text[at + file.length];
    const before = at > 0 ? text[at - 1] : "";
    if ((after === undefined || !/[A-Za-z0-9_.\/-]/.test(after)) && !/[A-Za-z0-9_.-]/.test(before)) return true;
    at = text.indexOf(file, at + 1);
  }
  return false;
}

/**
 * What an edit does to the resources of all stacks: instances whose attributes (or the
 * files they reference, such as `rendered/...` provisioner sources or `file()` jobspecs)
 * changed, instances created, instances destroyed.
 */
export function diffResources(before: Snapshot, after: Snapshot): BlastRadius {
  const a = resourceInstances(before);
  const b = resourceInstances(after);
  const changed: ResourceChange[] = [];
  for (const [address, x] of a) {
    const y = b.get(address);
    if (!y) continue;
    const attrs = [...diffPaths(x.common, y.common), ...diffPaths(x.each, y.each, "each.value")];
    const text = JSON.stringify([x.common, x.each]) + JSON.stringify([y.common, y.each]);
    const fa = before.files[x.stack] ?? {};
    const fb = after.files[y.stack] ?? {};
    const files = [...new Set([...Object.keys(fa), ...Object.keys(fb)])]
      .sort()
      .filter((f) => fa[f] !== fb[f] && mentions(text, f))
      .map((f) => `file:${f}`);
    if (attrs.length + files.length > 0) changed.push({ address, reasons: [...attrs, ...files], filesOnly: attrs.length === 0 });
  }
  return {
    changed: changed.sort((p, q) => p.address.localeCompare(q.address)),
    created: [...b.keys()].filter((k) => !a.has(k)).sort(),
    destroyed: [...a.keys()].filter((k) => !b.has(k)).sort(),
  };
}

// ---------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------

interface Measure {
  ms: number;
  rssKiB: number | null;
}

/** Runs `cmd` with sh (as cdktf runs its app command), fails loudly on a non-zero exit. */
function run(cmd: string, env: NodeJS.ProcessEnv, timeFile: string, measureMemory: boolean): Measure {
  const argv = measureMemory ? [TIME_BIN, "-o", timeFile, "-f", "%M", "sh", "-c", cmd] : ["sh", "-c", cmd];
  const t0 = performance.now();
  const r = spawnSync(argv[0], argv.slice(1), { cwd: REPO_ROOT, env, encoding: "utf8", maxBuffer: 256 * 1024 * 1024, stdio: ["ignore", "pipe", "pipe"] });
  const ms = performance.now() - t0;
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`command failed (exit ${r.status ?? r.signal}): ${cmd}\n${(r.stderr ?? "").slice(-4000)}`);
  let rssKiB: number | null = null;
  if (measureMemory) {
    const last = fs.readFileSync(timeFile, "utf8").trim().split("\n").pop() ?? "";
    rssKiB = /^\d+$/.test(last) ? Number(last) : null;
  }
  return { ms, rssKiB };
}

function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("TF_VAR_") || k === "CDKTF_OUTDIR" || k === "CLUSTER_FILE" || k === "CDKTF_CONTEXT_JSON") continue;
    env[k] = v;
  }
  env.CHECKPOINT_DISABLE = "1";
  return env;
}

interface Case {
  id: string;
  group: "example" | "scale";
  label: string;
  /** Shell command; `{out}` is replaced by the output directory. */
  cmd: string;
  clusterFile: string;
  nodes?: number;
  runner: string;
  extraEnv?: Record<string, string>;
}

interface CaseResult {
  id: string;
  group: Case["group"];
  label: string;
  runner: string;
  command: string;
  nodes?: number;
  runs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  medianRssKiB: number | null;
  files: number;
  bytes: number;
  /** Files that differed from the first measured run's output, summed over the other runs. */
  differingFilesAcrossRuns: number;
  samplesMs: number[];
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

function envInt(name: string, dflt: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}, got ${raw}`);
  return v;
}

const EMPTY_APP = `// Generated by scripts/bench.ts: the floor of any cdktf app (one empty stack).
import { App, TerraformStack } from "cdktf";

const app = new App();
new TerraformStack(app, "empty");
app.synth();
`;

function tscCompile(tmp: string, name: string, files: string[], rootDir: string, outDir: string): number {
  const config = path.join(tmp, `tsconfig.${name}.json`);
  fs.writeFileSync(
    config,
    JSON.stringify({
      extends: path.join(REPO_ROOT, "tsconfig.json"),
      compilerOptions: { outDir, rootDir, noEmit: false, sourceMap: false, types: ["node"] },
      files,
      include: [],
    }),
  );
  const tsc = path.join(REPO_ROOT, "node_modules", ".bin", "tsc");
  const t0 = performance.now();
  const r = spawnSync(tsc, ["-p", config], { cwd: REPO_ROOT, encoding: "utf8" });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`tsc failed for ${name}:\n${r.stdout}${r.stderr}`);
  return ms;
}

function readAppCommand(): string {
  const cfg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "cdktf.json"), "utf8")) as { app?: string };
  if (!cfg.app) throw new Error("cdktf.json has no app command");
  return cfg.app;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export interface BenchReport {
  date: string;
  machine: { cpus: number; cpuModel: string; memGiB: number; node: string; platform: string; loadAvgBefore: number[]; loadAvgAfter: number[] };
  config: { runs: number; warmup: number; sizes: number[]; peakMemory: string };
  appCommand: string;
  tscMs: { main: number; empty: number };
  cases: CaseResult[];
  crossRunner: { a: string; b: string; differingFiles: number }[];
  growth: { runner: string; fromNodes: number; toNodes: number; msPerNode: number; kibPerNode: number; rssKiBPerNode: number | null; ratio: number }[];
  blast: { edit: string; changedExisting: number; created: number; destroyed: number; detail: BlastRadius }[];
  /** pass null: not applicable yet (e.g. nothing synthesized uses the edited field). */
  targets: { target: string; figure: string; pass: boolean | null }[];
}

function bench(): BenchReport {
  const runs = envInt("BENCH_RUNS", 5, 1);
  const warmup = envInt("BENCH_WARMUP", 1, 0);
  const sizes = (process.env.BENCH_SIZES ?? "2,20,200").split(",").map((s) => Number(s.trim()));
  if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > MAX_GENERATED_NODES)) throw new Error(`BENCH_SIZES: integers 1..${MAX_GENERATED_NODES}, got ${process.env.BENCH_SIZES}`);
  const measureMemory = fs.existsSync(TIME_BIN);
  const loadAvgBefore = os.loadavg();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bench-"));
  const env = baseEnv();
  try {
    // Precompiled JS: main + constructs, and the empty app. The temp tree gets a
    // node_modules link so that `require("cdktf")` resolves as in the repository.
    fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(tmp, "node_modules"), "dir");
    fs.mkdirSync(path.join(tmp, "empty"));
    const emptyTs = path.join(tmp, "empty", "empty.ts");
    fs.writeFileSync(emptyTs, EMPTY_APP);
    log("compiling main.ts + constructs and empty.ts with tsc ...");
    const tscMain = tscCompile(tmp, "main", [path.join(REPO_ROOT, "main.ts")], REPO_ROOT, path.join(tmp, "js"));
    const tscEmpty = tscCompile(tmp, "empty", [emptyTs], path.join(tmp, "empty"), path.join(tmp, "empty-js"));
    const mainJs = path.join(tmp, "js", "main.js");
    const emptyJs = path.join(tmp, "empty-js", "empty.js");

    // Generated clusters.
    const exampleText = fs.readFileSync(EXAMPLE_FILE, "utf8");
    const clusterFiles = new Map<number, string>();
    for (const n of sizes) {
      const file = path.join(tmp, `cluster-${n}.yaml`);
      fs.writeFileSync(file, generateClusterYaml(exampleText, n));
      clusterFiles.set(n, file);
    }

    const appCommand = readAppCommand();
    const tsx = "node_modules/.bin/tsx";
    const cases: Case[] = [
      { id: "cli", group: "example", label: "cdktf synth (end to end)", runner: "cdktf-cli", cmd: `node_modules/.bin/cdktf synth --output {out}`, clusterFile: EXAMPLE_FILE },
      { id: "app", group: "example", label: "app alone: cdktf.json command", runner: "app", cmd: appCommand, clusterFile: EXAMPLE_FILE },
      { id: "main-tsx", group: "example", label: "main.ts, tsx", runner: "tsx", cmd: `${tsx} main.ts`, clusterFile: EXAMPLE_FILE },
      { id: "empty-tsx", group: "example", label: "EMPTY app, tsx (floor)", runner: "tsx", cmd: `${tsx} ${q(emptyTs)}`, clusterFile: EXAMPLE_FILE },
      { id: "main-tsx-cold", group: "example", label: "main.ts, tsx, no transform cache", runner: "tsx-cold", cmd: `${tsx} main.ts`, clusterFile: EXAMPLE_FILE, extraEnv: { TSX_DISABLE_CACHE: "1" } },
      { id: "empty-tsx-cold", group: "example", label: "EMPTY app, tsx, no transform cache", runner: "tsx-cold", cmd: `${tsx} ${q(emptyTs)}`, clusterFile: EXAMPLE_FILE, extraEnv: { TSX_DISABLE_CACHE: "1" } },
      { id: "main-js", group: "example", label: "main.js, node (precompiled)", runner: "node-js", cmd: `node ${q(mainJs)}`, clusterFile: EXAMPLE_FILE },
      { id: "empty-js", group: "example", label: "EMPTY app, node (precompiled floor)", runner: "node-js", cmd: `node ${q(emptyJs)}`, clusterFile: EXAMPLE_FILE },
    ];
    // The cdktf.json command is measured once; when it is plain tsx, "main-tsx" is the same case.
    if (appCommand.trim() === `${tsx} main.ts`) cases.splice(2, 1);
    for (const n of sizes) {
      const file = clusterFiles.get(n)!;
      cases.push({ id: `n${n}-app`, group: "scale", label: `${n} nodes, cdktf.json command`, runner: "app", cmd: appCommand, clusterFile: file, nodes: n });
      cases.push({ id: `n${n}-js`, group: "scale", label: `${n} nodes, node (precompiled)`, runner: "node-js", cmd: `node ${q(mainJs)}`, clusterFile: file, nodes: n });
    }

    const samples = new Map<string, Measure[]>(cases.map((c) => [c.id, []]));
    const refDirs = new Map<string, string>();
    const differing = new Map<string, number>(cases.map((c) => [c.id, 0]));
    const timeFile = path.join(tmp, "time.out");
    const rounds = warmup + runs;
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      const measured = r >= warmup;
      log(`round ${r + 1}/${rounds}${measured ? "" : " (warm-up)"} ...`);
      // Rotate the order each round: no case always runs first (or right after the CLI).
      const order = cases.map((_, i) => cases[(i + r) % cases.length]);
      for (const c of order) {
        const out = path.join(tmp, "out", c.id, String(r));
        fs.mkdirSync(path.dirname(out), { recursive: true });
        const cmd = c.cmd.replace("{out}", q(out));
        const m = run(cmd, { ...env, CLUSTER_FILE: c.clusterFile, ...(c.id === "cli" ? {} : { CDKTF_OUTDIR: out }), ...c.extraEnv }, timeFile, measureMemory);
        if (!fs.existsSync(path.join(out, "manifest.json"))) throw new Error(`${c.label}: no manifest.json in ${out}`);
        if (!measured) {
          fs.rmSync(out, { recursive: true, force: true });
          continue;
        }
        samples.get(c.id)!.push(m);
        const ref = refDirs.get(c.id);
        if (ref === undefined) refDirs.set(c.id, out);
        else {
          differing.set(c.id, differing.get(c.id)! + diffDirs(ref, out).length);
          fs.rmSync(out, { recursive: true, force: true });
        }
      }
    }
    log(`measured in ${((performance.now() - t0) / 1000).toFixed(0)} s`);

    const results: CaseResult[] = cases.map((c) => {
      const ms = samples.get(c.id)!.map((m) => m.ms);
      const rss = samples.get(c.id)!.map((m) => m.rssKiB).filter((x): x is number => x !== null);
      const stats = dirStats(refDirs.get(c.id)!);
      return {
        id: c.id,
        group: c.group,
        label: c.label,
        runner: c.runner,
        command: c.cmd.replace("{out}", "<tmp>").replace(tmp, "<tmp>").replace(tmp, "<tmp>"),
        nodes: c.nodes,
        runs: ms.length,
        medianMs: median(ms),
        minMs: Math.min(...ms),
        maxMs: Math.max(...ms),
        medianRssKiB: rss.length ? median(rss) : null,
        files: stats.files,
        bytes: stats.bytes,
        differingFilesAcrossRuns: differing.get(c.id)!,
        samplesMs: ms.map((x) => Math.round(x)),
      };
    });
    const byId = new Map(results.map((r) => [r.id, r]));

    // The same description through different runners must give the same bytes.
    const pairs: [string, string][] = [
      ["app", "cli"],
      ["app", "main-js"],
      ["app", "main-tsx-cold"],
      ...sizes.map((n): [string, string] => [`n${n}-app`, `n${n}-js`]),
    ];
    if (byId.has("main-tsx")) pairs.push(["app", "main-tsx"]);
    const crossRunner = pairs.map(([a, b]) => ({ a, b, differingFiles: diffDirs(refDirs.get(a)!, refDirs.get(b)!).length }));

    // Growth per node between the smallest and the largest generated cluster.
    const lo = Math.min(...sizes);
    const hi = Math.max(...sizes);
    const growth = (["app", "js"] as const).flatMap((runner) => {
      if (lo === hi) return [];
      const a = byId.get(`n${lo}-${runner}`)!;
      const b = byId.get(`n${hi}-${runner}`)!;
      return [{
        runner: runner === "app" ? "app" : "node-js",
        fromNodes: lo,
        toNodes: hi,
        msPerNode: (b.medianMs - a.medianMs) / (hi - lo),
        kibPerNode: (b.bytes - a.bytes) / 1024 / (hi - lo),
        rssKiBPerNode: a.medianRssKiB !== null && b.medianRssKiB !== null ? (b.medianRssKiB - a.medianRssKiB) / (hi - lo) : null,
        ratio: b.medianMs / a.medianMs,
      }];
    });

    // Blast radius: one synth of the example (re-written through the same YAML writer)
    // and one per edit, by the cdktf.json command.
    log("blast radius ...");
    const synthText = (name: string, text: string): Snapshot => {
      const file = path.join(tmp, `edit-${name}.yaml`);
      fs.writeFileSync(file, text);
      const out = path.join(tmp, "out", `edit-${name}`);
      run(appCommand, { ...env, CLUSTER_FILE: file, CDKTF_OUTDIR: out }, timeFile, false);
      return readSynthOutput(out);
    };
    const base = synthText("base", editedYaml(exampleText, () => {}));
    const example = parseYaml(exampleText) as any;
    const firstNode = example.nodes[0].name as string;
    const lastNode = example.nodes[example.nodes.length - 1].name as string;
    const edits: { edit: string; fn: (d: any) => void }[] = [
      { edit: `nodes.${lastNode}.nodeClass = "edge"`, fn: (d) => (d.nodes[d.nodes.length - 1].nodeClass = "edge") },
      { edit: `nodes.${firstNode}.meta.rack = "r2"`, fn: (d) => (d.nodes[0].meta = { ...(d.nodes[0].meta ?? {}), rack: "r2" }) },
      { edit: "app.images.web tag changed", fn: (d) => (d.app.images.web = String(d.app.images.web).replace(/:[^:/@]+$/, ":0a1b2c3")) },
      // the api image runs two jobs (api and worker): a two-job edit by design
      { edit: "app.images.api tag changed", fn: (d) => (d.app.images.api = String(d.app.images.api).replace(/:[^:/@]+$/, ":0a1b2c3")) },
      {
        edit: "node appended",
        fn: (d) => {
          const i = d.nodes.length;
          const explicit = d.nodes.some((n: any) => n.floatingIp?.priority !== undefined && n.floatingIp.priority !== 100);
          d.nodes.push({
            name: `node-${i + 1}`,
            address: "192.0.2.250",
            overlayAddress: "172.16.1.250",
            hostKey: placeholderHostKey(`node-${i + 1}`),
            // distinct explicit priorities unless all are default: the new node is the least preferred
            ...(explicit ? { floatingIp: { priority: 50 } } : {}),
          });
        },
      },
    ];
    const blast = edits.map(({ edit, fn }, i) => {
      const detail = diffResources(base, synthText(`e${i}`, editedYaml(exampleText, fn)));
      return { edit, changedExisting: detail.changed.length, created: detail.created.length, destroyed: detail.destroyed.length, detail };
    });

    // Targets.
    const app = byId.get("app")!;
    const appFloor = appCommand.includes("tsx") ? byId.get("empty-tsx")! : byId.get("empty-js")!;
    const targets: BenchReport["targets"] = [];
    const appRatio = app.medianMs / appFloor.medianMs;
    targets.push({ target: "app alone (cdktf.json command) on the example ≤ 1.3× the empty app run the same way", figure: `${fmtMs(app.medianMs)} / ${fmtMs(appFloor.medianMs)} = ${appRatio.toFixed(2)}× (fastest runs: ${(app.minMs / appFloor.minMs).toFixed(2)}×)`, pass: appRatio <= 1.3 });
    const mainJs_ = byId.get("main-js")!;
    const emptyJs_ = byId.get("empty-js")!;
    const jsRatio = mainJs_.medianMs / emptyJs_.medianMs;
    targets.push({ target: "(info) precompiled main.js ≤ 1.3× precompiled empty app", figure: `${fmtMs(mainJs_.medianMs)} / ${fmtMs(emptyJs_.medianMs)} = ${jsRatio.toFixed(2)}× (fastest runs: ${(mainJs_.minMs / emptyJs_.minMs).toFixed(2)}×)`, pass: jsRatio <= 1.3 });
    for (const g of growth) {
      const minRatio = byId.get(`n${g.toNodes}-${g.runner === "app" ? "app" : "js"}`)!.minMs / byId.get(`n${g.fromNodes}-${g.runner === "app" ? "app" : "js"}`)!.minMs;
      targets.push({ target: `${g.toNodes} nodes < 3× the ${g.fromNodes}-node time (${g.runner === "app" ? "cdktf.json command" : "node, precompiled"})`, figure: `${g.ratio.toFixed(2)}× (fastest runs: ${minRatio.toFixed(2)}×)`, pass: g.ratio < 3 });
    }
    const diffTotal = results.reduce((s, r) => s + r.differingFilesAcrossRuns, 0) + crossRunner.reduce((s, c) => s + c.differingFiles, 0);
    targets.push({ target: "determinism: differing files between synths of the same description", figure: String(diffTotal), pass: diffTotal === 0 });
    const hasJobs = Object.values(base.stacks).some((st) => Object.keys(st?.resource ?? {}).some((t) => t === "nomad_job"));
    // What each edit is meant to change, from the example's resolved description (defaults applied).
    const loaded = loadDescriptionText(exampleText);
    if (!loaded.ok) throw new Error(`clusters/example.yaml does not validate: ${JSON.stringify(loaded.problems)}`);
    const ex = loaded.cluster;
    const jobsStack = jobsStackName(ex);
    const nodesStack = nodesStackName(ex);
    // The api image runs the api and worker jobs, and, with autoscaling, the metrics job's
    // queue-exporter task (render/jobs/autoscaler.ts: Python and kombu come with that image):
    // a three-job edit by design.
    const apiImageJobs = ["api", "worker", ...(ex.metrics.enabled && ex.metrics.autoscaling.enabled ? ["metrics"] : [])];
    // A new node: the existing nodes' keepalived learns its peer (unicast_peer). With metrics:
    // Prometheus scrapes every node (render/metrics/prometheus.ts: per-node targets), so the
    // metrics job changes; haproxy.cfg lets only the cluster's own nodes scrape /metrics and
    // lists every node's overlay address (render/jobs/haproxy-cfg.ts scrapingAddresses), and
    // haproxy.cfg travels in HAProxy's Nomad Variable, which Nomad re-renders into the running
    // allocations: the Variable changes, the haproxy job does not (its jobspec only names
    // rendered/jobs/haproxy.cfg in a comment: a files-only mention, no Terraform change).
    const nodeAppended = [
      ...ex.nodes.filter((n) => n.floatingIp.eligible).map((n) => `${nodesStack}: null_resource.${n.name}_keepalived`),
      ...(ex.metrics.enabled ? [`${jobsStack}: nomad_job.metrics`, `${jobsStack}: nomad_variable.haproxy`] : []),
    ].sort();
    const nodeAppendedFilesOnly = ex.metrics.enabled ? [`${jobsStack}: nomad_job.haproxy`] : [];
    /** Exactly these changed for Terraform, and exactly those only through a file they name (no attribute). */
    const exactly = (b: (typeof blast)[number], expected: string[], filesOnly: string[] = []) => {
      const same = (xs: string[], ys: string[]) => JSON.stringify([...xs].sort()) === JSON.stringify([...ys].sort());
      return same(b.detail.changed.filter((c) => !c.filesOnly).map((c) => c.address), expected) && same(b.detail.changed.filter((c) => c.filesOnly).map((c) => c.address), filesOnly) && b.destroyed === 0;
    };
    for (const b of blast) {
      const figure = `${b.changedExisting} changed, ${b.created} created, ${b.destroyed} destroyed`;
      if (b.edit === "node appended") {
        targets.push({ target: `blast radius "${b.edit}": of the existing resources, exactly the peers' keepalived (peer list)${ex.metrics.enabled ? ", the metrics job (scrape targets) and HAProxy's Variable (scrape ACL); the haproxy job by a file it names only" : ""}; created ones reported apart`, figure, pass: exactly(b, nodeAppended, nodeAppendedFilesOnly) && b.created > 0 });
      } else if (b.edit === "app.images.api tag changed" && hasJobs) {
        targets.push({ target: `blast radius "${b.edit}": exactly the ${apiImageJobs.length} jobs running that image (${apiImageJobs.join(", ")})`, figure, pass: exactly(b, apiImageJobs.map((j) => `${jobsStack}: nomad_job.${j}`)) && b.created === 0 });
      } else if (b.edit.startsWith("app.images") && !hasJobs) {
        targets.push({ target: `blast radius "${b.edit}": exactly 1 changed (the job's)`, figure: `${figure} (no nomad_job in any stack yet)`, pass: null });
      } else {
        // exactly 1: zero would mean the edit never reaches the node or the job
        targets.push({ target: `blast radius "${b.edit}": exactly 1 changed`, figure, pass: b.changedExisting === 1 && b.created === 0 && b.destroyed === 0 });
      }
    }

    const cpus = os.cpus();
    return {
      date: new Date().toISOString(),
      machine: { cpus: cpus.length, cpuModel: cpus[0]?.model ?? "?", memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10, node: process.version, platform: `${os.platform()} ${os.arch()} ${os.release()}`, loadAvgBefore, loadAvgAfter: os.loadavg() },
      config: { runs, warmup, sizes, peakMemory: measureMemory ? `${TIME_BIN} -f %M (max RSS of the largest process of the child's tree)` : "not measured (no /usr/bin/time)" },
      appCommand,
      tscMs: { main: tscMain, empty: tscEmpty },
      cases: results,
      crossRunner,
      growth,
      blast,
      targets,
    };
  } finally {
    if (process.env.BENCH_KEEP === "1") log(`kept ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

const fmtMs = (ms: number) => `${Math.round(ms)} ms`;
const fmtMiB = (kib: number | null) => (kib === null ? "n/a" : (kib / 1024).toFixed(0));
const fmtKiB = (bytes: number) => (bytes / 1024).toFixed(1);

export function formatReport(r: BenchReport): string {
  const L: string[] = [];
  const row = (cells: (string | number)[]) => L.push(`| ${cells.join(" | ")} |`);
  L.push(`# synth benchmark — ${r.date}`);
  L.push("");
  L.push(`Machine: ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memGiB} GiB, ${r.machine.platform}, node ${r.machine.node}.`);
  const la = (x: number[]) => x.map((v) => v.toFixed(2)).join(" ");
  L.push(`Load average before: ${la(r.machine.loadAvgBefore)}, after: ${la(r.machine.loadAvgAfter)}${Math.max(...r.machine.loadAvgBefore, ...r.machine.loadAvgAfter) > 0.5 * r.machine.cpus ? " — the machine was busy with other work: figures are noisy, compare the fastest runs too (or raise BENCH_RUNS)" : ""}.`);
  L.push(`Medians of ${r.config.runs} runs (+${r.config.warmup} warm-up round), cases interleaved. Peak memory: ${r.config.peakMemory}.`);
  L.push(`cdktf.json app command: \`${r.appCommand}\`. One-off tsc of main.ts + constructs: ${fmtMs(r.tscMs.main)}.`);
  L.push("");
  L.push("## Example cluster (clusters/example.yaml)");
  L.push("");
  row(["case", "median", "min–max ms", "peak RSS MiB", "files", "KiB out"]);
  row(["---", "---:", "---:", "---:", "---:", "---:"]);
  for (const c of r.cases.filter((x) => x.group === "example")) {
    row([c.label, fmtMs(c.medianMs), `${Math.round(c.minMs)}–${Math.round(c.maxMs)}`, fmtMiB(c.medianRssKiB), c.files, fmtKiB(c.bytes)]);
  }
  L.push("");
  L.push("## Scale (generated clusters, app alone)");
  L.push("");
  row(["nodes", "runner", "median", "min–max ms", "peak RSS MiB", "files", "KiB out"]);
  row(["---:", "---", "---:", "---:", "---:", "---:", "---:"]);
  for (const c of r.cases.filter((x) => x.group === "scale")) {
    row([c.nodes ?? "", c.runner === "app" ? "cdktf.json command" : "node (precompiled)", fmtMs(c.medianMs), `${Math.round(c.minMs)}–${Math.round(c.maxMs)}`, fmtMiB(c.medianRssKiB), c.files, fmtKiB(c.bytes)]);
  }
  L.push("");
  for (const g of r.growth) {
    L.push(`Growth (${g.runner === "app" ? "cdktf.json command" : "node, precompiled"}), ${g.fromNodes}→${g.toNodes} nodes: ${g.msPerNode.toFixed(1)} ms/node, ${g.kibPerNode.toFixed(1)} KiB/node of output${g.rssKiBPerNode === null ? "" : `, ${g.rssKiBPerNode.toFixed(0)} KiB/node of peak RSS`}; ${g.toNodes} nodes take ${g.ratio.toFixed(2)}× the ${g.fromNodes}-node time.`);
  }
  L.push("");
  L.push("## Determinism");
  L.push("");
  row(["synths compared", "differing files"]);
  row(["---", "---:"]);
  for (const c of r.cases) row([`${c.label}${c.nodes ? "" : " (example)"}: ${c.runs - 1} later run(s) vs the first`, c.differingFilesAcrossRuns]);
  for (const x of r.crossRunner) row([`${x.a} vs ${x.b}`, x.differingFiles]);
  L.push("");
  L.push("## Blast radius (example cluster, all stacks, resource instances)");
  L.push("");
  row(["edit", "changed existing", "created", "destroyed", "resources"]);
  row(["---", "---:", "---:", "---:", "---"]);
  for (const b of r.blast) {
    const list = [
      ...b.detail.changed.map((c) => `~ ${c.address} (${c.reasons.slice(0, 4).join(", ")}${c.reasons.length > 4 ? ", …" : ""})${c.filesOnly ? " [files only: invisible to Terraform unless read by file()]" : ""}`),
      ...b.detail.created.map((a) => `+ ${a}`),
      ...b.detail.destroyed.map((a) => `- ${a}`),
    ];
    row([b.edit, b.changedExisting, b.created, b.destroyed, list.length ? list.join("<br>") : "(none)"]);
  }
  L.push("");
  L.push("## Targets");
  L.push("");
  row(["target", "figure", "result"]);
  row(["---", "---", "---"]);
  for (const t of r.targets) row([t.target, t.figure, t.pass === null ? "N/A" : t.pass ? "PASS" : "FAIL"]);
  return `${L.join("\n")}\n`;
}

/**
 * The docs' figures come from these files only (docs/README.md, "Generated figures"):
 * docs/generated/bench.md (the report as printed, under a header naming its writer) and
 * docs/generated/bench.json (the same report, for the docs test to check figures against).
 */
export const GENERATED_DIR = path.join(REPO_ROOT, "docs", "generated");
export const GENERATED_HEADER = "<!-- Generated by `npm run bench` (scripts/bench.ts); do not edit, run it again. -->";
function writeGenerated(r: BenchReport): string[] {
  fs.mkdirSync(GENERATED_DIR, { recursive: true });
  const md = path.join(GENERATED_DIR, "bench.md");
  const json = path.join(GENERATED_DIR, "bench.json");
  // Written whole to a temporary name, then renamed: never a half-written report.
  for (const [file, text] of [[md, `${GENERATED_HEADER}\n\n${formatReport(r)}`], [json, `${JSON.stringify(r, null, 2)}\n`]]) {
    fs.writeFileSync(`${file}.tmp`, text);
    fs.renameSync(`${file}.tmp`, file);
  }
  return [md, json];
}

if (require.main === module) {
  try {
    const json = process.argv.includes("--json");
    const report = bench();
    process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    if (!process.argv.includes("--no-write")) {
      const written = writeGenerated(report);
      log(`wrote ${written.map((f) => path.relative(REPO_ROOT, f)).join(", ")}`);
    }
    process.exitCode = 0;
  } catch (e) {
    process.stderr.write(`bench crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  }
}
