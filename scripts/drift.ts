/**
 * `npm run drift [-- --node NAME ...]`: is what is on each node still what the description
 * renders? Like Ansible's `--check --diff`: reads, compares, prints a unified diff per
 * node, and changes nothing.
 *
 * Terraform cannot see it: a `null_resource` re-provisions only when the hash of a rendered
 * file changes, so a hand edit on a node never shows in a plan, and is overwritten without
 * a word at the next change of that component (or kept forever if none comes).
 *
 * How: the files each component installs come from the same list the constructs and the
 * install scripts use (constructs/render/node-files.ts), rendered from the description
 * (CLUSTER_FILE) exactly as `synth` renders them. For each node, one OpenSSH connection
 * through the bastion (ProxyJump), host keys pinned from the description in a temporary
 * known_hosts (StrictHostKeyChecking yes, BatchMode yes, nothing else trusted), runs a
 * read-only script under `sudo -n` that prints each target's mode and content. A secret
 * line (keepalived's `auth_pass`) is masked ON THE NODE before anything is sent, and
 * operator-managed secret files (tokens, gossip key, TLS key) are never read.
 *
 * Refused without CLUSTER_FILE, like diff and deploy (the example's hosts are placeholders).
 *
 * Exit: 0 no drift, 2 drift on some node, 1 an error (a node unreachable, a host key not
 * pinned, sudo refused): errors win over drift.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Cluster, ClusterNode } from "../constructs/description/schema";
import { nodeComponentFiles, type InstalledFile, type NodeComponent } from "../constructs/render/node-files";
import { nodesStackName } from "../constructs/stack-names";
import { selectNodes, writeSshConfig } from "./lib/remote-nodes";

const USAGE = "usage: npm run drift -- [--node NAME]...";

interface Expected {
  component: NodeComponent;
  file: InstalledFile;
  text: string;
}

interface NodeExpectation {
  installed: Expected[];
  removed: { component: NodeComponent; target: string }[];
}

export function nodeExpectation(c: Cluster, n: ClusterNode): NodeExpectation {
  const out: NodeExpectation = { installed: [], removed: [] };
  for (const comp of nodeComponentFiles(c, n)) {
    for (const f of comp.installed) out.installed.push({ component: comp.component, file: f, text: comp.files[f.source] });
    for (const target of comp.removed) out.removed.push({ component: comp.component, target });
  }
  return out;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The read-only script run on the node: `=== <present|absent> <mode> <path>` then the content in base64. */
export function remoteReadScript(e: NodeExpectation): string {
  const lines = [
    "set -u",
    "export LC_ALL=C",
    "emit() {",
    '  if [[ -f "$1" ]]; then',
    '    printf "=== present %s %s\\n" "$(stat -c %a "$1")" "$1"',
    '    if [[ -n "$2" ]]; then sed -E "s/^([[:space:]]*$2[[:space:]]+).*/\\1$3/" "$1" | base64 -w0; else base64 -w0 <"$1"; fi',
    '    printf "\\n"',
    "  else",
    '    printf "=== absent - %s\\n\\n" "$1"',
    "  fi",
    "}",
    ...e.installed.map((x) => `emit ${q(x.file.target)} ${q(x.file.secretLine?.keyword ?? "")} ${q(x.file.secretLine?.placeholder ?? "")}`),
    ...e.removed.map((x) => `emit ${q(x.target)} '' ''`),
  ];
  return `${lines.join("\n")}\n`;
}

interface NodeFile {
  present: boolean;
  mode?: string;
  text?: string;
}

export function parseRemoteOutput(out: string): Map<string, NodeFile> {
  const files = new Map<string, NodeFile>();
  const lines = out.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^=== (present|absent) (\S+) (.+)$/.exec(lines[i]);
    if (!m) continue;
    const body = lines[++i] ?? "";
    files.set(m[3], m[1] === "present" ? { present: true, mode: m[2], text: Buffer.from(body, "base64").toString("utf8") } : { present: false });
  }
  return files;
}

/** The installed form of a rendered file: keepalived's install script writes `printf '%s\n' "$template"`. */
function installedForm(x: Expected, onNode?: string): string {
  if (x.component !== "keepalived" || !x.file.secretLine) return x.text;
  let t = `${x.text.replace(/\n+$/, "")}\n`;
  // keepalived < 2.2.7 (e.g. Ubuntu 22.04): the install script leaves unicast_fault_no_peer out
  if (onNode !== undefined && !/^\s*unicast_fault_no_peer$/m.test(onNode)) t = t.replace(/^\s*unicast_fault_no_peer\n/m, "");
  return t;
}

