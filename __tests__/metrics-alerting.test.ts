/**
 * Alert delivery (metrics.alerting): the description's receiver, its secret (Terraform
 * variable → the metrics job's Nomad Variable → a file in the Alertmanager task's secrets/,
 * never a synthesized file), alertmanager.yml and the Alertmanager task.
 *
 * alertmanager.yml is checked for structure here: `amtool check-config` is not built (it
 * needs the Alertmanager Go module, which the engines do not pin). The keys allowed below
 * are the yaml tags of Alertmanager v0.27.0 (the pinned image) in config/config.go
 * (Config, Route, InhibitRule, Receiver) and config/notifiers.go (WebhookConfig,
 * EmailConfig, NotifierConfig), read at tag v0.27.0; the required fields are those its
 * UnmarshalYAML methods refuse to miss.
 */
import { parse as parseYaml } from "yaml";
import { jobsStackName } from "../constructs/jobs-stack";
import { loadDescriptionText } from "../constructs/description/load";
import { METRICS_IMAGES, METRICS_LOOPBACK_PORTS, type Cluster } from "../constructs/description/schema";
import { secretVariables } from "../constructs/description/secrets";
import { renderMetricsJob } from "../constructs/render/jobs/metrics";
import { PROMETHEUS_LISTEN } from "../constructs/render/metrics/prometheus";
import { AUTOSCALER_HTTP_PORT, QUEUE_EXPORTER_PORT } from "../constructs/render/jobs/autoscaler";
import {
  ALERTMANAGER_CONFIG_FILE,
  ALERTMANAGER_LISTEN,
  ALERT_SECRET_FILES,
  ALERT_SECRET_ITEMS,
  RECEIVER_NAME,
  alertingEnabled,
  renderAlertmanagerConfig,
} from "../constructs/render/metrics/alertmanager";
import { ALERT_RULES_FILE, renderAlertRules } from "../constructs/render/metrics/alerts";
import { cleanup, exampleText, parseHcl, resourcesOf, synthCluster } from "./helpers/synth";

/** The example with a metrics.alerting section appended (the example has no metrics section). */
function withAlerting(yaml: string): Cluster {
  const r = loadDescriptionText(`${exampleText()}\nmetrics:\n  alerting:\n${yaml.replace(/^/gm, "    ")}\n`);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.cluster;
}
function problemsOf(yaml: string): { path: string; message: string }[] {
  const r = loadDescriptionText(`${exampleText()}\nmetrics:\n${yaml.replace(/^/gm, "  ")}\n`);
  return r.ok ? [] : r.problems.map((p) => ({ path: p.path, message: p.message }));
}

const webhook = withAlerting("webhook: {}");
const email = withAlerting("email:\n  to: [ops@example.org, oncall@example.org]\n  from: alerts@example.org\n  smarthost: smtp.example.org\n  username: alerts");
const relay = withAlerting("email:\n  to: [ops@example.org]\n  from: alerts@example.org\n  smarthost: 172.16.0.25\n  port: 25\n  requireTls: false");

/** Alertmanager v0.27.0's yaml keys (see the header). */
const AM_KEYS = {
  config: ["global", "route", "inhibit_rules", "receivers", "templates", "mute_time_intervals", "time_intervals"],
  route: ["receiver", "group_by", "match", "match_re", "matchers", "mute_time_intervals", "active_time_intervals", "continue", "routes", "group_wait", "group_interval", "repeat_interval"],
  inhibit: ["source_match", "source_match_re", "source_matchers", "target_match", "target_match_re", "target_matchers", "equal"],
  receiver: ["name", "discord_configs", "email_configs", "pagerduty_configs", "slack_configs", "webhook_configs", "opsgenie_configs", "wechat_configs", "pushover_configs", "victorops_configs", "sns_configs", "telegram_configs", "webex_configs", "msteams_configs"],
  webhook: ["send_resolved", "http_config", "url", "url_file", "max_alerts"],
  email: ["send_resolved", "to", "from", "hello", "smarthost", "auth_username", "auth_password", "auth_password_file", "auth_secret", "auth_identity", "headers", "html", "text", "require_tls", "tls_config"],
};
const unknown = (o: object, allowed: string[]) => Object.keys(o).filter((k) => !allowed.includes(k));

