/**
 * Synthesizing needs no Terraform binary (README): main.ts runs with a PATH that holds
 * only `node`, and the output is the same as with Terraform installed. cdktf's own
 * synth-time `terraform version` check on terraform_data is dropped for this
 * (constructs/terraform-version-check.ts); the other validations stay.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { App } from "cdktf";
import { defineCluster } from "../constructs/cluster";
import { REPO_ROOT, exampleCluster } from "./helpers/synth";

describe("synth without a terraform binary", () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "no-tf-"))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("main.ts synthesizes the example with only node on PATH", () => {
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    fs.symlinkSync(process.execPath, path.join(bin, "node"));
    const outdir = path.join(dir, "out");
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, "node_modules", "tsx", "dist", "cli.mjs"), "main.ts"], {
      cwd: REPO_ROOT,
      env: { HOME: dir, PATH: bin, CDKTF_OUTDIR: outdir },
      encoding: "utf8",
    });
    // only main.ts's notice of the description it loaded and the example's one no-ACL line
    // (docs/trust-model.md): no other warning, no error
    expect(r.stderr).toContain("cluster description: clusters/example.yaml -> stacks team-example-nodes, team-example-jobs\n");
    expect(r.stderr.match(/^WARNING: no ACLs .*\n/gm)).toHaveLength(1);
    expect(r.stderr.replace(/^(cluster description|NOTE|WARNING: no ACLs)\b.*\n/gm, "")).toBe("");
    expect(r.status).toBe(0);
    expect(fs.existsSync(path.join(outdir, "stacks", "team-example-nodes", "cdk.tf.json"))).toBe(true);
  });

  it("keeps cdktf's other validations (provider presence)", () => {
    const app = new App({ outdir: path.join(dir, "validations") });
    const { nodes } = defineCluster(app, exampleCluster());
    const kinds = nodes.node.findAll().flatMap((c) => ((c.node as unknown as { _validations: object[] })._validations ?? []).map((v) => v.constructor.name));
    expect(kinds).toContain("ValidateProviderPresence");
    expect(kinds).not.toContain("ValidateTerraformVersion");
  });
});
