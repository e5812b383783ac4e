/**
 * `npm run topology [-- --out DIR] [--check]`
 *
 * Draws the cluster described by CLUSTER_FILE (default clusters/example.yaml, as main.ts)
 * as Mermaid: `topology.mmd` and `topology.md` (the same in a ```mermaid block).
 * - With `--out DIR`: written to DIR (any description).
 * - Without: the project's own docs/topology.mmd and docs/topology.md, which show the
 *   example: refused for another description (it would overwrite the project's docs).
 * - `--check`: writes nothing; exits 1 when a file is missing or stale (CI), 0 when fresh.
 * It says which description it loaded (stderr). An invalid description prints every
 * problem and exits 1; a usage error exits 2.
 */
import * as fs from "fs";
import * as path from "path";
import { DEFAULT_CLUSTER_FILE, announceSelectedDescription } from "../constructs/description/selection";
import { renderTopologyMarkdown, renderTopologyMermaid } from "../constructs/render/topology";

const REPO_ROOT = path.resolve(__dirname, "..");
export const TOPOLOGY_FILES = { mermaid: "topology.mmd", markdown: "topology.md" } as const;
const DOCS_DIR = "docs";
const USAGE = "usage: npm run topology -- [--out DIR] [--check]";

function main(argv: string[]): number {
  let check = false;
  let out: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--check") check = true;
    else if (argv[i] === "--out" && argv[i + 1] !== undefined && !argv[i + 1].startsWith("--")) out = argv[++i];
    else {
      process.stderr.write(`${argv[i] === "--out" ? "--out needs a directory" : `unknown argument ${argv[i]}`}\n${USAGE}\n`);
      return 2;
    }
  }
  const loaded = announceSelectedDescription();
  if (!loaded.ok) return 1;
  const isExample = loaded.selection.absolutePath === path.join(REPO_ROOT, DEFAULT_CLUSTER_FILE);
  if (out === undefined && !isExample) {
    process.stderr.write(
      `error: ${DOCS_DIR}/topology.* are the project's pictures of ${DEFAULT_CLUSTER_FILE}; ` +
        `to draw ${loaded.selection.file}, name a directory: npm run topology -- --out DIR\n`,
    );
    return 2;
  }
  const dir = out === undefined ? path.join(REPO_ROOT, DOCS_DIR) : path.resolve(out);
  const shown = (f: string) => path.relative(process.cwd(), path.join(dir, f)) || f;
  const source = path.relative(REPO_ROOT, loaded.selection.absolutePath).split(path.sep).join("/");
  const wanted: Record<string, string> = {
    [TOPOLOGY_FILES.mermaid]: renderTopologyMermaid(loaded.cluster, { source }),
    [TOPOLOGY_FILES.markdown]: renderTopologyMarkdown(loaded.cluster, { source }),
  };
  let stale = 0;
  for (const [name, text] of Object.entries(wanted)) {
    const target = path.join(dir, name);
    const current = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : undefined;
    if (current === text) {
      if (!check) process.stdout.write(`${shown(name)} is up to date\n`);
      continue;
    }
    if (check) {
      stale++;
      process.stderr.write(`${shown(name)} is ${current === undefined ? "missing" : "stale"}: run \`npm run topology${out === undefined ? "" : ` -- --out ${out}`}\`${out === undefined ? " and commit it" : ""}\n`);
    } else {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(target, text);
      process.stdout.write(`wrote ${shown(name)}\n`);
    }
  }
  return stale ? 1 : 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
