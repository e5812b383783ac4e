/**
 * `npm run topology [-- --check]`
 *
 * Writes the topology picture of the cluster described by CLUSTER_FILE (default
 * clusters/example.yaml, as main.ts) to docs/topology.mmd (Mermaid) and docs/topology.md
 * (the same in a ```mermaid block). With --check nothing is written: exits 1 when either
 * file is missing or stale (CI), 0 when both are fresh. An invalid description prints every
 * problem and exits 1.
 */
import * as fs from "fs";
import * as path from "path";
import { formatProblems, loadDescriptionFile } from "../constructs/description/load";
import { renderTopologyMarkdown, renderTopologyMermaid } from "../constructs/render/topology";

/** Same default as main.ts (not imported: importing main.ts would synthesize). */
const DEFAULT_CLUSTER_FILE = "clusters/example.yaml";
const REPO_ROOT = path.resolve(__dirname, "..");
export const TOPOLOGY_FILES = { mermaid: "docs/topology.mmd", markdown: "docs/topology.md" } as const;

function main(argv: string[]): number {
  const check = argv.includes("--check");
  const unknown = argv.filter((a) => a !== "--check");
  if (unknown.length) {
    process.stderr.write(`unknown argument ${unknown[0]}\nusage: npm run topology -- [--check]\n`);
    return 2;
  }
  const file = process.env.CLUSTER_FILE ?? DEFAULT_CLUSTER_FILE;
  const loaded = loadDescriptionFile(path.resolve(file));
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(file, loaded.problems)}\n`);
    return 1;
  }
  const source = path.relative(REPO_ROOT, path.resolve(file)).split(path.sep).join("/");
  const wanted: Record<string, string> = {
    [TOPOLOGY_FILES.mermaid]: renderTopologyMermaid(loaded.cluster, { source }),
    [TOPOLOGY_FILES.markdown]: renderTopologyMarkdown(loaded.cluster, { source }),
  };
  let stale = 0;
  for (const [rel, text] of Object.entries(wanted)) {
    const target = path.join(REPO_ROOT, rel);
    const current = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : undefined;
    if (current === text) continue;
    if (check) {
      stale++;
      process.stderr.write(`${rel} is ${current === undefined ? "missing" : "stale"}: run \`npm run topology\` and commit it\n`);
    } else {
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, text);
      process.stdout.write(`wrote ${rel}\n`);
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
