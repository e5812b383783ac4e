/**
 * Every jobspec of the application, by job name. Pure.
 */
import type { Cluster } from "../../description/schema";
import type { JobName } from "./common";
import { renderApiJob, renderWorkerJob } from "./api";
import { renderHaproxyJob } from "./haproxy";
import { renderWebJob } from "./web";

export function renderJobspecs(c: Cluster): Record<JobName, string> {
  return { haproxy: renderHaproxyJob(c), web: renderWebJob(c), api: renderApiJob(c), worker: renderWorkerJob(c) };
}
