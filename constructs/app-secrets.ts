/**
 * The application's secrets: sensitive Terraform variables (no default: `cdktf synth`
 * needs none of them, `cdktf deploy` asks for them or reads TF_VAR_<name>), written into
 * the jobs' Nomad Variables, which the tasks read through templates.
 *
 * `nomad_variable.items` is stored in the Terraform state (Nomad provider #478; the
 * write-only `items_wo` came after these bindings froze): the jobs stack's state must live
 * in a protected backend.
 */
import { Construct } from "constructs";
import { Fn, TerraformVariable } from "cdktf";
import { Variable } from "@cdktf/provider-nomad/lib/variable";
import { Keys } from "@cdktf/provider-consul/lib/keys";
import type { Cluster } from "./description/schema";
import { terraformLiteral } from "./escape";
import { SECRET_VARIABLES, secretVariables, type SecretVariable } from "./description/secrets";
import { GRAFANA_ADMIN_PASSWORD_ENV } from "./render/jobs/metrics";
import { REGISTRY_PASSWORD_ENV, consulSecretsPrefix, secretsInNomadVariables, usesRegistryAuth, variablePath, type JobName, type SecretsOwner } from "./render/jobs/common";
import { autoscalingEnabled } from "./render/jobs/scaling";
import { BROKER_URL_ENV, NOMAD_TOKEN_ENV } from "./render/jobs/autoscaler";
import { ALERT_SECRET_ITEMS } from "./render/metrics/alertmanager";

/**
 * The broker URL, composed by Terraform at apply time. The password is URL-encoded
 * (urlencode, with its `+` for space turned into `%20`: kombu unquotes the userinfo
 * without plus-decoding); user and vhost are encoded here.
 */
export function brokerUrl(c: Cluster, password: string): string {
  const b = c.app.broker;
  const enc = (s: string) => terraformLiteral(encodeURIComponent(s));
  return `amqp://${enc(b.user)}:${Fn.replace(Fn.urlencode(password), "+", "%20")}@${terraformLiteral(b.host)}:${b.port}/${enc(b.vhost)}`;
}

export interface AppSecretsProps {
  readonly cluster: Cluster;
  /**
   * Non-secret items that share a job's Nomad Variable, already escaped for Terraform
   * (e.g. HAProxy's config, delivered there so that a change reloads HAProxy in place).
   */
  readonly extraItems?: Partial<Record<JobName, Record<string, string>>>;
}

export class AppSecrets extends Construct {
  readonly variables: Record<string, TerraformVariable> = {};
  /** The Nomad Variable of each job that has one (Nomad 1.4+). */
  readonly nomadVariables: Partial<Record<SecretsOwner, Variable>> = {};
  /** Before Nomad 1.4: each job's items in Consul KV (consul_keys.<job>), read by `key` templates. */
  readonly consulKeys: Partial<Record<SecretsOwner, Keys>> = {};

