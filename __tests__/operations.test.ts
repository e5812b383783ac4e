/**
 * The blast radius of each operating procedure (issue: operating the cluster), measured
 * on the real synth output of both stacks: exactly which Terraform resources (and
 * for_each instances) a planned maintenance, a node added or removed and a new image
 * version create, change or destroy.
 */
import { jobsStackName } from "../constructs/jobs-stack";
import { cleanup, edited, exampleCluster, synthCluster, type SynthOutput } from "./helpers/synth";
import type { Cluster } from "../constructs/description/schema";

/** "stack:type.name" (or "…name[key]" per for_each instance) → JSON text of its body. */
function instances(out: SynthOutput): Map<string, string> {
  const m = new Map<string, string>();
  for (const [stack, json] of Object.entries(out.stacks)) {
    for (const [type, byName] of Object.entries((json as any).resource ?? {})) {
      for (const [name, body] of Object.entries(byName as Record<string, any>)) {
        if (body.for_each && typeof body.for_each === "object") {
          const { for_each, ...rest } = body;
          for (const [key, value] of Object.entries(for_each)) m.set(`${stack}:${type}.${name}[${key}]`, JSON.stringify({ rest, value }));
        } else {
          // ordering-only changes (depends_on) plan nothing in Terraform
          const { depends_on: _ignored, ...rest } = body;
          m.set(`${stack}:${type}.${name}`, JSON.stringify(rest));
        }
      }
    }
  }
  return m;
}

function blast(before: Cluster, after: Cluster) {
  const a = synthCluster(before);
  const b = synthCluster(after);
  try {
    const ia = instances(a);
    const ib = instances(b);
    const keys = [...new Set([...ia.keys(), ...ib.keys()])].sort();
    return {
      created: keys.filter((k) => !ia.has(k)),
      destroyed: keys.filter((k) => !ib.has(k)),
      changed: keys.filter((k) => ia.has(k) && ib.has(k) && ia.get(k) !== ib.get(k)),
    };
  } finally {
    cleanup(a);
    cleanup(b);
  }
}

const N = "team-example-nodes";
const J = "team-example-jobs";

describe("blast radius of the operating procedures", () => {
  const base = exampleCluster();
  const inMaintenance = edited(base, (c) => (c.nodes[0].maintenance = true));

  it("maintenance on: only that node's keepalived (priority) and Nomad agent (drain); no job, no other node", () => {
    expect(blast(base, inMaintenance)).toEqual({
      created: [],
      destroyed: [],
      changed: [`${N}:null_resource.node-1_keepalived`, `${N}:null_resource.node-1_nomad`],
    });
  });

  it("maintenance off: the same two resources back, nothing else", () => {
    expect(blast(inMaintenance, base)).toEqual({
      created: [],
      destroyed: [],
      changed: [`${N}:null_resource.node-1_keepalived`, `${N}:null_resource.node-1_nomad`],
    });
  });

  it("a node added: its own resources, the peers' keepalived (peer list), and HAProxy's config (api maxconn shares) only", () => {
    const withNode3 = edited(base, (c) =>
      c.nodes.push({ name: "node-3", address: "192.0.2.13", overlayAddress: "172.16.1.13", meta: {}, floatingIp: { eligible: true, priority: 50 }, maintenance: false }),
    );
    const r = blast(base, withNode3);
    expect(r.created).toEqual([
      `${N}:null_resource.node-3_consul`,
      `${N}:null_resource.node-3_keepalived`,
      `${N}:null_resource.node-3_nomad`,
      `${N}:terraform_data.node_membership[node-3]`,
    ]);
    expect(r.destroyed).toEqual([]);
    // No application jobspec changes (placement rules here do not depend on a third node).
    // HAProxy's config changes, in its Nomad Variable only (a reload in place): a third
    // HAProxy shares each api instance's threads (backend api, maxconn). The metrics job
    // changes: Prometheus' targets are the described nodes (static, never the catalog), so
    // its allocation is replaced on the same node (sticky disk: the history stays).
    const J = jobsStackName(base);
    expect(r.changed).toEqual([`${J}:nomad_job.metrics`, `${J}:nomad_variable.haproxy`, `${N}:null_resource.node-1_keepalived`, `${N}:null_resource.node-2_keepalived`]);
  });

  it("a node removed: its resources destroyed (membership instance → decommission), the peer's keepalived updated", () => {
    const r = blast(base, edited(base, (c) => c.nodes.splice(1, 1)));
    expect(r.created).toEqual([]);
    expect(r.destroyed).toEqual([
      `${N}:null_resource.node-2_consul`,
      `${N}:null_resource.node-2_keepalived`,
      `${N}:null_resource.node-2_nomad`,
      `${N}:terraform_data.node_membership[node-2]`,
    ]);
    // a job's spread/distinct_hosts may follow the node count, never the agents
    expect(r.changed.filter((k) => k.startsWith(N))).toEqual([`${N}:null_resource.node-1_keepalived`]);
  });

  it("a new web image: the web job only (a Nomad deployment with canary and auto-revert), no machine touched", () => {
    const r = blast(base, edited(base, (c) => (c.app.images.web = "ghcr.io/example-team/image-web:4d5e6f7")));
    expect(r).toEqual({ created: [], destroyed: [], changed: [`${J}:nomad_job.web`] });
  });

  it("a HAProxy setting (more web slots): HAProxy's Nomad Variable only, reloaded in place; no job replaced", () => {
    const r = blast(base, edited(base, (c) => (c.app.web.scaling = { min: 2, max: 9 })));
    // the web job's own scaling block changes too (and the release keeps its count within the
    // new bounds: terraform_data.web_scaling_bounds, kept-count.ts); HAProxy's jobspec does not.
    // The metrics job does: its alert rule ScaledJobPinnedAtMax and its dashboard read
    // scaling.max (replaced on the same node, sticky disk).
    expect(r).toEqual({ created: [], destroyed: [], changed: [`${J}:nomad_job.metrics`, `${J}:nomad_job.web`, `${J}:nomad_variable.haproxy`, `${J}:terraform_data.web_scaling_bounds`] });
  });

  it("a new api image: the api and worker jobs (same image) and the metrics job (its queue exporter runs the api image), nothing else", () => {
    const r = blast(base, edited(base, (c) => (c.app.images.api = "ghcr.io/example-team/image-api:4d5e6f7")));
    expect(r).toEqual({ created: [], destroyed: [], changed: [`${J}:nomad_job.api`, `${J}:nomad_job.metrics`, `${J}:nomad_job.worker`] });
  });
});
