/**
 * Runs the provisioners of a synthesized `null_resource` the way Terraform's SSH
 * communicator does, with OpenSSH from an "operator" namespace through a bastion:
 *
 * - `file` (source or content): scp (legacy protocol, `scp -t` on the remote, as Terraform);
 * - `remote-exec` inline: the lines joined with "\n" into one script (no `set -e`, as
 *   Terraform's generateScripts), uploaded to /tmp/terraform_<n>.sh, chmod 0777, executed
 *   by the login shell; the run fails when the script's exit status is not 0.
 *
 * `${var.NAME}` in a `content` is resolved from `vars` (what Terraform does at apply time).
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { Sandbox } from "./sandbox";

export interface Operator {
  sandbox: Sandbox;
  /** Namespace the operator's ssh/scp run in. */
  ns: string;
  /** `ssh -F` config with a Host entry named `bastion` and one per node name. */
  sshConfig: string;
}

export interface ApplyResult {
  ok: boolean;
  /** What Terraform would print: every command's output, in order. */
  output: string;
}

/** The ssh config Terraform's connection block amounts to (bastion hop, pinned host keys, key file). */
export function sshConfigFromConnection(hostAlias: string, conn: any, keyFile: string, knownHosts: string): string {
  const common = [
    `  IdentityFile ${keyFile}`,
    "  IdentitiesOnly yes",
    `  UserKnownHostsFile ${knownHosts}`,
    "  StrictHostKeyChecking yes",
    "  BatchMode yes",
    "  GSSAPIAuthentication no",
    "  ConnectTimeout 5",
    "  LogLevel ERROR",
  ].join("\n");
  return [
    "Host bastion",
    `  HostName ${conn.bastion_host}`,
    `  Port ${conn.bastion_port}`,
    `  User ${conn.bastion_user}`,
    common,
    `Host ${hostAlias}`,
    `  HostName ${conn.host}`,
    `  User ${conn.user}`,
    common,
    "",
  ].join("\n");
}

export function ssh(op: Operator, host: string, command: string, timeoutMs = 30000) {
  return op.sandbox.inNs(op.ns, ["ssh", "-F", op.sshConfig, "-J", "bastion", host, command], { timeoutMs });
}

export function scp(op: Operator, host: string, local: string, remote: string, timeoutMs = 30000) {
  return op.sandbox.inNs(op.ns, ["scp", "-O", "-q", "-F", op.sshConfig, "-J", "bastion", local, `${host}:${remote}`], { timeoutMs });
}

function resolveContent(content: string, vars: Record<string, string>): string {
  return content.replace(/\$\{var\.([A-Za-z0-9_]+)\}/g, (_, name: string) => {
    if (!(name in vars)) throw new Error(`variable ${name} has no value`);
    return vars[name];
  });
}

/** Applies the create-time provisioners of `resource` (from cdk.tf.json) to `host`. */
export function applyProvisioners(op: Operator, host: string, stackDir: string, resource: any, vars: Record<string, string> = {}): ApplyResult {
  const out: string[] = [];
  const local = path.join(op.sandbox.dir, "upload");
  for (const p of resource.provisioner as any[]) {
    const [type, body] = Object.entries(p)[0] as [string, any];
    if (body.when === "destroy") continue;
    if (type === "file") {
      const src = body.source !== undefined ? path.join(stackDir, body.source) : local;
      if (body.content !== undefined) fs.writeFileSync(local, resolveContent(body.content, vars), { mode: 0o600 });
      const r = scp(op, host, src, body.destination);
      fs.rmSync(local, { force: true });
      out.push(r.stdout, r.stderr);
      if (r.status !== 0) return { ok: false, output: out.join("") + `\nfile provisioner → ${body.destination} failed (${r.status})` };
    } else if (type === "remote-exec") {
      const script = `${(body.inline as string[]).join("\n")}\n`;
      const remote = `/tmp/terraform_${crypto.randomInt(1e9)}.sh`;
      fs.writeFileSync(local, script);
      const up = scp(op, host, local, remote);
      fs.rmSync(local, { force: true });
      if (up.status !== 0) return { ok: false, output: out.join("") + up.stderr };
      const r = ssh(op, host, `chmod 0777 ${remote} && ${remote}; rc=$?; rm -f ${remote}; exit $rc`);
      out.push(r.stdout, r.stderr);
      if (r.status !== 0) return { ok: false, output: out.join("") + `\nerror executing "${remote}": Process exited with status ${r.status}` };
    } else {
      throw new Error(`provisioner type ${type} not supported here`);
    }
  }
  return { ok: true, output: out.join("") };
}
