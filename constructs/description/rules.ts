/**
 * Rules that relate several fields of a (shape-valid) description. Each returns every
 * violation it finds, so an operator fixes them all in one go.
 */
import { extraConfigProblems } from "./hcl1-check";
import { BASTION_KEY_DEFECT_ENGINES, HOST_KEY_ADVICE, keyscanCommand } from "./host-keys";
import type { Cluster, ClusterNode } from "./schema";
import { HAPROXY_MIN_MEMORY_MIB } from "../render/jobs/haproxy-cfg";
import { apiMinimumMemoryMiB } from "../render/jobs/api";

/**
 * What the rules see: each top-level section (and each node) is present only when it
 * passed the schema on its own, so cross-field problems are reported together with shape
 * problems elsewhere in the file.
 */
export interface PartialCluster {
  bastion?: Cluster["bastion"];
  ssh?: Cluster["ssh"];
  overlay?: Cluster["overlay"];
  floatingIp?: Cluster["floatingIp"];
  nodes?: (ClusterNode | undefined)[];
  app?: Cluster["app"];
  servers?: Cluster["servers"];
  consul?: Cluster["consul"];
  nomad?: Cluster["nomad"];
  metrics?: Cluster["metrics"];
}

export interface Violation {
  /** Path in the description, e.g. ["nodes", 1, "overlayAddress"]. */
  path: (string | number)[];
  message: string;
}

