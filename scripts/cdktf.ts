/**
 * `npm run synth|diff|deploy -- [cdktf options] [stack patterns]`: cdktf, with what the
 * project's commands need set, so that an operator types no environment by hand.
 *
 * 1. Loads and validates the description (CLUSTER_FILE, default the example) first: each
 *    problem is printed once and cdktf is not started (cdktf would echo the app's stderr a
 *    second time, inside its own error block).
 * 2. Says which description it loaded and its stack names (stderr), loudly for the example,
 *    and, once, what a cluster without ACLs gives away (docs/trust-model.md).
 * 3. diff/deploy: refused without CLUSTER_FILE (the example is placeholders); every stack
 *    pattern must match a stack of that description, else it stops
 *    and names the description (instead of cdktf's bare "Could not find stack"). Without a
 *    pattern: every stack of the description (diff runs once per stack: `cdktf diff` takes
 *    one). Deploying a subset adds --ignore-missing-stack-dependencies (the jobs stack
 *    declares the nodes stack as a dependency; cdktf refuses a subset otherwise).
 * 4. Runs cdktf with CHECKPOINT_DISABLE=1 (no call to HashiCorp's checkpoint service) and
 *    CLUSTER_FILE set to the file it checked. When stdout is not a terminal (CI, a pipe):
 *    CI=1 and FORCE_COLOR=0 (no spinner frames, no colour codes) and --no-color for
 *    Terraform's own output.
 *    Off a terminal cdktf's output passes through this wrapper, which drops the spinner
 *    frames cdktf (ink) still draws when it fails (e.g. "⠹  Synthesizing").
 * 5. `diff --detailed-exitcode` (ours, as Terraform's `plan -detailed-exitcode`; cdktf has
 *    none): exit 0 no change in any stack, 2 changes in some stack, 1 error. The plan
 *    output of each stack is read for Terraform's "No changes." / "Plan: …" / "Changes to
 *    Outputs:" lines. Without the option, diff exits 0 on success as before.
 * Everything else is passed to cdktf unchanged, e.g. `npm run deploy -- --auto-approve`.
 */
import { spawn } from "child_process";
import * as path from "path";
import { ANNOUNCED_ENV, announceSelectedDescription } from "../constructs/description/selection";

const REPO_ROOT = path.resolve(__dirname, "..");
const COMMANDS = ["synth", "diff", "deploy"] as const;
type Command = (typeof COMMANDS)[number];
/** cdktf options that take a value (the next argument is not a stack pattern). */
const VALUE_OPTIONS = new Set(["-a", "--app", "-o", "--output", "--var", "--var-file", "--parallelism", "--terraform-parallelism", "--outputs-file", "--log-level"]);

/** cdktf's stack patterns are globs (`*`, `?`). */
export function globMatches(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
  return re.test(name);
}

/** Splits cdktf arguments into options (with their values) and positional stack patterns. */
export function splitArgs(args: string[]): { options: string[]; patterns: string[] } {
  const options: string[] = [];
  const patterns: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a.startsWith("-")) {
      options.push(a);
      if (VALUE_OPTIONS.has(a) && i + 1 < args.length) options.push(args[++i]);
    } else patterns.push(a);
  }
  return { options, patterns };
}

/** Our own option (cdktf diff has no such thing); taken out before cdktf sees the arguments. */
export const DETAILED_EXITCODE = "--detailed-exitcode";

/** The frames of cdktf's spinner (ink-spinner "dots"), drawn at the start of a line. */
const SPINNER_LINE = /^[\u2800-\u28ff]+ {1,2}\S.*$/;

/** A chunk of cdktf output with the spinner-frame lines removed (off a terminal they are noise). */
export function withoutSpinnerFrames(text: string): string {
  return text
    .split("\n")
    .filter((l) => !SPINNER_LINE.test(l.replace(/\r/g, "").trim()))
    .join("\n");
}

/**
 * What a stack's `cdktf diff` output says Terraform planned, as `terraform plan
 * -detailed-exitcode` would exit: 0 no change, 2 changes (resources or outputs), undefined
 * when the output says neither (then the caller reports an error: nothing to go by).
 */
export function planOutcome(output: string): 0 | 2 | undefined {
  if (/^\S*\s*Plan: \d+ to (add|import)/m.test(output) || /^\S*\s*Changes to Outputs:/m.test(output)) return 2;
  if (/No changes\. (Your infrastructure matches the configuration|Your infrastructure still matches)/.test(output)) return 0;
  return undefined;
}

interface RunResult {
  status: number;
  stdout: string;
}