/** Structural check of an alertmanager.yml as Alertmanager v0.27.0 loads it: problems, empty when fine. */
function alertmanagerProblems(text: string): string[] {
  const y = parseYaml(text);
  const p: string[] = [];
  p.push(...unknown(y, AM_KEYS.config).map((k) => `unknown key ${k}`));
  p.push(...unknown(y.route ?? {}, AM_KEYS.route).map((k) => `unknown key route.${k}`));
  for (const r of y.inhibit_rules ?? []) p.push(...unknown(r, AM_KEYS.inhibit).map((k) => `unknown key inhibit_rules.${k}`));
  const names = (y.receivers ?? []).map((r: any) => r.name);
  // config.go: "root route must specify a default receiver"; every route's receiver must exist
  if (!y.route?.receiver) p.push("no default receiver");
  else if (!names.includes(y.route.receiver)) p.push(`undefined receiver ${y.route.receiver}`);
  for (const r of y.receivers ?? []) {
    p.push(...unknown(r, AM_KEYS.receiver).map((k) => `unknown key receivers.${k}`));
    for (const w of r.webhook_configs ?? []) {
      p.push(...unknown(w, AM_KEYS.webhook).map((k) => `unknown key webhook_configs.${k}`));
      // notifiers.go: "one of url or url_file must be configured", "at most one"
      if (Boolean(w.url) === Boolean(w.url_file)) p.push("webhook: exactly one of url and url_file");
    }
    for (const e of r.email_configs ?? []) {
      p.push(...unknown(e, AM_KEYS.email).map((k) => `unknown key email_configs.${k}`));
      // notifiers.go / config.go: to is required; smarthost and from, here or in global
      for (const k of ["to", "from", "smarthost"]) if (!e[k]) p.push(`email: no ${k}`);
      if (e.smarthost && !/^[^:]+:\d+$/.test(e.smarthost)) p.push("email: smarthost is host:port");
      if (e.auth_password && e.auth_password_file) p.push("email: at most one of auth_password and auth_password_file");
    }
  }
  for (const d of [y.route?.group_wait, y.route?.group_interval, y.route?.repeat_interval]) if (!/^\d+[smh]$/.test(d)) p.push(`not a duration: ${d}`);
  return p;
}

describe("metrics.alerting in the description", () => {
  it("is off by default: no receiver, no Alertmanager, no secret asked", () => {
    const none = withAlerting("{}");
    expect(alertingEnabled(none)).toBe(false);
    expect(secretVariables(none).map((v) => v.name)).not.toEqual(expect.arrayContaining(["alert_webhook_url"]));
    expect(secretVariables(none).map((v) => v.name).filter((n) => n.startsWith("alert_"))).toEqual([]);
  });

  it("a webhook asks for alert_webhook_url; e-mail with a user for alert_smtp_password; a relay without user for nothing", () => {
    const alertVars = (c: Cluster) => secretVariables(c).map((v) => v.name).filter((n) => n.startsWith("alert_"));
    expect(alertVars(webhook)).toEqual(["alert_webhook_url"]);
    expect(alertVars(email)).toEqual(["alert_smtp_password"]);
    expect(alertVars(relay)).toEqual([]);
    expect(email.metrics.alerting.email).toEqual({ to: ["ops@example.org", "oncall@example.org"], from: "alerts@example.org", smarthost: "smtp.example.org", port: 587, username: "alerts", requireTls: true });
  });

  it("bad input: every problem at once, each naming its field and what was expected", () => {
    const problems = problemsOf("alerting:\n  webhook: { url: https://hooks.example.org/x }\n  email:\n    to: [not-an-address]\n    from: alerts@example.org\n    smarthost: 'smtp example'\ngrafana:\n  port: 9090");
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: expect.stringContaining("metrics.alerting.webhook"), message: expect.stringMatching(/url/) }),
        expect.objectContaining({ path: "metrics.alerting.email.to[0]", message: expect.stringMatching(/e-mail address/) }),
        expect.objectContaining({ path: "metrics.alerting.email.smarthost", message: expect.stringMatching(/host name/) }),
        expect.objectContaining({ path: "metrics.grafana.port", message: expect.stringMatching(/9090/) }),
      ]),
    );
    expect(problems.length).toBe(4);
  });

  it("a receiver with metrics off is refused, naming metrics.alerting (it would send nothing)", () => {
    expect(problemsOf("enabled: false\nalerting:\n  webhook: {}")).toEqual([expect.objectContaining({ path: "metrics.alerting", message: expect.stringMatching(/metrics.enabled: false/) })]);
    expect(problemsOf("enabled: false\nalerting: {}")).toEqual([]);
  });

  it("Grafana's port may not be a loopback port of the group's other tasks (the same list as the renderers')", () => {
    expect([...METRICS_LOOPBACK_PORTS].sort()).toEqual([PROMETHEUS_LISTEN.port, ALERTMANAGER_LISTEN.port, QUEUE_EXPORTER_PORT, AUTOSCALER_HTTP_PORT].sort());
    for (const p of METRICS_LOOPBACK_PORTS) expect(problemsOf(`grafana:\n  port: ${p}`).map((x) => x.path)).toEqual(["metrics.grafana.port"]);
  });
});

