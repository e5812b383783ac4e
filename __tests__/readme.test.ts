/**
 * The README as a new operator reads it (a front door, issue 21): at most 250 lines, every
 * npm command documented, every relative link of the README and docs/ resolving to a file
 * and heading; every Terraform variable the synthesized stacks declare is in the variable
 * table of docs/deploying.md.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cleanup, exampleCluster, REPO_ROOT, synthCluster } from "./helpers/synth";
import { stackNames } from "../constructs/stack-names";
import { globMatches, splitArgs } from "../scripts/cdktf";

const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
const deploying = fs.readFileSync(path.join(REPO_ROOT, "docs", "deploying.md"), "utf8");

describe("README", () => {
  it("is a front door: at most 250 lines", () => {
    expect(readme.split("\n").length).toBeLessThanOrEqual(250);
  });

  it("docs/deploying.md lists every variable of the synthesized stacks as TF_VAR_<name> in the variable table", () => {
    const out = synthCluster(exampleCluster());
    try {
      const variables = Object.values(out.stacks).flatMap((s: any) => Object.keys(s.variable ?? {}));
      expect(variables).toContain("vrrp_password_rotation");
      const table = deploying.split("\n").filter((l) => l.startsWith("| `TF_VAR_"));
      for (const v of variables) expect({ v, listed: table.some((l) => l.includes(`\`TF_VAR_${v}\``)) }).toEqual({ v, listed: true });
    } finally {
      cleanup(out);
    }
  });

  it("documents every npm command", () => {
    const scripts = Object.keys(JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")).scripts).filter((s) => s !== "test" && s !== "typecheck");
    for (const s of scripts) expect({ s, documented: readme.includes(`npm run ${s}`) }).toEqual({ s, documented: true });
  });
});

describe("README Commands table: every row works when copied (issue 21)", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"));
  const start = readme.indexOf("| command | what it does |");
  const tableLines = readme.slice(start).split("\n").slice(2);
  const rows = tableLines.slice(0, tableLines.findIndex((l) => !l.startsWith("|"))).map((l) => /^\| `([^`]+)` \|/.exec(l)?.[1] ?? l);
  // what scripts/cdktf.ts accepts besides stack patterns (the options these rows use)
  const CDKTF_OPTIONS = new Set(["--auto-approve", "--detailed-exitcode", "--output"]);

  it("has one command per row, in no optional or ellipsis notation", () => {
    expect(rows.length).toBeGreaterThanOrEqual(15);
    for (const r of rows) {
      expect({ r, notation: /[[\]…|]|\.\.\./.test(r) }).toEqual({ r, notation: false });
      const words = r.split(" ");
      expect({ r, npm: words[0] }).toEqual({ r, npm: "npm" });
      const script = words[1] === "run" ? words[2] : words[1];
      expect({ r, script: script in pkg.scripts }).toEqual({ r, script: true });
      const rest = words.slice(words[1] === "run" ? 3 : 2);
      // npm passes on what follows the first `--`; a second `--` would reach the script as an argument
      if (rest.length) expect({ r, sep: rest[0], more: rest.slice(1).includes("--") }).toEqual({ r, sep: "--", more: false });
    }
  });

  it("synth/diff/deploy rows parse as cdktf.ts parses them: known options, every stack pattern a stack of the description", () => {
    const stacks = stackNames({ name: "team-blue" });
    let checked = 0;
    for (const r of rows) {
      const words = r.split(" ");
      if (words[1] !== "run" || !["synth", "diff", "deploy"].includes(words[2])) continue;
      const { options, patterns } = splitArgs(words.slice(4));
      for (const o of options.filter((x) => x.startsWith("-"))) expect({ r, o, known: CDKTF_OPTIONS.has(o) }).toEqual({ r, o, known: true });
      if (words[2] === "synth") expect({ r, patterns }).toEqual({ r, patterns: [] });
      for (const p of patterns) expect({ r, p, matches: stacks.filter((s) => globMatches(p, s)).length }).toEqual({ r, p, matches: 1 });
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(7);
    // the old notation, as npm hands it on: the second `--` is no option, "Found more than one stack"
    const old = splitArgs(["team-blue-jobs", "--", "--auto-approve"]);
    expect(old.options).toContain("--");
  });
});

describe("no `npx cdktf` left (the npm scripts validate first, say what they load, and keep spinners out of logs)", () => {
  it("in README, docs, scripts, images and CI templates", () => {
    const roots = ["README.md", "docs", "scripts", "images", "ci-templates"];
    const files = (p: string): string[] => {
      const full = path.join(REPO_ROOT, p);
      return fs.statSync(full).isDirectory() ? fs.readdirSync(full).flatMap((e) => files(path.join(p, e))) : [p];
    };
    const hits = roots.flatMap(files).filter((f) => fs.readFileSync(path.join(REPO_ROOT, f), "utf8").includes("npx cdktf"));
    expect(hits).toEqual([]);
  });
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutCode(markdown).split("\n")) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const text = m[1].replace(/`/g, "").replace(/\[([^\]]*)\]\([^)]*\)/g, "$1");
    const base = text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n ? `${base}-${n}` : base);
  }
  return anchors;
}

/** The text outside fenced code blocks and inline code spans (where brackets are no links). */
function withoutCode(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, "").replace(/`[^`\n]*`/g, "");
}

describe("every relative link in README.md and docs/*.md resolves (issue 21)", () => {
  const docs = ["README.md", ...fs.readdirSync(path.join(REPO_ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

  // and the generated reports (docs/README.md, "Generated figures"), which the index does not list page by page
  const generated = fs.existsSync(path.join(REPO_ROOT, "docs", "generated")) ? fs.readdirSync(path.join(REPO_ROOT, "docs", "generated")).filter((f) => f.endsWith(".md")).map((f) => `docs/generated/${f}`) : [];

  it.each([...docs, ...generated])("%s: every relative link names an existing file, and every #anchor a heading there", (file) => {
    const text = fs.readFileSync(path.join(REPO_ROOT, file), "utf8");
    const links = [...withoutCode(text).matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]).filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
    const broken: string[] = [];
    for (const link of links) {
      const [target, anchor] = link.split("#", 2);
      const resolved = target ? path.join(path.dirname(path.join(REPO_ROOT, file)), decodeURIComponent(target)) : path.join(REPO_ROOT, file);
      if (!fs.existsSync(resolved)) {
        broken.push(`${link}: no such file`);
        continue;
      }
      if (anchor !== undefined && (anchor === "" || !headingAnchors(fs.readFileSync(resolved, "utf8")).has(anchor))) broken.push(`${link}: no such heading`);
    }
    expect(broken).toEqual([]);
    if (file === "README.md") expect(links.length).toBeGreaterThanOrEqual(10);
  });

  it("the anchor rule matches GitHub's on headings of these docs", () => {
    expect(headingAnchors("## Deploying from an operator's machine\n### Host keys\n```sh\n# not a heading\n```\n## Failure scenarios (measured)\n## In short\n## In short\n")).toEqual(
      new Set(["deploying-from-an-operators-machine", "host-keys", "failure-scenarios-measured", "in-short", "in-short-1"]),
    );
  });

  it("docs/README.md lists every page of docs/, one line each", () => {
    const index = fs.readFileSync(path.join(REPO_ROOT, "docs", "README.md"), "utf8");
    for (const page of docs.filter((d) => d.startsWith("docs/") && d !== "docs/README.md").map((d) => path.basename(d))) {
      expect({ page, lines: index.split("\n").filter((l) => l.startsWith(`| [${page}](${page}) |`)).length }).toEqual({ page, lines: 1 });
    }
    expect(readme).toContain("(docs/README.md)");
  });
});

