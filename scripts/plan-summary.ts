/**
 * `npm run summary [-- --base-ref REF | --base DIR] [--out DIR] [--plan STACK=FILE]... [--title TEXT] [--json] [--detailed-exitcode]`
 *
 * Prints, as Markdown (for a CI comment), what a change would do per node and per job,
 * and a one-line total (see docs/plan-review.md). Compares two synth outputs:
 * - the baseline: `--base DIR` (e.g. main's CI artifact), or `--base-ref REF`, which checks
 *   REF out in a temporary git worktree (node_modules linked), synthesizes the same
 *   description path there with REF's own code, and removes the worktree afterwards;
 *   neither: no baseline, everything is new;
 * - the change: `--out DIR` (default ./cdktf.out), or, with `--base-ref` and no `--out`,
 *   a fresh synth of the working tree (so it cannot be stale).
 * With `--plan nodes=plan.json` (the output of `terraform show -json PLANFILE` for that
 * stack; STACK is the stack name or its suffix after the cluster name) the rows of that
 * stack are Terraform's real plan instead.
 * Without `--base-ref` the summary reads synth outputs only, not the description: stderr and
 * the default heading name the directory and the stacks it holds (not whatever CLUSTER_FILE
 * would select); with CLUSTER_FILE set, a directory holding other stacks is pointed out.
 * With `--base-ref` the description (CLUSTER_FILE, default the example) is synthesized, and
 * it and its stacks are named on stderr. stdout holds only the summary.
 *
 * Exit: 0, or 2 on an error. With `--detailed-exitcode` (as Terraform's plan): 0 no change,
 * 2 changes, 1 an error or no comparison possible.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ANNOUNCED_ENV, announceSelectedDescription, loadSelectedDescription, selectedDescription, type SelectedDescription } from "../constructs/description/selection";
import { parsePlanJson, renderPlanMarkdown, summarizePlan, type TerraformPlanJson } from "../plan-review/summary";
import { readSynthOutput } from "./lib/synth-output";

const REPO_ROOT = path.resolve(__dirname, "..");
const USAGE =
  "usage: npm run summary -- [--base-ref REF | --base DIR] [--out DIR (default cdktf.out)] [--plan STACK=FILE (terraform show -json PLANFILE; repeatable)] [--title TEXT] [--json] [--detailed-exitcode (0 no change, 2 changes, 1 error)]";

/** "nodes" → the one stack named "<cluster>-nodes"; a full stack name as is. */
function resolveStack(name: string, stacks: string[]): string {
  if (stacks.includes(name)) return name;
  const bySuffix = stacks.filter((s) => s.endsWith(`-${name}`));
  if (bySuffix.length === 1) return bySuffix[0];
  throw new Error(`--plan ${name}=…: no single synthesized stack named ${name} or *-${name} (stacks: ${stacks.join(", ")})\n${USAGE}`);
}

/** Synthesizes `description` with the code in `repo` into `outdir`; the app's error output when it fails. */
function synthAt(repo: string, description: string, outdir: string): string | undefined {
  const r = spawnSync(path.join(repo, "node_modules", ".bin", "tsx"), ["main.ts"], {
    cwd: repo,
    encoding: "utf8",
    env: { ...process.env, CLUSTER_FILE: description, CDKTF_OUTDIR: outdir, [ANNOUNCED_ENV]: "1" },
  });
  if (r.status === 0) return undefined;
  return (r.stderr || r.stdout || String(r.error ?? `exit ${r.status}`)).trim();
}

