/**
 * Every description shipped in clusters/ is valid and synthesizes; the later-year example
 * exercises what the default one does not (another overlay, interface addressing, a node
 * that never holds the floating IP, shared state).
 */
import * as fs from "fs";
import * as path from "path";
import { loadDescriptionFile } from "../constructs/description/load";
import { cleanup, parseHcl, REPO_ROOT, resourcesOf, synthCluster, type SynthOutput } from "./helpers/synth";

const CLUSTERS = path.join(REPO_ROOT, "clusters");
const descriptions = fs.readdirSync(CLUSTERS).filter((f) => f.endsWith(".yaml"));

describe("shipped cluster descriptions", () => {
  it("there are at least two", () => expect(descriptions.length).toBeGreaterThanOrEqual(2));

  it.each(descriptions)("%s is valid and synthesizes both stacks", (f) => {
    const r = loadDescriptionFile(path.join(CLUSTERS, f));
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const out = synthCluster(r.cluster);
    try {
      expect(Object.keys(out.stacks).sort()).toEqual([`${r.cluster.name}-jobs`, `${r.cluster.name}-nodes`]);
    } finally {
      cleanup(out);
    }
  });
});

describe("clusters/example-later-year.yaml", () => {
  let out: SynthOutput;
  let files: Record<string, string>;
  let nodes: any;
  beforeAll(() => {
    const r = loadDescriptionFile(path.join(CLUSTERS, "example-later-year.yaml"));
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    out = synthCluster(r.cluster);
    files = out.files["team-blue-nodes"];
    nodes = out.stacks["team-blue-nodes"];
  });
  afterAll(() => cleanup(out));

  it("agents look their overlay address up on vxlan42", async () => {
    const consul = await parseHcl("c.hcl", files["rendered/blue-1/consul/consul.hcl"]);
    expect(consul.bind_addr).toBe('{{ GetInterfaceIP "vxlan42" }}');
    // the provider's servers have no gossip key: a client with one could never join
    expect(consul).not.toHaveProperty("encrypt_verify_incoming");
    const nomad = await parseHcl("n.hcl", files["rendered/blue-3/nomad/nomad.hcl"]);
    expect(nomad.client[0].network_interface).toBe("vxlan42");
    expect(nomad.client[0].node_class).toBe("batch");
    expect(nomad.client[0].meta).toEqual({ disk: "ssd", floating_ip_eligible: "false" });
  });

  it("the non-eligible node gets keepalived removed; the others peer only with each other", () => {
    expect(files["rendered/blue-3/keepalived/keepalived.conf"]).toBeUndefined();
    expect(Object.keys(files).filter((f) => f.startsWith("rendered/blue-3/keepalived/"))).not.toHaveLength(0);
    const conf = files["rendered/blue-1/keepalived/keepalived.conf"];
    expect(conf).toMatch(/unicast_peer \{\n\s+172\.16\.42\.22\s/);
    expect(conf).not.toContain("172.16.42.23");
    expect(conf).toContain("172.16.42.110/24 dev vxlan42");
    expect(conf).toContain("virtual_router_id 142");
  });

  it("reads the key from a file at apply time and keeps state in a TLS Consul", () => {
    expect(resourcesOf(nodes, "null_resource")["blue-1_consul"].connection.private_key).toBe('${file(pathexpand("~/.ssh/team_blue_ed25519"))}');
    expect(nodes.terraform.backend.consul).toMatchObject({ scheme: "https", path: "terraform/team-blue/team-blue-nodes", lock: true });
  });
});