  constructor(scope: Construct, id: string, props: AppSecretsProps) {
    super(scope, id);
    const c = props.cluster;
    for (const v of secretVariables(c)) this.variables[v.name] = this.declare(v);
    const value = (v: SecretVariable) => this.variables[v.name].stringValue;

    const registry = (image: string): Record<string, string> =>
      usesRegistryAuth(c, image) ? { [REGISTRY_PASSWORD_ENV]: value(SECRET_VARIABLES.registryPassword) } : {};
    const app = {
      AWS_ACCESS_KEY_ID: value(SECRET_VARIABLES.s3AccessKeyId),
      AWS_SECRET_ACCESS_KEY: value(SECRET_VARIABLES.s3SecretAccessKey),
      CELERY_BROKER_URL: brokerUrl(c, value(SECRET_VARIABLES.rabbitmqPassword)),
    };
    // The backend and the worker each read their own path (no ACL policy needed).
    const items: Record<SecretsOwner, Record<string, string>> = {
      api: { ...app, ...registry(c.app.images.api) },
      worker: { ...app, ...registry(c.app.images.api) },
      web: registry(c.app.images.web),
      haproxy: registry(c.app.images.haproxy),
      // The metrics job: Grafana's admin password (its images are public: no registry
      // credentials); the queue exporter reads the broker as the worker does (the same
      // sensitive variable), the autoscaler its Nomad token (nomad.acl).
      metrics: {
        ...(c.metrics.enabled ? { [GRAFANA_ADMIN_PASSWORD_ENV]: value(SECRET_VARIABLES.grafanaAdminPassword) } : {}),
        // Alertmanager's receiver secrets (metrics.alerting), written to files in its task.
        ...(this.variables[SECRET_VARIABLES.alertWebhookUrl.name] ? { [ALERT_SECRET_ITEMS.webhookUrl]: value(SECRET_VARIABLES.alertWebhookUrl) } : {}),
        ...(this.variables[SECRET_VARIABLES.alertSmtpPassword.name] ? { [ALERT_SECRET_ITEMS.smtpPassword]: value(SECRET_VARIABLES.alertSmtpPassword) } : {}),
        ...(autoscalingEnabled(c)
          ? {
              [BROKER_URL_ENV]: app.CELERY_BROKER_URL,
              ...(c.nomad.acl ? { [NOMAD_TOKEN_ENV]: value(SECRET_VARIABLES.autoscalerNomadToken) } : {}),
              ...registry(c.app.images.api),
              ...registry(c.metrics.images.autoscaler),
            }
          : {}),
      },
    };
    for (const [job, secretItems] of Object.entries(items) as [SecretsOwner, Record<string, string>][]) {
      const jobItems = { ...props.extraItems?.[job as JobName], ...secretItems };
      if (Object.keys(jobItems).length === 0) continue;
      if (secretsInNomadVariables(c)) {
        const nv = new Variable(this, job, { path: variablePath(job), items: jobItems });
        nv.overrideLogicalId(job);
        this.nomadVariables[job] = nv;
      } else {
        // Nomad < 1.4: no Variables. delete = true: a key dropped from the description leaves KV.
        const keys = new Keys(this, job, {
          key: Object.keys(jobItems)
            .sort()
            .map((name) => ({ path: `${consulSecretsPrefix(job)}${name}`, value: jobItems[name], delete: true })),
        });
        keys.overrideLogicalId(job);
        this.consulKeys[job] = keys;
      }
    }
  }

  private declare(v: SecretVariable): TerraformVariable {
    // Values that reach a task's env file verbatim (JSON-quoted by toJSON): Go's encoder
    // writes &, < and > as \u0026-style escapes, which Nomad's env-file parser rejects, and
    // the task would not start. The broker password is URL-encoded first, so any is fine.
    // The alert receivers' secrets reach a file, not an env file: any printable text
    // (a webhook URL's query has &), on one line (the file holds one value).
    const toFile = v.name === SECRET_VARIABLES.alertWebhookUrl.name || v.name === SECRET_VARIABLES.alertSmtpPassword.name;
    const envFileSafe = v.name !== SECRET_VARIABLES.rabbitmqPassword.name && !toFile;
    const tv = new TerraformVariable(this, v.name, {
      type: "string",
      description: v.description,
      sensitive: true,
      nullable: false,
      validation: toFile
        ? [
            {
              condition: v.name === SECRET_VARIABLES.alertWebhookUrl.name
                ? `\${can(regex("^https?://[^[:space:][:cntrl:]]+$", var.${v.name}))}`
                : `\${can(regex("^[^[:cntrl:]]+$", var.${v.name}))}`,
              errorMessage: v.name === SECRET_VARIABLES.alertWebhookUrl.name
                ? `${v.name} must be an http(s) URL without spaces or control characters.`
                : `${v.name} must be non-empty, on one line (no control characters).`,
            },
          ]
        : envFileSafe
        ? [
            {
              condition: `\${can(regex("^[^&<>[:cntrl:]]+$", var.${v.name}))}`,
              errorMessage: `${v.name} must be non-empty, without &, < or > nor control characters (Nomad's env-file parser cannot read them back).`,
            },
          ]
        : undefined,
    });
    tv.overrideLogicalId(v.name);
    return tv;
  }
}
