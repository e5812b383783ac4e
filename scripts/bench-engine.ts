/**
 * Engine benchmark (issue 10): the real engine applying the synthesized nodes stack to
 * namespace VMs behind a real sshd bastion (the system tests' lab, docs/lab.md: real sshd
 * and keepalived, the real Consul 1.14.11 as the provider's server and on every VM, whose
 * joins the install scripts wait for; a Nomad stand-in that answers at once). The figures
 * are the cost of Terraform, SSH through the bastion, our install scripts and Consul's
 * restarts and joins.
 *
 *   sudo npm run bench:engine [-- --no-write] # Markdown report on stdout (and, unless --no-write,
 *                                             # into docs/generated/bench-engine.md and .json), progress on stderr
 *   sudo npm run bench:engine -- --json       # the figures as JSON on stdout
 *   sudo npm run bench:engine -- --peer ansible [--vms 2,8,16] [--no-write]
 *       # ours against the Ansible peer and the floor (issue 24, scripts/bench/peer.ts);
 *       # writes docs/generated/engine-peer.md unless --no-write
 *
 * Environment: BENCH_ENGINE (terraform | tofu, default terraform), BENCH_ENGINE_SIZES
 * (VM counts, default "2,8,16"), BENCH_ENGINE_BATCHES (rollout.batchSize values, default
 * "1,25%"), BENCH_PARALLELISM (Terraform's -parallelism, default 10: Terraform's own
 * default, stated so that the figures say what limited them).
 *
 * Per VM count and batch size, on a fresh lab: `init`; the apply of a fresh cluster; a
 * no-op `plan`; the apply of a one-node change (node-1's Nomad meta: one resource); the
 * apply of an every-node change (a Consul setting: one Consul resource per node, rolled
 * batch by batch: the serial rollout's cost). One run each (it is heavy: 16 VMs, two
 * cores); wall times around the engine process. It needs root (network namespaces) and
 * `npm run engines`. It is a report, not a test: it exits 0 whatever the figures, non-zero
 * only when an engine command fails.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Cluster } from "../constructs/description/schema";

// The lab module is shared with the jest system tests, whose helpers register cleanup
// hooks with jest's `afterAll` at import time; outside jest, cleanup is explicit (below).
(globalThis as any).afterAll ??= () => undefined;

/** One measured engine command: wall time, the engine's own CPU, and how busy the whole machine was. */
interface Phase {
  ms: number;
  /** User + system CPU seconds of the engine and its provider plugins (GNU time). */
  engineCpuS: number;
  /** Cores in use on the whole machine meanwhile (from /proc/stat): the engine, the bastion's and the VMs' sshd, install scripts, the lab's agents. */
  machineCores: number;
  /** Mean time of one provisioning (one null_resource) as the engine reports it, seconds. */
  meanProvisioningS: number;
}

interface Figures {
  vms: number;
  batchSize: number | string;
  parallelism: number;
  /** Provisionings on the longest dependency chain of a fresh apply (criticalPathSteps). */
  steps: number;
  init: Phase;
  freshApply: Phase;
  /** Cores the idle lab uses by itself after the fresh apply (keepalived and its track scripts, stand-in agents), over 10 s. */
  idleLabCores: number;
  noopPlan: Phase;
  /** The same no-op plan with -refresh=false: how much of it is the refresh of every instance. */
  noopPlanNoRefresh: Phase;
  oneNodeApply: Phase;
  everyNodeApply: Phase;
}

/**
 * Provisioning steps on the longest dependency chain of the stack's null_resources (what a
 * fresh apply must run one after the other, whatever the parallelism): batches of one agent
 * kind chain, and a node's keepalived and Nomad wait for its Consul.
 */
function criticalPathSteps(stackJson: any): number {
  const rs: Record<string, any> = stackJson.resource?.null_resource ?? {};
  const memo = new Map<string, number>();
  const depth = (name: string): number => {
    if (memo.has(name)) return memo.get(name)!;
    const deps: string[] = (rs[name]?.depends_on ?? []).filter((d: string) => d.startsWith("null_resource.")).map((d: string) => d.slice("null_resource.".length));
    const v = 1 + Math.max(0, ...deps.map(depth));
    memo.set(name, v);
    return v;
  };
  return Math.max(0, ...Object.keys(rs).map(depth));
}

