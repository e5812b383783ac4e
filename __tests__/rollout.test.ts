/**
 * Rolling batches (`rollout.batchSize`): the order Terraform will really follow is the
 * `depends_on` graph of the synthesized nodes stack. These tests read that graph from the
 * synth output (transitively: "runs after") and check what docs/operations.md promises:
 * batches of the given size per agent kind in description order, Consul → keepalived →
 * Nomad on each node, and keepalived never re-provisioned on every eligible node at once.
 */
import { cleanup, clusterFromText, exampleText, synthCluster } from "./helpers/synth";
import { loadDescriptionText } from "../constructs/description/load";
import { batchSizeFor } from "../constructs/description/rollout";
import { stringify as stringifyYaml, parse as parseYaml } from "yaml";
import { placeholderHostKey } from "../scripts/bench";

type Kind = "consul" | "keepalived" | "nomad";
const KINDS: Kind[] = ["consul", "keepalived", "nomad"];

/** A description with nodes node-1..node-n (those in `ineligible` never hold the floating IP) and the given rollout. */
function described(n: number, rollout?: unknown, ineligible: number[] = []): string {
  const doc = parseYaml(exampleText());
  doc.nodes = Array.from({ length: n }, (_, i) => ({
    name: `node-${i + 1}`,
    address: `192.0.2.${i + 1}`,
    overlayAddress: `172.16.1.${i + 1}`,
    hostKey: placeholderHostKey(`node-${i + 1}`),
    floatingIp: ineligible.includes(i + 1) ? { eligible: false } : { priority: 200 - i },
  }));
  if (rollout !== undefined) doc.rollout = rollout;
  return stringifyYaml(doc);
}

/** "runs after" of the nodes stack: address → every address it waits for, transitively. */
function order(text: string): { after: (a: string, b: string) => boolean; addresses: string[] } {
  const out = synthCluster(clusterFromText(text));
  try {
    const stack = Object.entries(out.stacks).find(([name]) => name.endsWith("-nodes"))![1];
    const direct = new Map<string, string[]>();
    for (const [type, byName] of Object.entries<Record<string, any>>(stack.resource)) {
      for (const [name, body] of Object.entries<any>(byName)) direct.set(`${type}.${name}`, body.depends_on ?? []);
    }
    const closure = new Map<string, Set<string>>();
    const visit = (a: string, trail: string[] = []): Set<string> => {
      if (trail.includes(a)) throw new Error(`dependency cycle: ${[...trail, a].join(" → ")}`);
      const done = closure.get(a);
      if (done) return done;
      const all = new Set<string>();
      for (const d of direct.get(a) ?? []) {
        all.add(d);
        visit(d, [...trail, a]).forEach((x) => all.add(x));
      }
      closure.set(a, all);
      return all;
    };
    for (const a of direct.keys()) visit(a);
    return { after: (a, b) => closure.get(a)!.has(b), addresses: [...direct.keys()] };
  } finally {
    cleanup(out);
  }
}

const res = (node: number, kind: Kind) => `null_resource.node-${node}_${kind}`;

/**
 * The batches of one agent kind as Terraform will run them: nodes grouped so that within a
 * group no resource waits for another, and every resource waits for the whole previous group.
 */
function observedBatches(o: ReturnType<typeof order>, n: number, kind: Kind): number[][] {
  const batches: number[][] = [];
  for (let i = 1; i <= n; i++) {
    const last = batches[batches.length - 1];
    if (last && last.every((j) => !o.after(res(i, kind), res(j, kind)))) last.push(i);
    else batches.push([i]);
  }
  // every member of a batch waits for every member of each earlier batch, and never for a later one
  batches.forEach((batch, k) => {
    for (const i of batch) {
      for (const earlier of batches.slice(0, k).flat()) expect([kind, i, earlier, o.after(res(i, kind), res(earlier, kind))]).toEqual([kind, i, earlier, true]);
      for (const later of batches.slice(k + 1).flat()) expect([kind, i, later, o.after(res(i, kind), res(later, kind))]).toEqual([kind, i, later, false]);
    }
  });
  return batches;
}

function expectPerNodeOrder(o: ReturnType<typeof order>, n: number): void {
  for (let i = 1; i <= n; i++) {
    expect(o.after(res(i, "keepalived"), res(i, "consul"))).toBe(true);
    expect(o.after(res(i, "nomad"), res(i, "keepalived"))).toBe(true);
    expect(o.after(res(i, "consul"), res(i, "nomad"))).toBe(false);
  }
}

