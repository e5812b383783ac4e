/**
 * The nodes stack: everything installed ON the VMs (agents, keepalived), provisioned over
 * SSH through the bastion. It has its own state, apart from the jobs stack, so that an
 * application release never touches the machines' provisioning.
 */
import { Construct } from "constructs";
import { TerraformOutput, TerraformStack } from "cdktf";
import { NullProvider } from "@cdktf/provider-null/lib/provider";
import type { Cluster } from "./description/schema";
import { ClusterMembership } from "./cluster-membership";
import { NodeAgents } from "./node-agents";
import { FloatingIp } from "./floating-ip";
import { configureStateBackend } from "./state-backend";
import { terraformLiteral, terraformLiterals } from "./escape";
import { nodesStackName } from "./stack-names";
import { consulBatches, nodeBatches } from "./description/rollout";

export interface ClusterNodesStackProps {
  readonly cluster: Cluster;
}

export { nodesStackName };

export class ClusterNodesStack extends TerraformStack {
  readonly membership: ClusterMembership;
  readonly agents: Record<string, NodeAgents> = {};
  readonly floatingIp: FloatingIp;

  constructor(scope: Construct, props: ClusterNodesStackProps) {
    const { cluster } = props;
    super(scope, nodesStackName(cluster));
    configureStateBackend(this, cluster, nodesStackName(cluster));
    new NullProvider(this, "null");

    this.membership = new ClusterMembership(this, "membership", { cluster });
    // Node names are construct ids: in a scope of their own, no name (`membership`,
    // `nodes`, ...) can collide with another construct of the stack.
    const agentsScope = new Construct(this, "node-agents");
    // Rolling: batch k+1 of an agent kind after batch k of that kind (rollout.batchSize).
    // Batches are runs of nodes in description order, so the previous batches' agents exist
    // when a node's are made.
    const previousBatch = (batches: string[][]) => {
      const previous = new Map<string, string[]>();
      batches.forEach((batch, k) => batch.forEach((name) => previous.set(name, k === 0 ? [] : batches[k - 1])));
      return (name: string) => previous.get(name)!.map((other) => this.agents[other]);
    };
    const afterConsul = previousBatch(consulBatches(cluster));
    const afterNomad = previousBatch(nodeBatches(cluster));
    for (const node of cluster.nodes) {
      this.agents[node.name] = new NodeAgents(agentsScope, node.name, {
        cluster,
        node,
        after: { consul: afterConsul(node.name), nomad: afterNomad(node.name) },
        dependsOn: [this.membership.resource],
      });
    }
    // Per node: Consul, then keepalived, then Nomad. keepalived goes before Nomad so that
    // under `maintenance: true` the floating IP is handed over cleanly (priority drops,
    // ~0.6 s) before the Nomad drain stops HAProxy there (which would cost a health-check
    // failover, ~3.4 s). A new node's keepalived waits in FAULT until HAProxy answers.
    this.floatingIp = new FloatingIp(this, "floating-ip", {
      cluster,
      after: (node) => [this.membership.resource, this.agents[node.name].consul.resource],
    });
    for (const node of cluster.nodes) {
      this.agents[node.name].nomad.runAfter(this.floatingIp.keepalived[node.name].provisioned.resource);
    }

    new TerraformOutput(this, "nodes", {
      description: "Nodes of the cluster: SSH address (behind the bastion), overlay address, maintenance flag",
      value: terraformLiterals(
        Object.fromEntries(cluster.nodes.map((n) => [n.name, { address: n.address, overlay_address: n.overlayAddress, maintenance: n.maintenance }])),
      ),
    });
    new TerraformOutput(this, "consul_ui", { value: terraformLiteral(`${cluster.servers.consulHttpAddress.replace(/\/$/, "")}/ui/`) });
    new TerraformOutput(this, "nomad_ui", { value: terraformLiteral(`${cluster.servers.nomadHttpAddress.replace(/\/$/, "")}/ui/`) });
    new TerraformOutput(this, "floating_ip", { value: terraformLiteral(cluster.floatingIp.address) });
    new TerraformOutput(this, "public_url", { value: terraformLiteral(cluster.app.publicUrl) });
  }
}
