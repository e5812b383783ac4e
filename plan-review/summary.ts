/**
 * Plan-review summary: what a synthesized change would do, per node and per job, computed
 * from two synth outputs (the baseline, e.g. main's CI artifact, and the branch's) without
 * Terraform, state or network. Pure: parsed stack JSON (and the rendered files they
 * reference) in, rows and Markdown out. No cdktf import here.
 *
 * It reads the synthesized configuration the way Terraform would plan it against a state
 * that matches the baseline:
 * - an instance only in the branch is a CREATE, only in the baseline a DESTROY (a
 *   destroy-time provisioner then runs: e.g. `terraform_data.node_membership` decommissions
 *   the node);
 * - `null_resource` whose `triggers` changed is a REPLACE (re-provisioned over SSH);
 * - `terraform_data` whose `triggers_replace` changed is a REPLACE, whose `input` changed an
 *   in-place UPDATE;
 * - any other resource whose arguments changed is an UPDATE (a `nomad_job` whose jobspec
 *   changed: a new Nomad deployment, canary first), a REPLACE when a known force-new
 *   argument changed (e.g. `nomad_variable.path`, a jobspec's job ID);
 * - provisioners, connections, `depends_on` and `lifecycle` are not planned by Terraform: a
 *   change there alone is no change.
 * Generic over stacks and resource types: rows are grouped by node when the instance's
 * for_each key or its name is a node's name, by job for `nomad_job.<job>` and resources
 * naming that job (`nomad_variable` at `nomad/jobs/<job>`), the rest under "cluster".
 */

import { COSMETIC, jobIdentity, jobspecDiff, jobspecSettings, variableItemsDiff } from "./jobspec-diff";
import { changedProvisionedFiles, fileChangeDetails, reprovisionMeaning } from "./node-changes";

export type Change = "create" | "update" | "replace" | "destroy";
export const CHANGES: readonly Change[] = ["create", "update", "replace", "destroy"];

/** One synth output: stack name → parsed cdk.tf.json; optionally stack → (relative path → text). */
export interface SynthSet {
  readonly stacks: Record<string, any>;
  readonly files?: Record<string, Record<string, string>>;
}

export type GroupKind = "node" | "job" | "cluster";

export interface PlanRow {
  readonly groupKind: GroupKind;
  /** Node name, job name, or "cluster". */
  readonly group: string;
  readonly stack: string;
  /** Terraform address inside its stack, e.g. `null_resource.node-1_nomad`, `terraform_data.node_membership["node-2"]`. */
  readonly address: string;
  readonly type: string;
  readonly change: Change;
  /** Short reasons: changed trigger keys, jobspec fields old → new, effect. */
  readonly why: string[];
}

export interface PlanSummary {
  readonly rows: PlanRow[];
  readonly totals: Record<Change, number>;
  /** Stack-level remarks (no baseline, backend or provider changed, stack added/removed). */
  readonly notes: string[];
  readonly nodes: string[];
  readonly jobs: string[];
}

export interface SummaryOptions {
  /** Node names (default: from the `nodes` output and `node_membership` for_each keys). */
  readonly nodes?: readonly string[];
  /** Job names (default: the names of `nomad_job` resources). */
  readonly jobs?: readonly string[];
  /** Most "why" items listed per row before "+N more". */
  readonly maxWhy?: number;
  /**
   * Real plans (`terraform show -json PLANFILE`) per stack name: for these stacks the rows
   * are Terraform's own resource changes, not a comparison of synth outputs (see planRows).
   */
  readonly plans?: Record<string, TerraformPlanJson>;
}

interface Instance {
  readonly stack: string;
  readonly type: string;
  readonly name: string;
  readonly key?: string;
  readonly address: string;
  readonly body: Record<string, any>;
  /** The stack's rendered files (relative path → text), for explaining re-provisioning. */
  readonly files: Record<string, string>;
}

/** Arguments Terraform does not plan (meta-arguments, provisioning details). */
const NOT_PLANNED = new Set(["//", "depends_on", "provisioner", "connection", "lifecycle", "provider", "for_each", "count", "timeouts"]);

