/**
 * The count a release registers a job with when the Nomad Autoscaler owns it: the count
 * running in Nomad now, read at plan time, clamped into the description's scaling bounds;
 * the description's count when the job does not exist yet.
 *
 * Why this way: registering a jobspec sets each group's count to the jobspec's, and the
 * Nomad provider (2.5) has no PreserveCounts (terraform-provider-nomad #420). So the
 * jobspec says `count = var.<job>_count` (an HCL2 variable, default the description's
 * count) and `nomad_job.<job>` passes the running count in `hcl2 { vars }`. The provider
 * parses the jobspec itself with those variables (jobspec2.ParseWithConfig, resource_job.go
 * v2.5.2), so any Nomad version we support (1.2.6+) receives a plain job.
 *
 * Reading the running count without failing when the job does not exist:
 * `data "nomad_job"` fails on an unknown job, `data "nomad_scaling_policies"` lists the
 * job's policies (none when it does not exist: every group with a `scaling` block has one),
 * and `data "nomad_job"` is read only under `count = 1` when there is one.
 */
import { Construct } from "constructs";
import { DataNomadScalingPolicies } from "@cdktf/provider-nomad/lib/data-nomad-scaling-policies";
import { DataNomadJob } from "@cdktf/provider-nomad/lib/data-nomad-job";
import type { Cluster } from "./description/schema";
import { scalingBounds, type ScaledJob } from "./render/jobs/common";

export interface KeptCountRefs {
  /** Expression of the policies list (data.nomad_scaling_policies.<x>.policies). */
  readonly policies: string;
  /** Expression of the list of read jobs (data.nomad_job.<x>: a list, under count). */
  readonly jobs: string;
}

/** Whether to read the job: 1 when a scaling policy of that job exists in Nomad, else 0. */
export function jobExistsCountExpression(policies: string, job: string): string {
  return `length([for p in ${policies} : p if lookup(p.target, "Job", "") == ${JSON.stringify(job)}]) > 0 ? 1 : 0`;
}

/**
 * The count to register: the running count of group `group` (one(): null when the job or
 * the group is absent), else the description's count, clamped into min..max.
 */
export function keptCountExpression(jobs: string, group: string, description: { count: number; min: number; max: number }): string {
  const running = `one(flatten([for j in ${jobs} : [for g in j.task_groups : g.count if g.name == ${JSON.stringify(group)}]]))`;
  return `min(max(coalesce(${running}, ${description.count}), ${description.min}), ${description.max})`;
}

export interface KeptCountProps {
  readonly cluster: Cluster;
  readonly job: ScaledJob;
}

/** The running count of one job's group, read at plan time (data sources `<job>_running`). */
export class KeptCount extends Construct {
  /** Terraform expression (`${…}`) of the count to register, for nomad_job's hcl2.vars. */
  readonly count: string;

  constructor(scope: Construct, id: string, props: KeptCountProps) {
    super(scope, id);
    const { cluster: c, job } = props;
    const name = `${job}_running`;
    const policies = new DataNomadScalingPolicies(this, "policies", { jobId: job });
    policies.overrideLogicalId(name);
    const read = new DataNomadJob(this, "job", { jobId: job });
    read.overrideLogicalId(name);
    const policiesRef = `data.nomad_scaling_policies.${name}.policies`;
    read.addOverride("count", `\${${jobExistsCountExpression(policiesRef, job)}}`);
    const { min, max } = scalingBounds(c, job);
    this.count = `\${${keptCountExpression(`data.nomad_job.${name}`, job, { count: c.app[job].count, min, max })}}`;
  }
}