describe("alertmanager.yml", () => {
  it("webhook: the URL read from the task's secrets/ (url_file), never written in the file", () => {
    const text = renderAlertmanagerConfig(webhook);
    expect(alertmanagerProblems(text)).toEqual([]);
    const y = parseYaml(text);
    expect(y.receivers).toEqual([{ name: RECEIVER_NAME, webhook_configs: [{ url_file: ALERT_SECRET_FILES.webhookUrl, send_resolved: true }] }]);
    expect(text).not.toMatch(/\burl:/);
  });

  it("e-mail: recipients, sender, smarthost host:port, the password from a file, TLS required", () => {
    const y = parseYaml(renderAlertmanagerConfig(email));
    expect(alertmanagerProblems(renderAlertmanagerConfig(email))).toEqual([]);
    expect(y.receivers[0].email_configs).toEqual([
      { to: "ops@example.org, oncall@example.org", from: "alerts@example.org", smarthost: "smtp.example.org:587", auth_username: "alerts", auth_password_file: ALERT_SECRET_FILES.smtpPassword, require_tls: true, send_resolved: true },
    ]);
    const r = parseYaml(renderAlertmanagerConfig(relay)).receivers[0].email_configs[0];
    expect(r).toEqual({ to: "ops@example.org", from: "alerts@example.org", smarthost: "172.16.0.25:25", require_tls: false, send_resolved: true });
  });

  it("routes every alert of the rules to the one receiver, grouped by alert and scaled job; a down target inhibits the no-data alert it causes", () => {
    const y = parseYaml(renderAlertmanagerConfig(webhook));
    expect(y.route).toMatchObject({ receiver: RECEIVER_NAME, group_by: ["alertname", "scaled_job"] });
    expect(y.inhibit_rules).toEqual([
      { source_matchers: ['alertname="ScrapeTargetDown"', 'job="haproxy"'], target_matchers: ['alertname="ScalingQueryNoData"', 'scaled_job=~"web|api"'] },
      { source_matchers: ['alertname="ScrapeTargetDown"', 'job="celery-queue"'], target_matchers: ['alertname="ScalingQueryNoData"', 'scaled_job="worker"'] },
    ]);
    // the inhibited alert and the source exist in the rules
    const rules = renderAlertRules(webhook);
    expect(rules).toContain("alert: ScalingQueryNoData");
    expect(rules).toContain("alert: ScrapeTargetDown");
  });

  it("the structural check does catch errors (unknown key, missing receiver, both url and url_file)", () => {
    expect(alertmanagerProblems("route: { receiver: x, group_wait: 30s, group_interval: 5m, repeat_interval: 4h }\nreceivers: [{ name: y, webhook_configs: [{ url: http://a, url_file: /b, sendResolved: true }] }]\n")).toEqual([
      "undefined receiver x",
      "unknown key webhook_configs.sendResolved",
      "webhook: exactly one of url and url_file",
    ]);
  });

  it("is not rendered without a receiver", () => {
    expect(() => renderAlertmanagerConfig(withAlerting("{}"))).toThrow(/no receiver/);
  });
});