/** Arguments whose change forces a replacement, per resource type (beyond null_resource/terraform_data). */
const FORCE_NEW: Record<string, readonly string[]> = {
  nomad_variable: ["path", "namespace"],
  consul_key_prefix: ["path_prefix", "datacenter"],
  consul_keys: ["datacenter"],
  consul_config_entry: ["kind", "name", "namespace", "partition"],
  consul_acl_policy: [],
};

export function summarizePlan(base: SynthSet | undefined, head: SynthSet, opts: SummaryOptions = {}): PlanSummary {
  const notes: string[] = [];
  const plans = opts.plans ?? {};
  const baseSet: SynthSet = base ?? { stacks: {} };
  if (!base && Object.keys(head.stacks).some((s) => !(s in plans))) notes.push("No baseline: every resource is new.");
  const baseInst = instances(baseSet);
  const headInst = instances(head);
  const nodes = [...new Set(opts.nodes ?? [...nodeNames(baseSet), ...nodeNames(head), ...planNodeNames(plans)])].sort();
  const jobs = [...new Set(opts.jobs ?? [...jobNames(baseSet), ...jobNames(head)])].sort();
  const maxWhy = opts.maxWhy ?? 4;

  for (const s of Object.keys(head.stacks).sort()) {
    if (base && !(s in base.stacks)) notes.push(`Stack \`${s}\` is new.`);
    else if (base) {
      if (!deepEqual(base.stacks[s]?.terraform?.backend, head.stacks[s]?.terraform?.backend)) notes.push(`Stack \`${s}\`: the state backend changed (run \`terraform init -migrate-state\`).`);
      if (!deepEqual(base.stacks[s]?.provider, head.stacks[s]?.provider)) notes.push(`Stack \`${s}\`: provider configuration changed.`);
    }
  }
  if (base) for (const s of Object.keys(base.stacks).sort()) if (!(s in head.stacks)) notes.push(`Stack \`${s}\` is no longer synthesized: its resources would be destroyed by \`terraform destroy\` in that stack, not by a plan of the others.`);

  const rows: PlanRow[] = [];
  const keys = [...new Set([...baseInst.keys(), ...headInst.keys()])];
  for (const k of keys) {
    const b = baseInst.get(k);
    const h = headInst.get(k);
    const inst = (h ?? b)!;
    if (inst.stack in plans) continue; // the real plan says what happens there (below)
    const res = classify(b, h);
    if (!res) continue;
    if ("note" in res) {
      notes.push(res.note);
      continue;
    }
    const { groupKind, group } = groupOf(inst, nodes, jobs);
    rows.push({ groupKind, group, stack: inst.stack, address: inst.address, type: inst.type, change: res.change, why: [...limit(res.why, maxWhy), ...(res.always ?? [])] });
  }
  for (const [stack, plan] of Object.entries(plans).sort(([a], [b]) => a.localeCompare(b))) {
    const fromPlan = planRows(stack, plan, { base: baseSet.stacks[stack], head: head.stacks[stack] }, nodes, jobs);
    notes.push(...fromPlan.notes);
    rows.push(...fromPlan.rows.map((r) => ({ ...r, why: limit(r.why, maxWhy) })));
  }
  const kindOrder: Record<GroupKind, number> = { node: 0, job: 1, cluster: 2 };
  const groupOrder = (r: PlanRow) => (r.groupKind === "node" ? nodes.indexOf(r.group) : r.groupKind === "job" ? jobs.indexOf(r.group) : 0);
  rows.sort(
    (a, b) =>
      kindOrder[a.groupKind] - kindOrder[b.groupKind] ||
      groupOrder(a) - groupOrder(b) ||
      a.group.localeCompare(b.group) ||
      a.stack.localeCompare(b.stack) ||
      a.address.localeCompare(b.address),
  );
  const totals = { create: 0, update: 0, replace: 0, destroy: 0 } as Record<Change, number>;
  for (const r of rows) totals[r.change]++;
  return { rows, totals, notes, nodes, jobs };
}

