/**
 * Plan review of a changed jobspec, in words: its settings keyed by block path (a line
 * scanner good enough for review, not an HCL parser) and the settings that differ between two
 * versions, image tags first; the changed items of a Nomad Variable. Pure, no cdktf. Used by
 * the summary (a nomad_job row) and by the node changes (an agent's .hcl config file).
 */

/** What a change that only touches comments or formatting reads as. */
export const COSMETIC = "comments/formatting only";

/** The job ID declared by a jobspec (`job "api" {`). */
export function jobIdentity(jobspec: unknown): string | undefined {
  if (typeof jobspec !== "string") return undefined;
  return /^\s*job\s+"([^"]+)"\s*\{/m.exec(jobspec)?.[1];
}

/**
 * Settings of an HCL jobspec, keyed by their block path (`group.api.count`,
 * `task.api.config.image`): a line scanner good enough for review, not a parser. Heredoc
 * values (templates) are kept whole; comments are ignored.
 */
export function jobspecSettings(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const stack: string[] = [];
  const seen = new Map<string, number>();
  const lines = text.split("\n");
  const unique = (key: string) => {
    const n = seen.get(key) ?? 0;
    seen.set(key, n + 1);
    return n === 0 ? key : `${key}#${n + 1}`;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = stripComment(lines[i]).trim();
    if (!line) continue;
    if (line === "}" || line === "},") {
      stack.pop();
      continue;
    }
    const block = /^([A-Za-z_][\w-]*)((?:\s+"[^"]*")*)\s*\{$/.exec(line);
    if (block) {
      const labels = [...block[2].matchAll(/"([^"]*)"/g)].map((m) => m[1]);
      stack.push(unique([...stack, [block[1], ...labels].join(".")].join("/")).split("/").pop()!);
      continue;
    }
    const oneLine = /^([A-Za-z_][\w-]*)((?:\s+"[^"]*")*)\s*\{(.*)\}$/.exec(line);
    if (oneLine) {
      const labels = [...oneLine[2].matchAll(/"([^"]*)"/g)].map((m) => m[1]);
      out.set(unique([...stack, [oneLine[1], ...labels].join(".")].join("/")), oneLine[3].trim());
      continue;
    }
    const assign = /^([A-Za-z_][\w-]*|"[^"]+")\s*=\s*(.*)$/.exec(line);
    if (!assign) continue;
    const key = unique([...stack, assign[1].replace(/"/g, "")].join("/"));
    let value = assign[2];
    const heredoc = /^<<-?([A-Z_]+)$/.exec(value);
    if (heredoc) {
      const body: string[] = [];
      while (++i < lines.length && lines[i].trim() !== heredoc[1]) body.push(lines[i]);
      value = body.join("\n");
    } else {
      let depth = bracketDepth(value);
      while (depth > 0 && ++i < lines.length) {
        const more = stripComment(lines[i]).trim();
        value += ` ${more}`;
        depth += bracketDepth(more);
      }
    }
    out.set(key, value.trim());
  }
  return out;
}

function stripComment(line: string): string {
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === "\\" && inString) i++;
    else if (ch === '"') inString = !inString;
    else if (!inString && (ch === "#" || (ch === "/" && line[i + 1] === "/"))) return line.slice(0, i);
  }
  return line;
}

function bracketDepth(s: string): number {
  let d = 0;
  let inString = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === "\\" && inString) i++;
    else if (ch === '"') inString = !inString;
    else if (!inString && (ch === "[" || ch === "{" || ch === "(")) d++;
    else if (!inString && (ch === "]" || ch === "}" || ch === ")")) d--;
  }
  return d;
}

/** Display form of a setting path: from the innermost labelled block on, without the job block. */
function displayKey(key: string): string {
  const parts = key.split("/");
  if (parts.length > 1 && parts[0].startsWith("job.")) parts.shift();
  let from = 0;
  for (let i = 0; i < parts.length - 1; i++) if (parts[i].includes(".")) from = i;
  return parts.slice(from).join(".");
}

const unquote = (v: string) => (/^"[^"]*"$/.test(v) ? v.slice(1, -1) : v);

/** "image tag 3f9c2ab → 4b5c6d7" when only the tag of one repository changed, else undefined. */
function imageTagChange(a: string, b: string): string | undefined {
  const ra = /^(.+?):([A-Za-z0-9_][A-Za-z0-9_.-]*)(@sha256:[a-f0-9]{64})?$/.exec(unquote(a));
  const rb = /^(.+?):([A-Za-z0-9_][A-Za-z0-9_.-]*)(@sha256:[a-f0-9]{64})?$/.exec(unquote(b));
  if (!ra || !rb || ra[1] !== rb[1] || ra[1].includes(" ")) return undefined;
  return `image tag ${ra[2]} → ${rb[2]}`;
}

/** Settings that differ between two jobspecs, most telling first. */
/**
 * A Nomad Variable's items: a multi-line item (a file, e.g. haproxy.cfg) names its changed
 * lines; the running allocations re-render their templates in place.
 */
export function variableItemsDiff(a: Record<string, unknown>, b: Record<string, unknown>, path = ""): string[] {
  const out: string[] = [];
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const x = a[k];
    const y = b[k];
    if (x === y) continue;
    if (typeof x === "string" && typeof y === "string" && (x.includes("\n") || y.includes("\n"))) {
      const xs = new Set(x.split("\n").map((l) => l.trim()));
      const ys = new Set(y.split("\n").map((l) => l.trim()));
      // settings before comments: the sample line says what changed
      const byMeaning = (l: string) => (l.startsWith("#") ? 1 : 0);
      const removed = [...xs].filter((l) => l && !ys.has(l)).sort((p, q) => byMeaning(p) - byMeaning(q));
      const added = [...ys].filter((l) => l && !xs.has(l)).sort((p, q) => byMeaning(p) - byMeaning(q));
      const cut = (l: string) => (l.length > 60 ? `${l.slice(0, 57)}…` : l);
      const sample = added.length ? ` (+ "${cut(added[0])}")` : removed.length ? ` (- "${cut(removed[0])}")` : "";
      out.push(`items.${k}: ${Math.max(added.length, removed.length)} line(s) changed${sample}`);
    } else out.push(`items.${k}`);
  }
  if (out.length) {
    out.push(
      path === "nomad/jobs/haproxy"
        ? "re-rendered on the running allocations: HAProxy reloads in place"
        : "re-rendered on the running allocations: their tasks restart",
    );
  }
  return out;
}

