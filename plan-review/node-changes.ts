/**
 * Plan review of a node's re-provisioning in words. A `null_resource.<node>_<component>`
 * is replaced when the hash of one of its files changed (`sha256_<file>` triggers); the
 * hashes alone say nothing to a reviewer. Both synth outputs hold the files themselves
 * (`rendered/<node>/<component>/<file>`, the provisioners' `source`), so this reads what
 * changed in them and says what it means on the node: maintenance on (floating IP handed
 * over, then drain with the deadline), a config key old → new, a keepalived peer added.
 * Pure, no cdktf.
 */
import { jobspecDiff } from "./jobspec-diff";

export interface FileChange {
  /** File name as uploaded (e.g. `keepalived.conf`). */
  readonly name: string;
  readonly before?: string;
  readonly after?: string;
}

/** Trigger key of a provisioned file, as ProvisionedFiles writes it. */
export function fileTriggerKey(fileName: string): string {
  return `sha256_${fileName.replace(/[^A-Za-z0-9]/g, "_")}`;
}

/**
 * Provisioner file sources of a resource body: trigger key → source path in the stack dir.
 * A source ending in `/` is a directory uploaded whole (ProvisionedFiles): each file of the
 * synth output directly in it counts. (Older synth outputs upload file by file.)
 */
function fileSources(body: Record<string, any>, files: Record<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  const list: any[] = Array.isArray(body.provisioner) ? body.provisioner : body.provisioner ? [body.provisioner] : [];
  for (const entry of list) {
    const source = entry?.file?.source;
    if (typeof source !== "string") continue;
    if (source.endsWith("/")) {
      for (const f of Object.keys(files)) if (f.startsWith(source) && !f.slice(source.length).includes("/")) out.set(fileTriggerKey(f.slice(source.length)), f);
    } else out.set(fileTriggerKey(source.split("/").pop()!), source);
  }
  return out;
}

/**
 * The files behind the changed `sha256_*` triggers of a null_resource, with their text in
 * each synth output, and the changed triggers that are not files (or whose text is absent).
 */
export function changedProvisionedFiles(
  before: { body: Record<string, any>; files: Record<string, string> },
  after: { body: Record<string, any>; files: Record<string, string> },
): { files: FileChange[]; otherTriggers: string[] } {
  const tb: Record<string, unknown> = before.body.triggers ?? {};
  const ta: Record<string, unknown> = after.body.triggers ?? {};
  const sb = fileSources(before.body, before.files);
  const sa = fileSources(after.body, after.files);
  const files: FileChange[] = [];
  const otherTriggers: string[] = [];
  for (const key of [...new Set([...Object.keys(tb), ...Object.keys(ta)])].sort()) {
    if (tb[key] === ta[key]) continue;
    const src = sa.get(key) ?? sb.get(key);
    const textBefore = sb.has(key) ? before.files[sb.get(key)!] : undefined;
    const textAfter = sa.has(key) ? after.files[sa.get(key)!] : undefined;
    if (key.startsWith("sha256_") && src && (textBefore !== undefined || textAfter !== undefined)) {
      files.push({ name: src.split("/").pop()!, before: textBefore, after: textAfter });
    } else otherTriggers.push(key);
  }
  return { files, otherTriggers };
}

/** `readonly NAME=value` settings of a generated script (value unquoted). */
export function scriptSettings(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^readonly ([A-Z_][A-Z0-9_]*)=(.*)$/gm)) out.set(m[1], m[2].replace(/^'(.*)'$/, "$1"));
  return out;
}

