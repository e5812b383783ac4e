/**
 * A node's Consul and Nomad client agents: their rendered configs, installed and
 * (re)started over SSH through the bastion, one `null_resource` per agent so that a
 * Nomad change never restarts Consul.
 */
import { Construct } from "constructs";
import type { ITerraformDependable } from "cdktf";
import type { Cluster, ClusterNode } from "./description/schema";
import { CONSUL_DNS_DROPIN, agentComponentFiles } from "./render/node-files";
import type { AgentKind } from "./render/scripts";
import { ProvisionedFiles } from "./provisioned-files";

export { CONSUL_DNS_DROPIN };

/** Files of one agent: config, optional escape-hatch file, install script (see render/node-files.ts). */
export function agentFiles(c: Cluster, n: ClusterNode, agent: AgentKind): Record<string, string> {
  return agentComponentFiles(c, n, agent).files;
}

export interface NodeAgentsProps {
  readonly cluster: Cluster;
  readonly node: ClusterNode;
  /**
   * The previous rollout batch's agents of each kind (`rollout.batchSize`, default one node):
   * each agent kind restarts one batch at a time, in description order. Consul's and
   * Nomad's batches differ (description/rollout.ts), hence one list per kind.
   */
  readonly after?: { readonly consul: readonly NodeAgents[]; readonly nomad: readonly NodeAgents[] };
  readonly dependsOn?: ITerraformDependable[];
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
      dependsOn: [...base, ...(after?.consul ?? []).map((a) => a.consul.resource)],
    });
    this.nomad = new ProvisionedFiles(this, "nomad", {
      cluster,
      node,
      component: "nomad",
      files: agentFiles(cluster, node, "nomad"),
      installScript: "install.sh",
      // Nomad registers services in the local Consul agent: Consul first.
      dependsOn: [...base, this.consul.resource, ...(after?.nomad ?? []).map((a) => a.nomad.resource)],
    });
  }
}