export function jobspecDiff(a: string, b: string): string[] {
  const sa = jobspecSettings(a);
  const sb = jobspecSettings(b);
  const out: string[] = [];
  for (const k of [...new Set([...sa.keys(), ...sb.keys()])]) {
    const x = sa.get(k);
    const y = sb.get(k);
    if (x === y) continue;
    const name = displayKey(k);
    if (x === undefined) out.push(`+${name}`);
    else if (y === undefined) out.push(`-${name}`);
    else {
      const tag = /(^|\.)image$/.test(name) ? imageTagChange(x, y) : undefined;
      if (tag) out.push(`${tag} (${name})`);
      else if (!x.includes("\n") && !y.includes("\n") && x.length <= 50 && y.length <= 50) out.push(`${name}: ${unquote(x)} → ${unquote(y)}`);
      else out.push(textChange(name, x, y));
    }
  }
  if (!out.length && a !== b) out.push(COSMETIC);
  // image changes first: what a reviewer looks for in a release
  return out.sort((p, q) => Number(!p.startsWith("image")) - Number(!q.startsWith("image")));
}

/** A multi-line value (template data): its one changed line old → new, or how many lines changed. */
function textChange(name: string, a: string, b: string): string {
  const la = a.split("\n").map((l) => l.trim());
  const lb = b.split("\n").map((l) => l.trim());
  const removed = multisetMinus(la, lb).filter((l) => l !== "");
  const added = multisetMinus(lb, la).filter((l) => l !== "");
  const n = Math.max(removed.length, added.length);
  // Lines that are not comments, paired in order: "server-template api 5 → 7"
  const isComment = (l: string) => l.startsWith("#") || l.startsWith("//");
  const r = removed.filter((l) => !isComment(l));
  const d = added.filter((l) => !isComment(l));
  if (r.length && r.length === d.length && r.length <= 2) return `${name}: ${r.map((l, i) => wordChange(l, d[i])).join(", ")}`;
  return n === 0 ? `${name}: whitespace only` : `${name}: ${n} line${n === 1 ? "" : "s"} changed (-${removed.length} +${added.length})`;
}

function multisetMinus(a: string[], b: string[]): string[] {
  const counts = new Map<string, number>();
  for (const x of b) counts.set(x, (counts.get(x) ?? 0) + 1);
  return a.filter((x) => {
    const n = counts.get(x) ?? 0;
    if (n > 0) {
      counts.set(x, n - 1);
      return false;
    }
    return true;
  });
}

/** The words that differ between two lines, with up to 2 words of leading context: "server-template api 5 → 7". */
function wordChange(a: string, b: string): string {
  const wa = a.split(/\s+/);
  const wb = b.split(/\s+/);
  let p = 0;
  while (p < wa.length && p < wb.length && wa[p] === wb[p]) p++;
  let q = 0;
  while (q < wa.length - p && q < wb.length - p && wa[wa.length - 1 - q] === wb[wb.length - 1 - q]) q++;
  const cut = (w: string[]) => {
    const t = w.slice(p, w.length - q).join(" ");
    return t.length > 40 ? `${t.slice(0, 39)}…` : t || '""';
  };
  const context = wa.slice(Math.max(0, p - 2), p).join(" ");
  return `${context ? `${context} ` : ""}${cut(wa)} → ${cut(wb)}`;
}
