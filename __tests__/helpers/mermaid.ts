/**
 * A strict checker for the Mermaid we write (no Mermaid parser is among the dependencies):
 * the subset of `flowchart` and `sequenceDiagram` syntax the generated pictures and
 * docs/architecture.md use, line by line. Anything else is reported, so a picture that
 * needs more syntax needs this checker taught first. It finds what breaks a render in
 * practice: an unknown statement, an unbalanced block, an edge or message to an undeclared
 * node or participant, a duplicate id, an unpaired quote, a `;` or `#` in a text outside an
 * entity code (statement separator and entity mark in Mermaid).
 */

/** The ```mermaid blocks of a Markdown text. */
export function mermaidBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

const ID = "[A-Za-z][A-Za-z0-9_]*";
const QUOTED = '"[^"]*"';
const SHAPES = [`\\[${QUOTED}\\]`, `\\(\\[${QUOTED}\\]\\)`, `\\[\\(${QUOTED}\\)\\]`, `\\{\\{${QUOTED}\\}\\}`, `\\(${QUOTED}\\)`, `\\{${QUOTED}\\}`];
const NODE_RE = new RegExp(`^(${ID})(${SHAPES.join("|")})$`);
const EDGE_RE = new RegExp(`^(${ID}) (-->|-\\.->|-\\.-|---|==>)(?:\\|${QUOTED}\\|)? (${ID})$`);
/** Mermaid keywords that break a flowchart when used as an id. */
const RESERVED = new Set(["end", "subgraph", "graph", "flowchart", "style", "class", "classDef", "click", "direction", "default"]);

function textProblems(where: string, text: string): string[] {
  const out: string[] = [];
  // an entity code (#40; #quot;) is Mermaid's own escape; any other ; or # breaks the text
  if (/[;#]/.test(text.replace(/#\w+;/g, ""))) out.push(`${where}: ";" or "#" in a text (outside an entity code like #40;)`);
  if (text.trim() === "") out.push(`${where}: empty text`);
  return out;
}

function checkFlowchart(lines: string[]): string[] {
  const problems: string[] = [];
  const declared = new Set<string>();
  const used: [number, string][] = [];
  const classes = new Set<string>();
  let depth = 0;
  const declare = (n: number, id: string) => {
    if (RESERVED.has(id)) problems.push(`line ${n}: reserved word ${id} as an id`);
    if (declared.has(id)) problems.push(`line ${n}: ${id} declared twice`);
    declared.add(id);
  };
  lines.forEach((raw, i) => {
    const n = i + 2;
    const line = raw.trim();
    if (!line || line.startsWith("%%")) return;
    if ((line.match(/"/g) ?? []).length % 2) problems.push(`line ${n}: unpaired quote`);
    for (const m of line.matchAll(/"([^"]*)"/g)) problems.push(...textProblems(`line ${n}`, m[1].replace(/<br\/>/g, " ")));
    let m: RegExpExecArray | null;
    if (line === "end") {
      if (--depth < 0) problems.push(`line ${n}: end without subgraph`);
    } else if ((m = new RegExp(`^subgraph (${ID})\\[${QUOTED}\\]$`).exec(line))) {
      declare(n, m[1]);
      depth++;
    } else if (/^direction (TB|TD|BT|LR|RL)$/.test(line)) {
      if (depth === 0) problems.push(`line ${n}: direction outside a subgraph`);
    } else if ((m = /^classDef ([A-Za-z]\w*) \S.*$/.exec(line))) {
      classes.add(m[1]);
    } else if ((m = new RegExp(`^class (${ID}(?:,${ID})*) ([A-Za-z]\\w*)$`).exec(line))) {
      for (const id of m[1].split(",")) used.push([n, id]);
      if (!classes.has(m[2])) problems.push(`line ${n}: class ${m[2]} not defined before`);
    } else if ((m = NODE_RE.exec(line))) {
      declare(n, m[1]);
    } else if ((m = EDGE_RE.exec(line))) {
      used.push([n, m[1]], [n, m[3]]);
    } else problems.push(`line ${n}: not a statement this checker knows: ${line}`);
  });
  if (depth !== 0) problems.push(`${depth} subgraph(s) not closed`);
  for (const [n, id] of used) if (!declared.has(id)) problems.push(`line ${n}: ${id} is not declared`);
  return problems;
}

function checkSequence(lines: string[]): string[] {
  const problems: string[] = [];
  const participants = new Set<string>();
  const blocks: string[] = [];
  lines.forEach((raw, i) => {
    const n = i + 2;
    const line = raw.trim();
    if (!line || line.startsWith("%%") || line === "autonumber") return;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^(?:participant|actor) (${ID})(?: as (.+))?$`).exec(line))) {
      if (participants.has(m[1])) problems.push(`line ${n}: participant ${m[1]} declared twice`);
      participants.add(m[1]);
      if (m[2] !== undefined) problems.push(...textProblems(`line ${n}`, m[2]));
    } else if ((m = new RegExp(`^(${ID}) ?(->>|-->>|->|-->|-\\)|--\\)|-x|--x)[+-]? ?(${ID}): (.+)$`).exec(line))) {
      for (const p of [m[1], m[3]]) if (!participants.has(p)) problems.push(`line ${n}: participant ${p} is not declared`);
      problems.push(...textProblems(`line ${n}`, m[4]));
    } else if ((m = new RegExp(`^Note (?:over (${ID})(?:,(${ID}))?|(?:left|right) of (${ID})): (.+)$`).exec(line))) {
      for (const p of [m[1], m[2], m[3]].filter((x): x is string => x !== undefined)) if (!participants.has(p)) problems.push(`line ${n}: participant ${p} is not declared`);
      problems.push(...textProblems(`line ${n}`, m[4]));
    } else if ((m = /^(alt|opt|loop|rect|par|critical)(?: (.+))?$/.exec(line))) {
      blocks.push(m[1]);
      if (m[1] !== "rect") problems.push(...textProblems(`line ${n}`, m[2] ?? ""));
    } else if ((m = /^(else|and|option)(?: (.+))?$/.exec(line))) {
      const want = { else: "alt", and: "par", option: "critical" }[m[1]];
      if (blocks[blocks.length - 1] !== want) problems.push(`line ${n}: ${m[1]} outside ${want}`);
      problems.push(...textProblems(`line ${n}`, m[2] ?? ""));
    } else if (line === "end") {
      if (!blocks.pop()) problems.push(`line ${n}: end without a block`);
    } else problems.push(`line ${n}: not a statement this checker knows: ${line}`);
  });
  if (blocks.length) problems.push(`${blocks.length} block(s) not closed: ${blocks.join(", ")}`);
  return problems;
}

/** Problems of one Mermaid diagram (empty: it passes). */
export function checkMermaid(text: string): string[] {
  const lines = text.replace(/\n$/, "").split("\n");
  const header = lines[0].trim();
  if (/^flowchart (TB|TD|BT|LR|RL)$/.test(header)) return checkFlowchart(lines.slice(1));
  if (header === "sequenceDiagram") return checkSequence(lines.slice(1));
  return [`line 1: a diagram type this checker does not know: ${header}`];
}
