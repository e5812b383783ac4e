/**
 * One `null_resource` that puts a set of rendered files on one node and runs its install
 * script: the building block of every per-node agent (Consul, Nomad, keepalived).
 *
 * Re-provisioning happens only when a trigger changes: the SHA-256 of each file (never
 * the text: a rendered file must not land in state twice) and the node's SSH address.
 */
import { Construct } from "constructs";
import { type ITerraformDependable, type TerraformResource } from "cdktf";
import { Resource as NullResource } from "@cdktf/provider-null/lib/resource";
import type { Cluster, ClusterNode } from "./description/schema";
import { RenderedFiles, sha256 } from "./rendered-files";
import { nodeConnection } from "./ssh";
import { shellQuote, terraformLiteral, terraformLiterals, terraformQuoted } from "./escape";

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

/**
 * Where, in a staging directory, a remote-exec's script is uploaded (its `script_path`).
 * Terraform and OpenTofu upload an inline script by scp, `chmod 0777` it and run it; their
 * default path (/tmp/terraform_%RAND%.sh) would leave it readable and writable by every
 * user of the node while it runs. Inside the private staging directory it is neither.
 * In a subdirectory of its own: after the run the engines upload an empty file to the same
 * path (`scp -t <its directory>`); with the staging directory gone, that upload fails (they
 * only log it) instead of leaving an empty file where the staging directory was.
 */
export const STAGED_SCRIPT_DIR = "script";
export const STAGED_SCRIPT = `${STAGED_SCRIPT_DIR}/provision.sh`;

/** Shell: a fresh private staging directory (a stale or planted one is replaced), with the script's subdirectory. */
export function freshStagingCommand(dir: string): string {
  return `umask 077 && rm -rf ${shellQuote(dir)} && mkdir -p ${shellQuote(`${dir}/${STAGED_SCRIPT_DIR}`)}`;
}

/**
 * The connection block of a remote-exec whose script is uploaded into the private staging
 * directory `stage` (see STAGED_SCRIPT). Only `script_path`: the engines merge a
 * provisioner's connection block over the resource's (when validating and when running),
 * so everything else stays the resource's own.
 */
export function stagedScriptConnection(stage: string): { scriptPath: string } {
  return { scriptPath: terraformLiteral(`${stage}/${STAGED_SCRIPT}`) };
}

/**
 * POSIX shell lines of a remote-exec (one Terraform template each) that write rendered
 * files into the staging directory `stage` from the synth output (`${filebase64(...)}`,
 * read by the engine at apply time, as a `file` provisioner reads its `source`), check
 * each against the SHA-256 synthesized with it, and set `ok=1` only if all arrived intact.
 * Files are written under umask 077 inside the private directory; their text goes through
 * the shell builtin printf, never a program's arguments.
 * `files`: name in the staging directory → [path in the stack directory, text].
 */
export function inlineFilesLines(stage: string, files: Record<string, readonly [string, string]>): string[] {
  const names = Object.keys(files).sort();
  const lit = terraformLiteral;
  return [
    `stage=${lit(shellQuote(stage))}`,
    // Its own argument, not a program's: `put <name> <base64>` writes one file.
    `put() { printf '%s' "$2" | base64 -d > "$stage/$1"; }`,
    "ok=0",
    "if umask 077 \\",
    ...names.map((f) => `  && put ${lit(shellQuote(f))} '\${filebase64(${terraformQuoted(files[f][0])})}' \\`),
    `  && printf '%s\\n' ${names.map((f) => lit(shellQuote(`${sha256(files[f][1])}  ${f}`))).join(" ")} | (cd "$stage" && sha256sum -c --quiet -)`,
    "then ok=1; fi",
  ];
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

  constructor(scope: Construct, id: string, props: ProvisionedFilesProps) {
    super(scope, id);
    const { cluster, node, component } = props;
    for (const f of [...Object.keys(props.files), ...Object.keys(props.secretFiles ?? {})]) {
      if (f === STAGED_SCRIPT_DIR) throw new Error(`${f} of ${component} has the name of the staged script's directory`);
    }
    if (!(props.installScript in props.files)) throw new Error(`install script ${props.installScript} is not among the files of ${component}`);
    for (const f of Object.keys(props.secretFiles ?? {})) {
      if (f in props.files) throw new Error(`secret file ${f} of ${component} is also a rendered file`);
    }
    const rendered = RenderedFiles.of(this);
    const stage = stagingDir(cluster, component);
    const names = Object.keys(props.files).sort();
    this.renderedPaths = Object.fromEntries(names.map((f) => [f, rendered.add(`${node.name}/${component}/${f}`, props.files[f])]));

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
      // Two SSH connections (three with secret files), each one connection to the bastion and
      // one hop through it: an engine opens a connection per provisioner.
      provisioners: [
        // A fresh private staging directory in the SSH user's home (see stagingDir): it
        // must exist before anything else is uploaded into it, so it is a session of its own.
        { type: "remote-exec", inline: [freshStagingCommand(stage)] },
        // Secret files by a file provisioner's `content`: in the remote-exec below a
        // sensitive value would make the engines suppress its whole output (validation
        // errors included).
        ...Object.keys(props.secretFiles ?? {})
          .sort()
          .map((f) => ({ type: "file" as const, content: props.secretFiles![f], destination: `${stage}/${f}` })),
        // One script, uploaded into the staging directory and run in the same connection:
        // the rendered files written from the synth output and checked, then the install
        // script as root. Terraform joins inline lines without `set -e`: the exit status is
        // the install script's, and the staging directory is removed whatever happened.
        {
          type: "remote-exec",
          connection: stagedScriptConnection(stage) as never,
          inline: [
            ...inlineFilesLines(stage, Object.fromEntries(names.map((f) => [f, [this.renderedPaths[f], props.files[f]] as const]))),
            `rc=0; if [ "$ok" = 1 ]; then sudo bash ${terraformLiteral(shellQuote(`${stage}/${props.installScript}`))} || rc=$?; else echo ${terraformLiteral(shellQuote(`the rendered files of ${component} did not arrive intact; nothing was installed`))} >&2; rc=1; fi`,
            `rm -rf "$stage"; exit $rc`,
          ],
        },
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
