/**
 * Reading the docs as the docs tests do: the README's command rows, the text outside code,
 * heading anchors, and the measured figures a page states (docs/README.md, "Generated figures").
 */
import * as fs from "fs";
import * as path from "path";
export const REPO_ROOT = path.resolve(__dirname, "..", "..");

export const GENERATED_DIR = path.join(REPO_ROOT, "docs", "generated");

/** README.md and docs/*.md: the hand-written pages (docs/generated/ holds the written ones). */
export function handWrittenPages(): string[] {
  return ["README.md", ...fs.readdirSync(path.join(REPO_ROOT, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];
}

/** The text outside fenced code blocks, inline code spans (where brackets are no links) and HTML comments. */
export function withoutCode(markdown: string): string {
  return markdown.replace(/^\s*```[\s\S]*?^\s*```/gm, "").replace(/`[^`\n]*`/g, "").replace(/<!--[\s\S]*?-->/g, "");
}

/** The README's Commands table: one command per row, as typed. */
export function readmeCommandRows(readme: string): string[] {
  const start = readme.indexOf("| command | what it does |");
  const tableLines = readme.slice(start).split("\n").slice(2);
  return tableLines.slice(0, tableLines.findIndex((l) => !l.startsWith("|"))).map((l) => /^\| `([^`]+)` \|/.exec(l)?.[1] ?? l);
}

/**
 * What looks like a measured figure: a number with a unit of time, size, share or ratio, a
 * count of tests or cores, or a target's PASS / FAIL. Settings (a timeout in a config, a port)
 * are written as code (`30s`), which this does not read.
 */
export const FIGURE = /(?<![\w.\/-])\d+(?:[.,]\d+)*(?:\s?[–-]\s?\d+(?:[.,]\d+)*)?\s?(?:ms|s|sec|seconds?|min|minutes?|h|hours?|KiB|MiB|GiB|kB|KB|MB|GB|%|×|x|tests?|cores?)(?!\w)|\b(?:PASS|FAIL)\b/g;

/**
 * A setting written as code in the docs: a number with a duration unit as Go, Nomad, HAProxy
 * and Prometheus write it (`30s`, `5m`, `250ms`, `24h`), or with a binary size unit as our
 * validation messages do (`64 KiB`). Versions (`1.14.11`), ports (`8080`), names
 * (`vxlan100`, `node-2`) and ratios have no such unit and are left alone.
 */
export const SETTING = /(?<![\w.\/+])\d+(?:\.\d+)?(?:ms|us|ns|s|m|h|d)(?![\w.])|(?<![\w.\/+])\d+ ?(?:KiB|MiB|GiB|TiB)(?!\w)/g;

/** A constant written with its value, e.g. `MIN_FREE_MIB = 1024`: the whole span is the code's text. */
export const CONSTANT_WITH_VALUE = /^[A-Z][A-Z0-9_]*(?:\.[A-Za-z]\w*)? = .+$/;

/** The inline code spans of a page (outside fenced code blocks and HTML comments). */
export function codeSpans(markdown: string): string[] {
  const text = markdown.replace(/^\s*```[\s\S]*?^\s*```/gm, "").replace(/<!--[\s\S]*?-->/g, "");
  return [...text.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]);
}

export interface PageFigures {
  /** Figures in the text of a link to a generated file, with that file. */
  referenced: { figure: string; file: string }[];
  /** Every other figure of the page's prose, in order. */
  handWritten: string[];
}

/** The figures of one hand-written page (path relative to the repository). */
export function pageFigures(page: string): PageFigures {
  const prose = withoutCode(fs.readFileSync(path.join(REPO_ROOT, page), "utf8"));
  const referenced: PageFigures["referenced"] = [];
  const rest = prose.replace(/\[([^\]]*)\]\(([^)\s]+)\)/g, (whole, text: string, target: string) => {
    const file = path.resolve(path.dirname(path.join(REPO_ROOT, page)), target.split("#")[0]);
    if (!file.startsWith(GENERATED_DIR + path.sep)) return whole;
    for (const figure of text.match(FIGURE) ?? []) referenced.push({ figure, file: path.relative(REPO_ROOT, file) });
    return "";
  });
  return { referenced, handWritten: rest.match(FIGURE) ?? [] };
}
