/**
 * A strict reader of the HCL1 subset an agent config uses (Consul and Nomad read their
 * configs with HashiCorp's HCL1 parser): attributes, blocks with labels, strings, heredocs,
 * numbers, booleans, lists and objects, `#`, `//` and `/* *\/` comments. It exists so that
 * an `extraConfig` that is not HCL, or that turns a client into a server, is refused at
 * synth time with its line, instead of failing on every node at apply time (the install
 * script validates with the real binary too; this is the early, offline check).
 *
 * Pure and synchronous (the description loader is synchronous; HashiCorp's parser in
 * @cdktf/hcl2json is an async WebAssembly build, and an HCL2 one).
 */

export interface HclItem {
  /** Keys from the top: block type, labels, nested keys. */
  path: string[];
  /** 1-based line in the HCL text. */
  line: number;
  /** Scalar value of an attribute (undefined for blocks, lists, objects). */
  value?: string | number | boolean;
}

export class HclSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
  }
}

type Tok =
  | { t: "ident"; v: string; line: number }
  | { t: "string"; v: string; line: number }
  | { t: "number"; v: number; line: number }
  | { t: "punct"; v: "=" | "{" | "}" | "[" | "]" | ","; line: number }
  | { t: "nl"; line: number }
  | { t: "eof"; line: number };

function tokenize(text: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  let line = 1;
  const err = (m: string): never => {
    throw new HclSyntaxError(m, line);
  };
  while (i < text.length) {
    const ch = text[i];
    if (ch === "\n") {
      toks.push({ t: "nl", line });
      line++;
      i++;
    } else if (ch === " " || ch === "\t" || ch === "\r") {
      i++;
    } else if (ch === "#" || (ch === "/" && text[i + 1] === "/")) {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (ch === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      if (end < 0) err("unterminated /* comment");
      line += (text.slice(i, end).match(/\n/g) ?? []).length;
      i = end + 2;
    } else if ("={}[],".includes(ch)) {
      toks.push({ t: "punct", v: ch as "=", line });
      i++;
    } else if (ch === '"') {
      const start = line;
      let v = "";
      i++;
      for (;;) {
        if (i >= text.length || text[i] === "\n") err("unterminated string (a quoted string ends on its line)");
        const c = text[i];
        if (c === '"') break;
        if (c === "\\") {
          const e = text[i + 1];
          if (e === "n") v += "\n";
          else if (e === "t") v += "\t";
          else if (e === "r") v += "\r";
          else if (e === '"' || e === "\\") v += e;
          else if (e === "u" && /^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6))) {
            v += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
            i += 4;
          } else err(`unknown escape \\${e ?? ""} in a string`);
          i += 2;
          continue;
        }
        if (c === "$" && text[i + 1] === "{") err("'${' in a string: agent configs are not templates (HCL1 keeps it verbatim)");
        v += c;
        i++;
      }
      i++;
      toks.push({ t: "string", v, line: start });
    } else if (ch === "<" && text[i + 1] === "<") {
      const m = /^<<-?([A-Za-z_][A-Za-z0-9_]*)\r?\n/.exec(text.slice(i));
      if (!m) err("a heredoc starts with <<MARKER at the end of the line");
      const start = line;
      i += m![0].length;
      line++;
      const lines: string[] = [];
      for (;;) {
        if (i >= text.length) err(`heredoc ${m![1]} is not closed`);
        const nl = text.indexOf("\n", i);
        const l = text.slice(i, nl < 0 ? text.length : nl);
        i = nl < 0 ? text.length : nl + 1;
        line++;
        if (l.trim() === m![1]) break;
        lines.push(l);
      }
      line--;
      toks.push({ t: "string", v: lines.join("\n"), line: start });
    } else if (/[-0-9]/.test(ch)) {
      const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
      if (!m) err(`unexpected '${ch}'`);
      toks.push({ t: "number", v: Number(m![0]), line });
      i += m![0].length;
    } else if (/[A-Za-z_]/.test(ch)) {
      const m = /^[A-Za-z_][A-Za-z0-9_.-]*/.exec(text.slice(i))!;
      toks.push({ t: "ident", v: m[0], line });
      i += m[0].length;
    } else {
      err(`unexpected character ${JSON.stringify(ch)}`);
    }
  }
  toks.push({ t: "eof", line });
  return toks;
}

