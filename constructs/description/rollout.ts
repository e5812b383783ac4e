/**
 * Rolling batches of the node agents (`rollout.batchSize`): which nodes each agent kind
 * re-provisions together. Pure (description in, node names out); the constructs turn each
 * batch boundary into `depends_on` (batch k+1 of an agent kind after batch k of that kind).
 */
import type { Cluster } from "./schema";

/** Nodes per batch for `n` nodes: a count (capped at n) or a percentage rounded down, at least 1 (Ansible's `serial`). */
export function batchSizeFor(spec: number | string, n: number): number {
  if (n <= 0) return 0;
  if (typeof spec === "number") return Math.max(1, Math.min(spec, n));
  const percent = Number(/^(\d+)%$/.exec(spec)?.[1]);
  if (!Number.isFinite(percent)) throw new Error(`rollout.batchSize: not a count or a percentage: ${spec}`);
  return Math.max(1, Math.min(n, Math.floor((n * percent) / 100)));
}

/** Nomad: the nodes in description order, cut into batches of `batchSize`. */
export function nodeBatches(c: Cluster): string[][] {
  const size = batchSizeFor(c.rollout.batchSize, c.nodes.length);
  const out: string[][] = [];
  c.nodes.forEach((node, i) => (i % size === 0 ? out.push([node.name]) : out[out.length - 1].push(node.name)));
  return out;
}

/**
 * The same cut, except that a batch holds at most (eligible nodes − 1) floating-IP-eligible
 * nodes, so that at every moment of a rollout one eligible node is left alone. With one
 * eligible node there is nothing to keep: its batch may hold it alone.
 */
function batchesSparingOneEligibleNode(c: Cluster): string[][] {
  const size = batchSizeFor(c.rollout.batchSize, c.nodes.length);
  const eligible = c.nodes.filter((n) => n.floatingIp.eligible).length;
  const maxEligible = Math.max(1, eligible - 1);
  const out: string[][] = [];
  let current: string[] = [];
  let eligibleInCurrent = 0;
  for (const node of c.nodes) {
    const isEligible = node.floatingIp.eligible;
    if (current.length === size || (isEligible && eligibleInCurrent === maxEligible)) {
      out.push(current);
      current = [];
      eligibleInCurrent = 0;
    }
    current.push(node.name);
    if (isEligible) eligibleInCurrent++;
  }
  if (current.length) out.push(current);
  return out;
}

/** keepalived: one eligible node's keepalived is always left alone to hold (or take) the floating IP. */
export const keepalivedBatches = batchesSparingOneEligibleNode;

/**
 * Consul: one eligible node's agent always keeps running. keepalived tracks its node's
 * Consul DNS (`vrrp_script consul_dns`, fall 2): restarting every eligible node's agent at
 * once would put every keepalived in FAULT and drop the floating IP.
 */
export const consulBatches = batchesSparingOneEligibleNode;