function git(args: string[]): { status: number | null; out: string } {
  const r = spawnSync("git", args, { cwd: REPO_ROOT, encoding: "utf8" });
  return { status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

/**
 * The baseline synthesized at a git ref: `{ dir }`, or `{ note }` when the ref has no such
 * description or does not synthesize. `cleanup` removes the worktree in every case.
 */
function baselineAtRef(ref: string, sel: SelectedDescription, tmp: string): { dir?: string; note?: string; cleanup: () => void } {
  const worktree = path.join(tmp, "base");
  const added = git(["worktree", "add", "--detach", "--quiet", worktree, ref]);
  if (added.status !== 0) throw new Error(`cannot check out ${ref}: ${added.out}`);
  const cleanup = () => {
    git(["worktree", "remove", "--force", worktree]);
    git(["worktree", "prune"]);
  };
  try {
    fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(worktree, "node_modules"));
    // A description inside the repository is read as it was at REF; one outside it is the same file.
    const rel = path.relative(REPO_ROOT, sel.absolutePath);
    const inside = !rel.startsWith("..") && !path.isAbsolute(rel);
    const description = inside ? path.join(worktree, rel) : sel.absolutePath;
    process.stderr.write(`baseline: ${ref} (${git(["rev-parse", "--short", ref]).out}), synthesizing ${inside ? `${rel} as it was there` : sel.file} with its code\n`);
    if (!fs.existsSync(description)) return { note: `${rel} does not exist at ${ref}: every resource is new.`, cleanup };
    const dir = path.join(tmp, "base-out");
    const failed = synthAt(worktree, description, dir);
    if (failed) return { note: `The description does not synthesize at ${ref}, so there is no comparison: ${failed.split("\n").slice(0, 3).join(" ")}`, cleanup };
    return { dir, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** Set from the arguments before anything can fail: errors exit 1 instead of 2 under --detailed-exitcode. */
let detailedExitcode = false;

function main(argv: string[]): number {
  detailedExitcode = argv.includes("--detailed-exitcode");
  const failure = detailedExitcode ? 1 : 2;
  let out: string | undefined;
  let base: string | undefined;
  let baseRef: string | undefined;
  let title: string | undefined;
  let json = false;
  const planFiles: [string, string][] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === "--out") out = value();
    else if (a === "--base") base = value();
    else if (a === "--base-ref") baseRef = value();
    else if (a === "--title") title = value();
    else if (a === "--json") json = true;
    else if (a === "--detailed-exitcode") detailedExitcode = true;
    else if (a === "--plan") {
      const v = value();
      const eq = v.indexOf("=");
      if (eq <= 0 || eq === v.length - 1) throw new Error(`--plan needs STACK=FILE, got ${v}\n${USAGE}`);
      planFiles.push([v.slice(0, eq), v.slice(eq + 1)]);
    }
    else if (a === "-h" || a === "--help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  if (base !== undefined && baseRef !== undefined) throw new Error(`--base and --base-ref exclude each other\n${USAGE}`);

  // The description is read only to synthesize it (--base-ref); otherwise the synth outputs are all there is.
  let loaded: ReturnType<typeof announceSelectedDescription> | undefined;
  if (baseRef !== undefined) {
    loaded = announceSelectedDescription();
    if (!loaded.ok) return failure;
  }

  const tmp = baseRef !== undefined ? fs.mkdtempSync(path.join(os.tmpdir(), "plan-summary-")) : undefined;
  let cleanupBase = () => {};
  try {
    let baseDir = base;
    const notes: string[] = [];
    if (baseRef !== undefined) {
      const b = baselineAtRef(baseRef, loaded!.selection, tmp!);
      cleanupBase = b.cleanup;
      if (b.note) notes.push(b.note);
      baseDir = b.dir;
      if (!b.dir && !b.note?.includes("every resource is new")) {
        // no comparison possible: say so instead of a misleading "everything is new"
        process.stdout.write(json ? `${JSON.stringify({ notes }, null, 2)}\n` : `### ${title ?? `Plan review against ${baseRef}`}\n\n> ${notes[0]}\n`);
        return detailedExitcode ? 1 : 0;
      }
    }
    let outDir = out ?? "cdktf.out";
    if (baseRef !== undefined && out === undefined) {
      outDir = path.join(tmp!, "head-out");
      process.stderr.write(`change: the working tree, synthesizing ${loaded!.selection.file}\n`);
      const failed = synthAt(REPO_ROOT, loaded!.selection.absolutePath, outDir);
      if (failed) throw new Error(`the working tree does not synthesize: ${failed}`);
    }
    const head = readSynthOutput(outDir);
    const headStacks = Object.keys(head.stacks);
    if (baseRef === undefined || out !== undefined) {
      process.stderr.write(`summarizing ${outDir} (stacks ${headStacks.join(", ")}) against ${baseDir ?? "no baseline"}\n`);
      const sel = selectedDescription();
      if (sel.fromEnv) {
        const wanted = loadSelectedDescription();
        if (wanted.ok && !wanted.stacks.every((st) => headStacks.includes(st)))
          process.stderr.write(`NOTE: ${outDir} does not hold the stacks of CLUSTER_FILE=${sel.file} (${wanted.stacks.join(", ")}): run \`npm run synth\` first to summarize that description\n`);
      }
    }
    const plans: Record<string, TerraformPlanJson> = {};
    for (const [name, file] of planFiles) {
      const stack = resolveStack(name, Object.keys(head.stacks));
      let parsed: unknown;
      try {
        parsed = JSON.parse(fs.readFileSync(file, "utf8"));
      } catch (e) {
        throw new Error(`--plan ${name}=${file}: ${e instanceof Error ? e.message : String(e)}`);
      }
      plans[stack] = parsePlanJson(parsed, file);
    }
    const summary = summarizePlan(baseDir === undefined ? undefined : readSynthOutput(baseDir), head, { plans });
    const withNotes = { ...summary, notes: [...notes.filter((n) => !summary.notes.includes(n)), ...summary.notes] };
    const heading = title ?? (baseRef !== undefined ? `Plan review against ${baseRef}` : `Plan review of ${outDir} (${headStacks.join(", ")})`);
    process.stdout.write(json ? `${JSON.stringify(withNotes, null, 2)}\n` : renderPlanMarkdown(withNotes, heading));
    if (detailedExitcode) process.stderr.write(summary.rows.length ? "changes (exit 2, --detailed-exitcode)\n" : "no changes (exit 0, --detailed-exitcode)\n");
    return detailedExitcode && summary.rows.length ? 2 : 0;
  } finally {
    cleanupBase();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = detailedExitcode ? 1 : 2;
}