export function ipToInt(ip: string): number {
  return ip.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function parseCidr(cidr: string): { network: number; bits: number } {
  const [addr, bits] = cidr.split("/");
  return { network: ipToInt(addr), bits: Number(bits) };
}

export function inPrefix(ip: string, cidr: string): boolean {
  const { network, bits } = parseCidr(cidr);
  if (bits === 0) return true;
  const mask = bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
  return ((ipToInt(ip) & mask) >>> 0) === ((network & mask) >>> 0);
}

/** Network and broadcast addresses of a prefix (as dotted quads). */
export function reservedAddresses(cidr: string): { network: string; broadcast: string } {
  const { network, bits } = parseCidr(cidr);
  const mask = bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
  const net = (network & mask) >>> 0;
  const bc = (net | (~mask >>> 0)) >>> 0;
  const dotted = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
  return { network: dotted(net), broadcast: dotted(bc) };
}

function duplicates<T>(items: T[], key: (t: T) => string): Map<string, number[]> {
  const seen = new Map<string, number[]>();
  items.forEach((item, i) => seen.set(key(item), [...(seen.get(key(item)) ?? []), i]));
  return new Map([...seen].filter(([, idx]) => idx.length > 1));
}

export function crossFieldViolations(c: PartialCluster): Violation[] {
  const v: Violation[] = [];
  const nodes = (c.nodes ?? []).map((n, i) => ({ n, i })).filter((x): x is { n: ClusterNode; i: number } => x.n !== undefined);
  const dup = (key: (n: ClusterNode) => string, field: keyof ClusterNode, what: string) => {
    for (const [k, idx] of duplicates(nodes, (x) => key(x.n))) {
      for (const j of idx.slice(1)) v.push({ path: ["nodes", nodes[j].i, field], message: `expected unique ${what}: ${k} is also nodes[${nodes[idx[0]].i}].${field}` });
    }
  };
  dup((n) => n.name, "name", "node names");
  dup((n) => n.address, "address", "node addresses");
  dup((n) => n.overlayAddress, "overlayAddress", "overlay addresses");
  if (c.overlay) overlayRules(c.overlay.prefix, c.floatingIp, nodes, v);
  if (c.nodes && nodes.length === c.nodes.length) floatingIpRules(nodes.map((x) => x.n), v);
  if (c.app) appRules(c.app, v);
  staticPortRules(c, v);
  for (const agent of ["consul", "nomad"] as const) {
    const extra = c[agent]?.extraConfig;
    if (extra === undefined) continue;
    for (const p of extraConfigProblems(agent, extra)) {
      v.push({ path: [agent, "extraConfig"], message: `${p.message} (line ${p.line} of the HCL)` });
    }
  }
  if (c.servers?.vm) serverVmRules(c.servers.vm, c.overlay, c.floatingIp, nodes, v);
  if (c.overlay?.linkDns === "agent" && c.consul && c.consul.recursors.length === 0) {
    v.push({
      path: ["consul", "recursors"],
      message:
        "expected at least one upstream DNS server (e.g. [1.1.1.1, 1.0.0.1], what the provider's servers use): with overlay.linkDns: agent the host sends *.internal.<domain> lookups to this Consul agent, which without recursors cannot answer them",
    });
  }
  if (c.overlay?.linkDns === "none" && c.consul && c.consul.recursors.length > 0) {
    // Consul's DNS listens on the overlay address and has no per-source control: recursors
    // there would serve every team on the overlay, and nothing on this link needs them.
    v.push({
      path: ["consul", "recursors"],
      message:
        "expected none with overlay.linkDns: none: the link sends no host lookups to this Consul agent, so recursors would only make it an open resolver for everyone on the shared overlay (HAProxy asks it for *.consul names only); remove them, or set linkDns: agent if the link does send *.internal.<domain> to the agent",
    });
  }
  if (c.bastion && c.ssh) hostKeyRules(c.bastion, c.ssh, nodes, v);
  if (c.metrics && !c.metrics.enabled && (c.metrics.alerting.webhook || c.metrics.alerting.email)) {
    // Alertmanager runs in the metrics job: a receiver without it would silently send nothing.
    v.push({
      path: ["metrics", "alerting"],
      message: "expected no receiver with metrics.enabled: false (the alerts come from the metrics job's Prometheus); remove metrics.alerting or turn metrics on",
    });
  }
  if (c.metrics?.enabled && c.metrics.autoscaling.enabled && c.nomad?.tls) {
    // The autoscaler (a container) reaches the node's Nomad client over HTTP; with TLS it
    // would need the CA, which lives on the node only (the docker driver's volumes are off).
    v.push({
      path: ["metrics", "autoscaling", "enabled"],
      message: "expected false with nomad.tls: the Nomad Autoscaler cannot verify the node's Nomad TLS API yet (its CA stays on the node); set metrics.autoscaling.enabled: false",
    });
  }
  return v;
}

/**
 * Pinned host keys are the default: an unchecked SSH connection needs the operator's
 * explicit `ssh.insecureIgnoreHostKey: true`. A node's key also needs the bastion's:
 * the engines of BASTION_KEY_DEFECT_ENGINES (host-keys.ts) check the bastion
 * hop against the node's `host_key`, which works only because ssh.ts adds the bastion's
 * key to it (see `hostKeyValue`).
 */
function hostKeyRules(bastion: Cluster["bastion"], ssh: Cluster["ssh"], nodes: { n: ClusterNode; i: number }[], v: Violation[]) {
  const optOut = "or set ssh.insecureIgnoreHostKey: true to connect without checking it";
  const pinnedNodes = nodes.filter(({ n }) => n.hostKey);
  const throughBastion = `${BASTION_KEY_DEFECT_ENGINES} check the bastion against the node's host key, so a node key pinned without the bastion's fails every connection at the bastion`;
  // One missing bastion key is one problem, however many nodes it breaks: reported once, at bastion.hostKey.
  if (!bastion.hostKey && !ssh.insecureIgnoreHostKey) {
    v.push({
      path: ["bastion", "hostKey"],
      message: `expected the bastion's pinned host key (the line \`${keyscanCommand(bastion.host, bastion.port)}\` prints, without the host name; ${HOST_KEY_ADVICE}), ${optOut}${pinnedNodes.length ? ` (the nodes' pinned keys need it too: ${throughBastion})` : ""}`,
    });
  } else if (!bastion.hostKey && pinnedNodes.length) {
    v.push({ path: ["bastion", "hostKey"], message: `expected bastion.hostKey too, since ${pinnedNodes.map(({ i }) => `nodes[${i}]`).join(", ")} pin${pinnedNodes.length === 1 ? "s" : ""} a host key: ${throughBastion}` });
  }
  for (const { n, i } of nodes) {
    if (!n.hostKey && !ssh.insecureIgnoreHostKey) {
      v.push({ path: ["nodes", i, "hostKey"], message: `expected the node's pinned host key (the line \`${keyscanCommand(n.address)}\` prints when run on the bastion, without the host name; ${HOST_KEY_ADVICE}), ${optOut}` });
    } else if (!n.hostKey && bastion.hostKey) {
      v.push({
        path: ["nodes", i, "hostKey"],
        message: `expected the node's pinned host key too, since bastion.hostKey is pinned: ${BASTION_KEY_DEFECT_ENGINES} ignore bastion_host_key and check the bastion only through the node's host key, so the bastion would go unchecked`,
      });
    }
  }
}

/** The server VM is none of our nodes: a node with its name or addresses would be reconfigured as a client. */
function serverVmRules(vm: NonNullable<Cluster["servers"]["vm"]>, overlay: Cluster["overlay"] | undefined, floatingIp: Cluster["floatingIp"] | undefined, nodes: { n: ClusterNode; i: number }[], v: Violation[]) {
  for (const { n, i } of nodes) {
    for (const [field, mine, theirs] of [["name", n.name, vm.name], ["address", n.address, vm.address], ["overlayAddress", n.overlayAddress, vm.overlayAddress]] as const) {
      if (mine === theirs) {
        v.push({ path: ["nodes", i, field], message: `expected a node other than the server VM (servers.vm.${field} is ${theirs}): its agents are the team's only servers, a client install there would replace them` });
      }
    }
  }
  if (overlay && !inPrefix(vm.overlayAddress, overlay.prefix)) {
    v.push({ path: ["servers", "vm", "overlayAddress"], message: `expected an address inside overlay.prefix ${overlay.prefix}, got ${vm.overlayAddress}` });
  }
  if (floatingIp && vm.overlayAddress === floatingIp.address) {
    v.push({ path: ["floatingIp", "address"], message: `expected an address different from the server VM's overlay address ${vm.overlayAddress}` });
  }
}

function overlayRules(prefix: string, floatingIp: Cluster["floatingIp"] | undefined, nodes: { n: ClusterNode; i: number }[], v: Violation[]) {
  const { bits } = parseCidr(prefix);
  const prefixMask = bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
  if (((parseCidr(prefix).network & ~prefixMask) >>> 0) !== 0) {
    v.push({ path: ["overlay", "prefix"], message: `expected a network address (host bits zero), got ${prefix}` });
  }

  const reserved = reservedAddresses(prefix);
  const reservedMessage = (ip: string) =>
    ip === reserved.network ? `expected a host address, not the network address of ${prefix}` : ip === reserved.broadcast ? `expected a host address, not the broadcast address of ${prefix}` : undefined;
  if (floatingIp && reservedMessage(floatingIp.address)) v.push({ path: ["floatingIp", "address"], message: reservedMessage(floatingIp.address)! });
  for (const { n, i } of nodes) {
    if (reservedMessage(n.overlayAddress)) v.push({ path: ["nodes", i, "overlayAddress"], message: reservedMessage(n.overlayAddress)! });
    if (!inPrefix(n.overlayAddress, prefix)) {
      v.push({ path: ["nodes", i, "overlayAddress"], message: `expected an address inside overlay.prefix ${prefix}, got ${n.overlayAddress}` });
    }
    if (floatingIp && n.overlayAddress === floatingIp.address) {
      v.push({ path: ["floatingIp", "address"], message: `expected an address different from every node's overlay address, but nodes[${i}] (${n.name}) has ${n.overlayAddress}` });
    }
  }
  if (floatingIp && !inPrefix(floatingIp.address, prefix)) {
    v.push({ path: ["floatingIp", "address"], message: `expected an address inside overlay.prefix ${prefix}, got ${floatingIp.address}` });
  }
}

function floatingIpRules(allNodes: ClusterNode[], v: Violation[]) {
  const eligible = allNodes.filter((n) => n.floatingIp.eligible);
  if (eligible.length === 0) {
    v.push({ path: ["nodes"], message: "expected at least one node with floatingIp.eligible: true (HAProxy and the floating IP need a home)" });
  } else if (!eligible.some((n) => !n.maintenance)) {
    // Every eligible node drained at once: no HAProxy anywhere, the site is down.
    v.push({ path: ["nodes"], message: "expected at least one node with floatingIp.eligible: true and maintenance: false (with all of them in maintenance the site has no HAProxy: a full outage)" });
  }
  // Equal priorities make the VIP holder depend on timing; the operator should say who is preferred.
  for (const [key, idx] of duplicates(eligible, (n) => String(n.floatingIp.priority))) {
    if (key === "100" && eligible.every((n) => n.floatingIp.priority === 100)) continue; // all defaults: ties broken by address, documented
    for (const i of idx.slice(1)) {
      const nodeIndex = allNodes.indexOf(eligible[i]);
      v.push({ path: ["nodes", nodeIndex, "floatingIp", "priority"], message: `expected distinct keepalived priorities among eligible nodes: ${key} is also ${eligible[idx[0]].name}'s` });
    }
  }
}

function appRules(app: Cluster["app"], v: Violation[]) {
  for (const job of ["web", "api", "worker"] as const) {
    const s = app[job].scaling;
    if (s && s.min > s.max) v.push({ path: ["app", job, "scaling", "min"], message: `expected at most scaling.max (${s.max}), got ${s.min}` });
    if (s && (app[job].count < s.min || app[job].count > s.max)) {
      v.push({ path: ["app", job, "count"], message: `expected a count within scaling.min..max (${s.min}..${s.max}), got ${app[job].count}` });
    }
    const r = app[job].resources;
    if (r.memoryMax !== undefined && r.memoryMax < r.memory) {
      v.push({ path: ["app", job, "resources", "memoryMax"], message: `expected at least resources.memory (${r.memory}), got ${r.memoryMax}` });
    }
  }
  const apiMin = apiMinimumMemoryMiB(app.api.workers);
  if (app.api.resources.memory < apiMin) {
    v.push({ path: ["app", "api", "resources", "memory"], message: `expected at least ${apiMin} MiB for ${app.api.workers} gunicorn workers (~48 MiB per process, master included), got ${app.api.resources.memory}` });
  }
  const hp = app.haproxy;
  if (hp.resources.memory < HAPROXY_MIN_MEMORY_MIB) {
    v.push({ path: ["app", "haproxy", "resources", "memory"], message: `expected at least ${HAPROXY_MIN_MEMORY_MIB} MiB (HAProxy's maxconn is derived from it: room for 100 connections), got ${hp.resources.memory}` });
  }
  return v;
}

/**
 * Every static port a job of ours binds on a node (jobs' `port { static = N }`), with the
 * description field it comes from. HAProxy runs on every eligible node and the metrics job
 * may land on any of them: two equal ports and one of the jobs is never placed.
 */
export function staticJobPorts(c: Pick<PartialCluster, "app" | "metrics">): { path: (string | number)[]; port: number }[] {
  const out: { path: (string | number)[]; port: number }[] = [];
  if (c.app) {
    for (const key of ["nodePort", "floatingPort", "statsPort"] as const) out.push({ path: ["app", "haproxy", key], port: c.app.haproxy[key] });
  }
  // Grafana listens on its node's loopback, not on a Nomad port: METRICS_LOOPBACK_PORTS (schema.ts) keeps it apart.
  return out;
}

function staticPortRules(c: PartialCluster, v: Violation[]) {
  const ports = staticJobPorts(c);
  for (const [key, idx] of duplicates(ports, (p) => String(p.port))) {
    for (const i of idx.slice(1)) {
      v.push({ path: ports[i].path, message: `expected a port different from ${formatField(ports[idx[0]].path)} (${key}): both are static ports of our jobs on the same nodes, and the second job would never be placed` });
    }
  }
}

const formatField = (path: (string | number)[]) => path.map((p) => (typeof p === "number" ? `[${p}]` : p)).join(".").replace(/\.\[/g, "[");
