/**
 * What the read-only commands that reach the nodes (`npm run drift`, `npm run preflight`)
 * share: which description and nodes they work on (CLUSTER_FILE required: the example's
 * hosts are placeholders; `--node NAME` repeatable; every host key pinned), and the OpenSSH
 * config that reaches each node through the bastion trusting only the pinned keys.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { announceSelectedDescription } from "../../constructs/description/selection";
import { HOST_KEY_ADVICE, keyscanCommand } from "../../constructs/description/host-keys";
import type { Cluster, ClusterNode } from "../../constructs/description/schema";

export interface NodeSelection {
  cluster: Cluster;
  nodes: ClusterNode[];
  /** The description file, as named to the operator. */
  file: string;
  /** The boolean flags given (among those the command accepts). */
  flags: Set<string>;
}

/**
 * Reads `[--node NAME]... [flags]`, loads the description named by CLUSTER_FILE and picks
 * the nodes. Returns the exit code instead when the command must not go on (help: 0; any
 * refusal: 1, said on stderr). `purpose` completes "refusing to … without CLUSTER_FILE".
 */
export function selectNodes(argv: string[], o: { usage: string; purpose: string; what: string; flags?: string[] }): NodeSelection | number {
  const only: string[] = [];
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--node" && argv[i + 1] !== undefined) only.push(argv[++i]);
    else if (o.flags?.includes(argv[i])) flags.add(argv[i]);
    else if (argv[i] === "-h" || argv[i] === "--help") {
      process.stdout.write(`${o.usage}\n`);
      return 0;
    } else {
      process.stderr.write(`unknown argument ${argv[i]}\n${o.usage}\n`);
      return 1;
    }
  }
  const loaded = announceSelectedDescription();
  if (!loaded.ok) return 1;
  // The example is placeholders (example.org): connecting to its hosts is never what an operator means.
  if (!loaded.selection.fromEnv) {
    process.stderr.write(
      `error: refusing to ${o.purpose} without CLUSTER_FILE: that would be the example cluster (placeholder hosts). ` +
        `Set CLUSTER_FILE=clusters/<team>.yaml (or CLUSTER_FILE=${loaded.selection.file} if you do mean the example).\n`,
    );
    return 1;
  }
  const c = loaded.cluster;
  const unknown = only.filter((n) => !c.nodes.some((x) => x.name === n));
  if (unknown.length) {
    process.stderr.write(`error: no node ${unknown.join(", ")} in ${loaded.selection.file} (nodes: ${c.nodes.map((n) => n.name).join(", ")})\n`);
    return 1;
  }
  const nodes = c.nodes.filter((n) => !only.length || only.includes(n.name));
  // Pinned host keys only: a read-only check must not trust whatever answers.
  const unpinned = [
    ...(c.bastion.hostKey ? [] : ["bastion.hostKey"]),
    ...nodes.filter((n) => !n.hostKey).map((n) => `nodes[${c.nodes.indexOf(n)}].hostKey (${n.name})`),
  ];
  if (unpinned.length) {
    process.stderr.write(
      `error: ${unpinned.join(", ")} not pinned in ${loaded.selection.file}: the ${o.what} connects only to hosts whose key the description pins ` +
        `(${keyscanCommand("HOST")}, without the host name; ${HOST_KEY_ADVICE})\n`,
    );
    return 1;
  }
  return { cluster: c, nodes, file: loaded.selection.file, flags };
}

/**
 * Writes `<dir>/ssh_config` and `<dir>/known_hosts` (the pinned keys only, mode 0600): host
 * `<prefix>-bastion`, and `<prefix>-node-<name>` through it (ProxyJump). `hostKeyAlgorithms`:
 * the order to offer (set explicitly, OpenSSH does not reorder it by the pinned key's type,
 * as it does its default list). Returns the config file's path.
 */
export function writeSshConfig(c: Cluster, nodes: ClusterNode[], dir: string, prefix: string, hostKeyAlgorithms?: string[]): string {
  const keyFile = "file" in c.ssh.privateKey ? c.ssh.privateKey.file.replace(/^~(?=\/)/, os.homedir()) : undefined;
  const common = [
    `  UserKnownHostsFile ${path.join(dir, "known_hosts")}`,
    "  GlobalKnownHostsFile /dev/null",
    "  StrictHostKeyChecking yes",
    "  BatchMode yes",
    "  ConnectTimeout 10",
    "  LogLevel ERROR",
    ...(hostKeyAlgorithms ? [`  HostKeyAlgorithms ${hostKeyAlgorithms.join(",")}`] : []),
    ...(keyFile ? [`  IdentityFile ${keyFile}`, "  IdentitiesOnly yes"] : []),
  ];
  const out = [`Host ${prefix}-bastion`, `  HostName ${c.bastion.host}`, `  Port ${c.bastion.port}`, `  User ${c.bastion.user}`, ...common];
  for (const n of nodes) out.push(`Host ${prefix}-node-${n.name}`, `  HostName ${n.address}`, `  User ${c.ssh.user}`, `  ProxyJump ${prefix}-bastion`, ...common);
  const known = [`${c.bastion.port === 22 ? c.bastion.host : `[${c.bastion.host}]:${c.bastion.port}`} ${c.bastion.hostKey}`, ...nodes.map((n) => `${n.address} ${n.hostKey}`)];
  fs.writeFileSync(path.join(dir, "known_hosts"), `${known.join("\n")}\n`, { mode: 0o600 });
  const file = path.join(dir, "ssh_config");
  fs.writeFileSync(file, `${out.join("\n")}\n`, { mode: 0o600 });
  return file;
}
