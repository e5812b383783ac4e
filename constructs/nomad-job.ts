/**
 * One Nomad job of the application: its rendered jobspec, written readable into the synth
 * output (rendered/jobs/<job>.nomad.hcl) and registered with `nomad_job.<job>`.
 *
 * `detach = false`: `cdktf deploy` waits for the job's deployment (canary, promotion,
 * rolling steps) and fails when it fails; auto_revert has then already put the last stable
 * version back.
 */
import { Construct } from "constructs";
import type { ITerraformDependable } from "cdktf";
import { Job } from "@cdktf/provider-nomad/lib/job";
import { jobspecFile, type JobName } from "./render/jobs/common";
import { RenderedFiles, sha256 } from "./rendered-files";
import { terraformLiteral } from "./escape";

export { terraformLiteral, fromTerraformLiteral } from "./escape";

export interface NomadJobProps {
  readonly job: JobName;
  /** The jobspec (Nomad HCL), as Nomad must receive it. */
  readonly jobspec: string;
  readonly dependsOn?: ITerraformDependable[];
  /**
   * How long Terraform waits for a deployment. Default 20m: above one step's
   * progress_deadline (15m), so a stuck step is failed by Nomad (which then reverts). A
   * rollout of many instances may take longer than 20m in total while progressing: raise
   * it for large counts.
   */
  readonly deployTimeout?: string;
}

export class NomadJob extends Construct {
  readonly resource: Job;
  /** The readable jobspec, relative to the stack directory. */
  readonly file: string;

  constructor(scope: Construct, id: string, props: NomadJobProps) {
    super(scope, id);
    const rendered = RenderedFiles.of(this);
    this.file = rendered.add(jobspecFile(props.job), props.jobspec);
    const timeout = props.deployTimeout ?? "20m";

    this.resource = new Job(this, "resource", {
      jobspec: terraformLiteral(props.jobspec),
      detach: false,
      // A job renamed in its jobspec replaces the old one instead of running beside it.
      deregisterOnIdChange: true,
      deregisterOnDestroy: true,
      // A destroyed job is gone at once (its name reusable), not kept as "dead".
      purgeOnDestroy: true,
      timeouts: { create: timeout, update: timeout },
      dependsOn: props.dependsOn,
    });
    // Readable, stable address: nomad_job.<job>.
    this.resource.overrideLogicalId(props.job);
    // The same text, readable, in the synth output: review and diff that file.
    this.resource.addOverride("//.jobspec_file", this.file);
    this.resource.addOverride("//.jobspec_sha256", sha256(props.jobspec));
  }
}
