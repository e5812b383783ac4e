/**
 * A node's Consul and Nomad client agents: their rendered configs, installed and
 * (re)started over SSH through the bastion, one `null_resource` per agent so that a
 * Nomad change never restarts Consul.
 */
import { Construct } from "constructs";
import type { ITerraformDependable } from "cdktf";
import type { Cluster, ClusterNode } from "./description/schema";
import { CONSUL_CONFIG_DIR, NOMAD_CONFIG_DIR, consulSecretFiles, nomadSecretFiles, renderConsulConfig, renderNomadConfig } from "./render/agents";
import { renderAgentInstallScript, type AgentKind, type ManagedFile } from "./render/scripts";
import { ProvisionedFiles } from "./provisioned-files";

/** systemd drop-in: Consul's packaged unit runs as user consul, and DNS on port 53 needs the capability. */
export const CONSUL_DNS_DROPIN = `# Consul serves DNS on the overlay address, port 53 (systemd-networkd forwards *.consul there).
[Service]
AmbientCapabilities=CAP_NET_BIND_SERVICE
`;

export interface NodeAgentsProps {
  readonly cluster: Cluster;
  readonly node: ClusterNode;
  /**
   * The previous rollout batch's agents (`rollout.batchSize`, default one node): each agent
   * kind restarts one batch at a time, in description order.
   */
  readonly after?: readonly NodeAgents[];
  readonly dependsOn?: ITerraformDependable[];
}

/** Files of one agent: config, optional escape-hatch file, install script. */
export function agentFiles(c: Cluster, n: ClusterNode, agent: AgentKind): Record<string, string> {
  const configDir = agent === "consul" ? CONSUL_CONFIG_DIR : NOMAD_CONFIG_DIR;
  const extra = agent === "consul" ? c.consul.extraConfig : c.nomad.extraConfig;
  const files: Record<string, string> = {};
  const managed: ManagedFile[] = [];
  const add = (name: string, text: string, target: string, mode: string) => {
    files[name] = text;
    managed.push({ source: name, target, mode });
  };
  add(`${agent}.hcl`, agent === "consul" ? renderConsulConfig(c, n) : renderNomadConfig(c, n), `${configDir}/${agent}.hcl`, "0640");
  if (extra !== undefined) add("zz-extra.hcl", extra.endsWith("\n") ? extra : `${extra}\n`, `${configDir}/zz-extra.hcl`, "0640");
  if (agent === "consul") add("consul-dns.conf", CONSUL_DNS_DROPIN, "/etc/systemd/system/consul.service.d/10-dns-port.conf", "0644");
  files["install.sh"] = renderAgentInstallScript(c, n, {
    agent,
    files: managed,
    requiredFiles: agent === "consul" ? consulSecretFiles(c) : nomadSecretFiles(c),
    removableTargets: extra === undefined ? [`${configDir}/zz-extra.hcl`] : [],
  });
  return files;
}

export class NodeAgents extends Construct {
  readonly consul: ProvisionedFiles;
  readonly nomad: ProvisionedFiles;

  constructor(scope: Construct, id: string, props: NodeAgentsProps) {
    super(scope, id);
    const { cluster, node, after } = props;
    const base = props.dependsOn ?? [];
    this.consul = new ProvisionedFiles(this, "consul", {
      cluster,
      node,
      component: "consul",
      files: agentFiles(cluster, node, "consul"),
      installScript: "install.sh",
      dependsOn: [...base, ...(after ?? []).map((a) => a.consul.resource)],
    });
    this.nomad = new ProvisionedFiles(this, "nomad", {
      cluster,
      node,
      component: "nomad",
      files: agentFiles(cluster, node, "nomad"),
      installScript: "install.sh",
      // Nomad registers services in the local Consul agent: Consul first.
      dependsOn: [...base, this.consul.resource, ...(after ?? []).map((a) => a.nomad.resource)],
    });
  }
}
