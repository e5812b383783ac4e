/**
 * Reading a cluster description: YAML text → validated, defaulted `Cluster`, or the full
 * list of problems, each with its path in the file, its line, and what was expected.
 */
import * as fs from "fs";
import { LineCounter, parseDocument, isNode, visit } from "yaml";
import type { z } from "zod";
import { clusterSchema, type Cluster } from "./schema";
import { crossFieldViolations, type PartialCluster, type Violation } from "./rules";

export interface Problem {
  /** Dotted path such as `nodes[1].overlayAddress` (`(root)` for the whole file). */
  path: string;
  /** 1-based line in the file, when the path exists there. */
  line?: number;
  message: string;
}

export type LoadResult = { ok: true; cluster: Cluster } | { ok: false; problems: Problem[] };

export class DescriptionError extends Error {
  constructor(
    readonly file: string,
    readonly problems: Problem[],
  ) {
    super(formatProblems(file, problems));
    this.name = "DescriptionError";
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(root)";
  return path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join("");
}

export function formatProblems(file: string, problems: Problem[]): string {
  const lines = problems.map((p) => `  - ${p.path}${p.line ? ` (line ${p.line})` : ""}: ${p.message}`);
  return `${file}: ${problems.length} problem${problems.length === 1 ? "" : "s"} in the cluster description:\n${lines.join("\n")}`;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const input = (issue as { input?: unknown }).input;
  const got = input === undefined ? "" : `, got ${typeOf(input)}`;
  switch (issue.code) {
    case "invalid_type":
      return input === undefined ? `required (expected ${issue.expected})` : `expected ${issue.expected}${got}`;
    case "unrecognized_keys":
      return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${k}'`).join(", ")}: expected only the keys listed in cluster.schema.json (check the spelling)`;
    case "invalid_key":
      // a record's key (nodes[].meta): the key's own problems, not zod's "Invalid key in record"
      return `expected ${issue.issues.map((i) => i.message).join("; ")}${got}`;
    case "invalid_value":
      return `expected one of ${issue.values.map((x) => JSON.stringify(x)).join(", ")}${got}`;
    case "too_small":
      if (issue.origin === "array") return `expected at least ${issue.minimum} item${issue.minimum === 1 ? "" : "s"}${issue.message.startsWith("Too small") ? "" : ` (${issue.message})`}`;
      return issue.message.startsWith("Too small") ? `expected ${issue.origin} >= ${issue.minimum}${got}` : `expected ${issue.message}${got}`;
    case "too_big":
      return issue.message.startsWith("Too big") ? `expected ${issue.origin} <= ${issue.maximum}${got}` : `expected ${issue.message}${got}`;
    default:
      return `expected ${issue.message}${got}`;
  }
}

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Validates an already-parsed description (object form). Lines are filled in by `loadDescriptionText`. */
export function validateDescription(raw: unknown): { ok: true; cluster: Cluster } | { ok: false; violations: Violation[] } {
  const parsed = clusterSchema.safeParse(raw, { reportInput: true });
  if (parsed.success) {
    const violations = crossFieldViolations(parsed.data);
    return violations.length > 0 ? { ok: false, violations } : { ok: true, cluster: parsed.data };
  }
  const shape: Violation[] = parsed.error.issues.map((i) => ({
    // zod reports unknown keys at the parent; point at the key itself
    path: i.code === "unrecognized_keys" && i.keys.length === 1 ? [...i.path, i.keys[0]].map(toKey) : i.path.map(toKey),
    message: describeIssue(i),
  }));
  // Report cross-field problems of the sections that are valid on their own, in the same run.
  const seen = new Set(shape.map((v) => formatPath(v.path)));
  const extra = crossFieldViolations(partialCluster(raw)).filter((v) => !seen.has(formatPath(v.path)));
  return { ok: false, violations: [...shape, ...extra] };
}

function partialCluster(raw: unknown): PartialCluster {
  if (typeof raw !== "object" || raw === null) return {};
  const r = raw as Record<string, unknown>;
  const section = <K extends "bastion" | "ssh" | "overlay" | "floatingIp" | "app" | "servers" | "consul" | "nomad" | "metrics">(k: K): Cluster[K] | undefined => {
    const res = clusterSchema.shape[k].safeParse(r[k], { reportInput: true });
    return res.success ? (res.data as Cluster[K]) : undefined;
  };
  const nodeSchema = clusterSchema.shape.nodes.element;
  const nodes = Array.isArray(r.nodes) ? r.nodes.map((n) => { const res = nodeSchema.safeParse(n); return res.success ? res.data : undefined; }) : undefined;
  return { bastion: section("bastion"), ssh: section("ssh"), overlay: section("overlay"), floatingIp: section("floatingIp"), app: section("app"), servers: section("servers"), consul: section("consul"), nomad: section("nomad"), metrics: section("metrics"), nodes };
}

const toKey = (p: PropertyKey): string | number => (typeof p === "number" ? p : String(p));

/** Largest description file accepted, and largest value it may expand to through YAML aliases. */
export const MAX_DESCRIPTION_BYTES = 1024 * 1024;
const MAX_EXPANDED_BYTES = 1024 * 1024;
/** Alias uses allowed in one file: plenty for sharing a `meta` map, far from billion laughs. */
const MAX_ALIASES = 64;

export function loadDescriptionText(text: string): LoadResult {
  if (Buffer.byteLength(text, "utf8") > MAX_DESCRIPTION_BYTES) {
    return { ok: false, problems: [{ path: "(file)", message: `expected a description of at most ${MAX_DESCRIPTION_BYTES / 1024} KiB, got ${Math.ceil(Buffer.byteLength(text, "utf8") / 1024)} KiB` }] };
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({
        path: "(yaml)",
        line: lineCounter.linePos(e.pos[0]).line,
        message: `not valid YAML: ${e.message.split("\n")[0]}`,
      })),
    };
  }
  let raw: unknown;
  const firstAliasLine = (): number | undefined => {
    let line: number | undefined;
    visit(doc, { Alias: (_k, node) => { if (node.range) line = lineCounter.linePos(node.range[0]).line; return visit.BREAK; } });
    return line;
  };
  const aliasProblem = (what: string): LoadResult => ({
    ok: false,
    problems: [{ path: "(yaml)", line: firstAliasLine(), message: `expected a description without alias amplification: ${what} (at most ${MAX_ALIASES} alias uses and ${MAX_EXPANDED_BYTES / 1024} KiB once expanded)` }],
  });
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (e) {
    // The yaml library refuses excessive alias expansion (billion laughs) with a ReferenceError.
    return aliasProblem(e instanceof Error ? e.message.split("\n")[0] : String(e));
  }
  let aliases = 0;
  visit(doc, { Alias: () => { aliases++; } });
  if (aliases > MAX_ALIASES) return aliasProblem(`${aliases} alias uses`);
  if (aliases > 0 && JSON.stringify(raw).length > MAX_EXPANDED_BYTES) return aliasProblem(`it expands to ${Math.ceil(JSON.stringify(raw).length / 1024)} KiB`);
  const result = validateDescription(raw);
  if (result.ok) return result;
  const lineOf = (path: (string | number)[]): number | undefined => {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
      // a key that exists with a scalar value: getIn returns the scalar node when keepScalar is set
    }
    return undefined;
  };
  const problems = result.violations.map((v) => ({ path: formatPath(v.path), line: lineOf(v.path), message: v.message }));
  // In file order, as an operator reads them (stable: same-line problems keep their order).
  return { ok: false, problems: problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)) };
}

export function loadDescriptionFile(file: string): LoadResult {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, problems: [{ path: "(file)", message: `cannot read the cluster description ${file} (${code ?? String(e)})` }] };
  }
  return loadDescriptionText(text);
}
