/**
 * Reading a cluster description: YAML text → validated, defaulted `Cluster`, or the full
 * list of problems, each with its path in the file, its line, and what was expected.
 */
import * as fs from "fs";
import * as path from "path";
import { LineCounter, parseDocument, isMap, isNode, isScalar, visit } from "yaml";
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
      // split per key by validateDescription; kept for a caller that reports the issue whole
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

/**
 * The keys the schema knows for the mapping at `path` (array indexes and wrappers such as
 * optional/default/pipe are looked through; a union gives the keys of all its options).
 */
export function knownKeysAt(path: readonly PropertyKey[], schema: z.ZodType = clusterSchema): string[] {
  const keys = new Set<string>();
  const walk = (t: any, rest: readonly PropertyKey[]): void => {
    const def = t?._zod?.def;
    if (!def) return;
    switch (def.type) {
      case "optional":
      case "nullable":
      case "default":
      case "prefault":
      case "readonly":
      case "catch":
        return walk(def.innerType, rest);
      case "pipe":
        return walk(def.in, rest);
      case "lazy":
        return walk(def.getter(), rest);
      case "union":
        for (const o of def.options) walk(o, rest);
        return;
      case "array":
        if (typeof rest[0] === "number") walk(def.element, rest.slice(1));
        return;
      case "record":
        if (rest.length) walk(def.valueType, rest.slice(1));
        return;
      case "object":
        if (!rest.length) for (const k of Object.keys(def.shape)) keys.add(k);
        else if (typeof rest[0] === "string" && def.shape[rest[0]]) walk(def.shape[rest[0]], rest.slice(1));
        return;
    }
  };
  walk(schema, path);
  return [...keys];
}

/** Edit distance (insert, delete, substitute, swap of two neighbours), case-insensitive. */
function editDistance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}

/** The known key an unknown one most likely misspells: within a third of its length (at least 2 edits), closest first. */
export function didYouMean(unknown: string, known: readonly string[]): string | undefined {
  let best: { key: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(unknown, k);
    if (d <= Math.max(2, Math.floor(k.length / 3)) && (!best || d < best.d)) best = { key: k, d };
  }
  return best?.key;
}

/** Validates an already-parsed description (object form). Lines are filled in by `loadDescriptionText`. */
export function validateDescription(raw: unknown): { ok: true; cluster: Cluster } | { ok: false; violations: Violation[] } {
  const parsed = clusterSchema.safeParse(raw, { reportInput: true });
  if (parsed.success) {
    const violations = crossFieldViolations(parsed.data);
    return violations.length > 0 ? { ok: false, violations } : { ok: true, cluster: parsed.data };
  }
  const issues = parsed.error.issues;
  const pathKey = (p: readonly PropertyKey[]) => formatPath(p.map(toKey));
  // A required key reported missing where an unknown key at the same level misspells it: one
  // problem (the misspelling, at its own line), not a missing key at the parent's line too.
  const missing = new Set(issues.filter((i) => i.code === "invalid_type" && (i as { input?: unknown }).input === undefined).map((i) => pathKey(i.path)));
  const explained = new Set<string>();
  const shape: Violation[] = [];
  for (const i of issues) {
    if (i.code !== "unrecognized_keys") continue;
    const known = knownKeysAt(i.path);
    // zod reports unknown keys at the parent; point at each key itself
    for (const key of i.keys) {
      const guess = didYouMean(key, known);
      const alsoMissing = guess !== undefined && missing.has(pathKey([...i.path, guess]));
      if (alsoMissing) explained.add(pathKey([...i.path, guess]));
      const hint = guess ? `did you mean '${guess}'?${alsoMissing ? ` ('${guess}' is required and missing)` : ""}` : `expected one of ${known.map((k) => `'${k}'`).join(", ")} (cluster.schema.json)`;
      shape.push({ path: [...i.path, key].map(toKey), message: `unknown key '${key}': ${hint}` });
    }
  }
  for (const i of issues) {
    if (i.code === "unrecognized_keys") continue;
    if (explained.has(pathKey(i.path))) continue;
    shape.push({ path: i.path.map(toKey), message: describeIssue(i) });
  }
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
    // A key that is there: its own line (a mapping's value starts a line further down)
    if (path.length) {
      const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
      if (isMap(parent)) {
        const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === path[path.length - 1]);
        if (pair && isNode(pair.key) && pair.key.range) return lineCounter.linePos(pair.key.range[0]).line;
      }
    }
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

/** "clusters/: a.yaml, b.yaml" for the directory a missing description was looked for in (or of the example). */
function descriptionsNear(file: string): string {
  for (const dir of [path.dirname(file), path.resolve(__dirname, "..", "..", "clusters")]) {
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => /\.ya?ml$/.test(n)).sort();
    } catch {
      continue;
    }
    if (names.length) return `; descriptions in ${path.relative(process.cwd(), dir) || "."}/: ${names.join(", ")}`;
  }
  return "";
}

export function loadDescriptionFile(file: string): LoadResult {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "a directory, not a file" : code === "EACCES" ? "permission denied" : undefined;
    return {
      ok: false,
      problems: [{ path: "(file)", message: `cannot read the cluster description ${file} (${what ? `${what}, ` : ""}${code ?? String(e)})${code === "ENOENT" || code === "EISDIR" ? descriptionsNear(file) : ""}` }],
    };
  }
  return loadDescriptionText(text);
}