/** Parses `text`; returns every attribute and block with its path. Throws HclSyntaxError. */
export function readHcl1(text: string): HclItem[] {
  const toks = tokenize(text);
  let p = 0;
  const items: HclItem[] = [];
  const peek = () => toks[p];
  const skipNl = () => {
    while (toks[p].t === "nl") p++;
  };
  const err = (m: string, tok = peek()): never => {
    throw new HclSyntaxError(m, tok.line);
  };
  const describe = (tok: Tok): string => (tok.t === "eof" ? "the end of the text" : tok.t === "nl" ? "a line break" : `'${String(tok.v)}'`);

  function body(path: string[], closing: boolean, depth: number): void {
    if (depth > 32) err("nested more than 32 levels deep");
    for (;;) {
      skipNl();
      const tok = peek();
      if (tok.t === "eof") {
        if (closing) err("a block is not closed: '}' expected");
        return;
      }
      if (tok.t === "punct" && tok.v === "}") {
        if (!closing) err("unexpected '}'");
        p++;
        return;
      }
      if (tok.t === "punct" && tok.v === ",") {
        p++;
        continue;
      }
      if (tok.t !== "ident" && tok.t !== "string") err(`expected a key, got ${describe(tok)}`);
      const keys = [String((tok as { v: string }).v)];
      const line = tok.line;
      p++;
      while (peek().t === "ident" || peek().t === "string") keys.push(String((toks[p++] as { v: string }).v));
      const next = peek();
      if (next.t === "punct" && next.v === "=") {
        if (keys.length > 1) err(`expected '{' after the block labels, got '='`);
        p++;
        value([...path, keys[0]], line, depth);
      } else if (next.t === "punct" && next.v === "{") {
        p++;
        items.push({ path: [...path, ...keys], line });
        body([...path, ...keys], true, depth + 1);
      } else {
        err(`expected '=' or '{' after ${keys.map((k) => `'${k}'`).join(" ")}, got ${describe(next)}`);
      }
      const after = peek();
      if (!(after.t === "nl" || after.t === "eof" || (after.t === "punct" && (after.v === "}" || after.v === ",")))) {
        err(`expected a line break after the value, got ${describe(after)}`);
      }
    }
  }

  function value(path: string[], line: number, depth: number): void {
    const tok = peek();
    if (tok.t === "string" || tok.t === "number") {
      p++;
      items.push({ path, line, value: tok.v });
    } else if (tok.t === "ident" && (tok.v === "true" || tok.v === "false")) {
      p++;
      items.push({ path, line, value: tok.v === "true" });
    } else if (tok.t === "punct" && tok.v === "{") {
      p++;
      items.push({ path, line });
      body(path, true, depth + 1);
    } else if (tok.t === "punct" && tok.v === "[") {
      p++;
      items.push({ path, line });
      for (;;) {
        skipNl();
        const t = peek();
        if (t.t === "punct" && t.v === "]") {
          p++;
          return;
        }
        value(path, t.line, depth + 1);
        skipNl();
        const sep = peek();
        if (sep.t === "punct" && sep.v === ",") p++;
        else if (!(sep.t === "punct" && sep.v === "]")) err(`expected ',' or ']' in a list, got ${describe(sep)}`);
      }
    } else {
      err(`expected a value (string, number, true/false, list or block), got ${describe(tok)}`);
    }
  }

  body([], false, 0);
  return items;
}

/** Keys of an agent's extraConfig that would turn the client into a server or bypass a description rule. */
export const FORBIDDEN_EXTRA_KEYS = {
  consul: [
    { path: ["server"], why: "the provider's single server must not gain peers: this agent stays a client" },
    { path: ["bootstrap"], why: "a server-mode setting: this agent stays a client" },
    { path: ["bootstrap_expect"], why: "a server-mode setting: this agent stays a client" },
    { path: ["client_addr"], why: "the HTTP API's exposure is consul.httpOnOverlay in the description" },
    { path: ["addresses", "http"], why: "the HTTP API's exposure is consul.httpOnOverlay in the description" },
    { path: ["addresses", "https"], why: "the HTTP API's exposure is consul.httpOnOverlay in the description" },
  ],
  nomad: [
    { path: ["server"], why: "the provider's single server must not gain peers: this agent stays a client" },
    { path: ["client", "enabled"], why: "this agent is a client; disabling it would take the node out of the cluster", unless: true },
  ],
} as const satisfies Record<"consul" | "nomad", readonly { path: readonly string[]; why: string; unless?: boolean }[]>;

/** Problems of an agent's extraConfig: not HCL, or a refused key. Each with its line in the HCL. */
export function extraConfigProblems(agent: "consul" | "nomad", text: string): { line: number; message: string }[] {
  let items: HclItem[];
  try {
    items = readHcl1(text);
  } catch (e) {
    if (e instanceof HclSyntaxError) return [{ line: e.line, message: `expected HCL (an agent config fragment): ${e.message}` }];
    throw e;
  }
  const problems: { line: number; message: string }[] = [];
  for (const f of FORBIDDEN_EXTRA_KEYS[agent]) {
    const unless = "unless" in f ? f.unless : undefined;
    const hit = items.find((it) => f.path.every((k, i) => it.path[i] === k) && it.path.length >= f.path.length && (unless === undefined || it.value !== unless));
    if (hit) problems.push({ line: hit.line, message: `expected no '${f.path.join(".")}' here: ${f.why}` });
  }
  return problems;
}
