/**
 * The Nomad Autoscaler's config and tasks (constructs/render/jobs/autoscaler.ts), read back
 * by HashiCorp's HCL parser, checked against the agent config the pinned autoscaler reads
 * (agent/config/config.go v0.4.5 `hcl:` tags), and the jobs stack's share: the metrics
 * job's Nomad Variable and the readable files in rendered/.
 */
import { jobsStackName } from "../constructs/jobs-stack";
import { tidy } from "../constructs/render/hcl";
import { NOMAD_HTTP_PORT } from "../constructs/render/agents";
import {
  AUTOSCALER_CONFIG_FILE,
  AUTOSCALER_HTTP_PORT,
  PROMETHEUS_LOCAL_URL,
  QUEUE_EXPORTER_FILE,
  QUEUE_EXPORTER_PORT,
  autoscalingScrapeConfigs,
  autoscalingTasks,
  renderAutoscalerConfig,
  renderQueueExporter,
} from "../constructs/render/jobs/autoscaler";
import { APM_NAME } from "../constructs/render/jobs/scaling";
import { SECRET_VARIABLES, secretVariables } from "../constructs/description/secrets";
import { clusterFromText, cleanup, edited, exampleCluster, parseHcl, synthCluster } from "./helpers/synth";
import * as fs from "fs";
import { EXAMPLE_FILE } from "./helpers/synth";

/** Top-level keys and blocks of the agent config (agent/config/config.go v0.4.5). */
const AGENT_KEYS = ["log_level", "log_json", "log_include_location", "enable_debug", "plugin_dir", "dynamic_application_sizing", "http", "nomad", "policy", "policy_eval", "telemetry", "high_availability", "apm", "target", "strategy"];
const NOMAD_KEYS = ["address", "region", "namespace", "token", "http_auth", "ca_cert", "ca_path", "client_cert", "client_key", "tls_server_name", "skip_verify", "block_query_wait_time"];
const POLICY_KEYS = ["dir", "default_cooldown", "default_evaluation_interval", "source"];

/** The config as the Nomad template renders it on a node whose overlay address is 172.16.1.11. */
function onNode(config: string): string {
  const out = config.replace(/\{\{ env "attr\.unique\.network\.ip-address" \}\}/g, "172.16.1.11");
  expect(out).not.toContain("{{");
  return out;
}

