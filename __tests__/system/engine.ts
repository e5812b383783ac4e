/**
 * Runs the REAL Terraform and OpenTofu on what we synthesize, inside a lab's operator
 * namespace (lab.ts), with providers from the local mirror prepared by `npm run engines`
 * (no registry is contacted; CHECKPOINT_DISABLE=1, TF_IN_AUTOMATION=1).
 *
 *   const pre = enginePrerequisites();              // for itIf(pre.ok, pre.reason)
 *   const ws = new Workspace(lab, "tofu", { vrrp_password: "s3cret" });   // secrets → TF_VAR_*
 *   const out = ws.synth(cluster);                  // cdktf synth into <ws.dir>/cdktf.out
 *   await ws.init(); await ws.validate();
 *   const plan = await ws.plan({ detailedExitcode: true });  // status 0 none, 2 changes, 1 error
 *   const run = await ws.apply();                   // -auto-approve; run.ok, run.output, run.ms
 *   const json = await ws.showPlanJson();           // `show -json` of the last saved plan
 *   const state = await ws.showStateJson();         // `show -json` of the state
 *   ws.run(["state", "list"])                       // any other command
 *   ws.assertNoSecret(run)                          // throws if a secret value appears in output
 *   ws.editStack((json) => ...); ws.connectionTimeout("15s")   // engine-behaviour tests
 *
 * One workspace = one engine + one directory (its own state: the nodes stack's local backend
 * writes `<ws.dir>/terraform.<stack>.tfstate`). Re-synthesizing a changed description into
 * the same workspace is a change of the description between two deploys.
 *
 * The engine's environment is built from scratch (PATH, HOME, the CLI config, the
 * secrets): nothing of the test runner's environment leaks in. Output is returned, never
 * printed: a failing assertion may show it, so tests must not make secrets part of it
 * (assertNoSecret).
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { App } from "cdktf";
import { defineCluster } from "../../constructs/cluster";
import type { Cluster } from "../../constructs/description/schema";
import { nodesStackName } from "../../constructs/nodes-stack";
import { readSynthOutput } from "../../scripts/lib/synth-output";
import { REPO_ROOT, hasCommand } from "../helpers/synth";
import type { Lab } from "./lab";

export type EngineName = "terraform" | "tofu";
export const ENGINE_NAMES: EngineName[] = ["terraform", "tofu"];
export const ENGINES_DIR = path.join(REPO_ROOT, ".engines");
export const CLI_CONFIG = path.join(ENGINES_DIR, "terraform.rc");

/** The engine's binary: Terraform from PATH (the image has 1.11.4), OpenTofu from `npm run engines`. */
export function engineBinary(name: EngineName): string | undefined {
  if (name === "tofu") {
    const bin = path.join(ENGINES_DIR, "bin", "tofu");
    return fs.existsSync(bin) ? bin : undefined;
  }
  if (!hasCommand(name)) return undefined;
  const dir = (process.env.PATH ?? "").split(path.delimiter).find((d) => fs.existsSync(path.join(d, name)));
  return dir ? path.join(dir, name) : undefined;
}

/** Both engines and the mirror's CLI config are there; else the reason (for itIf). */
export function enginePrerequisites(): { ok: boolean; reason: string } {
  const missing = [
    ...(engineBinary("terraform") ? [] : ["terraform (not on PATH)"]),
    ...(engineBinary("tofu") ? [] : [".engines/bin/tofu"]),
    ...(fs.existsSync(CLI_CONFIG) ? [] : [".engines/terraform.rc"]),
  ];
  return { ok: missing.length === 0, reason: missing.length ? `missing ${missing.join(", ")}: run \`npm run engines\`` : "" };
}

export interface EngineRun {
  args: string[];
  status: number | null;
  ok: boolean;
  stdout: string;
  stderr: string;
  /** stdout then stderr, for messages. */
  output: string;
  ms: number;
  /**
   * CPU seconds (user + system) of the engine and the provider plugins it started, when the
   * workspace measures them (`measureCpu`, the engine benchmark): GNU time's rusage of the
   * process tree. The SSH client is Go code inside the engine, so its crypto counts here;
   * the bastion's and the VMs' sshd do not.
   */
  cpuSeconds?: number;
}

export class Workspace {
  readonly dir: string;
  /** Measure each engine run's CPU time (EngineRun.cpuSeconds) with GNU time: the engine benchmark. */
  measureCpu = false;
  readonly bin: string;
  /** The stack the commands run in (the nodes stack unless set). */
  stack?: string;
  private lastPlan?: string;

  constructor(
    readonly lab: Pick<Lab, "sandbox" | "opNs">,
    readonly engine: EngineName,
    readonly secrets: Record<string, string> = {},
    dir?: string,
  ) {
    const bin = engineBinary(engine);
    if (!bin) throw new Error(`${engine} not found: run \`npm run engines\``);
    this.bin = bin;
    this.dir = dir ?? fs.mkdtempSync(path.join(lab.sandbox.dir, `ws-${engine}-`));
    fs.mkdirSync(path.join(this.dir, "home"), { recursive: true });
  }

  get outdir(): string {
    return path.join(this.dir, "cdktf.out");
  }

