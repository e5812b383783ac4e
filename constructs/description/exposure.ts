/**
 * What a cluster without ACLs gives away to whoever reaches the provider's Consul and
 * Nomad APIs (every team on the overlay; the Internet through the provider's tunnels), as
 * one short warning that `npm run synth|diff|deploy` prints. The details and what the team
 * can do are in docs/trust-model.md. Pure: description in, text out.
 */
import type { Cluster } from "./schema";
import { SECRET_VARIABLES, secretVariables } from "./secrets";
import { supports } from "../versions";

export const TRUST_MODEL_DOC = "docs/trust-model.md";

/** How the warning names each secret the jobs receive (the Terraform variables behind them). */
const SECRET_LABELS: Record<string, string> = {
  [SECRET_VARIABLES.s3AccessKeyId.name]: "S3 keys",
  [SECRET_VARIABLES.s3SecretAccessKey.name]: "S3 keys",
  [SECRET_VARIABLES.rabbitmqPassword.name]: "the broker URL with its password",
  [SECRET_VARIABLES.registryPassword.name]: "the registry password",
  [SECRET_VARIABLES.grafanaAdminPassword.name]: "Grafana's admin password",
};

function secretLabels(c: Cluster): string {
  const labels = [...new Set(secretVariables(c).map((v) => SECRET_LABELS[v.name]).filter((l): l is string => l !== undefined))];
  return words(labels);
}

function words(parts: string[]): string {
  return parts.length <= 1 ? parts.join("") : `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}`;
}

/**
 * The warning, or undefined when both Consul and Nomad ACLs are on. It names what is open:
 * the jobs' secrets (Nomad Variables from Nomad 1.4, Consul KV before, where HAProxy's
 * config is writable too), job submission, and the service catalog HAProxy routes by.
 */
export function withoutAclsWarning(c: Cluster): string | undefined {
  const consulOpen = !c.consul.acl;
  const nomadOpen = !c.nomad.acl;
  if (!consulOpen && !nomadOpen) return undefined;
  const inVariables = supports(c.versions, "nomadVariables");
  const can: string[] = [];
  if (inVariables ? nomadOpen : consulOpen) {
    can.push(`read the jobs' secrets (${secretLabels(c)}) in ${inVariables ? "Nomad Variables" : "Consul KV nomad-secrets/"}`);
  }
  if (!inVariables && consulOpen) can.push("rewrite HAProxy's config there");
  if (nomadOpen) can.push("run jobs on your nodes");
  if (consulOpen) can.push("register services that HAProxy sends your traffic to");
  const off = [consulOpen ? "consul.acl" : "", nomadOpen ? "nomad.acl" : ""].filter(Boolean).join(" and ");
  return (
    `WARNING: no ACLs (${off} off, as on every provider year): anyone who reaches the servers' APIs ` +
    `(other teams on the overlay, the Internet through the provider's tunnels) can ${words(can)}. ` +
    `See ${TRUST_MODEL_DOC}.\n`
  );
}
