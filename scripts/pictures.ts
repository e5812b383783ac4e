/**
 * `npm run pictures [-- --check]`
 *
 * Writes the Mermaid pictures of docs/pictures/ from the real output: the example
 * (clusters/example.yaml) synthesized into a temporary directory, its rendered install
 * scripts and keepalived.conf, the rollout batches, the CI workflows of ci-templates/
 * (scripts/lib/pictures.ts draws them). `--check` writes nothing and exits 1 when a picture
 * is missing or stale. Exit 2 on a usage error.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { synthesizeCluster } from "../constructs/cluster";
import { loadDescriptionFile } from "../constructs/description/load";
import type { Cluster } from "../constructs/description/schema";
import { DEFAULT_CLUSTER_FILE } from "../constructs/description/selection";
import { nodesStackName } from "../constructs/stack-names";
import { agentComponentFiles } from "../constructs/render/node-files";
import { readSynthOutput } from "./lib/synth-output";
import { PICTURES_DIR, PICTURE_FILES, ciPicture, failoverPicture, keepalivedTimings, provisioningPicture, rolloutPicture } from "./lib/pictures";

const REPO_ROOT = path.resolve(__dirname, "..");
/** A description whose Nomad has no `nomad config validate`: the install script's rollback path. */
const OLD_NOMAD_FILE = "clusters/provider-2022.yaml";
const WORKFLOWS = ["ci-templates/github/workflows/ci.yml", "ci-templates/github/workflows/deploy.yml"];

function load(file: string): Cluster {
  const r = loadDescriptionFile(path.join(REPO_ROOT, file));
  if (!r.ok) throw new Error(`${file} is not a valid description (npm run synth says why)`);
  return r.cluster;
}

/** A larger cluster made from the example, to show batches of more than one node. */
function largerCluster(example: Cluster): { cluster: Cluster; what: string } {
  const base = example.nodes[example.nodes.length - 1];
  const nodes = Array.from({ length: 6 }, (_, i) => ({ ...structuredClone(base), name: `node-${i + 1}`, floatingIp: { ...base.floatingIp, eligible: i < 3 } }));
  const batchSize = 3;
  return {
    cluster: { ...example, nodes, rollout: { ...example.rollout, batchSize } },
    what: `The same rules for ${nodes.length} nodes with \`rollout.batchSize: ${batchSize}\``,
  };
}

/** Every picture: file name under docs/pictures → its Markdown. */
export function renderPictures(): Record<string, string> {
  const example = load(DEFAULT_CLUSTER_FILE);
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), "pictures-"));
  try {
    synthesizeCluster(example, outdir);
    const out = readSynthOutput(outdir);
    const stack = nodesStackName(example);
    const old = load(OLD_NOMAD_FILE);
    const oldNode = old.nodes[0];
    const eligible = example.nodes.filter((n) => n.floatingIp.eligible);
    return {
      [PICTURE_FILES.provisioning]: provisioningPicture({
        cluster: example,
        nodesStack: out.stacks[stack],
        nodesFiles: out.files[stack],
        oldNomad: { source: OLD_NOMAD_FILE, version: old.versions.nomad, script: agentComponentFiles(old, oldNode, "nomad").files["install.sh"] },
        source: DEFAULT_CLUSTER_FILE,
      }),
      [PICTURE_FILES.rollout]: rolloutPicture({ cluster: example, source: DEFAULT_CLUSTER_FILE }, largerCluster(example)),
      [PICTURE_FILES.ci]: ciPicture(WORKFLOWS.map((file) => ({ file, workflow: parse(fs.readFileSync(path.join(REPO_ROOT, file), "utf8")) }))),
      [PICTURE_FILES.failover]: failoverPicture(
        eligible.map((n) => keepalivedTimings(n.name, out.files[stack][`rendered/${n.name}/keepalived/keepalived.conf`])),
        `\`${DEFAULT_CLUSTER_FILE}\` synthesized`,
      ),
    };
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

function main(argv: string[]): number {
  const check = argv.includes("--check");
  const unknown = argv.filter((a) => a !== "--check");
  if (unknown.length) {
    process.stderr.write(`unknown argument ${unknown[0]}\nusage: npm run pictures -- [--check]\n`);
    return 2;
  }
  const dir = path.join(REPO_ROOT, PICTURES_DIR);
  let stale = 0;
  for (const [name, text] of Object.entries(renderPictures())) {
    const target = path.join(dir, name);
    const shown = path.join(PICTURES_DIR, name);
    const current = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : undefined;
    if (current === text) {
      if (!check) process.stdout.write(`${shown} is up to date\n`);
    } else if (check) {
      stale++;
      process.stderr.write(`${shown} is ${current === undefined ? "missing" : "stale"}: run \`npm run pictures\` and commit it\n`);
    } else {
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(target, text);
      process.stdout.write(`wrote ${shown}\n`);
    }
  }
  return stale ? 1 : 0;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