  stackDir(stack = this.stack): string {
    if (!stack) throw new Error("synthesize first (or set ws.stack)");
    return path.join(this.outdir, "stacks", stack);
  }

  /** cdktf synth of `cluster` (the same defineCluster as main.ts) into this workspace. */
  synth(cluster: Cluster): ReturnType<typeof readSynthOutput> {
    const app = new App({ outdir: this.outdir, skipValidation: false });
    defineCluster(app, cluster);
    app.synth();
    this.stack ??= nodesStackName(cluster);
    return readSynthOutput(this.outdir);
  }

  /**
   * Edits the synthesized cdk.tf.json of the current stack in place (tests of engine
   * behaviour, e.g. a shorter connection `timeout` so that a refused key fails fast).
   */
  editStack(edit: (json: any) => void): void {
    const file = path.join(this.stackDir(), "cdk.tf.json");
    const json = JSON.parse(fs.readFileSync(file, "utf8"));
    edit(json);
    fs.writeFileSync(file, JSON.stringify(json, null, 2));
  }

  /** Sets every SSH connection's `timeout` (the engines retry a refused connection until it). */
  connectionTimeout(timeout: string): void {
    this.editStack((json) => {
      for (const type of ["null_resource", "terraform_data"]) for (const r of Object.values<any>(json.resource?.[type] ?? {})) if (r.connection) r.connection.timeout = timeout;
    });
  }

  /** The environment of every engine run. */
  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: path.join(this.dir, "home"),
      TF_CLI_CONFIG_FILE: CLI_CONFIG,
      CHECKPOINT_DISABLE: "1",
      TF_IN_AUTOMATION: "1",
      TF_INPUT: "0",
      ...Object.fromEntries(Object.entries(this.secrets).map(([k, v]) => [`TF_VAR_${k}`, v])),
      ...extra,
    };
  }

  /** Runs `<engine> -chdir=<stack dir> ARGS` in the operator namespace. Never throws. */
  run(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<EngineRun> {
    const cpuFile = this.measureCpu ? path.join(this.dir, `cpu-${Date.now()}-${Math.random().toString(36).slice(2)}`) : undefined;
    const full = [
      ...(cpuFile ? ["/usr/bin/time", "-q", "-f", "%U %S", "-o", cpuFile] : []),
      "ip", "netns", "exec", this.lab.opNs, this.bin, `-chdir=${this.stackDir()}`, ...args,
    ];
    const start = Date.now();
    return new Promise((resolve) => {
      const child = spawn(full[0], full.slice(1), { env: this.env(opts.env), stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (b) => (stdout += b));
      child.stderr.on("data", (b) => (stderr += b));
      const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 300000);
      child.on("close", (status, signal) => {
        clearTimeout(timer);
        if (signal) stderr += `\n(${this.engine} killed by ${signal} after ${Date.now() - start} ms)`;
        const ms = Date.now() - start;
        let cpuSeconds: number | undefined;
        if (cpuFile && fs.existsSync(cpuFile)) {
          const [user, sys] = fs.readFileSync(cpuFile, "utf8").trim().split(/\s+/).slice(-2).map(Number);
          cpuSeconds = user + sys;
          fs.rmSync(cpuFile, { force: true });
        }
        resolve({ args, status, ok: status === 0, stdout, stderr, output: `${stdout}\n${stderr}`, ms, cpuSeconds });
      });
    });
  }

  init(): Promise<EngineRun> {
    return this.run(["init", "-input=false", "-no-color"]);
  }

  validate(): Promise<EngineRun> {
    return this.run(["validate", "-no-color"]);
  }

  /** `plan`, saved to a file for showPlanJson / apply(planFile). */
  plan(opts: { detailedExitcode?: boolean; args?: string[] } = {}): Promise<EngineRun> {
    this.lastPlan = path.join(this.dir, "last.tfplan");
    return this.run(["plan", "-input=false", "-no-color", `-out=${this.lastPlan}`, ...(opts.detailedExitcode ? ["-detailed-exitcode"] : []), ...(opts.args ?? [])]);
  }

  /** `apply -auto-approve` (of the saved plan with `{ planFile: true }`). */
  apply(opts: { planFile?: boolean; args?: string[]; timeoutMs?: number } = {}): Promise<EngineRun> {
    const tail = opts.planFile ? [this.lastPlan ?? "missing-plan"] : [];
    return this.run(["apply", "-input=false", "-no-color", "-auto-approve", ...(opts.args ?? []), ...tail], { timeoutMs: opts.timeoutMs });
  }

  async showPlanJson(): Promise<any> {
    const r = await this.run(["show", "-json", this.lastPlan ?? "missing-plan"]);
    if (!r.ok) throw new Error(`show -json failed: ${r.output}`);
    return JSON.parse(r.stdout);
  }

  async showStateJson(): Promise<any> {
    const r = await this.run(["show", "-json"]);
    if (!r.ok) throw new Error(`show -json failed: ${r.output}`);
    return JSON.parse(r.stdout);
  }

  /** Throws (without quoting it) when a secret value appears in a run's output. */
  assertNoSecret(run: EngineRun): void {
    for (const [k, v] of Object.entries(this.secrets)) if (run.output.includes(v)) throw new Error(`the value of ${k} appears in the output of ${this.engine} ${run.args[0]}`);
  }
}
