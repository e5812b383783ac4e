/**
 * The secrets of a deployment: Terraform variables, resolved at apply time (TF_VAR_<name>,
 * a *.tfvars file kept out of git, or the prompt), never fields of the description and
 * never read by the app at synth time. Pure: no cdktf import, so docs and tests list them
 * from the same place as the stack that declares them.
 */
import type { Cluster } from "./schema";

export interface SecretVariable {
  /** Terraform variable name (TF_VAR_<name>). */
  readonly name: string;
  readonly description: string;
}

export const SECRET_VARIABLES = {
  s3AccessKeyId: { name: "s3_access_key_id", description: "S3 access key id of the application (AWS_ACCESS_KEY_ID)" },
  s3SecretAccessKey: { name: "s3_secret_access_key", description: "S3 secret access key of the application (AWS_SECRET_ACCESS_KEY)" },
  rabbitmqPassword: { name: "rabbitmq_password", description: "Password of the RabbitMQ user app.broker.user (part of CELERY_BROKER_URL)" },
  registryPassword: { name: "registry_password", description: "Password or token of app.registry.username for pulling private images" },
  grafanaAdminPassword: { name: "grafana_admin_password", description: "Password of Grafana's admin user in the metrics job (metrics.enabled); set when Grafana creates its database" },
  autoscalerNomadToken: {
    name: "autoscaler_nomad_token",
    description: "Nomad ACL token (secret ID) of the Nomad Autoscaler, with nomad.acl: a policy with namespace \"default\" { policy = \"scale\" } (docs/operations.md, Autoscaling)",
  },
  alertWebhookUrl: {
    name: "alert_webhook_url",
    description: "URL Alertmanager POSTs alerts to, with metrics.alerting.webhook (it usually holds a token); written to the metrics job's secrets/ directory, never into a config file",
  },
  alertSmtpPassword: { name: "alert_smtp_password", description: "Password of metrics.alerting.email.username on the SMTP server (Alertmanager's e-mail receiver)" },
  vrrpPassword: { name: "vrrp_password", description: "VRRP authentication of the floating IP's keepalived (nodes stack; 1-8 characters)" },
} as const satisfies Record<string, SecretVariable>;

/**
 * The secret variables the jobs stack needs (the registry password only with app.registry;
 * the autoscaler's Nomad token only with nomad.acl and autoscaling; the alert receivers'
 * secrets only with their receiver in metrics.alerting).
 */
export function secretVariables(c: Cluster): SecretVariable[] {
  const { s3AccessKeyId, s3SecretAccessKey, rabbitmqPassword, registryPassword, autoscalerNomadToken, grafanaAdminPassword, alertWebhookUrl, alertSmtpPassword } = SECRET_VARIABLES;
  const alerting = c.metrics.enabled ? c.metrics.alerting : {};
  const autoscalerToken = c.nomad.acl && c.metrics.enabled && c.metrics.autoscaling.enabled;
  return [
    s3AccessKeyId,
    s3SecretAccessKey,
    rabbitmqPassword,
    ...(c.app.registry ? [registryPassword] : []),
    ...(autoscalerToken ? [autoscalerNomadToken] : []),
    ...(c.metrics.enabled ? [grafanaAdminPassword] : []),
    ...(alerting.webhook ? [alertWebhookUrl] : []),
    ...(alerting.email?.username ? [alertSmtpPassword] : []),
  ];
}