/** "Plan: 1 to create, 0 to update, 2 to replace (re-provision), 1 to destroy." or "No changes." */
export function totalLine(s: PlanSummary): string {
  if (s.rows.length === 0) return "No changes: nothing to create, update, replace or destroy.";
  const t = s.totals;
  return `Plan: ${t.create} to create, ${t.update} to update in place, ${t.replace} to replace, ${t.destroy} to destroy (${s.rows.length} resource instance${s.rows.length === 1 ? "" : "s"}).`;
}

/** The summary as Markdown for a CI comment: notes, one table grouped by node and job, the total. */
export function renderPlanMarkdown(s: PlanSummary, title = "Plan review"): string {
  const out: string[] = [`### ${title}`, ""];
  for (const n of s.notes) out.push(`> ${escapeCell(n)}`);
  if (s.notes.length) out.push("");
  if (s.rows.length === 0) {
    out.push(`**${totalLine(s)}**`, "");
    return out.join("\n");
  }
  out.push("| group | resource | change | why |", "|---|---|---|---|");
  let previous = "";
  for (const r of s.rows) {
    const label = r.groupKind === "cluster" ? "cluster" : `${r.groupKind} **${r.group}**`;
    const group = label === previous ? "" : label;
    previous = label;
    const stack = s.rows.some((o) => o !== r && o.address === r.address && o.stack !== r.stack) ? ` (${r.stack})` : "";
    out.push(`| ${group} | \`${escapeCell(r.address)}\`${escapeCell(stack)} | ${CHANGE_MARK[r.change]} ${r.change} | ${escapeCell(r.why.join("; "))} |`);
  }
  out.push("", `**${totalLine(s)}**`, "");
  return out.join("\n");
}

const CHANGE_MARK: Record<Change, string> = { create: "+", update: "~", replace: "-/+", destroy: "-" };

function escapeCell(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}

function limit(why: string[], max: number): string[] {
  return why.length <= max ? why : [...why.slice(0, max), `+${why.length - max} more`];
}

// ---------------------------------------------------------------------------------------
// Instances

function instances(set: SynthSet): Map<string, Instance> {
  const out = new Map<string, Instance>();
  for (const [stack, json] of Object.entries(set.stacks)) {
    const files = set.files?.[stack] ?? {};
    for (const [type, byName] of Object.entries<Record<string, any>>(json?.resource ?? {})) {
      for (const [name, rawBody] of Object.entries<any>(byName)) {
        const body = resolveFiles(rawBody, files) as Record<string, any>;
        const forEach = body.for_each;
        if (forEach && typeof forEach === "object" && !Array.isArray(forEach)) {
          for (const [key, value] of Object.entries(forEach)) {
            const address = `${type}.${name}[${JSON.stringify(key)}]`;
            out.set(`${stack}\u0000${address}`, { stack, type, name, key, address, files, body: substituteEach(body, key, value) as Record<string, any> });
          }
        } else if (Array.isArray(forEach) && forEach.every((v) => typeof v === "string")) {
          for (const key of forEach as string[]) {
            const address = `${type}.${name}[${JSON.stringify(key)}]`;
            out.set(`${stack}\u0000${address}`, { stack, type, name, key, address, files, body: substituteEach(body, key, key) as Record<string, any> });
          }
        } else if (typeof body.count === "number") {
          for (let i = 0; i < body.count; i++) {
            const address = `${type}.${name}[${i}]`;
            out.set(`${stack}\u0000${address}`, { stack, type, name, address, files, body: substituteCount(body, i) as Record<string, any> });
          }
        } else {
          const address = `${type}.${name}`;
          out.set(`${stack}\u0000${address}`, { stack, type, name, address, files, body });
        }
      }
    }
  }
  return out;
}

