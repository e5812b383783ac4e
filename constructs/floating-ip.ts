/**
 * The floating IP: keepalived on every node, one `null_resource.<node>_keepalived` each.
 *
 * - Eligible nodes (`nodes[].floatingIp.eligible`) get keepalived installed and
 *   configured; the others get it stopped and disabled (a forgotten keepalived with a
 *   stale config would claim the floating IP on its own).
 * - Each node's keepalived is a resource of its own with hash triggers: a change of the
 *   peer list re-provisions keepalived only, never Consul or Nomad.
 * - Order: a node's keepalived after that node's Consul agent and before its Nomad agent
 *   (see ClusterNodesStack), and after the previous rollout batch's keepalived (rolling;
 *   a batch never holds every eligible node, see description/rollout.ts).
 * - The VRRP password is the sensitive Terraform variable `vrrp_password`, uploaded at
 *   apply time; `synth` does not need it. See docs/floating-ip.md.
 */
import { SECRET_VARIABLES } from "./description/secrets";
import { terraformLiterals } from "./escape";
import { Construct } from "constructs";
import { TerraformOutput, TerraformVariable, type ITerraformDependable } from "cdktf";
import type { Cluster, ClusterNode } from "./description/schema";
import {
  KEEPALIVED_STAGED,
  VRRP_PASSWORD_FILE,
  VRRP_PASSWORD_PATTERN,
  effectivePriority,
  floatingIpCandidates,
} from "./render/keepalived";
import { ProvisionedFiles } from "./provisioned-files";
import { keepalivedComponentFiles } from "./render/node-files";
import { keepalivedBatches } from "./description/rollout";

/** Terraform variable names (TF_VAR_<name>). */
export const VRRP_PASSWORD_VARIABLE = SECRET_VARIABLES.vrrpPassword.name;
export const VRRP_PASSWORD_ROTATION_VARIABLE = "vrrp_password_rotation";

export interface NodeKeepalivedProps {
  readonly cluster: Cluster;
  readonly node: ClusterNode;
  /** Terraform expression of the VRRP password (only used on eligible nodes). */
  readonly password: string;
  /** Trigger value whose change re-provisions keepalived (password rotation). Not a secret. */
  readonly rotation: string;
  readonly dependsOn?: ITerraformDependable[];
}

/** The files staged for one node's keepalived (rendered config template, sysctl, script). */
export function keepalivedFiles(c: Cluster, n: ClusterNode): Record<string, string> {
  return keepalivedComponentFiles(c, n).files;
}

/** keepalived on one node: `null_resource.<node>_keepalived`. */
export class NodeKeepalived extends Construct {
  readonly provisioned: ProvisionedFiles;

  constructor(scope: Construct, id: string, props: NodeKeepalivedProps) {
    super(scope, id);
    const { cluster, node } = props;
    const eligible = node.floatingIp.eligible;
    this.provisioned = new ProvisionedFiles(this, "keepalived", {
      cluster,
      node,
      component: "keepalived",
      files: keepalivedFiles(cluster, node),
      installScript: KEEPALIVED_STAGED.script,
      secretFiles: eligible ? { [VRRP_PASSWORD_FILE]: props.password } : undefined,
      extraTriggers: eligible ? { vrrp_password_rotation: props.rotation } : undefined,
      dependsOn: props.dependsOn,
    });
  }
}

export interface FloatingIpProps {
  readonly cluster: Cluster;
  /** Per node name: what that node's keepalived waits for (its Consul agent). */
  readonly after: (node: ClusterNode) => ITerraformDependable[];
}

export class FloatingIp extends Construct {
  readonly password: TerraformVariable;
  readonly rotation: TerraformVariable;
  readonly keepalived: Record<string, NodeKeepalived> = {};

  constructor(scope: Construct, id: string, props: FloatingIpProps) {
    super(scope, id);
    const { cluster } = props;

    this.password = new TerraformVariable(this, VRRP_PASSWORD_VARIABLE, {
      type: "string",
      sensitive: true,
      nullable: false,
      description:
        "VRRP password of the floating IP's keepalived (auth_type PASS): 1-8 characters among A-Z a-z 0-9 . _ ~ + = @ % ^ * -. " +
        "Uploaded to the nodes at apply time; never in the synthesized files nor in the triggers. After changing it, change vrrp_password_rotation too.",
      validation: [
        {
          condition: `\${can(regex(${JSON.stringify(VRRP_PASSWORD_PATTERN)}, var.${VRRP_PASSWORD_VARIABLE}))}`,
          errorMessage: "vrrp_password must be 1 to 8 characters among A-Z a-z 0-9 . _ ~ + = @ % ^ * - (VRRPv2 carries 8 characters).",
        },
      ],
    });
    this.password.overrideLogicalId(VRRP_PASSWORD_VARIABLE);

    this.rotation = new TerraformVariable(this, VRRP_PASSWORD_ROTATION_VARIABLE, {
      type: "string",
      default: "1",
      description:
        "Not a secret. Change it (e.g. to today's date) whenever vrrp_password changes: that re-provisions keepalived on every node, " +
        "since the password itself is deliberately not a trigger.",
    });
    this.rotation.overrideLogicalId(VRRP_PASSWORD_ROTATION_VARIABLE);

    // Node names as construct ids, in a scope of their own (a node named `candidates` is fine).
    const perNode = new Construct(this, "nodes");
    // Rolling: batch k+1 after batch k, never every eligible node in one batch (rollout.ts).
    const byName = new Map(cluster.nodes.map((n) => [n.name, n]));
    let previous: NodeKeepalived[] = [];
    for (const batch of keepalivedBatches(cluster)) {
      previous = batch.map((name) => {
        const node = byName.get(name)!;
        return (this.keepalived[name] = new NodeKeepalived(perNode, name, {
          cluster,
          node,
          password: this.password.stringValue,
          rotation: this.rotation.stringValue,
          dependsOn: [...props.after(node), ...previous.map((p) => p.provisioned.resource)],
        }));
      });
    }

    new TerraformOutput(this, "candidates", {
      description: "Nodes that may hold the floating IP, with the VRRP priority they run with (1 under maintenance)",
      value: terraformLiterals(
        Object.fromEntries(
          floatingIpCandidates(cluster).map((n) => [
            n.name,
            { overlay_address: n.overlayAddress, priority: effectivePriority(n), maintenance: n.maintenance },
          ]),
        ),
      ),
    }).overrideLogicalId("floating_ip_candidates");
  }
}
