/**
 * One `null_resource` that puts a set of rendered files on one node and runs its install
 * script: the building block of every per-node agent (Consul, Nomad, keepalived).
 *
 * Re-provisioning happens only when a trigger changes: the SHA-256 of each file (never
 * the text: a rendered file must not land in state twice) and the node's SSH address.
 */
import * as path from "path";
import { Construct } from "constructs";
import { type ITerraformDependable, type TerraformResource } from "cdktf";
import { Resource as NullResource } from "@cdktf/provider-null/lib/resource";
import type { Cluster, ClusterNode } from "./description/schema";
import { RenderedFiles, sha256 } from "./rendered-files";
import { nodeConnection } from "./ssh";
import { shellQuote, terraformLiteral, terraformLiterals } from "./escape";

/**
 * Where a node's files are staged: relative to the SSH user's home directory, where
 * Terraform's scp (`scp -t <dir>`) and remote-exec sessions start. Private to that user
 * (created under umask 077), never a shared `/tmp` path that another local user could
 * create first and swap a script in before `sudo bash` runs it.
 */
export const STAGING_ROOT = ".nomad-cluster-deploy";
export function stagingDir(c: Cluster, component: string): string {
  return `${STAGING_ROOT}/${c.name}/${component}`;
}

/** Shell: a fresh private staging directory (a stale or planted one is replaced). */
export function freshStagingCommand(dir: string): string {
  return `umask 077 && rm -rf ${shellQuote(dir)} && mkdir -p ${shellQuote(dir)}`;
}

export interface ProvisionedFilesProps {
  readonly cluster: Cluster;
  readonly node: ClusterNode;
  /** What is provisioned ("consul", "nomad", "keepalived"): part of the address and paths. */
  readonly component: string;
  /** File name in the staging directory → content. */
  readonly files: Record<string, string>;
  /** The file (among `files`) run as root to install them. */
  readonly installScript: string;
  /**
   * Secret files: name in the staging directory → Terraform expression of the content
   * (e.g. a sensitive variable). Uploaded with a file provisioner's `content` at apply
   * time: never rendered, never part of the triggers (neither the value nor its hash).
   * The install script must delete them after reading.
   */
  readonly secretFiles?: Record<string, string>;
  /** Extra trigger values (not secrets) whose change must re-provision. */
  readonly extraTriggers?: Record<string, string>;
  /** Provisioned after these (rolling order across nodes, agents before their users). */
  readonly dependsOn?: ITerraformDependable[];
}

export class ProvisionedFiles extends Construct {
  readonly resource: NullResource;
  /** Path of each file relative to the stack directory. */
  readonly renderedPaths: Record<string, string>;
  /** The directory (relative to the stack directory, with a trailing slash) holding exactly these files: uploaded whole. */
  readonly renderedDir: string;

  constructor(scope: Construct, id: string, props: ProvisionedFilesProps) {
    super(scope, id);
    const { cluster, node, component } = props;
    if (!(props.installScript in props.files)) throw new Error(`install script ${props.installScript} is not among the files of ${component}`);
    for (const f of Object.keys(props.secretFiles ?? {})) {
      if (f in props.files) throw new Error(`secret file ${f} of ${component} is also a rendered file`);
    }
    const rendered = RenderedFiles.of(this);
    const stage = stagingDir(cluster, component);
    const names = Object.keys(props.files).sort();
    this.renderedPaths = Object.fromEntries(names.map((f) => [f, rendered.add(`${node.name}/${component}/${f}`, props.files[f])]));
    this.renderedDir = `${path.posix.dirname(this.renderedPaths[names[0]])}/`;
    if (names.some((f) => this.renderedPaths[f] !== `${this.renderedDir}${f}`)) throw new Error(`rendered files of ${node.name}/${component} are not in one directory`);

    this.resource = new NullResource(this, "resource", {
      triggers: {
        ...terraformLiterals({
          node: node.name,
          host: node.address,
          ...Object.fromEntries(names.map((f) => [`sha256_${f.replace(/[^A-Za-z0-9]/g, "_")}`, sha256(props.files[f])])),
        }),
        // Terraform expressions of ours (e.g. the rotation variable): not description text.
        ...props.extraTriggers,
      },
      dependsOn: props.dependsOn,
      connection: nodeConnection(cluster, node),
      provisioners: [
        // A fresh private staging directory in the SSH user's home (see stagingDir).
        { type: "remote-exec", inline: [freshStagingCommand(stage)] },
        // One upload for all the rendered files: the directory's contents (trailing slash)
        // into the staging directory, over one SSH session (scp -r) instead of one per file.
        // Every session goes through the provider's bastion, whose sshd limits concurrent
        // unauthenticated connections (MaxStartups): fewer sessions, fewer refusals, and a
        // faster apply. The directory holds exactly this resource's files (RenderedFiles).
        { type: "file" as const, source: terraformLiteral(this.renderedDir), destination: stage },
        ...Object.keys(props.secretFiles ?? {})
          .sort()
          .map((f) => ({ type: "file" as const, content: props.secretFiles![f], destination: `${stage}/${f}` })),
        // Terraform joins inline lines into one script without `set -e`: its exit status is
        // the last command's. Keep the install script's status, or a failed install would
        // pass as a success once the staging dir is removed.
        // A failed upload fails the resource before this step (on_failure defaults to fail).
        { type: "remote-exec", inline: [`rc=0; sudo bash ${shellQuote(`${stage}/${props.installScript}`)} || rc=$?; rm -rf ${shellQuote(stage)}; exit $rc`] },
      ],
    });
    // Addresses read like the description: null_resource.<node>_<component>
    this.resource.overrideLogicalId(`${node.name}_${component}`);
  }

  /** Orders this provisioning after `other` (ordering only: no re-provisioning). */
  runAfter(other: TerraformResource): void {
    this.resource.dependsOn = [...(this.resource.dependsOn ?? []), `${other.terraformResourceType}.${other.friendlyUniqueId}`];
  }
}
