/**
 * Helpers for the jobs stack tests: read a synthesized jobs stack back (JSON and readable
 * jobspecs) and parse every jobspec with HashiCorp's HCL parser.
 */
import { jobsStackName } from "../../constructs/jobs-stack";
import { fromTerraformLiteral } from "../../constructs/nomad-job";
import { jobNames, jobspecFile, type JobName } from "../../constructs/render/jobs/common";
import type { Cluster } from "../../constructs/description/schema";
import { parseHcl, resourcesOf, type SynthOutput } from "./synth";

export interface SynthJob {
  /** Text of rendered/jobs/<job>.nomad.hcl */
  file: string;
  /** jobspec of nomad_job.<job> as Terraform hands it to the provider. */
  fromJson: string;
  /** Parsed job body: hcl2json(...).job[<job>][0] */
  job: any;
}

export async function jobsOf(out: SynthOutput, c: Cluster): Promise<Record<JobName, SynthJob>> {
  const stack = jobsStackName(c);
  const res = resourcesOf(out.stacks[stack], "nomad_job");
  const result = {} as Record<JobName, SynthJob>;
  for (const job of jobNames(c)) {
    const file = out.files[stack][`rendered/${jobspecFile(job)}`];
    if (file === undefined) throw new Error(`rendered/${jobspecFile(job)} missing`);
    const fromJson = fromTerraformLiteral(res[job].jobspec);
    const parsed = await parseHcl(`${job}.nomad.hcl`, file);
    result[job] = { file, fromJson, job: parsed.job[job][0] };
  }
  return result;
}

/** The single group / task of a job (all our jobs have one of each, named after the job). */
export function groupOf(job: any, name: string): any {
  return job.group[name][0];
}
export function taskOf(job: any, name: string): any {
  return groupOf(job, name).task[name][0];
}

/** Env names a task gets: its env block plus KEY= lines of its env templates. */
export function envNames(task: any): Set<string> {
  const names = new Set<string>(Object.keys(task.env?.[0] ?? {}));
  for (const t of task.template ?? []) {
    if (!t.env) continue;
    for (const m of String(t.data).matchAll(/^([A-Za-z_][A-Za-z0-9_]*)=/gm)) names.add(m[1]);
  }
  return names;
}