/** `${file("rendered/x")}` (optionally `${path.module}/…`) → the file's text, when the synth output has it. */
function resolveFiles(v: any, files: Record<string, string>): any {
  if (typeof v === "string") {
    const m = /^\$\{file\("(?:\$\{path\.module\}\/)?([^"$]+)"\)\}$/.exec(v);
    if (m && m[1] in files) return files[m[1]];
    return v;
  }
  if (Array.isArray(v)) return v.map((x) => resolveFiles(x, files));
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveFiles(x, files)]));
  return v;
}

function substituteEach(v: any, key: string, value: any): any {
  if (typeof v === "string") {
    if (v === "${each.key}") return key;
    if (v === "${each.value}") return value;
    const whole = /^\$\{each\.value\.([A-Za-z0-9_]+)\}$/.exec(v);
    if (whole && value && typeof value === "object") return value[whole[1]];
    return v.replace(/\$\{each\.key\}/g, key).replace(/\$\{each\.value\}/g, typeof value === "string" ? value : "${each.value}");
  }
  if (Array.isArray(v)) return v.map((x) => substituteEach(x, key, value));
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).filter(([k]) => k !== "for_each").map(([k, x]) => [k, substituteEach(x, key, value)]));
  return v;
}

function substituteCount(v: any, i: number): any {
  if (typeof v === "string") return v === "${count.index}" ? i : v.replace(/\$\{count\.index\}/g, String(i));
  if (Array.isArray(v)) return v.map((x) => substituteCount(x, i));
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).filter(([k]) => k !== "count").map(([k, x]) => [k, substituteCount(x, i)]));
  return v;
}

// ---------------------------------------------------------------------------------------
// Groups

/** Node names of a synth output: the `nodes` output's keys and the for_each keys of `node_membership`. */
export function nodeNames(set: SynthSet): string[] {
  const names = new Set<string>();
  for (const json of Object.values(set.stacks)) {
    const out = json?.output?.nodes?.value;
    if (out && typeof out === "object" && !Array.isArray(out)) Object.keys(out).forEach((k) => names.add(k));
    for (const byName of Object.values<Record<string, any>>(json?.resource ?? {})) {
      const fe = byName?.node_membership?.for_each;
      if (fe && typeof fe === "object" && !Array.isArray(fe)) Object.keys(fe).forEach((k) => names.add(k));
    }
  }
  return [...names];
}

/** Job names of a synth output: the names of its `nomad_job` resources. */
export function jobNames(set: SynthSet): string[] {
  return Object.values(set.stacks).flatMap((json) => Object.keys(json?.resource?.nomad_job ?? {}));
}

/** `name` contains `token` as a whole word (names use letters, digits and '-': node-1 is not in node-10). */
function containsToken(name: string, token: string): boolean {
  let i = name.indexOf(token);
  while (i >= 0) {
    const before = i === 0 ? "" : name[i - 1];
    const after = name[i + token.length] ?? "";
    if (!/[A-Za-z0-9-]/.test(before) && !/[A-Za-z0-9-]/.test(after)) return true;
    i = name.indexOf(token, i + 1);
  }
  return false;
}

function bestToken(name: string, tokens: readonly string[]): string | undefined {
  return [...tokens].sort((a, b) => b.length - a.length).find((t) => containsToken(name, t));
}

function groupOf(inst: Instance, nodes: readonly string[], jobs: readonly string[]): { groupKind: GroupKind; group: string } {
  if (inst.key !== undefined && nodes.includes(inst.key)) return { groupKind: "node", group: inst.key };
  if (inst.type === "nomad_job") return { groupKind: "job", group: inst.name };
  if (inst.key !== undefined && jobs.includes(inst.key)) return { groupKind: "job", group: inst.key };
  const node = bestToken(inst.name, nodes);
  if (node) return { groupKind: "node", group: node };
  const path = typeof inst.body.path === "string" ? /^nomad\/jobs\/([^/]+)/.exec(inst.body.path)?.[1] : undefined;
  if (path && jobs.includes(path)) return { groupKind: "job", group: path };
  const job = bestToken(inst.name, jobs) ?? (typeof inst.body.name === "string" && jobs.includes(inst.body.name) ? inst.body.name : undefined);
  if (job) return { groupKind: "job", group: job };
  return { groupKind: "cluster", group: "cluster" };
}

