/**
 * Every version-gated feature of constructs/versions.ts changes the real synth output at
 * exactly its minimum: one version below, the documented alternative; at the minimum, the
 * feature. So a renderer that used a feature without asking the table would fail here.
 */
import { FEATURES, MINIMUM_VERSIONS, compareVersions, supports, type FeatureName } from "../constructs/versions";
import type { Cluster } from "../constructs/description/schema";
import { nodesStackName } from "../constructs/nodes-stack";
import { jobsStackName } from "../constructs/jobs-stack";
import { cleanup, edited, exampleCluster, synthCluster } from "./helpers/synth";

/** The last patch release before `v` (1.4.0 → 1.3.99: the oldest rule that matters is major.minor). */
function justBelow(v: string): string {
  const [major, minor] = v.split(".").map(Number);
  return `${major}.${minor - 1}.99`;
}

const TLS = { caFile: "/etc/consul.d/tls/ca.pem", certFile: "/etc/consul.d/tls/c.pem", keyFile: "/etc/consul.d/tls/k.pem" };

/** What each gated feature looks like in the output: true when the feature (not its alternative) is used. */
const PROBES: Partial<Record<FeatureName, { edit?: (c: Cluster) => void; present: (nodes: Record<string, string>, jobs: Record<string, string>, stacks: any) => boolean }>> = {
  nomadConfigValidate: { present: (n) => n["rendered/node-1/nomad/install.sh"].includes('nomad config validate "$candidate"') },
  nomadVariables: {
    present: (_n, j, stacks) => {
      const inVars = j["rendered/jobs/api.nomad.hcl"].includes("nomadVar");
      // the alternative, Consul KV, exactly when Variables are absent
      expect(Object.keys(stacks.resource.consul_keys ?? {}).length === 0).toBe(inVars);
      return inVars;
    },
  },
  templateChangeScript: { present: (_n, j) => j["rendered/jobs/haproxy.nomad.hcl"].includes('change_mode = "script"') },
  serviceProvider: { present: (_n, j) => j["rendered/jobs/web.nomad.hcl"].includes('provider = "consul"') },
  consulTlsBlock: {
    edit: (c) => (c.consul = { ...c.consul, tls: TLS }),
    present: (n) => {
      const hcl = n["rendered/node-1/consul/consul.hcl"];
      expect(hcl.includes("\nca_file ")).toBe(!hcl.includes("tls {"));
      return hcl.includes("tls {");
    },
  },
};

describe("version-gated features (constructs/versions.ts)", () => {
  const gated = (Object.keys(FEATURES) as FeatureName[]).filter((f) => compareVersions(FEATURES[f].since, MINIMUM_VERSIONS[FEATURES[f].product]) > 0);

  it("every feature newer than the oldest supported version has a probe here", () => {
    expect(gated.sort()).toEqual(Object.keys(PROBES).sort());
  });

  it("every feature cites where its minimum comes from", () => {
    for (const f of Object.values(FEATURES)) expect(f.source).toMatch(/hashicorp|developer\.hashicorp\.com|changelog/i);
  });

  it.each(Object.keys(PROBES) as FeatureName[])("%s: the alternative one version below its minimum, the feature from it", (feature) => {
    const f = FEATURES[feature];
    const probe = PROBES[feature]!;
    const seen: boolean[] = [];
    for (const version of [justBelow(f.since), f.since]) {
      const c = edited(exampleCluster(), (x) => {
        x.versions = { ...x.versions, [f.product]: version };
        probe.edit?.(x);
      });
      expect(supports(c.versions, feature)).toBe(version === f.since);
      const out = synthCluster(c);
      try {
        seen.push(probe.present(out.files[nodesStackName(c)], out.files[jobsStackName(c)], out.stacks[jobsStackName(c)]));
      } finally {
        cleanup(out);
      }
    }
    expect(seen).toEqual([false, true]);
  });
});
