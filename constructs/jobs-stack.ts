/**
 * The jobs stack: the application on Nomad (four jobs, their secrets) and its entries in
 * Consul. Its own state, apart from the nodes stack, so that a release never touches the
 * machines' provisioning; it is deployed after the nodes stack.
 *
 * The providers talk only to the servers' HTTP APIs (description: servers.*HttpAddress).
 * ACL tokens and TLS material, when used, come from the operator's environment at apply
 * time (NOMAD_TOKEN, NOMAD_CACERT..., CONSUL_HTTP_TOKEN, CONSUL_CACERT...), never from here.
 */
import { Construct } from "constructs";
import { TerraformOutput, TerraformStack } from "cdktf";
import { NomadProvider } from "@cdktf/provider-nomad/lib/provider";
import { ConsulProvider } from "@cdktf/provider-consul/lib/provider";
import type { Cluster } from "./description/schema";
import { AppSecrets } from "./app-secrets";
import { ConsulCatalog, urlHostPort } from "./consul-catalog";
import { NomadJob } from "./nomad-job";
import { RenderedFiles, sha256 } from "./rendered-files";
import { HAPROXY_CONFIG_ITEM } from "./render/jobs/haproxy";
import { jobNames, type JobName } from "./render/jobs/common";
import { nomadHaproxyRuntime, renderHaproxyConfig } from "./render/jobs/haproxy-cfg";
import { renderJobspecs } from "./render/jobs";
import { GRAFANA_LOCAL_DIR, grafanaFiles } from "./render/metrics/grafana";
import { nomadPrometheusRuntime, renderPrometheusConfig } from "./render/metrics/prometheus";
import { ALERT_RULES_FILE, renderAlertRules } from "./render/metrics/alerts";
import { ALERTMANAGER_CONFIG_FILE, alertingEnabled, renderAlertmanagerConfig } from "./render/metrics/alertmanager";
import { configureStateBackend } from "./state-backend";
import { KeptCount, NOMAD_PROVIDER_VERSION } from "./kept-count";
import { SCALED_JOBS, autoscalingEnabled } from "./render/jobs/scaling";
import { autoscalingRenderedFiles } from "./render/jobs/autoscaler";
import { terraformLiteral, terraformLiterals } from "./escape";
import { jobsStackName } from "./stack-names";

export interface ClusterJobsStackProps {
  readonly cluster: Cluster;
}

export { jobsStackName };

/** The Consul provider wants host:port and the scheme apart. */
export function consulProviderAddress(url: string): { address: string; scheme: string } {
  const { scheme, host, port } = urlHostPort(url);
  return { address: `${host}:${port}`, scheme };
}

export class ClusterJobsStack extends TerraformStack {
  readonly jobs = {} as Record<JobName, NomadJob>;
  readonly secrets: AppSecrets;
  readonly consul: ConsulCatalog;

  constructor(scope: Construct, props: ClusterJobsStackProps) {
    const { cluster } = props;
    super(scope, jobsStackName(cluster));
    // This state holds the Nomad Variables' items (secrets): see state-backend.ts.
    configureStateBackend(this, cluster, jobsStackName(cluster));
    new NomadProvider(this, "nomad", terraformLiterals({ address: cluster.servers.nomadHttpAddress, region: cluster.region }));
    // nomad_job preserve_counts (kept-count.ts) needs 2.6.0+; the binding would require 2.5.2.
    this.addOverride("terraform.required_providers.nomad.version", NOMAD_PROVIDER_VERSION);
    new ConsulProvider(this, "consul", terraformLiterals({ ...consulProviderAddress(cluster.servers.consulHttpAddress), datacenter: cluster.servers.datacenter }));

    // haproxy.cfg travels in HAProxy's Nomad Variable (see render/jobs/haproxy.ts), readable here.
    const haproxyCfg = renderHaproxyConfig(cluster, nomadHaproxyRuntime(cluster));
    const haproxyCfgFile = RenderedFiles.of(this).add("jobs/haproxy.cfg", haproxyCfg);
    this.secrets = new AppSecrets(this, "secrets", {
      cluster,
      extraItems: { haproxy: { [HAPROXY_CONFIG_ITEM]: terraformLiteral(haproxyCfg) } },
    });
    this.secrets.nomadVariables.haproxy?.addOverride(`//.${HAPROXY_CONFIG_ITEM}_file`, haproxyCfgFile);
    this.secrets.nomadVariables.haproxy?.addOverride(`//.${HAPROXY_CONFIG_ITEM}_sha256`, sha256(haproxyCfg));
    this.secrets.consulKeys.haproxy?.addOverride(`//.${HAPROXY_CONFIG_ITEM}_file`, haproxyCfgFile);
    this.secrets.consulKeys.haproxy?.addOverride(`//.${HAPROXY_CONFIG_ITEM}_sha256`, sha256(haproxyCfg));
    this.consul = new ConsulCatalog(this, "consul-catalog", { cluster });
    // The autoscaler's config and the queue exporter's script (tasks of the metrics job), readable.
    if (autoscalingEnabled(cluster)) {
      for (const [file, text] of Object.entries(autoscalingRenderedFiles(cluster))) RenderedFiles.of(this).add(file, text);
    }

    if (cluster.metrics.enabled) {
      // The metrics job's config files, readable (its templates carry the same text).
      const rendered = RenderedFiles.of(this);
      rendered.add("metrics/prometheus.yml", renderPrometheusConfig(cluster, nomadPrometheusRuntime()));
      for (const [p, text] of Object.entries(grafanaFiles(cluster))) rendered.add(`metrics/grafana/${p.slice(`${GRAFANA_LOCAL_DIR}/`.length)}`, text);
      rendered.add(ALERT_RULES_FILE, renderAlertRules(cluster));
      if (alertingEnabled(cluster)) rendered.add(ALERTMANAGER_CONFIG_FILE, renderAlertmanagerConfig(cluster));
    }

    const specs: Partial<Record<JobName, string>> = renderJobspecs(cluster);
    for (const job of jobNames(cluster)) {
      const variable = this.secrets.nomadVariables[job] ?? this.secrets.consulKeys[job];
      this.jobs[job] = new NomadJob(this, job, {
        job,
        jobspec: specs[job]!,
        // The template blocks until its variable exists: write it first.
        dependsOn: variable ? [variable] : undefined,
      });
      // With the autoscaler, Nomad keeps the running count at each release (kept-count.ts).
      const scaled = SCALED_JOBS.find((j) => j === job);
      if (scaled && autoscalingEnabled(cluster)) new KeptCount(this, `${scaled}-count`, { cluster, job: scaled, nomadJob: this.jobs[job] });
    }

    new TerraformOutput(this, "job_names", { description: "Nomad jobs of the application", value: jobNames(cluster) });
    new TerraformOutput(this, "public_url", { description: "Public URL of the site", value: terraformLiteral(cluster.app.publicUrl) });
    new TerraformOutput(this, "nomad_jobs_ui", { value: terraformLiteral(`${cluster.servers.nomadHttpAddress.replace(/\/$/, "")}/ui/jobs`) });
  }
}