function unifiedDiff(tmp: string, label: string, onNode: string, rendered: string, renderedLabel: string): string {
  const a = path.join(tmp, "node");
  const b = path.join(tmp, "rendered");
  fs.writeFileSync(a, onNode);
  fs.writeFileSync(b, rendered);
  const r = spawnSync("diff", ["-u", "--label", `${label} (on the node)`, "--label", renderedLabel, a, b], { encoding: "utf8" });
  if (r.status !== 0 && r.status !== 1) throw new Error(`diff failed: ${r.stderr || r.error}`);
  return r.stdout;
}

function main(argv: string[]): number {
  const picked = selectNodes(argv, { usage: USAGE, purpose: "check drift", what: "drift check" });
  if (typeof picked === "number") return picked;
  const { cluster: c, nodes } = picked;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "drift-"));
  let drifted = 0;
  let failed = 0;
  const repairs: string[] = [];
  try {
    const config = writeSshConfig(c, nodes, tmp, "drift");
    process.stderr.write(`checking ${nodes.length} node${nodes.length === 1 ? "" : "s"} through the bastion ${c.bastion.user}@${c.bastion.host}:${c.bastion.port} (read-only)\n`);
    for (const n of nodes) {
      const expect = nodeExpectation(c, n);
      const r = spawnSync("ssh", ["-F", config, `drift-node-${n.name}`, "sudo -n bash -s"], { input: remoteReadScript(expect), encoding: "utf8", timeout: 60000 });
      if (r.status !== 0) {
        failed++;
        const why = (r.stderr || String(r.error ?? "")).trim().split("\n").slice(-3).join(" ");
        process.stdout.write(`${n.name}: ERROR: could not read the files (ssh ${c.ssh.user}@${n.address} via the bastion, exit ${r.status}): ${why}\n`);
        continue;
      }
      const onNode = parseRemoteOutput(r.stdout);
      const out: string[] = [];
      const components = new Set<NodeComponent>();
      for (const x of expect.installed) {
        const got = onNode.get(x.file.target);
        const label = `${n.name}:${x.file.target}`;
        if (!got) throw new Error(`no answer for ${x.file.target} from ${n.name}`);
        if (!got.present) {
          out.push(`--- ${label} is missing on the node (described, ${x.component})`);
          components.add(x.component);
          continue;
        }
        const wanted = installedForm(x, got.text);
        if (got.text !== wanted) {
          out.push(unifiedDiff(tmp, label, got.text!, wanted, `${x.file.target} (rendered from ${picked.file})`).trimEnd());
          components.add(x.component);
        }
        if (parseInt(got.mode!, 8) !== parseInt(x.file.mode, 8)) {
          out.push(`--- ${label}: mode ${got.mode!.padStart(4, "0")} on the node, ${x.file.mode} described`);
          components.add(x.component);
        }
      }
      for (const x of expect.removed) {
        if (onNode.get(x.target)?.present) {
          out.push(`--- ${n.name}:${x.target} is on the node but not described (${x.component}): removed at its next provisioning`);
          components.add(x.component);
        }
      }
      if (!out.length) {
        process.stdout.write(`${n.name}: no drift (${expect.installed.length} files as rendered${expect.removed.length ? `, ${expect.removed.length} absent as they should be` : ""})\n`);
        continue;
      }
      drifted++;
      process.stdout.write(`${n.name}: DRIFT in ${[...components].join(", ")}\n${out.join("\n")}\n`);
      for (const comp of components) repairs.push(`null_resource.${n.name}_${comp}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (drifted) {
    process.stderr.write(
      `drift on ${drifted} of ${nodes.length} node${nodes.length === 1 ? "" : "s"}. Nothing was changed. A plan does not show it: the next change of that ` +
        `component overwrites it, and until then it stays. To put the described files back now (re-provisions, restarts only what differs):\n` +
        `  npm run synth && terraform -chdir=cdktf.out/stacks/${nodesStackName(c)} apply ${repairs.map((a) => `-replace='${a}'`).join(" ")}\n` +
        `To keep a hand edit instead, put it in the description (e.g. consul.extraConfig / nomad.extraConfig).\n`,
    );
  }
  if (failed) process.stderr.write(`${failed} node${failed === 1 ? "" : "s"} could not be checked\n`);
  if (!drifted && !failed) process.stderr.write(`no drift on ${nodes.length} node${nodes.length === 1 ? "" : "s"}\n`);
  return failed ? 1 : drifted ? 2 : 0;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
