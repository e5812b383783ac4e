/**
 * The whole deployment of one described cluster: the stacks and their order. `main.ts`
 * and the tests both build the app through this function, so tests see the real wiring.
 */
import { App } from "cdktf";
import type { Cluster } from "./description/schema";
import { ClusterJobsStack } from "./jobs-stack";
import { ClusterNodesStack } from "./nodes-stack";

export interface ClusterStacks {
  readonly nodes: ClusterNodesStack;
  readonly jobs: ClusterJobsStack;
}

export function defineCluster(app: App, cluster: Cluster): ClusterStacks {
  const nodes = new ClusterNodesStack(app, { cluster });
  // Jobs run on the agents the nodes stack provisions; a release touches only this stack.
  const jobs = new ClusterJobsStack(app, { cluster });
  jobs.addDependency(nodes);
  return { nodes, jobs };
}

/**
 * Synthesizes the cluster into `outdir` (per stack: cdk.tf.json and its rendered files), as
 * `npm run synth` does through main.ts: for the scripts that read a synth output of their
 * own (scripts/pictures.ts) without importing cdktf themselves.
 */
export function synthesizeCluster(cluster: Cluster, outdir: string): void {
  const app = new App({ outdir });
  defineCluster(app, cluster);
  app.synth();
}