describe("the Alertmanager task and its secret", () => {
  it("runs only with a receiver: pinned image, loopback, no cluster listener, data on the sticky disk", async () => {
    const none = (await parseHcl("m.hcl", renderMetricsJob(withAlerting("{}")))).job.metrics[0].group.metrics[0];
    expect(Object.keys(none.task)).not.toContain("alertmanager");
    const g = (await parseHcl("m.hcl", renderMetricsJob(webhook))).job.metrics[0].group.metrics[0];
    const t = g.task.alertmanager[0];
    expect(t.config[0].image).toBe(METRICS_IMAGES.alertmanager);
    expect(METRICS_IMAGES.alertmanager).toMatch(/^prom\/alertmanager:v\d+\.\d+\.\d+$/);
    expect(t.config[0].network_mode).toBe("host");
    expect(t.config[0].args).toEqual([
      "--config.file=/local/alertmanager.yml",
      "--storage.path=/alloc/data/alertmanager",
      `--web.listen-address=127.0.0.1:${ALERTMANAGER_LISTEN.port}`,
      "--cluster.listen-address=",
    ]);
    // no restart block of its own: the group's mode "delay" (a crash loop never fails the allocation)
    expect(t.restart).toBeUndefined();
    const cfg = t.template.find((x: any) => x.destination === "local/alertmanager.yml");
    expect(cfg.data).toBe(renderAlertmanagerConfig(webhook));
    const secret = t.template.find((x: any) => x.destination === ALERT_SECRET_FILES.webhookUrl.slice(1));
    expect(secret).toMatchObject({ data: `{{ with nomadVar "nomad/jobs/metrics" }}{{ .${ALERT_SECRET_ITEMS.webhookUrl} }}{{ end }}`, change_mode: "restart" });
  });

  it("before Nomad 1.4 the secret file comes from Consul KV", async () => {
    const old = { ...email, versions: { ...email.versions, nomad: "1.3.5" } };
    const t = (await parseHcl("m.hcl", renderMetricsJob(old))).job.metrics[0].group.metrics[0].task.alertmanager[0];
    const secret = t.template.find((x: any) => x.destination === ALERT_SECRET_FILES.smtpPassword.slice(1));
    expect(secret.data).toBe(`{{ key "nomad-secrets/metrics/${ALERT_SECRET_ITEMS.smtpPassword}" }}`);
  });

  it("synth: the secret is a sensitive variable in the job's Nomad Variable; no synthesized file holds its value", () => {
    const canary = "https://hooks.example.org/services/T0/B0/canary-token-5f1d";
    const before = process.env.TF_VAR_alert_webhook_url;
    process.env.TF_VAR_alert_webhook_url = canary;
    const out = synthCluster(webhook);
    try {
      const stack = out.stacks[jobsStackName(webhook)];
      expect(stack.variable.alert_webhook_url).toMatchObject({ sensitive: true, type: "string" });
      expect(stack.variable.alert_webhook_url.validation[0].condition).toContain("https?://");
      expect(resourcesOf(stack, "nomad_variable").metrics.items[ALERT_SECRET_ITEMS.webhookUrl]).toBe("${var.alert_webhook_url}");
      const files = out.files[jobsStackName(webhook)];
      expect(files[`rendered/${ALERTMANAGER_CONFIG_FILE}`]).toBe(renderAlertmanagerConfig(webhook));
      expect(files[`rendered/${ALERT_RULES_FILE}`]).toBe(renderAlertRules(webhook));
      const all = [JSON.stringify(out.stacks), ...Object.values(out.files).flatMap((f) => Object.values(f))].join("\n");
      expect(all.includes("canary-token")).toBe(false);
    } finally {
      cleanup(out);
      if (before === undefined) delete process.env.TF_VAR_alert_webhook_url;
      else process.env.TF_VAR_alert_webhook_url = before;
    }
  });
});
