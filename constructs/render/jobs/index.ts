/**
 * Every jobspec of the application, by job name. Pure.
 */
import type { Cluster } from "../../description/schema";
import type { AppJobName } from "./common";
import { renderApiJob, renderWorkerJob } from "./api";
import { renderHaproxyJob } from "./haproxy";
import { renderMetricsJob } from "./metrics";
import { renderWebJob } from "./web";

/** Every jobspec of the cluster: the application's, and the metrics job's when metrics.enabled. */
export function renderJobspecs(c: Cluster): Record<AppJobName, string> & { metrics?: string } {
  return {
    haproxy: renderHaproxyJob(c),
    web: renderWebJob(c),
    api: renderApiJob(c),
    worker: renderWorkerJob(c),
    ...(c.metrics.enabled ? { metrics: renderMetricsJob(c) } : {}),
  };
}