describe("rollout.batchSize in the description", () => {
  it("defaults to 1; accepts a count or a percentage; rejects anything else naming the field and line", () => {
    const ok = (v: unknown) => {
      const r = loadDescriptionText(described(2, v === undefined ? undefined : { batchSize: v }));
      return r.ok ? r.cluster.rollout.batchSize : r.problems;
    };
    expect(ok(undefined)).toBe(1);
    expect(ok(3)).toBe(3);
    expect(ok("25%")).toBe("25%");
    for (const bad of [0, 2.5, "0%", "101%", "25", "a quarter"]) {
      const problems = ok(bad) as any[];
      expect(problems).toHaveLength(1);
      expect(problems[0].path).toBe("rollout.batchSize");
      expect(problems[0].line).toBeGreaterThan(0);
      expect(problems[0].message).toMatch(/node count|percentage/);
    }
  });

  it("a percentage rounds down with at least one node (Ansible's serial); a count is capped at the node count", () => {
    expect([2, 8, 10, 16].map((n) => batchSizeFor("25%", n))).toEqual([1, 2, 2, 4]);
    expect(batchSizeFor("100%", 7)).toBe(7);
    expect(batchSizeFor("1%", 16)).toBe(1);
    expect(batchSizeFor(5, 3)).toBe(3);
  });
});

describe("the synthesized depends_on graph follows the batches", () => {
  it("default: every agent kind one node at a time in description order; Consul → keepalived → Nomad per node", () => {
    const o = order(described(4));
    for (const kind of KINDS) expect(observedBatches(o, 4, kind)).toEqual([[1], [2], [3], [4]]);
    expectPerNodeOrder(o, 4);
    // pipelined across kinds: node-2's Consul does not wait for node-1's keepalived or Nomad
    expect(o.after(res(2, "consul"), res(1, "keepalived"))).toBe(false);
    expect(o.after(res(2, "consul"), res(1, "nomad"))).toBe(false);
  });

  it('"25%" of 8 nodes: batches of two for every agent kind', () => {
    const o = order(described(8, { batchSize: "25%" }));
    for (const kind of KINDS) expect(observedBatches(o, 8, kind)).toEqual([[1, 2], [3, 4], [5, 6], [7, 8]]);
    expectPerNodeOrder(o, 8);
  });

  it("a count of 3 over 7 nodes: 3 + 3 + 1", () => {
    const o = order(described(7, { batchSize: 3 }));
    for (const kind of KINDS) expect(observedBatches(o, 7, kind)).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('"100%" of 2 eligible nodes: Nomad at once, Consul and keepalived still one node after the other', () => {
    const o = order(described(2, { batchSize: "100%" }));
    // keepalived tracks its node's Consul DNS (fall 2): both agents restarting at once would
    // put both keepalived instances in FAULT and drop the floating IP.
    expect(observedBatches(o, 2, "consul")).toEqual([[1], [2]]);
    expect(observedBatches(o, 2, "nomad")).toEqual([[1, 2]]);
    expect(observedBatches(o, 2, "keepalived")).toEqual([[1], [2]]);
    expectPerNodeOrder(o, 2);
  });

  it("keepalived batches hold at most (eligible − 1) eligible nodes; ineligible nodes fill them", () => {
    // 6 nodes, 3 and 5 never hold the floating IP: 4 eligible, so at most 3 eligible per batch
    const o = order(described(6, { batchSize: "100%" }, [3, 5]));
    const batches = observedBatches(o, 6, "keepalived");
    expect(batches).toEqual([[1, 2, 3, 4, 5], [6]]);
    const eligible = [1, 2, 4, 6];
    for (const b of batches) expect(b.filter((i) => eligible.includes(i)).length).toBeLessThanOrEqual(eligible.length - 1);
    // Consul is cut the same way (one eligible node's agent keeps answering keepalived's
    // DNS check); Nomad, which keepalived does not track, takes all six at once.
    expect(observedBatches(o, 6, "consul")).toEqual([[1, 2, 3, 4, 5], [6]]);
    expect(observedBatches(o, 6, "nomad")).toEqual([[1, 2, 3, 4, 5, 6]]);
  });

  it.each([2, 3, 5])('"100%" of %i eligible nodes: no Consul batch holds every eligible node', (n) => {
    const o = order(described(n, { batchSize: "100%" }));
    const batches = observedBatches(o, n, "consul");
    expect(batches.length).toBeGreaterThan(1);
    for (const b of batches) expect(b.length).toBeLessThanOrEqual(n - 1);
    expect(observedBatches(o, n, "nomad")).toEqual([Array.from({ length: n }, (_, i) => i + 1)]);
  });

  it("one eligible node: its keepalived may share a batch (nothing else could hold the address)", () => {
    const o = order(described(3, { batchSize: "100%" }, [2, 3]));
    expect(observedBatches(o, 3, "keepalived")).toEqual([[1, 2, 3]]);
    expect(observedBatches(o, 3, "consul")).toEqual([[1, 2, 3]]);
  });
});
