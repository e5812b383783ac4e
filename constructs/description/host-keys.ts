/**
 * Which SSH host key to pin, in one place: the schema's hints, the validation messages and
 * the example use these; docs/deploying.md "Host keys" explains them and
 * __tests__/input-guards.test.ts checks it says the same.
 *
 * The engines' SSH client (golang.org/x/crypto/ssh, in Terraform and OpenTofu) offers host
 * key algorithms ECDSA first, then RSA, then Ed25519, and neither engine restricts them: a
 * server holding all three (a stock Debian/Ubuntu VM) presents its ECDSA key, so only a
 * pinned ECDSA key connects there (__tests__/system/host-keys.test.ts proves it).
 */

/** Key types the description accepts (OpenSSH names, as ssh-keyscan prints them). */
export const HOST_KEY_TYPES = ["ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa", "ssh-ed25519"] as const;

/** The engines' client's preference, most preferred first (by key family). */
export const ENGINE_HOST_KEY_PREFERENCE = ["ECDSA", "RSA", "Ed25519"] as const;

/** The key to pin on a stock VM: the type ssh-keyscan is asked for, and the label of its line. */
export const RECOMMENDED_HOST_KEY = { keyscanType: "ecdsa", label: "ecdsa-sha2-nistp256" } as const;

/** The command that prints the recommended key of `host` (port 22 unless given). */
export function keyscanCommand(host: string, port?: number): string {
  return `ssh-keyscan -t ${RECOMMENDED_HOST_KEY.keyscanType}${port !== undefined && port !== 22 ? ` -p ${port}` : ""} ${host}`;
}

/** One sentence on which key to pin, for hints and messages. */
export const HOST_KEY_ADVICE = `pin the ${RECOMMENDED_HOST_KEY.keyscanType.toUpperCase()} key: the engines' SSH client prefers ${ENGINE_HOST_KEY_PREFERENCE.join(", then ")}, so on a stock Debian/Ubuntu VM only that key connects (docs/deploying.md "Host keys")`;

/**
 * The key type written inside a public key's base64 body (RFC 4253 §6.6: the blob starts
 * with a uint32 length and the key type name), or undefined when the body is not one.
 */
export function embeddedKeyType(base64Body: string): string | undefined {
  const blob = Buffer.from(base64Body, "base64");
  if (blob.length < 4) return undefined;
  const length = blob.readUInt32BE(0);
  if (length < 1 || length > 64 || blob.length < 4 + length) return undefined;
  const type = blob.subarray(4, 4 + length).toString("latin1");
  return /^[a-z0-9@.-]+$/.test(type) ? type : undefined;
}

/**
 * The engines that check the bastion hop against the node's `host_key` instead of
 * `bastion_host_key` (constructs/ssh.ts): Terraform's fix, hashicorp/terraform#38318, is in
 * the 1.16 pre-releases only; 1.12 to 1.15 still have the defect, and OpenTofu has it too.
 */
export const BASTION_KEY_DEFECT_ENGINES = "Terraform up to 1.15 (fixed by hashicorp/terraform#38318 in the 1.16 pre-releases) and OpenTofu";
