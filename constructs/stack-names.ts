/**
 * Stack names of a described cluster, in deploy order (the machines first, then the
 * application). Pure, so that the npm commands can print and check them without cdktf.
 */
import type { Cluster } from "./description/schema";

export function nodesStackName(c: Pick<Cluster, "name">): string {
  return `${c.name}-nodes`;
}

export function jobsStackName(c: Pick<Cluster, "name">): string {
  return `${c.name}-jobs`;
}

/** Every stack of the cluster, in the order `cdktf deploy` runs them. */
export function stackNames(c: Pick<Cluster, "name">): string[] {
  return [nodesStackName(c), jobsStackName(c)];
}
