/**
 * Membership of the nodes in the cluster, one instance per node name, whose destroy-time
 * step decommissions a node removed from the description: floating IP away, allocations
 * drained, Nomad stopped, Consul left gracefully.
 *
 * Why `terraform_data` with `for_each` and not a `null_resource` per node:
 * - a destroy-time provisioner runs only while its resource block is still in the
 *   configuration; with `for_each`, removing a node removes one instance, not the block;
 * - a destroy-time provisioner may read only `self`, so connection data is kept in the
 *   instance; in `null_resource.triggers` a bastion change would force a replacement, and
 *   so a decommission of a live node. `terraform_data.input` updates in place instead.
 */
import { Construct } from "constructs";
import { DataResource, TerraformIterator, TerraformSelf } from "cdktf";
import type { Cluster } from "./description/schema";
import { RenderedFiles } from "./rendered-files";
import { renderDecommissionScript } from "./render/scripts";
import { connectionInput, selfConnection } from "./ssh";
import { terraformLiteral } from "./escape";
import { dropTerraformVersionCheck } from "./terraform-version-check";

export class ClusterMembership extends Construct {
  readonly resource: DataResource;

  constructor(scope: Construct, id: string, props: { cluster: Cluster }) {
    super(scope, id);
    const { cluster } = props;
    const script = RenderedFiles.of(this).add("decommission.sh", renderDecommissionScript());
    const remoteScript = `/tmp/decommission-${cluster.name}.sh`;
    const input = Object.fromEntries(
      cluster.nodes.map((n) => [terraformLiteral(n.name), { ...connectionInput(cluster, n), drain_deadline: terraformLiteral(cluster.nomad.drainDeadline) }]),
    );
    const each = TerraformIterator.fromMap(input);
    const self = (k: string) => TerraformSelf.getString(`input.${k}`);
    this.resource = new DataResource(this, "resource", {
      forEach: each,
      input: each.value,
      triggersReplace: { node: each.key },
      connection: selfConnection(cluster),
      provisioners: [
        // Destroy-time only; a node that is already gone must not block its removal.
        { type: "file", source: script, destination: remoteScript, when: "destroy", onFailure: "continue" } as never,
        {
          type: "remote-exec",
          // One line: Terraform joins inline commands without `set -e`; keep the script's status.
          inline: [`rc=0; sudo bash ${remoteScript} ${self("node")} ${self("overlay_address")} ${self("drain_deadline")} || rc=$?; rm -f ${remoteScript}; exit $rc`],
          when: "destroy",
          onFailure: "continue",
        } as never,
      ],
    });
    this.resource.overrideLogicalId("node_membership");
    // synth must not need a `terraform` binary (see terraform-version-check.ts)
    dropTerraformVersionCheck(this.resource);
  }
}