// ---------------------------------------------------------------------------------------
// Changes

function hasDestroyProvisioner(body: Record<string, any>): boolean {
  const p = body.provisioner;
  const list: any[] = Array.isArray(p) ? p : p ? [p] : [];
  return list.some((entry) => Object.values(entry ?? {}).some((x: any) => x?.when === "destroy"));
}

function hasCreateProvisioner(body: Record<string, any>): boolean {
  const p = body.provisioner;
  const list: any[] = Array.isArray(p) ? p : p ? [p] : [];
  return list.some((entry) => Object.values(entry ?? {}).some((x: any) => x && x.when !== "destroy"));
}

function classify(b: Instance | undefined, h: Instance | undefined): { change: Change; why: string[]; always?: string[] } | { note: string } | undefined {
  if (!b && h) {
    const why = ["new"];
    if (h.type === "nomad_job") why.push(jobIdentity(h.body.jobspec) ? `registers job ${jobIdentity(h.body.jobspec)}` : "registers the job");
    else if (hasCreateProvisioner(h.body)) why.push("provisions over SSH");
    return { change: "create", why };
  }
  if (b && !h) {
    const why = ["removed from the configuration"];
    if (hasDestroyProvisioner(b.body)) why.push(b.name === "node_membership" ? "destroy-time step runs: decommission (floating IP away, drain, Nomad stop, Consul leave)" : "destroy-time provisioner runs");
    if (b.type === "nomad_job") why.push("job deregistered (its allocations stop)");
    return { change: "destroy", why };
  }
  const bb = b!.body;
  const hb = h!.body;
  switch (b!.type) {
    case "null_resource": {
      const why = mapDiff("", bb.triggers ?? {}, hb.triggers ?? {});
      if (!why.length) return undefined;
      return { change: "replace", why: ["re-provision", ...reprovisionWords(b!, h!, why)] };
    }
    case "terraform_data": {
      const replace = mapDiff("triggers_replace.", bb.triggers_replace ?? {}, hb.triggers_replace ?? {});
      const update = mapDiff("input.", bb.input ?? {}, hb.input ?? {});
      if (replace.length) return { change: "replace", why: [...replace, ...update, ...(hasDestroyProvisioner(bb) ? ["old instance's destroy-time step runs"] : [])] };
      return update.length ? { change: "update", why: update } : undefined;
    }
    default: {
      const changed = argumentDiff(bb, hb);
      if (!changed.length) return undefined;
      // The Nomad provider compares parsed jobs (its jobspec DiffSuppressFunc): a change in
      // comments or layout alone plans nothing.
      if (b!.type === "nomad_job" && changed.length === 1 && changed[0] === "jobspec" && jobspecDiff(String(bb.jobspec), String(hb.jobspec)).join() === COSMETIC) {
        return { note: `\`${b!.address}\` (${b!.stack}): jobspec text changed in comments/formatting only, no plan change.` };
      }
      const forceNew = changed.filter((k) => (FORCE_NEW[b!.type] ?? []).includes(k));
      const why: string[] = [];
      let change: Change = forceNew.length ? "replace" : "update";
      for (const k of changed) {
        if (b!.type === "nomad_job" && k === "jobspec" && typeof bb.jobspec === "string" && typeof hb.jobspec === "string") {
          const idB = jobIdentity(bb.jobspec);
          const idH = jobIdentity(hb.jobspec);
          if (idB !== idH) {
            change = "replace";
            why.push(`job ID ${idB ?? "?"} → ${idH ?? "?"}`);
          }
          why.push(...jobspecDiff(bb.jobspec, hb.jobspec));
        } else if (b!.type === "nomad_variable" && k === "items") {
          why.push(...variableItemsDiff(bb.items ?? {}, hb.items ?? {}, String(hb.path ?? "")));
        } else why.push(...mapDiff("", { [k]: bb[k] }, { [k]: hb[k] }));
      }
      if (b!.type === "nomad_job" && change === "update") why.push(/^\s*canary\s*=\s*[1-9]/m.test(String(hb.jobspec ?? "")) ? "new Nomad deployment (canary first)" : "new Nomad deployment");
      // after the "+N more" cut: a reviewer must always see it
      const always = b!.type === "nomad_job" && typeof hb.jobspec === "string" ? countResetNote(hb.jobspec, hb.preserve_counts === true) : [];
      return { change, why, always };
    }
  }
}

