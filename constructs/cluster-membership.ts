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
import { STAGING_ROOT, freshStagingCommand, inlineFilesLines, stagedScriptConnection } from "./provisioned-files";
import { renderDecommissionScript } from "./render/scripts";
import { connectionInput, selfConnection } from "./ssh";
import { terraformLiteral } from "./escape";
import { dropTerraformVersionCheck } from "./terraform-version-check";

export class ClusterMembership extends Construct {
  readonly resource: DataResource;

  constructor(scope: Construct, id: string, props: { cluster: Cluster }) {
    super(scope, id);
    const { cluster } = props;
    const scriptText = renderDecommissionScript();
    const script = RenderedFiles.of(this).add("decommission.sh", scriptText);
    // Private staging in the SSH user's home, as for the install scripts (see stagingDir).
    const stage = `${STAGING_ROOT}/${cluster.name}/decommission`;
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
      // Destroy-time only, and failing by default: a node whose decommission fails (or
      // cannot be reached) stays in state and the next apply retries it. A node that is
      // dead for good is forgotten explicitly (docs/description.md, Removing a node: terraform state rm).
      // Two SSH connections: the fresh private staging directory, then one script uploaded
      // into it that writes decommission.sh from the synth output, checks it and runs it.
      provisioners: [
        { type: "remote-exec", inline: [freshStagingCommand(stage)], when: "destroy" } as never,
        {
          type: "remote-exec",
          connection: stagedScriptConnection(stage),
          // Terraform joins inline lines without `set -e`: the exit status is the script's,
          // and the script runs only if it is the one synthesized (checksum).
          inline: [
            ...inlineFilesLines(stage, { "decommission.sh": [script, scriptText] }),
            `if [ "$ok" != 1 ]; then echo "decommission.sh did not arrive intact; not running it" >&2; rm -rf "$stage"; exit 1; fi`,
            `rc=0; sudo bash "$stage/decommission.sh" '${self("node")}' '${self("overlay_address")}' '${self("drain_deadline")}' || rc=$?; rm -rf "$stage"; exit $rc`,
          ],
          when: "destroy",
        } as never,
      ],
    });
    this.resource.overrideLogicalId("node_membership");
    // synth must not need a `terraform` binary (see terraform-version-check.ts)
    dropTerraformVersionCheck(this.resource);
  }
}