describe("README quickstart: the synth output it shows is what synth prints (issue 21)", () => {
  it("every line of the shown output comes, in order, from a real `npm run synth` of the shipped description it names", () => {
    const quickstart = readme.slice(readme.indexOf("## Quickstart"), readme.indexOf("## Commands"));
    const block = /```\n\s*\$ CLUSTER_FILE=(\S+) npm run synth\n([\s\S]*?)```/.exec(quickstart);
    expect(block).not.toBeNull();
    const [, file, shown] = block!;
    expect(fs.existsSync(path.join(REPO_ROOT, file))).toBe(true);
    const expected = shown.split("\n").map((l) => l.trim()).filter(Boolean);
    expect(expected.length).toBeGreaterThanOrEqual(3);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "readme-quickstart-"));
    try {
      // a pipe, as shown; into a temporary directory, whose option is taken out of the "running:" line
      const r = spawnSync("npm", ["run", "synth", "--", "--output", path.join(dir, "out")], { cwd: REPO_ROOT, env: { ...process.env, CLUSTER_FILE: file }, encoding: "utf8", timeout: 180000 });
      expect({ status: r.status }).toEqual({ status: 0 });
      const printed = `${r.stderr}\n${r.stdout}`.split("\n").map((l) => l.replace(` --output ${path.join(dir, "out")}`, "").trim());
      let at = -1;
      for (const line of expected) {
        const found = printed.findIndex((p, i) => i > at && p === line);
        expect({ line, found: found >= 0 }).toEqual({ line, found: true });
        at = found;
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 200000);
});