const stripConfComment = (line: string) => line.replace(/\s*[#!].*$/, "").trim();
const squash = (line: string) => line.trim().replace(/\s+/g, " ");

function multisetMinus(a: string[], b: string[]): string[] {
  const counts = new Map<string, number>();
  for (const x of b) counts.set(x, (counts.get(x) ?? 0) + 1);
  return a.filter((x) => {
    const n = counts.get(x) ?? 0;
    if (n > 0) counts.set(x, n - 1);
    return n === 0;
  });
}

/**
 * Changed settings of a `keyword value…` file (keepalived.conf, sysctl, systemd drop-in):
 * a keyword changed in place as `priority 150 → 1`, other lines as `+ line` / `- line`.
 */
export function confDiff(before: string, after: string): string[] {
  const lines = (t: string) => t.split("\n").filter((l) => stripConfComment(l) !== "");
  const lb = lines(before);
  const la = lines(after);
  const removed = multisetMinus(lb.map(stripConfComment), la.map(stripConfComment)).map(squash);
  const added = multisetMinus(la.map(stripConfComment), lb.map(stripConfComment)).map(squash);
  // show added/removed lines with their comment (e.g. "172.16.1.13 # node-3")
  const shown = (l: string, from: string[]) => squash(from.find((x) => squash(stripConfComment(x)) === l) ?? l);
  const key = (l: string) => l.split(" ")[0];
  const out: string[] = [];
  const pairedAdded = new Set<number>();
  for (const r of removed) {
    const sameKey = added.map((a, i) => ({ a, i })).filter(({ a, i }) => !pairedAdded.has(i) && key(a) === key(r));
    if (sameKey.length === 1 && removed.filter((x) => key(x) === key(r)).length === 1 && r.includes(" ")) {
      pairedAdded.add(sameKey[0].i);
      out.push(`${key(r)} ${r.slice(key(r).length + 1)} → ${sameKey[0].a.slice(key(r).length + 1)}`);
    } else out.push(`- ${shown(r, lb)}`);
  }
  added.forEach((a, i) => pairedAdded.has(i) || out.push(`+ ${shown(a, la)}`));
  return out;
}

/** Changed `readonly` settings of a script, and how many other lines changed. */
function scriptDiff(before: string, after: string): string[] {
  const sb = scriptSettings(before);
  const sa = scriptSettings(after);
  const out: string[] = [];
  for (const k of [...new Set([...sb.keys(), ...sa.keys()])]) {
    if (sb.get(k) !== sa.get(k)) out.push(`${k} ${sb.get(k) ?? "(none)"} → ${sa.get(k) ?? "(none)"}`);
  }
  const code = (t: string) => t.split("\n").filter((l) => l.trim() !== "" && !l.trim().startsWith("#") && !/^readonly [A-Z_][A-Z0-9_]*=/.test(l));
  const n = Math.max(multisetMinus(code(before), code(after)).length, multisetMinus(code(after), code(before)).length);
  if (n) out.push(`${n} other line${n === 1 ? "" : "s"} of the script changed`);
  if (!out.length) out.push("comments only");
  return out;
}

/** One file's changes, prefixed with its name: `consul.hcl: retry_join: … → …`. */
export function fileChangeDetails(f: FileChange): string[] {
  if (f.before === undefined) return [`+${f.name} (new file)`];
  if (f.after === undefined) return [`-${f.name} (no longer uploaded)`];
  const items = f.name.endsWith(".hcl") ? jobspecDiff(f.before, f.after) : f.name.endsWith(".sh") ? scriptDiff(f.before, f.after) : confDiff(f.before, f.after);
  return items.map((i) => `${f.name}: ${i}`);
}

const AGENT_CONFIG = /^(consul|nomad|zz-extra)\.hcl$|\.conf$/;

/**
 * What re-provisioning this component means on the node, before the per-file details.
 * `component` is the resource's (`consul`, `nomad`, `keepalived`).
 */
export function reprovisionMeaning(node: string, component: string, files: FileChange[]): string[] {
  const byName = new Map(files.map((f) => [f.name, f]));
  const script = byName.get("install.sh");
  const sb = script?.before !== undefined ? scriptSettings(script.before) : new Map<string, string>();
  const sa = script?.after !== undefined ? scriptSettings(script.after) : new Map<string, string>();
  const maintenanceOn = sb.get("MAINTENANCE") === "false" && sa.get("MAINTENANCE") === "true";
  const maintenanceOff = sb.get("MAINTENANCE") === "true" && sa.get("MAINTENANCE") === "false";
  const out: string[] = [];
  if (component === "keepalived") {
    const conf = byName.get("keepalived.conf");
    const priority = (t?: string) => (t === undefined ? undefined : /^\s*priority (\d+)/m.exec(t)?.[1]);
    const [pb, pa] = [priority(conf?.before), priority(conf?.after)];
    const change = pb !== undefined && pa !== undefined && pb !== pa ? ` (priority ${pb} → ${pa})` : "";
    if (maintenanceOn) out.push(`maintenance on${change}: if ${node} holds the floating IP, its keepalived restarts and a peer takes the IP over (~0.6 s), before the Nomad drain`);
    else if (maintenanceOff) out.push(`maintenance off${change}: ${node} is a floating-IP candidate again; the IP does not move back (nopreempt)`);
    else if (change) out.push(`keepalived${change}: decides only which node wins when nodes start together (nopreempt); no failover now`);
    const peers = (t?: string) => (t === undefined ? "" : /unicast_peer \{([^}]*)\}/.exec(t)?.[1].replace(/#.*$/gm, "").trim().split(/\s+/).sort().join(" ") ?? "");
    if (conf && conf.before !== undefined && conf.after !== undefined && peers(conf.before) !== peers(conf.after)) out.push("VRRP peer list changed: keepalived reloads, no failover");
  } else if (component === "nomad") {
    const deadline = sa.get("DRAIN_DEADLINE") ?? sb.get("DRAIN_DEADLINE") ?? "?";
    if (maintenanceOn) out.push(`maintenance on: Nomad drains ${node} (deadline ${deadline}; allocations migrate one at a time per each job's migrate block), the node becomes ineligible`);
    else if (maintenanceOff) out.push(`maintenance off: the drain of ${node} ends, the node is eligible again`);
  }
  const configChanged = files.some((f) => AGENT_CONFIG.test(f.name) && f.name !== "keepalived.conf");
  if ((component === "consul" || component === "nomad") && configChanged) out.push(`${component} config changed: validated on ${node} first, then ${component} restarts there (one node at a time)`);
  else if ((component === "consul" || component === "nomad") && !out.length && files.every((f) => f.name === "install.sh")) {
    out.push(`install script only: re-run; ${component} restarts only if an installed file differs`);
  }
  return out;
}
