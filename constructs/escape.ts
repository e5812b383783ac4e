/**
 * One escaping discipline per target language. Every value that comes from the cluster
 * description and lands in another language goes through exactly one of these, at the
 * place where the two languages meet (a construct attribute, a script line, a config
 * line); callers never escape by hand. Pure: no cdktf here (the constructs use it).
 *
 * | target | helper | what it guarantees |
 * |---|---|---|
 * | Terraform JSON (cdk.tf.json) | `terraformLiteral`, `terraformLiterals` | `${` and `%{` reach Terraform as `$${`/`%%{`: a literal, never a template |
 * | bash | `shellQuote` | one single-quoted word, whatever the content |
 * | HCL1 (Consul/Nomad agent configs) | `hcl1String` | a quoted string; refuses what HCL1 cannot carry literally (`${`, control characters) |
 * | HCL2 (Nomad jobspecs) | `hcl2String` | a quoted string whose `${`/`%{` are escaped and control characters written as `\uNNNN` |
 *
 * The description's types already refuse template markers and control characters in every
 * field but the free-text ones; these helpers are the second line, and the one that makes
 * a new field safe before anyone thinks about it.
 */

/** C0 controls and DEL, except none: callers decide about newline/tab separately. */
export const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/**
 * A string Terraform passes through unchanged: Terraform reads `${` and `%{` in JSON
 * strings as its own template syntax, so they are doubled (`$${NOMAD_PORT_http}` reaches
 * the provider as `${NOMAD_PORT_http}`). Apply it to description text only, never to our
 * own expressions (`${var.x}`, `${self.input.host}`, cdktf tokens).
 *
 * Not `Fn.rawString()`: it is meant for strings inside Terraform expressions; as a whole
 * attribute value (cdktf 0.21) it turns newlines into a literal backslash-n and quotes into
 * backslash-quote, and leaves `%{` alone, which breaks a multi-line jobspec.
 */
export function terraformLiteral(text: string): string {
  // Function replacers: in a replacement string "$$" means one "$".
  return text.replace(/\$\{/g, () => "$${").replace(/%\{/g, () => "%%{");
}

/** Inverse of `terraformLiteral` (what Terraform hands the provider). */
export function fromTerraformLiteral(text: string): string {
  return text.replace(/\$\$\{/g, "${").replace(/%%\{/g, "%{");
}

/** `terraformLiteral` applied to every string of a plain value (objects, arrays), keys included. */
export function terraformLiterals<T>(value: T): T {
  if (typeof value === "string") return terraformLiteral(value) as T;
  if (Array.isArray(value)) return value.map((v) => terraformLiterals(v)) as T;
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [terraformLiteral(k), terraformLiterals(v)])) as T;
  }
  return value;
}

/**
 * A string inside a Terraform expression's quoted literal (e.g. the argument of
 * `file(...)`): JSON quoting (`"` and `\` escaped, control characters as `\uNNNN`), then
 * the template markers doubled, since a quoted literal inside `${...}` is a template too.
 */
export function terraformQuoted(text: string): string {
  return terraformLiteral(JSON.stringify(text));
}

/** Quotes a value for bash: one single-quoted word, safe for any content (NUL excepted). */
export function shellQuote(value: string): string {
  if (value.includes("\u0000")) throw new Error("a shell word cannot contain a NUL character");
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * An HCL1 string literal, for the Consul and Nomad agent configs (both read them with
 * HashiCorp's HCL1 parser). HCL1 keeps `${...}` verbatim and does not unescape `$${`, so a
 * value with `${` cannot be written literally at all: it is refused, like control
 * characters (the description's types refuse both first; this is the backstop).
 */
export function hcl1String(value: string): string {
  if (value.includes("${")) throw new Error(`an HCL1 agent config cannot carry "\${" literally: ${JSON.stringify(value)}`);
  if (CONTROL_CHARACTER.test(value)) throw new Error(`an HCL1 agent config value cannot carry control characters: ${JSON.stringify(value)}`);
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/**
 * An HCL2 string literal (Nomad jobspecs): `\` and `"` escaped, control characters as
 * `\n`/`\r`/`\t`/`\uNNNN`, `${` and `%{` doubled so HCL2 never interpolates a value.
 */
export function hcl2String(value: string): string {
  const escaped = value
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\n/g, "\\n")
    .replace(/\r/g, "\\r")
    .replace(/\t/g, "\\t")
    .replace(/[\u0000-\u001f\u007f]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`)
    // Function replacers: in a replacement string "$$" stands for a single "$".
    .replace(/\$\{/g, () => "$${")
    .replace(/%\{/g, () => "%%{");
  return `"${escaped}"`;
}

/**
 * A value inside a comment line of any of our files (scripts, agent configs, jobspecs,
 * haproxy.cfg, keepalived.conf): control characters shown as `\uNNNN`, so a value can
 * never end the comment and start a line of code.
 */
export function commentText(value: string): string {
  return value.replace(/[\u0000-\u001f\u007f]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