/** Seconds of each "Creation complete after 1m2s" line of an apply's output (the engine's per-resource time). */
function provisioningSeconds(output: string): number[] {
  return [...output.matchAll(/null_resource\.\S+: Creation complete after ((?:\d+h)?(?:\d+m)?(?:\d+s)?)/g)].map((m) => {
    const t = /(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?/.exec(m[1])!;
    return Number(t[1] ?? 0) * 3600 + Number(t[2] ?? 0) * 60 + Number(t[3] ?? 0);
  });
}

/** Busy and total jiffies of the whole machine (first line of /proc/stat). */
function cpuJiffies(): { busy: number; total: number } {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Cores in use between two /proc/stat readings. */
function coresBetween(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  const total = b.total - a.total;
  return total > 0 ? ((b.busy - a.busy) / total) * os.cpus().length : 0;
}

function env(name: string, fallback: string): string {
  return process.env[name] && process.env[name]!.trim() !== "" ? process.env[name]!.trim() : fallback;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<number> {
  const json = process.argv.includes("--json");
  if (process.getuid && process.getuid() !== 0) {
    process.stderr.write("bench:engine needs root (it builds network namespaces): sudo npm run bench:engine\n");
    return 2;
  }
  const { buildLab } = await import("../__tests__/system/lab");
  const { Workspace, enginePrerequisites } = await import("../__tests__/system/engine");
  const pre = enginePrerequisites();
  if (!pre.ok) {
    process.stderr.write(`bench:engine: ${pre.reason}\n`);
    return 2;
  }
  const engine = env("BENCH_ENGINE", "terraform") as "terraform" | "tofu";
  const argv = process.argv.slice(2);
  const argValue = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const vmsArg = argValue("--vms");
  if (vmsArg !== undefined && !/^\d+(,\d+)*$/.test(vmsArg)) {
    process.stderr.write(`bench:engine: --vms expects VM counts separated by commas (e.g. 2,8,16), got ${vmsArg ?? "nothing"}\n`);
    return 2;
  }
  const sizes = (vmsArg ?? env("BENCH_ENGINE_SIZES", "2,8,16")).split(",").map((s) => Number(s.trim()));
  const peer = argValue("--peer");
  if (argv.includes("--peer") && peer !== "ansible") {
    process.stderr.write(`bench:engine: --peer expects "ansible" (the only peer), got ${peer ?? "nothing"}\n`);
    return 2;
  }
  if (peer) {
    const { runPeerBench } = await import("./bench/peer");
    return runPeerBench({ sizes, engine, parallelism: Number(env("BENCH_PARALLELISM", "10")), write: !argv.includes("--no-write") });
  }
  const batches = env("BENCH_ENGINE_BATCHES", "1,25%").split(",").map((s) => (/^\d+$/.test(s.trim()) ? Number(s.trim()) : s.trim()));
  const parallelism = Number(env("BENCH_PARALLELISM", "10"));
  const figures: Figures[] = [];
  const started = new Date();
  const loadBefore = os.loadavg();

  for (const vms of sizes) {
    for (const batchSize of batches) {
      const log = (what: string) => process.stderr.write(`[bench:engine ${vms} VMs, batch ${batchSize}] ${what}\n`);
      log("building the lab");
      const lab = await buildLab({ vms, tag: `be${vms}` });
      try {
        const ws = new Workspace(lab, engine, { vrrp_password: "Bn7.pw-q" });
        const cluster = (edit?: (c: Cluster) => void) =>
          lab.cluster((c) => {
            // distinct valid VRRP priorities for any VM count (the lab's 150 - 10 i reaches 0 at 16)
            c.nodes.forEach((n, i) => (n.floatingIp = { eligible: true, priority: 200 - i }));
            c.rollout = { batchSize };
            edit?.(c);
          });
        const must = async (what: string, run: () => Promise<{ status: number | null; output: string; ms: number; cpuSeconds?: number }>, expectStatus = 0): Promise<Phase> => {
          const before = cpuJiffies();
          const r = await run();
          const machineCores = coresBetween(before, cpuJiffies());
          if (r.status !== expectStatus) throw new Error(`${what}: exit ${r.status}\n${r.output.slice(-4000)}`);
          const times = provisioningSeconds(r.output);
          const phase = { ms: r.ms, engineCpuS: r.cpuSeconds ?? NaN, machineCores, meanProvisioningS: times.length ? times.reduce((a, b) => a + b, 0) / times.length : NaN };
          log(`${what}: ${secs(r.ms)} (engine CPU ${phase.engineCpuS.toFixed(1)} s, machine ${machineCores.toFixed(2)} cores busy)`);
          return phase;
        };
        ws.measureCpu = true;
        ws.synth(cluster());
        const steps = criticalPathSteps(JSON.parse(fs.readFileSync(`${ws.stackDir()}/cdk.tf.json`, "utf8")));
        const p = [`-parallelism=${parallelism}`];
        const init = await must("init", () => ws.init());
        const freshApply = await must("fresh apply", () => ws.apply({ args: p, timeoutMs: 1800000 }));
        const idleBefore = cpuJiffies();
        await new Promise((r) => setTimeout(r, 10000));
        const idleLabCores = coresBetween(idleBefore, cpuJiffies());
        log(`idle lab: ${idleLabCores.toFixed(2)} cores busy`);
        const noopPlan = await must("no-op plan", () => ws.plan({ detailedExitcode: true, args: p }));
        const noopPlanNoRefresh = await must("no-op plan -refresh=false", () => ws.plan({ detailedExitcode: true, args: [...p, "-refresh=false"] }));
        ws.synth(cluster((c) => (c.nodes[0].meta = { bench: "one-node" })));
        const oneNodeApply = await must("one-node change apply", () => ws.apply({ args: p }));
        ws.synth(cluster((c) => {
          c.nodes[0].meta = { bench: "one-node" };
          c.consul.extraConfig = 'log_level = "DEBUG"\n';
        }));
        const everyNodeApply = await must("every-node change apply", () => ws.apply({ args: p, timeoutMs: 1800000 }));
        figures.push({ vms, batchSize, parallelism, steps, init, freshApply, idleLabCores, noopPlan, noopPlanNoRefresh, oneNodeApply, everyNodeApply });
      } finally {
        lab.cleanup();
      }
    }
  }

  const load = { before: loadBefore, after: os.loadavg() };
  const report = { started: started.toISOString(), engine, cpus: os.cpus().length, load, figures };
  if (json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  const out: string[] = [];
  out.push(`### \`npm run bench:engine\` (${engine}) — ${started.toISOString()}`, "");
  out.push(`${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; -parallelism=${parallelism}; one run per case; the lab runs the real Consul 1.14.11 (docs/lab.md).`, "");
  out.push(`Load average (1, 5, 15 min) before: ${load.before.map((l) => l.toFixed(2)).join(", ")}; after: ${load.after.map((l) => l.toFixed(2)).join(", ")}.`, "");
  out.push("Each cell: wall time (engine CPU seconds; cores busy on the whole machine meanwhile, out of " + os.cpus().length + ").", "");
  const cell = (f: Phase) => `${secs(f.ms)} (${f.engineCpuS.toFixed(1)} s; ${f.machineCores.toFixed(1)})`;
  out.push("| VMs | batch | fresh apply | idle lab | no-op plan | no-op plan, -refresh=false | one-node change | every-node change (Consul) |", "|---:|---|---:|---:|---:|---:|---:|---:|");
  for (const f of figures) out.push(`| ${f.vms} | ${f.batchSize} | ${cell(f.freshApply)} | ${f.idleLabCores.toFixed(2)} cores | ${cell(f.noopPlan)} | ${cell(f.noopPlanNoRefresh)} | ${cell(f.oneNodeApply)} | ${cell(f.everyNodeApply)} |`);
  out.push("");
  out.push("Fresh apply, where the time goes: provisionings on the longest dependency chain, the engine's mean time per provisioning, and that product (the wall time if each VM did its own work on its own cores, as real VMs do).", "");
  out.push("| VMs | batch | chain (provisionings) | mean provisioning | chain × mean at 2 VMs | measured |", "|---:|---|---:|---:|---:|---:|");
  const baseMean = (b: number | string) => figures.find((x) => x.vms === Math.min(...sizes) && String(x.batchSize) === String(b))?.freshApply.meanProvisioningS ?? NaN;
  for (const f of figures) out.push(`| ${f.vms} | ${f.batchSize} | ${f.steps} | ${f.freshApply.meanProvisioningS.toFixed(1)} s | ${(f.steps * baseMean(f.batchSize)).toFixed(1)} s | ${secs(f.freshApply.ms)} |`);
  out.push("");
  const find = (vms: number, b: number | string) => figures.find((f) => f.vms === vms && String(f.batchSize) === String(b));
  const small = Math.min(...sizes);
  const large = Math.max(...sizes);
  const rows: string[] = [];
  const target = (name: string, value: number | undefined, limit: string, pass: boolean | undefined) =>
    rows.push(`| ${name} | ${value === undefined || Number.isNaN(value) ? "n/a" : value.toFixed(2)} | ${limit} | ${pass === undefined ? "n/a" : pass ? "PASS" : "**missed**"} |`);
  const fresh25 = find(large, "25%");
  const fresh2 = find(small, "25%") ?? find(small, 1);
  if (fresh25 && fresh2) {
    const r = fresh25.freshApply.ms / fresh2.freshApply.ms;
    target(`fresh apply, ${large} VMs with 25% batches ÷ ${small} VMs`, r, "≤ 3×", r <= 3);
  }
  for (const b of batches) {
    const l = find(large, b);
    const s = find(small, b);
    if (l && s) {
      const r = l.oneNodeApply.ms / s.oneNodeApply.ms;
      target(`one-node change, ${large} ÷ ${small} VMs (batch ${b})`, r, "≤ 1.5×", r <= 1.5);
    }
  }
  for (const f of figures.filter((x) => x.vms === large)) target(`no-op plan, ${large} VMs (batch ${f.batchSize}), seconds`, f.noopPlan.ms / 1000, "< 2 s", f.noopPlan.ms < 2000);
  out.push("| target | value | limit | result |", "|---|---:|---|---|", ...rows, "");
  process.stdout.write(`${out.join("\n")}\n`);
  // Only a complete run (every default size and batch) replaces the committed report: a
  // partial one (--vms 2, BENCH_ENGINE_SIZES) is printed only.
  const complete = sizes.join(",") === "2,8,16" && batches.map(String).join(",") === "1,25%";
  if (!complete && !argv.includes("--no-write")) process.stderr.write("bench:engine: a partial run (not the sizes 2,8,16 and batches 1,25%): printed only, docs/generated/bench-engine.md left as it was\n");
  if (complete && !argv.includes("--no-write")) {
    const dir = path.join(__dirname, "..", "docs", "generated");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "bench-engine.json"), `${JSON.stringify(report, null, 2)}\n`);
    fs.writeFileSync(path.join(dir, "bench-engine.md"), `${BENCH_ENGINE_HEADER}\n\n${out.join("\n")}\n`);
    process.stderr.write("bench:engine: wrote docs/generated/bench-engine.md and bench-engine.json\n");
  }
  return 0;
}

const BENCH_ENGINE_HEADER = "<!-- Generated by sudo npm run bench:engine (scripts/bench-engine.ts); do not edit: run it again -->";

// Interrupted (Ctrl-C, kill): exit normally, so that the labs' exit hook (sandbox.ts) stops
// their processes and removes their namespaces.
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130));

main().then(
  (code) => (process.exitCode = code),
  (e) => {
    process.stderr.write(`bench:engine failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
