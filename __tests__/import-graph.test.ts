/**
 * The layout's promises (docs/architecture.md), checked on the import graph the TypeScript
 * compiler resolves from tsconfig.json: no import circle among our own files (main.ts,
 * constructs/, plan-review/, scripts/), cdktf kept to the constructs, the rendering and the
 * description free of it, the plan review independent of the constructs.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { describeCircle, importCircles, importGraph, reachable } from "./helpers/import-graph";

const ROOT = path.resolve(__dirname, "..");
const ours = (rel: string) => !rel.startsWith(`__tests__${path.sep}`);
const graph = importGraph(ROOT, ours);
/** Packages that bring the cdktf construct tree: only the constructs (and the programs that synth) may load them. */
const CDKTF = (pkg: string) => pkg === "cdktf" || pkg === "constructs" || pkg.startsWith("@cdktf/");
const under = (dir: string) => [...graph.files.keys()].filter((f) => f.startsWith(`${dir}/`));

describe("the import graph of our own files", () => {
  test("covers every TypeScript file outside the tests (a file tsconfig.json misses escapes tsc and this check)", () => {
    const found: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
        const rel = path.join(dir, e.name);
        if (e.isDirectory() && !["node_modules", ".engines", ".git", "cdktf.out", "__tests__"].includes(e.name)) walk(rel);
        else if (e.isFile() && /\.[cm]?ts$/.test(e.name)) found.push(rel);
      }
    };
    walk("");
    expect(found.sort()).toEqual([...graph.files.keys()].sort());
    // the directories the architecture names are all there
    for (const dir of ["constructs", "constructs/description", "constructs/render", "plan-review", "scripts"]) expect([dir, under(dir).length > 0]).toEqual([dir, true]);
  });

  test("has no import circle", () => {
    expect(importCircles(graph.files).map((c) => describeCircle(graph.files, c))).toEqual([]);
  });

  test("the rendering, the description and the plan review never load cdktf, not even through another file", () => {
    const pure = [...under("constructs/render"), ...under("constructs/description"), ...under("plan-review")];
    expect(pure.length).toBeGreaterThan(20);
    const offenders = pure.flatMap((f) => [...reachable(graph.files, f)].flatMap((g) => (graph.packages.get(g) ?? []).filter(CDKTF).map((p) => `${f} (through ${g}): ${p}`)));
    expect(offenders).toEqual([]);
  });

  test("the plan review reads synth outputs and plans only: it imports nothing from constructs/", () => {
    const offenders = under("plan-review").flatMap((f) => (graph.files.get(f) ?? []).filter((t) => !t.startsWith("plan-review/")).map((t) => `${f} → ${t}`));
    expect(offenders).toEqual([]);
    // and its public entry point uses it
    expect(graph.files.get("scripts/plan-summary.ts")).toContain("plan-review/summary.ts");
  });

  test("cdktf is imported only by main.ts and the constructs (constructs/*.ts)", () => {
    const importers = [...graph.packages].filter(([, pkgs]) => pkgs.some(CDKTF)).map(([f]) => f);
    expect(importers).toContain("main.ts");
    expect(importers.filter((f) => f !== "main.ts" && path.dirname(f) !== "constructs")).toEqual([]);
  });

  test("the description does not depend on the constructs that consume it", () => {
    const constructFiles = new Set(under("constructs").filter((f) => path.dirname(f) === "constructs" && (graph.packages.get(f) ?? []).some(CDKTF)));
    expect(constructFiles.size).toBeGreaterThan(5);
    const offenders = under("constructs/description").flatMap((f) => (graph.files.get(f) ?? []).filter((t) => constructFiles.has(t)).map((t) => `${f} → ${t}`));
    expect(offenders).toEqual([]);
  });
});

describe("the circle check itself", () => {
  let dir: string;
  beforeAll(() => {
    // A small project with a type-only circle and a runtime one: both must be found.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "import-graph-"));
    fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { module: "commonjs", strict: true }, include: ["**/*.ts"] }));
    fs.mkdirSync(path.join(dir, "lib"));
    fs.writeFileSync(path.join(dir, "a.ts"), 'import { b } from "./lib/b";\nexport const a = () => b;\n');
    fs.writeFileSync(path.join(dir, "lib", "b.ts"), 'import type { C } from "../c";\nexport const b: C = 1;\n');
    fs.writeFileSync(path.join(dir, "c.ts"), 'export type C = number;\nexport { a } from "./a";\n');
    fs.writeFileSync(path.join(dir, "d.ts"), 'import "./lib/b";\nconst e = require("./e");\nexport default e;\n');
    fs.writeFileSync(path.join(dir, "e.ts"), 'import * as fs from "fs";\nimport "cdktf/lib/x";\nexport = async () => (await import("./d")).default ?? fs;\n');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("finds each circle, type-only imports, re-exports, require() and import() included", () => {
    const g = importGraph(dir);
    expect(g.files.get("d.ts")).toEqual(["e.ts", "lib/b.ts"]);
    expect(g.packages.get("e.ts")).toEqual(["cdktf", "fs"]);
    expect(importCircles(g.files)).toEqual([["a.ts", "c.ts", "lib/b.ts"], ["d.ts", "e.ts"]]);
    expect(describeCircle(g.files, ["a.ts", "c.ts", "lib/b.ts"])).toBe("a.ts → lib/b.ts; c.ts → a.ts; lib/b.ts → c.ts");
  });

  test("finds a file that imports itself, and none in a graph without circles", () => {
    expect(importCircles(new Map([["x.ts", ["x.ts"]]]))).toEqual([["x.ts"]]);
    expect(importCircles(new Map([["x.ts", ["y.ts"]], ["y.ts", []]]))).toEqual([]);
  });
});

describe("docs/architecture.md", () => {
  const text = fs.readFileSync(path.join(ROOT, "docs", "architecture.md"), "utf8");
  const table = text.slice(text.indexOf("| directory | concern |")).split("\n").filter((l) => l.startsWith("| `"));
  const rows = table.map((l) => /^\| `([^`]+)` \|/.exec(l)![1].replace(/\/$/, ""));

  test("its table names every directory that holds our code, and each path it names exists", () => {
    const codeDirs = [...new Set([...graph.files.keys()].map((f) => path.dirname(f)).filter((d) => d !== "."))];
    expect(codeDirs.filter((d) => !rows.includes(d)).sort()).toEqual([]);
    for (const l of table) for (const m of l.matchAll(/`([A-Za-z_.][\w./-]*)`/g)) {
      const p = m[1];
      if (!/[/.]/.test(p)) continue;
      const candidates = [p, path.join(/^\| `([^`]+)` \|/.exec(l)![1], p)];
      expect({ p, exists: candidates.some((c) => fs.existsSync(path.join(ROOT, c))) }).toEqual({ p, exists: true });
    }
  });

  test("its picture names directories that exist", () => {
    const block = /```mermaid\n([\s\S]*?)```/.exec(text)![1];
    const dirs = [...block.matchAll(/"((?:constructs|plan-review|clusters)\/[\w/-]*)/g)].map((m) => m[1].replace(/\/NAME$/, "").replace(/\/$/, ""));
    expect(dirs.length).toBeGreaterThanOrEqual(4);
    for (const d of dirs) expect({ d, exists: fs.existsSync(path.join(ROOT, d)) }).toEqual({ d, exists: true });
  });
});