/** Runs cdktf; on a terminal with inherited stdio, else piped through (spinner frames dropped) and kept. */
function runCdktf(cdktf: string, args: string[], env: NodeJS.ProcessEnv, through: boolean): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cdktf, args, { cwd: REPO_ROOT, env, stdio: through ? ["inherit", "pipe", "pipe"] : "inherit" });
    let stdout = "";
    if (through) {
      // whole lines only, so that a frame split across two chunks is still recognized
      const relay = (sink: NodeJS.WriteStream, keep: boolean) => {
        let pending = "";
        return {
          data: (chunk: Buffer) => {
            pending += chunk.toString("utf8");
            const cut = pending.lastIndexOf("\n");
            if (cut < 0) return;
            const lines = withoutSpinnerFrames(pending.slice(0, cut + 1));
            pending = pending.slice(cut + 1);
            if (keep) stdout += lines;
            sink.write(lines);
          },
          end: () => {
            const rest = withoutSpinnerFrames(pending);
            if (keep) stdout += rest;
            sink.write(rest);
          },
        };
      };
      const out = relay(process.stdout, true);
      const err = relay(process.stderr, false);
      child.stdout!.on("data", out.data);
      child.stderr!.on("data", err.data);
      child.on("close", (code) => {
        out.end();
        err.end();
        resolve({ status: code ?? 1, stdout });
      });
    } else child.on("close", (code) => resolve({ status: code ?? 1, stdout }));
    child.on("error", reject);
  });
}

async function main(argv: string[]): Promise<number> {
  const command = argv[0] as Command;
  if (!COMMANDS.includes(command)) {
    process.stderr.write(`usage: tsx scripts/cdktf.ts ${COMMANDS.join("|")} [cdktf options] [stacks]\n`);
    return 2;
  }
  const loaded = announceSelectedDescription();
  if (!loaded.ok) return 1;
  process.stderr.write(loaded.warning);
  const detailed = argv.includes(DETAILED_EXITCODE);
  if (detailed && command !== "diff") {
    process.stderr.write(`error: ${DETAILED_EXITCODE} is an option of diff only\n`);
    return 1;
  }
  const { options, patterns } = splitArgs(argv.slice(1).filter((a) => a !== DETAILED_EXITCODE));
  const tty = process.stdout.isTTY === true;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CHECKPOINT_DISABLE: "1",
    CLUSTER_FILE: loaded.selection.absolutePath,
    [ANNOUNCED_ENV]: "1",
    ...(tty ? {} : { CI: process.env.CI || "1", FORCE_COLOR: "0", NO_COLOR: "1" }),
  };
  const noColor = !tty && command !== "synth" && !options.includes("--no-color") ? ["--no-color"] : [];

  let runs: string[][];
  if (command === "synth") {
    if (patterns.length) {
      process.stderr.write(`error: synth takes no stack names (it synthesizes every stack of ${loaded.selection.file}); got ${patterns.join(" ")}\n`);
      return 2;
    }
    runs = [["synth", ...options]];
  } else {
    const stacks = patterns.length ? loaded.stacks.filter((s) => patterns.some((p) => globMatches(p, s))) : loaded.stacks;
    const unmatched = patterns.filter((p) => !loaded.stacks.some((s) => globMatches(p, s)));
    if (unmatched.length) {
      process.stderr.write(
        `error: ${unmatched.map((p) => `'${p}'`).join(", ")} matches no stack of ${loaded.selection.file} (its stacks: ${loaded.stacks.join(", ")}).\n` +
          (loaded.selection.fromEnv ? "Check the name, or CLUSTER_FILE.\n" : "CLUSTER_FILE is not set, so the example was loaded: set CLUSTER_FILE=clusters/<team>.yaml.\n"),
      );
      return 1;
    }
    // The example is placeholders (example.org): a diff or deploy of it is never what an operator means.
    if (!loaded.selection.fromEnv) {
      process.stderr.write(
        `error: refusing to ${command} without CLUSTER_FILE: that would be the example cluster. ` +
          `Set CLUSTER_FILE=clusters/<team>.yaml (or CLUSTER_FILE=${loaded.selection.file} if you do mean the example).\n`,
      );
      return 1;
    }
    if (command === "diff") runs = stacks.map((s) => ["diff", ...options, ...noColor, s]);
    else {
      const subset = stacks.length < loaded.stacks.length && !options.includes("--ignore-missing-stack-dependencies");
      if (subset) process.stderr.write(`deploying ${stacks.join(", ")} alone: adding --ignore-missing-stack-dependencies\n`);
      runs = [["deploy", ...options, ...noColor, ...(subset ? ["--ignore-missing-stack-dependencies"] : []), ...stacks]];
    }
  }
  const cdktf = path.join(REPO_ROOT, "node_modules", ".bin", "cdktf");
  let changed = false;
  for (const args of runs) {
    process.stderr.write(`running: cdktf ${args.join(" ")} (CHECKPOINT_DISABLE=1${tty ? "" : ", no colours or spinners: not a terminal"})\n`);
    const r = await runCdktf(cdktf, args, env, !tty || detailed);
    // Terraform's -detailed-exitcode: any error is 1 (cdktf's own exit codes vary)
    if (r.status !== 0) return detailed ? 1 : r.status;
    if (detailed) {
      const outcome = planOutcome(r.stdout);
      if (outcome === undefined) {
        process.stderr.write(`error: cannot tell from the output of cdktf ${args.join(" ")} whether Terraform planned changes (no "No changes." nor "Plan: …" line)\n`);
        return 1;
      }
      if (outcome === 2) changed = true;
    }
  }
  if (detailed) process.stderr.write(changed ? `changes planned (exit 2, ${DETAILED_EXITCODE})\n` : `no changes in ${runs.length === 1 ? "the stack" : `any of the ${runs.length} stacks`} (exit 0, ${DETAILED_EXITCODE})\n`);
  return detailed && changed ? 2 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e) => {
      process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