/**
 * A re-provisioning in words, from the rendered files behind the changed `sha256_*`
 * triggers (see node-changes.ts); the bare trigger names when the texts are absent.
 */
function reprovisionWords(b: Instance, h: Instance, triggerWhy: string[]): string[] {
  const { files, otherTriggers } = changedProvisionedFiles(b, h);
  if (!files.length) return triggerWhy;
  const node = typeof h.body.triggers?.node === "string" ? h.body.triggers.node : h.name;
  const component = h.name.slice(h.name.lastIndexOf("_") + 1);
  const others = triggerWhy.filter((w) => otherTriggers.some((k) => w === k || w.startsWith(`${k}:`) || w === `+${k}` || w === `-${k}`));
  return [...reprovisionMeaning(node, component, files), ...files.flatMap(fileChangeDetails), ...others];
}

/**
 * Registering a jobspec sets every group's count to the jobspec's, so a count an operator
 * changed in Nomad (UI, `nomad job scale`) since the last deploy is reset. Said on every job
 * row. With the Nomad Autoscaler the job registers with `preserve_counts` (Nomad provider
 * 2.6+, constructs/kept-count.ts): Nomad keeps the running count, and the row says so.
 */
export function countResetNote(jobspec: string, preserveCounts = false): string[] {
  const settings = jobspecSettings(jobspec);
  const groups = [...settings].filter(([k]) => /(^|\/)group\.[^/]+\/count$/.test(k)).map(([k, v]) => ({ key: k, group: /group\.([^/]+)\/count$/.exec(k)![1], value: v }));
  if (!preserveCounts) {
    return groups.length ? [`count reset to the description's (${groups.map((g) => `${g.group} = ${g.value}`).join(", ")}): a scale made in Nomad (UI, \`nomad job scale\`) is undone`] : [];
  }
  return groups.map((g) => {
    const max = settings.get(`${g.key.slice(0, -"/count".length)}/scaling/max`);
    return `count kept by Nomad (preserve_counts): ${g.group} keeps the count it runs, set by the autoscaler${max ? ` (at most ${max})` : ""}; ${g.value} only when the job is new; not reset`;
  });
}

function argumentDiff(a: Record<string, any>, b: Record<string, any>): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !NOT_PLANNED.has(k)).sort();
  return keys.filter((k) => !deepEqual(a[k], b[k]));
}

const HASH_RE = /^[0-9a-f]{40,64}$/;

/** Leaf differences of two values as "key", "key: old → new", "+key", "-key". */
function mapDiff(prefix: string, a: any, b: any): string[] {
  const la = leaves(a);
  const lb = leaves(b);
  const keys = [...new Set([...la.keys(), ...lb.keys()])].sort();
  const out: string[] = [];
  for (const k of keys) {
    const name = `${prefix}${k}`.replace(/\.$/, "") || "(value)";
    if (!la.has(k)) out.push(`+${name}`);
    else if (!lb.has(k)) out.push(`-${name}`);
    else if (!deepEqual(la.get(k), lb.get(k))) {
      const x = la.get(k);
      const y = lb.get(k);
      out.push(isShown(x) && isShown(y) ? `${name}: ${show(x)} → ${show(y)}` : name);
    }
  }
  return out;
}

function isShown(v: unknown): boolean {
  if (typeof v === "number" || typeof v === "boolean" || v === null) return true;
  return typeof v === "string" && v.length <= 60 && !v.includes("\n") && !HASH_RE.test(v);
}

function show(v: unknown): string {
  return typeof v === "string" ? (v === "" ? '""' : v) : JSON.stringify(v);
}

