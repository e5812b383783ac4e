/**
 * The benchmark script's pure helpers (scripts/bench.ts): generated clusters are valid for
 * the real loader, and the resource diff behind the blast-radius figures counts right.
 * No synth and no timing here: `npm run bench` is the benchmark.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadDescriptionText } from "../constructs/description/load";
import {
  MAX_GENERATED_NODES,
  diffDirs,
  diffPaths,
  diffResources,
  editedYaml,
  generateClusterYaml,
  generatedAddress,
  generatedOverlayAddress,
  median,
  resourceInstances,
  type Snapshot,
} from "../scripts/bench";
import { exampleText } from "./helpers/synth";

describe("generated clusters", () => {
  it.each([1, 2, 20, 200, MAX_GENERATED_NODES])("%i nodes: valid for the real loader, names node-1..node-N", (n) => {
    const r = loadDescriptionText(generateClusterYaml(exampleText(), n));
    if (!r.ok) throw new Error(JSON.stringify(r.problems.slice(0, 5)));
    expect(r.cluster.nodes).toHaveLength(n);
    expect(r.cluster.nodes[0].name).toBe("node-1");
    expect(r.cluster.nodes[n - 1].name).toBe(`node-${n}`);
    // everything but the nodes is the example's
    const example = loadDescriptionText(exampleText());
    if (!example.ok) throw new Error("example invalid");
    expect({ ...r.cluster, nodes: [] }).toEqual({ ...example.cluster, nodes: [] });
  });

  it("addresses: documentation ranges, overlay inside 172.16.0.0/16, all distinct", () => {
    expect(generatedAddress(0)).toBe("192.0.2.1");
    expect(generatedAddress(253)).toBe("192.0.2.254");
    expect(generatedAddress(254)).toBe("198.51.100.1");
    expect(generatedAddress(MAX_GENERATED_NODES - 1)).toBe("203.0.113.254");
    expect(() => generatedAddress(MAX_GENERATED_NODES)).toThrow(/outside/);
    expect(generatedOverlayAddress(0)).toBe("172.16.10.1");
    expect(generatedOverlayAddress(254)).toBe("172.16.11.1");
    const all = Array.from({ length: MAX_GENERATED_NODES }, (_, i) => generatedOverlayAddress(i));
    expect(new Set(all).size).toBe(all.length);
  });

  it("refuses sizes the address plan cannot hold", () => {
    expect(() => generateClusterYaml(exampleText(), 0)).toThrow(/node count/);
    expect(() => generateClusterYaml(exampleText(), MAX_GENERATED_NODES + 1)).toThrow(/node count/);
  });

  it("editedYaml applies an edit the loader sees", () => {
    const r = loadDescriptionText(editedYaml(exampleText(), (d) => (d.nodes[1].nodeClass = "edge")));
    expect(r.ok && r.cluster.nodes[1].nodeClass).toBe("edge");
  });
});

const stack = (resource: Record<string, Record<string, unknown>>) => ({ resource });
const snap = (stacks: Record<string, any>, files: Record<string, Record<string, string>> = {}): Snapshot => ({ stacks, files });

describe("diffResources", () => {
  const nr = (sha: string, extra: Record<string, unknown> = {}) => ({ "//": { metadata: { path: "x" } }, triggers: { node: "n", sha256_a: sha }, ...extra });

  it("no change: nothing changed, created or destroyed (cdktf metadata ignored)", () => {
    const a = snap({ s: stack({ null_resource: { a: nr("1") } }) });
    const b = snap({ s: stack({ null_resource: { a: { ...nr("1"), "//": { metadata: { path: "moved" } } } } }) });
    expect(diffResources(a, b)).toEqual({ changed: [], created: [], destroyed: [] });
  });

  it("counts a changed attribute, a created and a destroyed resource, across stacks", () => {
    const a = snap({
      s1: stack({ null_resource: { a: nr("1"), b: nr("1") } }),
      s2: stack({ nomad_job: { api: { jobspec: "image = api:1" }, web: { jobspec: "image = web:1" } } }),
    });
    const b = snap({
      s1: stack({ null_resource: { a: nr("2"), c: nr("1") } }),
      s2: stack({ nomad_job: { api: { jobspec: "image = api:2" }, web: { jobspec: "image = web:1" } } }),
    });
    const d = diffResources(a, b);
    expect(d.changed).toEqual([
      { address: "s1: null_resource.a", reasons: ["triggers.sha256_a"], filesOnly: false },
      { address: "s2: nomad_job.api", reasons: ["jobspec"], filesOnly: false },
    ]);
    expect(d.created).toEqual(["s1: null_resource.c"]);
    expect(d.destroyed).toEqual(["s1: null_resource.b"]);
  });

  it("for_each map: counts instances by key; a shared attribute change changes every instance", () => {
    const td = (each: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ terraform_data: { m: { for_each: each, input: "${each.value}", ...extra } } });
    const before = snap({ s: stack(td({ n1: { host: "a" }, n2: { host: "b" }, n3: { host: "c" } })) });
    const oneKey = diffResources(before, snap({ s: stack(td({ n1: { host: "a" }, n2: { host: "B" }, n4: { host: "d" } })) }));
    expect(oneKey.changed).toEqual([{ address: 's: terraform_data.m["n2"]', reasons: ["each.value.host"], filesOnly: false }]);
    expect(oneKey.created).toEqual(['s: terraform_data.m["n4"]']);
    expect(oneKey.destroyed).toEqual(['s: terraform_data.m["n3"]']);

    const shared = diffResources(before, snap({ s: stack(td({ n1: { host: "a" }, n2: { host: "b" }, n3: { host: "c" } }, { triggers_replace: { v: 2 } })) }));
    expect(shared.changed.map((c) => c.address)).toEqual(['s: terraform_data.m["n1"]', 's: terraform_data.m["n2"]', 's: terraform_data.m["n3"]']);
    expect(shared.created).toEqual([]);
  });

  it("for_each that is an expression: one unit; literal count: one instance per index", () => {
    const r = resourceInstances(snap({ s: stack({ x: { e: { for_each: "${toset(var.names)}" } }, y: { c: { count: 2 } } }) }));
    expect([...r.keys()]).toEqual(["s: x.e", "s: y.c[0]", "s: y.c[1]"]);
  });

  it("a referenced file whose content changed counts, flagged when no attribute changed", () => {
    const body = { provisioner: [{ file: { source: "rendered/n1/a.hcl", destination: "/tmp/a.hcl" } }] };
    const other = { provisioner: [{ file: { source: "rendered/n1/a.hcl.bak", destination: "/tmp/b" } }] };
    const a = snap({ s: stack({ null_resource: { r: body, o: other } }) }, { s: { "rendered/n1/a.hcl": "x = 1\n", "rendered/n1/a.hcl.bak": "" } });
    const b = snap({ s: stack({ null_resource: { r: body, o: other } }) }, { s: { "rendered/n1/a.hcl": "x = 2\n", "rendered/n1/a.hcl.bak": "" } });
    // `o` mentions only a.hcl.bak (a longer path), which did not change
    expect(diffResources(a, b).changed).toEqual([{ address: "s: null_resource.r", reasons: ["file:rendered/n1/a.hcl"], filesOnly: true }]);
  });
});

describe("small helpers", () => {
  it("diffPaths names the differing leaves", () => {
    expect(diffPaths({ a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 3] }, d: true })).toEqual(["b.c[1]", "d"]);
    expect(diffPaths([1], [1, 2], "x")).toEqual(["x"]);
    expect(diffPaths("same", "same")).toEqual([]);
  });

  it("median", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it("diffDirs counts changed, missing and extra files", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "bench-test-"));
    try {
      const write = (dir: string, files: Record<string, string>) => {
        for (const [f, t] of Object.entries(files)) {
          fs.mkdirSync(path.dirname(path.join(root, dir, f)), { recursive: true });
          fs.writeFileSync(path.join(root, dir, f), t);
        }
      };
      write("a", { "same.txt": "1", "sub/changed.txt": "1", "only-a.txt": "" });
      write("b", { "same.txt": "1", "sub/changed.txt": "2", "only-b.txt": "" });
      expect(diffDirs(path.join(root, "a"), path.join(root, "b"))).toEqual(["only-a.txt", "only-b.txt", "sub/changed.txt"]);
      expect(diffDirs(path.join(root, "a"), path.join(root, "a"))).toEqual([]);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
