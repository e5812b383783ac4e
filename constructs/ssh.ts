/**
 * SSH connection settings for provisioners: always through the bastion, host keys pinned
 * (unchecked only under the operator's explicit `ssh.insecureIgnoreHostKey`), the private
 * key from the ssh-agent or a file path read by Terraform at apply time (never synthesized).
 *
 * Host keys and the engines' defects (found by running both, __tests__/system/host-keys.test.ts):
 * - Terraform up to 1.15 (the fix, hashicorp/terraform#38318, is in the 1.16 pre-releases
 *   only; BASTION_KEY_DEFECT_ENGINES in description/host-keys.ts) and OpenTofu build
 *   the bastion hop's check from `host_key` (the node's), not from `bastion_host_key`:
 *   pinning the node's key alone fails every connection at the bastion, and pinning the
 *   bastion's alone is silently ignored (nothing is checked).
 * - Both check a key by writing `@cert-authority <host>:<port> <host_key>` to a temporary
 *   known_hosts file (golang.org/x/crypto/ssh/knownhosts). Terraform 1.11.4's x/crypto
 *   (v0.35) keeps only the FIRST matching line per key type; OpenTofu 1.10's (v0.38) any.
 * So `host_key` is a small known_hosts file of its own: a first line that can never match
 * (a security-key type no SSH server offers as a host key: it only fills the
 * `@cert-authority` slot, whose pattern is whatever host is being checked), then the node's
 * key under the node's pattern, then the bastion's key under the bastion's pattern. Every
 * engine checks the node against the node's line, a defective one the bastion hop against
 * the bastion's line, a fixed one the hop against `bastion_host_key`.
  */
import { createHash } from "crypto";
import { TerraformSelf, type SSHProvisionerConnection } from "cdktf";
import { terraformLiteral, terraformLiterals, terraformQuoted } from "./escape";
import type { Cluster, ClusterNode } from "./description/schema";

/** The host pattern of an SSH endpoint in known_hosts: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/**
 * A public key that matches no host: type sk-ssh-ed25519@openssh.com (FIDO security keys,
 * never a server's host key, never offered by Go's SSH client as a host key algorithm),
 * its 32 key bytes the SHA-256 of a fixed phrase (no one holds a private key for it).
 */
export const NEVER_MATCHING_KEY = (() => {
  // SSH wire format: each field a uint32 length, then the bytes.
  const str = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const type = "sk-ssh-ed25519@openssh.com";
  const keyBytes = createHash("sha256").update("nomad-cluster-deploy: fills the @cert-authority line, matches no host").digest();
  const blob = Buffer.concat([str(Buffer.from(type)), str(keyBytes), str(Buffer.from("ssh:"))]);
  return `${type} ${blob.toString("base64")}`;
})();

/**
 * The `host_key` of a node's connection (see above): undefined when the node's key is not
 * pinned (only under ssh.insecureIgnoreHostKey; the description rules refuse a node key
 * without the bastion's and the reverse).
 */
export function hostKeyValue(c: Cluster, n: ClusterNode): string | undefined {
  if (!n.hostKey || !c.bastion.hostKey) return undefined;
  return [
    `${NEVER_MATCHING_KEY} placeholder-matching-no-host`,
    `${knownHostsPattern(n.address, 22)} ${n.hostKey}`,
    `${knownHostsPattern(c.bastion.host, c.bastion.port)} ${c.bastion.hostKey}`,
  ].join("\n");
}

/** Connection data a destroy-time provisioner needs, kept in its own resource (`self`). */
export function connectionInput(c: Cluster, n: ClusterNode): Record<string, string> {
  // Description text: a Terraform literal, never a template.
  return terraformLiterals({
    node: n.name,
    host: n.address,
    overlay_address: n.overlayAddress,
    user: c.ssh.user,
    host_key: hostKeyValue(c, n) ?? "",
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
      ...(hostKeyValue(c, n) ? { hostKey: hostKeyValue(c, n) } : {}),
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
