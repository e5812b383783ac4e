/**
 * The jobs stack never carries a secret value, however the app is run; and a release
 * (an image tag) touches only the job that runs that image.
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { jobsStackName } from "../constructs/jobs-stack";
import { nodesStackName } from "../constructs/nodes-stack";
import { SECRET_VARIABLES } from "../constructs/description/secrets";
import type { Cluster } from "../constructs/description/schema";
import { REPO_ROOT, cleanup, edited, exampleCluster, exampleText, listFiles, synthCluster, type SynthOutput } from "./helpers/synth";

function plantSecrets(): Record<string, string> {
  const planted: Record<string, string> = {};
  for (const v of Object.values(SECRET_VARIABLES)) planted[`TF_VAR_${v.name}`] = `PLANTED-${v.name}-${crypto.randomBytes(12).toString("hex")}`;
  return planted;
}

function leaks(dir: string, planted: Record<string, string>): string[] {
  const found: string[] = [];
  for (const f of listFiles(dir)) {
    const text = fs.readFileSync(path.join(dir, f), "utf8");
    for (const [name, value] of Object.entries(planted)) if (text.includes(value)) found.push(`${name} in ${f}`);
  }
  return found;
}

/** The example with a private registry, as a description file (so main.ts declares registry_password). */
function registryExampleFile(dir: string): string {
  const file = path.join(dir, "registry.yaml");
  const text = exampleText().replace(/^app:\n/m, `app:\n  registry: { server: ghcr.io, username: example-bot }\n`);
  fs.writeFileSync(file, text);
  return file;
}

describe("secrets never reach the synthesized output", () => {
  it("in-process synth with TF_VAR_* set: no planted value in any file of any stack", () => {
    const planted = plantSecrets();
    const saved = { ...process.env };
    Object.assign(process.env, planted);
    let out: SynthOutput | undefined;
    try {
      const c = edited(exampleCluster(), (x) => (x.app.registry = { server: "ghcr.io", username: "example-bot" }));
      out = synthCluster(c);
      // The variables are there (declared, sensitive), their values are not.
      expect(Object.keys(out.stacks[jobsStackName(c)].variable).sort()).toEqual(
        ["grafana_admin_password", "rabbitmq_password", "registry_password", "s3_access_key_id", "s3_secret_access_key"],
      );
      expect(listFiles(out.outdir).length).toBeGreaterThan(10);
      expect(leaks(out.outdir, planted)).toEqual([]);
    } finally {
      process.env = saved;
      if (out) cleanup(out);
    }
  });

  it("main.ts as a child process (how cdktf.json's app runs it), TF_VAR_* in its environment, CDKTF_OUTDIR to a temp dir", () => {
    const planted = plantSecrets();
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "jobs-secrets-"));
    const outdir = path.join(work, "out");
    try {
      // cdktf's App takes its outdir from CDKTF_OUTDIR when none is given (main.ts gives none).
      execFileSync(path.join(REPO_ROOT, "node_modules", ".bin", "tsx"), ["main.ts"], {
        cwd: REPO_ROOT,
        env: { ...process.env, ...planted, CDKTF_OUTDIR: outdir, CLUSTER_FILE: registryExampleFile(work) },
        stdio: "pipe",
      });
      const stack = JSON.parse(fs.readFileSync(path.join(outdir, "stacks", "team-example-jobs", "cdk.tf.json"), "utf8"));
      expect(stack.variable.registry_password.sensitive).toBe(true);
      expect(fs.existsSync(path.join(outdir, "stacks", "team-example-jobs", "rendered", "jobs", "api.nomad.hcl"))).toBe(true);
      expect(leaks(outdir, planted)).toEqual([]);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});

/** Every resource of every stack, by "<stack> <type>.<name>", JSON-stringified. */
function resourceBodies(out: SynthOutput): Map<string, string> {
  const m = new Map<string, string>();
  for (const [stack, json] of Object.entries(out.stacks)) {
    for (const [type, byName] of Object.entries<any>(json.resource ?? {})) {
      for (const [name, body] of Object.entries(byName)) m.set(`${stack} ${type}.${name}`, JSON.stringify(body));
    }
  }
  return m;
}

function changedResources(a: SynthOutput, b: SynthOutput): string[] {
  const ra = resourceBodies(a);
  const rb = resourceBodies(b);
  return [...new Set([...ra.keys(), ...rb.keys()])].filter((k) => ra.get(k) !== rb.get(k)).sort();
}

/** Rendered files that differ between two synths, per stack. */
function changedFiles(a: SynthOutput, b: SynthOutput): string[] {
  const keys = new Set<string>();
  for (const o of [a, b]) for (const [s, files] of Object.entries(o.files)) for (const f of Object.keys(files)) keys.add(`${s} ${f}`);
  return [...keys].filter((k) => {
    const [s, f] = k.split(" ");
    return a.files[s]?.[f] !== b.files[s]?.[f];
  }).sort();
}

describe("blast radius of a release", () => {
  const base = exampleCluster();
  let before: SynthOutput;
  beforeAll(() => (before = synthCluster(base)));
  afterAll(() => cleanup(before));

  function compare(edit: (c: Cluster) => void): { resources: string[]; files: string[] } {
    const after = synthCluster(edited(base, edit));
    try {
      return { resources: changedResources(before, after), files: changedFiles(before, after) };
    } finally {
      cleanup(after);
    }
  }

  it("a new web image changes nomad_job.web and nothing else (no agent provisioning resource)", () => {
    const { resources, files } = compare((c) => (c.app.images.web = "ghcr.io/example-team/image-web:4d0e1f2"));
    expect(resources).toEqual(["team-example-jobs nomad_job.web"]);
    expect(files).toEqual(["team-example-jobs rendered/jobs/web.nomad.hcl"]);
  });

  it("a new api image changes the jobs that run it (api, worker, and metrics: its queue exporter runs the api image), nothing else", () => {
    const { resources } = compare((c) => (c.app.images.api = "ghcr.io/example-team/image-api:4d0e1f2"));
    expect(resources).toEqual(["team-example-jobs nomad_job.api", "team-example-jobs nomad_job.metrics", "team-example-jobs nomad_job.worker"]);
  });

  it("a new haproxy image changes nomad_job.haproxy only", () => {
    const { resources } = compare((c) => (c.app.images.haproxy = "haproxy:3.0.6"));
    expect(resources).toEqual(["team-example-jobs nomad_job.haproxy"]);
  });

  it("the nodes stack is byte-identical across releases (JSON and rendered files)", () => {
    const after = synthCluster(edited(base, (c) => Object.assign(c.app.images, { web: "x.io/w:2", api: "x.io/a:2", haproxy: "haproxy:3.0.6" })));
    try {
      const s = nodesStackName(base);
      expect(after.stacks[s]).toEqual(before.stacks[s]);
      expect(after.files[s]).toEqual(before.files[s]);
    } finally {
      cleanup(after);
    }
  });

  it("(the comparison does see changes: a worker setting touches nomad_job.worker)", () => {
    const { resources } = compare((c) => (c.app.worker.concurrency = 4));
    expect(resources).toEqual(["team-example-jobs nomad_job.worker"]);
  });
});