function leaves(v: any, prefix = "", out = new Map<string, unknown>()): Map<string, unknown> {
  // An absent argument (undefined, as JSON has it) is no leaf: an argument added on one side
  // is "+name.leaf", not "-name" and "+name.leaf".
  if (v === undefined) return out;
  if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) {
    for (const [k, x] of Object.entries(v)) leaves(x, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, v);
  return out;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: any): any {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  return v;
}

// ---------------------------------------------------------------------------------------
// Real plans: `terraform show -json PLANFILE` (Terraform ≥ 1.0, OpenTofu)

/** The parts of Terraform's JSON plan representation read here (format_version 1.x). */
export interface TerraformPlanJson {
  readonly format_version: string;
  readonly terraform_version?: string;
  readonly resource_changes?: readonly PlanResourceChange[];
  readonly resource_drift?: readonly PlanResourceChange[];
  readonly planned_values?: { outputs?: Record<string, { value?: unknown }> };
  readonly prior_state?: { values?: { outputs?: Record<string, { value?: unknown }> } };
  readonly errored?: boolean;
}

export interface PlanResourceChange {
  readonly address: string;
  readonly mode?: string;
  readonly type: string;
  readonly name: string;
  readonly index?: string | number;
  readonly action_reason?: string;
  readonly change: {
    readonly actions: readonly string[];
    readonly before?: unknown;
    readonly after?: unknown;
    readonly after_unknown?: unknown;
    readonly before_sensitive?: unknown;
    readonly after_sensitive?: unknown;
  };
}

/** Throws unless `json` is a plan as `terraform show -json PLANFILE` prints it (not a state, not a config). */
export function parsePlanJson(json: unknown, where = "plan"): TerraformPlanJson {
  const p = json as TerraformPlanJson;
  if (!p || typeof p !== "object" || typeof p.format_version !== "string" || !("planned_values" in p)) {
    throw new Error(`${where} is not the output of \`terraform show -json PLANFILE\` (no format_version/planned_values)`);
  }
  if (p.resource_changes !== undefined && !Array.isArray(p.resource_changes)) throw new Error(`${where}: resource_changes is not a list`);
  return p;
}

/** Node names a plan knows: its `nodes` output (planned and prior) and `node_membership` instance keys. */
function planNodeNames(plans: Record<string, TerraformPlanJson>): string[] {
  const names = new Set<string>();
  for (const p of Object.values(plans)) {
    for (const out of [p.planned_values?.outputs?.nodes?.value, p.prior_state?.values?.outputs?.nodes?.value]) {
      if (out && typeof out === "object" && !Array.isArray(out)) Object.keys(out).forEach((k) => names.add(k));
    }
    for (const rc of p.resource_changes ?? []) if (rc.name === "node_membership" && typeof rc.index === "string") names.add(rc.index);
  }
  return [...names];
}

/** Terraform's actions → our change kinds; no-op and read are no change. */
function changeOfActions(actions: readonly string[]): Change | "forget" | undefined {
  const a = [...actions].sort().join(",");
  if (a === "create") return "create";
  if (a === "delete") return "destroy";
  if (a === "update") return "update";
  if (a === "create,delete") return "replace";
  if (a === "forget") return "forget";
  return undefined;
}

/**
 * A value with every sensitive leaf replaced: `show -json` prints sensitive values in
 * clear, and they must never reach a summary. On the before side a sensitive leaf reads
 * "(sensitive)"; on the after side the same, or "(sensitive, changed)" when it differs from
 * `before` (so a changed secret is a change, an unchanged one is not). Unknown leaves of
 * the after side read "(known after apply)".
 */
function masked(value: any, sensitive: any, unknown?: any, before?: any, afterSide = false): any {
  const at = (x: any, k: string | number) => (x && typeof x === "object" ? x[k] : undefined);
  if (sensitive === true) return afterSide && !deepEqual(value, before) ? "(sensitive, changed)" : "(sensitive)";
  if (unknown === true) return "(known after apply)";
  if (Array.isArray(value)) return value.map((v, i) => masked(v, at(sensitive, i), at(unknown, i), at(before, i), afterSide));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, masked(v, at(sensitive, k), at(unknown, k), at(before, k), afterSide)]));
  }
  return value;
}

