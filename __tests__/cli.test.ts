/**
 * main.ts as operators and CI run it: a broken description gives every problem, exit 1,
 * no stack trace and no output directory; the committed JSON Schema is up to date.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { clusterJsonSchema } from "../constructs/description/json-schema";
import { REPO_ROOT, exampleText } from "./helpers/synth";

const TSX = path.join(REPO_ROOT, "node_modules", ".bin", "tsx");

function runMain(env: Record<string, string>) {
  const outdir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "cli-")), "cdktf.out");
  const r = spawnSync(TSX, ["main.ts"], { cwd: REPO_ROOT, env: { ...process.env, CDKTF_OUTDIR: outdir, ...env }, encoding: "utf8" });
  const wrote = fs.existsSync(outdir);
  fs.rmSync(path.dirname(outdir), { recursive: true, force: true });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, wrote };
}

describe("main.ts", () => {
  let dir: string;
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "desc-"))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("synthesizes the example by default", () => {
    const r = runMain({});
    expect(r).toMatchObject({ status: 0, wrote: true });
  });

  it("rejects a broken description: all problems, exit 1, no stack trace, nothing written", () => {
    const file = path.join(dir, "broken.yaml");
    fs.writeFileSync(file, exampleText().replace("virtualRouterId: 100", "virtualRouterId: 300").replace("haproxy: haproxy:3.0.5", "haproxy: haproxy:latest").replace("overlayAddress: 172.16.1.12", "overlayAddress: 10.9.9.9"));
    const r = runMain({ CLUSTER_FILE: file });
    expect(r.status).toBe(1);
    expect(r.wrote).toBe(false);
    expect(r.stderr).toContain(`${file}: 3 problems in the cluster description:`);
    expect(r.stderr).toMatch(/floatingIp\.virtualRouterId \(line \d+\): expected a VRRP router id 1-255, got number 300/);
    expect(r.stderr).toMatch(/app\.images\.haproxy \(line \d+\): expected an explicit version tag, not 'latest'/);
    expect(r.stderr).toMatch(/nodes\[1\]\.overlayAddress \(line \d+\): expected an address inside overlay\.prefix/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it("names a missing description file without a stack trace", () => {
    const r = runMain({ CLUSTER_FILE: path.join(dir, "nope.yaml") });
    expect(r.status).toBe(1);
    expect(r.wrote).toBe(false);
    expect(r.stderr).toMatch(/cannot read the cluster description .*nope\.yaml \(ENOENT\)/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });
});

describe("cluster.schema.json", () => {
  it("is up to date with the zod schema (run `npm run schema`)", () => {
    expect(fs.readFileSync(path.join(REPO_ROOT, "cluster.schema.json"), "utf8")).toBe(clusterJsonSchema());
  });
});