describe("the Nomad Autoscaler's config", () => {
  const c = exampleCluster();

  it("reaches the node's Nomad client on the overlay address, Prometheus on loopback; policies from Nomad only; keys the agent reads", async () => {
    const cfg = (await parseHcl("nomad-autoscaler.hcl", onNode(renderAutoscalerConfig(c)))) as any;
    for (const k of Object.keys(cfg)) expect(AGENT_KEYS).toContain(k);
    expect(Object.keys(cfg.nomad[0]).every((k) => NOMAD_KEYS.includes(k))).toBe(true);
    expect(cfg.nomad[0]).toEqual({ address: `http://172.16.1.11:${NOMAD_HTTP_PORT}`, region: c.region });
    expect(cfg.http[0]).toEqual({ bind_address: "127.0.0.1", bind_port: AUTOSCALER_HTTP_PORT });
    expect(cfg.apm[APM_NAME][0]).toEqual({ driver: "prometheus", config: { address: PROMETHEUS_LOCAL_URL } });
    expect(cfg.strategy["target-value"][0]).toEqual({ driver: "target-value" });
    for (const k of Object.keys(cfg.policy[0])) expect(POLICY_KEYS).toContain(k);
    expect(cfg.policy[0].source).toEqual({ file: [{ enabled: false }], nomad: [{ enabled: true }] });
    expect(cfg.policy[0].default_cooldown).toBe(c.metrics.autoscaling.cooldown);
  });

  it("no token in the file, ever: with nomad.acl it comes from NOMAD_TOKEN (the metrics job's Nomad Variable)", async () => {
    const acl = edited(c, (d) => void (d.nomad.acl = true));
    expect(renderAutoscalerConfig(acl)).not.toMatch(/token\s*=/);
    const tasks = (await parseHcl("tasks.hcl", `job "metrics" {\n group "metrics" {\n${tidy(autoscalingTasks(acl, "    "))}\n }\n}\n`)) as any;
    const autoscaler = tasks.job.metrics[0].group.metrics[0].task.autoscaler[0];
    const secrets = autoscaler.template.find((t: any) => t.destination === "secrets/app.env");
    expect(secrets.env).toBe(true);
    expect(secrets.data).toContain('nomadVar "nomad/jobs/metrics"');
    expect(secrets.data).toContain("NOMAD_TOKEN={{ .NOMAD_TOKEN | toJSON }}");
    expect(secretVariables(acl).map((v) => v.name)).toContain(SECRET_VARIABLES.autoscalerNomadToken.name);
    // without ACLs no token template and no token variable
    const none = (await parseHcl("tasks.hcl", `job "metrics" {\n group "metrics" {\n${tidy(autoscalingTasks(c, "    "))}\n }\n}\n`)) as any;
    expect(none.job.metrics[0].group.metrics[0].task.autoscaler[0].template).toHaveLength(1);
    expect(secretVariables(c).map((v) => v.name)).not.toContain(SECRET_VARIABLES.autoscalerNomadToken.name);
  });

  it("the two tasks: the pinned autoscaler image with the config template; the exporter on the api image with the broker URL from the metrics job's variable", async () => {
    const tasks = (await parseHcl("tasks.hcl", `job "metrics" {\n group "metrics" {\n${tidy(autoscalingTasks(c, "    "))}\n }\n}\n`)) as any;
    const t = tasks.job.metrics[0].group.metrics[0].task;
    expect(t.autoscaler[0].config[0]).toMatchObject({ image: c.metrics.images.autoscaler, network_mode: "host", args: ["agent", "-config", "/local/nomad-autoscaler.hcl"] });
    // The template's body is the rendered config byte for byte (heredoc escaping undone by the parser).
    expect(t.autoscaler[0].template[0].data).toBe(renderAutoscalerConfig(c));
    const exporter = t["queue-exporter"][0];
    expect(exporter.config[0]).toMatchObject({ image: c.app.images.api, network_mode: "host", command: "python", args: ["/local/queue-exporter.py"] });
    expect(exporter.template[0].data).toBe(renderQueueExporter(c));
    expect(exporter.template[1].data).toContain('CELERY_BROKER_URL={{ .CELERY_BROKER_URL | toJSON }}');
    // No Go-template action in the script: Nomad's template would execute it.
    expect(renderQueueExporter(c)).not.toContain("{{");
  });

  it("Prometheus scrapes the exporter and the autoscaler on loopback", () => {
    expect(autoscalingScrapeConfigs().map((s) => [s.job_name, s.static_configs[0].targets[0], s.metrics_path])).toEqual([
      ["celery-queue", `127.0.0.1:${QUEUE_EXPORTER_PORT}`, "/metrics"],
      ["nomad-autoscaler", `127.0.0.1:${AUTOSCALER_HTTP_PORT}`, "/v1/metrics"],
    ]);
  });

  it("a description with nomad.tls must turn autoscaling off (clear problem, not a broken autoscaler)", () => {
    const yaml = fs.readFileSync(EXAMPLE_FILE, "utf8");
    const tls = `${yaml}\nnomad:\n  tls:\n    caFile: /etc/nomad.d/tls/ca.pem\n    certFile: /etc/nomad.d/tls/c.pem\n    keyFile: /etc/nomad.d/tls/k.pem\n`;
    expect(() => clusterFromText(tls)).toThrow(/metrics\.autoscaling\.enabled.*nomad\.tls/s);
    expect(() => clusterFromText(`${tls}metrics:\n  autoscaling:\n    enabled: false\n`)).not.toThrow();
  });
});

describe("jobs stack: the metrics job's Nomad Variable and readable files", () => {
  it("holds the broker URL from the same sensitive variable as the worker's; files in rendered/", () => {
    const c = exampleCluster();
    const out = synthCluster(c);
    try {
      const stack = out.stacks[jobsStackName(c)];
      const v = stack.resource.nomad_variable;
      expect(v.metrics.path).toBe("nomad/jobs/metrics");
      expect(v.metrics.items.CELERY_BROKER_URL).toBe(v.worker.items.CELERY_BROKER_URL);
      expect(v.metrics.items.CELERY_BROKER_URL).toContain("var.rabbitmq_password");
      const files = out.files[jobsStackName(c)];
      expect(files[`rendered/${AUTOSCALER_CONFIG_FILE}`]).toBe(renderAutoscalerConfig(c));
      expect(files[`rendered/${QUEUE_EXPORTER_FILE}`]).toBe(renderQueueExporter(c));
    } finally {
      cleanup(out);
    }
    const off = synthCluster(edited(exampleCluster(), (d) => void (d.metrics.autoscaling.enabled = false)));
    try {
      // (the metrics job's variable may hold Grafana's password; no broker URL without autoscaling)
      expect(off.stacks[jobsStackName(exampleCluster())].resource.nomad_variable.metrics?.items?.CELERY_BROKER_URL).toBeUndefined();
    } finally {
      cleanup(off);
    }
  });
});
