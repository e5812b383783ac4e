/**
 * The import graph of our own TypeScript files, resolved by the TypeScript compiler itself
 * (the project's tsconfig.json, its module resolution), and its import circles. Counts every
 * import: `import`, `import type`, `export … from`, `require()` and `import()`: a type-only
 * circle is a tangle for the reader even when it costs nothing at run time.
 */
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";

export interface ImportGraph {
  /** Repository-relative path → the repository files it imports (relative paths). */
  readonly files: Map<string, string[]>;
  /** Repository-relative path → the packages it imports (`cdktf`, `@cdktf/provider-null`, `fs`). */
  readonly packages: Map<string, string[]>;
}

/** The package name of a bare module specifier: `@scope/name/x` → `@scope/name`, `yaml/util` → `yaml`. */
function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/** The import graph of the files tsconfig.json at `root` includes and `keep` accepts. */
export function importGraph(root: string, keep: (relative: string) => boolean = () => true): ImportGraph {
  const host = { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d: ts.Diagnostic) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n")); } };
  const config = ts.getParsedCommandLineOfConfigFile(path.join(root, "tsconfig.json"), {}, host);
  if (!config) throw new Error(`cannot read ${path.join(root, "tsconfig.json")}`);
  const files = new Map<string, string[]>();
  const packages = new Map<string, string[]>();
  for (const file of config.fileNames) {
    const rel = path.relative(root, file);
    if (!keep(rel)) continue;
    const info = ts.preProcessFile(fs.readFileSync(file, "utf8"), true, true);
    const own = new Set<string>();
    const pkgs = new Set<string>();
    for (const imported of info.importedFiles) {
      const resolved = ts.resolveModuleName(imported.fileName, file, config.options, ts.sys).resolvedModule;
      const target = resolved && path.relative(root, resolved.resolvedFileName);
      if (resolved && !resolved.isExternalLibraryImport && target && !target.startsWith("..") && !target.split(path.sep).includes("node_modules")) own.add(target);
      else if (!imported.fileName.startsWith(".")) pkgs.add(packageName(imported.fileName));
      else throw new Error(`${rel}: cannot resolve the import "${imported.fileName}"`);
    }
    files.set(rel, [...own].sort());
    packages.set(rel, [...pkgs].sort());
  }
  return { files, packages };
}

/**
 * The import circles of a graph: its strongly connected components of more than one file,
 * and any file importing itself (Tarjan's algorithm), each sorted, in a stable order.
 */
export function importCircles(files: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const circles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of files.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (files.get(v) ?? []).includes(v)) circles.push(component.sort());
    }
  };
  for (const v of [...files.keys()].sort()) if (!index.has(v)) visit(v);
  return circles.sort((a, b) => a[0].localeCompare(b[0]));
}

/** A circle in words, with the imports that close it: "a.ts → b.ts; b.ts → a.ts". */
export function describeCircle(files: ReadonlyMap<string, readonly string[]>, circle: readonly string[]): string {
  return circle.map((f) => `${f} → ${(files.get(f) ?? []).filter((t) => circle.includes(t)).join(", ")}`).join("; ");
}

/** The files reachable from `start` through imports, `start` included. */
export function reachable(files: ReadonlyMap<string, readonly string[]>, start: string): Set<string> {
  const seen = new Set<string>([start]);
  const todo = [start];
  while (todo.length) for (const w of files.get(todo.pop()!) ?? []) if (!seen.has(w)) seen.add(w), todo.push(w);
  return seen;
}
