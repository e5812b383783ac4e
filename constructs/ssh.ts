/**
 * SSH connection settings for provisioners: always through the bastion, host keys pinned
 * when the description gives them, the private key from the ssh-agent or a file path read
 * by Terraform at apply time (never synthesized).
 */
import { TerraformSelf, type SSHProvisionerConnection } from "cdktf";
import { terraformLiteral, terraformLiterals, terraformQuoted } from "./escape";
import type { Cluster, ClusterNode } from "./description/schema";

/** Connection data a destroy-time provisioner needs, kept in its own resource (`self`). */
export function connectionInput(c: Cluster, n: ClusterNode): Record<string, string> {
  // Description text: a Terraform literal, never a template.
  return terraformLiterals({
    node: n.name,
    host: n.address,
    overlay_address: n.overlayAddress,
    user: c.ssh.user,
    host_key: n.hostKey ?? "",
    bastion_host: c.bastion.host,
    bastion_port: String(c.bastion.port),
    bastion_user: c.bastion.user,
    bastion_host_key: c.bastion.hostKey ?? "",
    private_key_file: "file" in c.ssh.privateKey ? c.ssh.privateKey.file : "",
  });
}

/** `keyFileExpr`: a Terraform expression of the key file's path (a quoted literal or `self.input...`). */
function privateKey(c: Cluster, keyFileExpr: string): Partial<SSHProvisionerConnection> {
  // Terraform reads the file at apply time; the key never enters the synthesized JSON.
  return "file" in c.ssh.privateKey ? { privateKey: `\${file(pathexpand(${keyFileExpr}))}`, agent: "false" } : { agent: "true" };
}

/** Connection for create-time provisioners of one node. */
export function nodeConnection(c: Cluster, n: ClusterNode): SSHProvisionerConnection {
  return {
    type: "ssh",
    ...terraformLiterals({
      host: n.address,
      user: c.ssh.user,
      timeout: "3m",
      ...(n.hostKey ? { hostKey: n.hostKey } : {}),
      bastionHost: c.bastion.host,
    }),
    bastionPort: c.bastion.port,
    bastionUser: terraformLiteral(c.bastion.user),
    ...(c.bastion.hostKey ? { bastionHostKey: terraformLiteral(c.bastion.hostKey) } : {}),
    ...privateKey(c, terraformQuoted("file" in c.ssh.privateKey ? c.ssh.privateKey.file : "")),
  };
}

/**
 * Connection for destroy-time provisioners: only `self` may be referenced, so every value
 * comes from the resource's stored input (see `connectionInput`).
 */
export function selfConnection(c: Cluster): SSHProvisionerConnection {
  const self = (k: string) => TerraformSelf.getString(`input.${k}`);
  const empty = (k: string) => `\${self.input.${k} == "" ? null : self.input.${k}}`;
  return {
    type: "ssh",
    host: self("host"),
    user: self("user"),
    timeout: "3m",
    hostKey: empty("host_key"),
    bastionHost: self("bastion_host"),
    bastionPort: `\${tonumber(self.input.bastion_port)}` as unknown as number,
    bastionUser: self("bastion_user"),
    bastionHostKey: empty("bastion_host_key"),
    ...privateKey(c, "self.input.private_key_file"),
  };
}
