/**
 * Agent telemetry (metrics.enabled): the Consul and Nomad client configs read back by
 * HashiCorp's HCL parser carry the telemetry keys, and with metrics off the configs are the
 * ones rendered without any telemetry (the block is the only difference).
 */
import { CONSUL_PROMETHEUS_RETENTION, NOMAD_TELEMETRY_COLLECTION_INTERVAL, durationSeconds, renderConsulConfig, renderNomadConfig } from "../constructs/render/agents";
import { FEATURES, MINIMUM_VERSIONS, compareVersions } from "../constructs/versions";
import { tidy } from "../constructs/render/hcl";
import { clusterSchema } from "../constructs/description/schema";
import { edited, exampleCluster, parseHcl } from "./helpers/synth";

const on = exampleCluster();
const off = edited(on, (x) => (x.metrics.enabled = false));

/** The config without its telemetry block and the comment lines just above it. */
function withoutTelemetry(text: string): string {
  return tidy(text.replace(/\n(#[^\n]*\n)*telemetry \{\n[^}]*\}\n/, "\n"));
}

describe("agent telemetry", () => {
  it("is on by default in a description (metrics.enabled defaults to true)", () => {
    expect(clusterSchema.shape.metrics.parse({}).enabled).toBe(true);
    expect(on.metrics.enabled).toBe(true);
  });

  it("Consul: prometheus_retention_time and disable_hostname, parsed by HashiCorp's HCL parser", async () => {
    for (const n of on.nodes) {
      const parsed = await parseHcl("consul.hcl", renderConsulConfig(on, n));
      expect(parsed.telemetry).toEqual([{ prometheus_retention_time: CONSUL_PROMETHEUS_RETENTION, disable_hostname: true }]);
      // Longer than the longest scrape interval the description accepts (300 s).
      expect(durationSeconds(parsed.telemetry[0].prometheus_retention_time)).toBeGreaterThan(300);
      // The HTTP API stays on loopback (the relay in haproxy.cfg is the only way in).
      expect(parsed.client_addr).toBe("127.0.0.1");
    }
  });

  it("Nomad: prometheus_metrics, node and allocation metrics, parsed by HashiCorp's HCL parser", async () => {
    const parsed = await parseHcl("nomad.hcl", renderNomadConfig(on, on.nodes[0]));
    expect(parsed.telemetry).toEqual([
      {
        collection_interval: NOMAD_TELEMETRY_COLLECTION_INTERVAL,
        disable_hostname: true,
        prometheus_metrics: true,
        publish_allocation_metrics: true,
        publish_node_metrics: true,
      },
    ]);
    // Sampled at least as often as the shortest scrape interval allowed (5 s).
    expect(durationSeconds(NOMAD_TELEMETRY_COLLECTION_INTERVAL)).toBeLessThanOrEqual(5);
  });

  it("metrics off: no telemetry, and the configs differ from metrics-on ones by that block only", async () => {
    for (const n of on.nodes) {
      for (const render of [renderConsulConfig, renderNomadConfig]) {
        const a = render(off, n);
        const b = render(on, n);
        expect(a).not.toContain("telemetry");
        expect(b).toContain("telemetry {");
        expect(withoutTelemetry(b)).toBe(a);
        expect((await parseHcl("agent.hcl", a)).telemetry).toBeUndefined();
      }
    }
  });

  it("every telemetry key is in versions.ts, present in the oldest supported Consul/Nomad", () => {
    for (const f of ["consulTelemetryPrometheus", "nomadTelemetryPrometheus", "nomadTelemetryPublish"] as const) {
      expect(compareVersions(FEATURES[f].since, MINIMUM_VERSIONS[FEATURES[f].product])).toBeLessThanOrEqual(0);
    }
  });
});
