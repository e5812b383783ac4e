/**
 * What the application puts in Consul besides the services Nomad registers:
 * - the external RabbitMQ and S3 endpoints as external services (catalog and UI show every
 *   dependency of the app in one place; consul-esm could health-check them);
 * - service-defaults (protocol http) for web and api;
 * - the non-secret application settings under `<cluster>/app/` in the KV store.
 *
 * The containers do NOT use `rabbitmq.service.consul` / `s3.service.consul`: a container
 * resolves through Docker's copy of the host resolver list, not through the host's
 * per-link routing of `.consul` to Consul; an external service registered by host name
 * answers with a CNAME that the Consul agents (no `recursors`) do not resolve; and TLS to
 * S3 checks the certificate against the real host name. The jobs use the real names.
 *
 * The templates do not read the KV settings either: a value read at run time is outside
 * the job version, so a canary would not test it and an auto-revert would not undo it. The
 * jobs carry the same values in their env; the KV copy is for operators and other tools.
 */
import { Construct } from "constructs";
import { Node } from "@cdktf/provider-consul/lib/node";
import { Service } from "@cdktf/provider-consul/lib/service";
import { ConfigEntry } from "@cdktf/provider-consul/lib/config-entry";
import { KeyPrefix } from "@cdktf/provider-consul/lib/key-prefix";
import type { Cluster } from "./description/schema";
import { terraformLiteral, terraformLiterals } from "./escape";

/** KV prefix of the application's non-secret settings. */
export function appSettingsPrefix(c: Cluster): string {
  return `${c.name}/app/`;
}

/** Non-secret settings published in Consul KV (no image tags: a release must not touch them). */
export function appSettings(c: Cluster): Record<string, string> {
  const { s3, broker } = c.app;
  return {
    public_url: c.app.publicUrl,
    "s3/endpoint": s3.endpoint,
    "s3/bucket": s3.bucket,
    "s3/region": s3.region,
    "broker/host": broker.host,
    "broker/port": String(broker.port),
    "broker/vhost": broker.vhost,
    "broker/user": broker.user,
  };
}

/** Scheme, host and port of an http(s) URL (the scheme's default port when none is given). */
export function urlHostPort(url: string): { scheme: string; host: string; port: number } {
  const u = new URL(url);
  const scheme = u.protocol.replace(/:$/, "");
  return { scheme, host: u.hostname, port: u.port ? Number(u.port) : scheme === "https" ? 443 : 80 };
}

export class ConsulCatalog extends Construct {
  constructor(scope: Construct, id: string, props: { cluster: Cluster }) {
    super(scope, id);
    const c = props.cluster;
    const s3 = urlHostPort(c.app.s3.endpoint);
    const externals = [
      { name: "rabbitmq", address: c.app.broker.host, port: c.app.broker.port, tags: ["amqp", "external"] },
      { name: "s3", address: s3.host, port: s3.port, tags: ["https", "external"] },
    ];
    for (const e of externals) {
      const node = new Node(this, `${e.name}_node`, {
        name: `external-${e.name}`,
        address: terraformLiteral(e.address),
        // consul-esm's convention for nodes no agent runs on.
        meta: { "external-node": "true", "external-probe": "false" },
      });
      node.overrideLogicalId(e.name);
      const svc = new Service(this, `${e.name}_service`, { name: e.name, nodeAttribute: node.name, port: e.port, tags: e.tags });
      svc.overrideLogicalId(e.name);
    }

    for (const svc of ["web", "api"]) {
      const entry = new ConfigEntry(this, `${svc}_defaults`, {
        kind: "service-defaults",
        name: svc,
        configJson: JSON.stringify({ Protocol: "http" }),
      });
      entry.overrideLogicalId(`${svc}_defaults`);
    }

    const settings = appSettings(c);
    const kv = new KeyPrefix(this, "app_settings", {
      pathPrefix: terraformLiteral(appSettingsPrefix(c)),
      // Description text: literals (a `${...}` in a setting must not run at apply time).
      subkeys: terraformLiterals(settings),
    });
    kv.overrideLogicalId("app_settings");
  }
}
