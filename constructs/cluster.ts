/**
 * The whole deployment of one described cluster: the stacks and their order. `main.ts`
 * and the tests both build the app through this function, so tests see the real wiring.
 */
import type { App } from "cdktf";
import type { Cluster } from "./description/schema";
import { ClusterNodesStack } from "./nodes-stack";

export interface ClusterStacks {
  readonly nodes: ClusterNodesStack;
}

export function defineCluster(app: App, cluster: Cluster): ClusterStacks {
  const nodes = new ClusterNodesStack(app, { cluster });
  return { nodes };
}