/** Attributes Terraform computes itself (never in the configuration): not a reason for a change. */
const COMPUTED_ONLY: Record<string, readonly string[]> = { terraform_data: ["id", "output"], null_resource: ["id"] };

/**
 * Rows of one stack from its real plan. The change kind is Terraform's own action; the
 * "why" is computed like the offline summary's, on the planned before/after attribute
 * values (restricted to the arguments the synthesized configuration sets, when given) with
 * sensitive values masked; destroy-time steps are read from the synthesized configuration
 * (a plan's JSON does not say when a provisioner runs).
 */
export function planRows(
  stack: string,
  plan: TerraformPlanJson,
  config: { base?: any; head?: any },
  nodes: readonly string[],
  jobs: readonly string[],
): { rows: PlanRow[]; notes: string[] } {
  const notes: string[] = [`Stack \`${stack}\`: rows from the real plan (\`terraform show -json\`${plan.terraform_version ? `, Terraform/OpenTofu ${plan.terraform_version}` : ""}).`];
  if (plan.errored) notes.push(`Stack \`${stack}\`: the plan errored; it may be incomplete.`);
  const drift = (plan.resource_drift ?? []).filter((d) => changeOfActions(d.change.actions));
  if (drift.length) notes.push(`Stack \`${stack}\`: ${drift.length} resource instance(s) changed outside Terraform since the last apply: ${drift.map((d) => `\`${d.address}\``).join(", ")}.`);
  const rows: PlanRow[] = [];
  for (const rc of plan.resource_changes ?? []) {
    if (rc.mode === "data") continue;
    const change = changeOfActions(rc.change.actions);
    if (!change) continue;
    if (change === "forget") {
      notes.push(`\`${rc.address}\` (${stack}): removed from state without being destroyed (\`removed\` block).`);
      continue;
    }
    const configured = config.head?.resource?.[rc.type]?.[rc.name] ?? config.base?.resource?.[rc.type]?.[rc.name];
    const keep = configured ? Object.keys(configured).filter((k) => !NOT_PLANNED.has(k)) : undefined;
    const body = (side: "before" | "after"): Record<string, any> | undefined => {
      const v = rc.change[side];
      if (!v || typeof v !== "object") return undefined;
      const out =
        side === "before"
          ? masked(v, rc.change.before_sensitive)
          : masked(v, rc.change.after_sensitive, rc.change.after_unknown, rc.change.before, true);
      // only what the configuration sets: computed attributes are no reason for a change
      return Object.fromEntries(Object.entries(out as Record<string, any>).filter(([k]) => !(COMPUTED_ONLY[rc.type] ?? []).includes(k) && (!keep || keep.includes(k))));
    };
    const key = typeof rc.index === "string" ? rc.index : undefined;
    const mk = (b: Record<string, any> | undefined): Instance | undefined =>
      b && { stack, type: rc.type, name: rc.name, key, address: rc.address, files: {}, body: { ...b, provisioner: configured?.provisioner } };
    const before = change === "create" ? undefined : mk(body("before"));
    const after = change === "destroy" ? undefined : mk(body("after"));
    const classified = before || after ? classify(before, after) : undefined;
    let why: string[] = classified && "why" in classified ? [...classified.why, ...(classified.always ?? [])] : [];
    if (change === "replace" && rc.type === "null_resource" && !why.includes("re-provision")) why = ["re-provision", ...why];
    if (rc.action_reason === "replace_by_request") why = ["replacement requested (-replace)", ...why];
    if (rc.action_reason === "replace_because_tainted") why = ["tainted (a previous apply failed)", ...why];
    const inst = (after ?? before ?? mk({}))!;
    const { groupKind, group } = groupOf(inst, nodes, jobs);
    rows.push({ groupKind, group, stack, address: rc.address, type: rc.type, change, why });
  }
  return { rows, notes };
}
