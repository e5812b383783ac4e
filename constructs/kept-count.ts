/**
 * Counts kept by Nomad itself while the Nomad Autoscaler owns them, and the deliberate
 * changes that still take effect.
 *
 * Kept: `nomad_job.<job>` registers with `preserve_counts = true` (Nomad provider >= 2.6.0,
 * terraform-provider-nomad PR #591; set through an override, the prebuilt binding
 * @cdktf/provider-nomad 10.0.3 lacks it). The provider passes Nomad's register option
 * PreserveCounts (Nomad's HTTP API: "existing task group counts will be preserved, instead
 * of being set to the task group counts in the job spec"; in every Nomad we support,
 * 1.2.6 on), so the server keeps the count at the moment it registers: nothing is read at
 * plan time, and a scale between plan and apply is not undone. The provider plans the
 * groups with their current counts (resource_job.go, preserveTaskGroupCounts). A new job
 * (or group) gets the jobspec's count, the description's.
 *
 * Deliberate changes still take effect, each by its own path:
 * - autoscaling turned off: no override; the release registers the description's count;
 * - a new `count` in the description: `terraform_data.<job>_count` is replaced (its trigger
 *   is the count) and, after the job is registered, sets that count with Nomad's scale API
 *   (POST /v1/job/<job>/scale), once; the autoscaler moves on from there;
 * - a new `scaling.min`/`max`: `terraform_data.<job>_scaling_bounds` is replaced and moves
 *   the count Nomad runs into the new bounds (unchanged when already inside), once. The
 *   autoscaler would get there too (max: before any query; min: the query's floor), but
 *   not while Prometheus is down: the release does it itself.
 * Each call is made by rendered/jobs/set-count.sh (render/jobs/scaling.ts), after the job's
 * registration (depends_on), with the operator's Nomad token and TLS settings, as the
 * provider reads them; an unchanged count is not sent (no new job version).
 */
import { Construct } from "constructs";
import { DataResource } from "cdktf";
import type { Cluster } from "./description/schema";
import { RenderedFiles } from "./rendered-files";
import { SET_COUNT_SCRIPT, renderSetCountScript, scalingBounds, type ScaledJob } from "./render/jobs/scaling";
import { shellQuote, terraformLiteral } from "./escape";
import { dropTerraformVersionCheck } from "./terraform-version-check";
import type { NomadJob } from "./nomad-job";

/** First Nomad provider release with nomad_job `preserve_counts` (CHANGELOG 2.6.0, PR #591). */
export const PRESERVE_COUNTS_SINCE = "2.6.0";
/**
 * The Nomad provider version the jobs stack pins: 2.6.1, the 2.6.0 feature set plus the fix
 * of the provider's `address` schema mismatch when NOMAD_ADDR is unset (CHANGELOG 2.6.1, PR #608).
 */
export const NOMAD_PROVIDER_VERSION = "2.6.1";

export interface KeptCountProps {
  readonly cluster: Cluster;
  readonly job: ScaledJob;
  readonly nomadJob: NomadJob;
}

/** preserve_counts on the job, and the two resources that apply a deliberate change. */
export class KeptCount extends Construct {
  readonly countChange: DataResource;
  readonly boundsChange: DataResource;

  constructor(scope: Construct, id: string, props: KeptCountProps) {
    super(scope, id);
    const { cluster: c, job, nomadJob } = props;
    nomadJob.resource.addOverride("preserve_counts", true);
    const script = RenderedFiles.of(this).add(SET_COUNT_SCRIPT, renderSetCountScript());
    const { min, max } = scalingBounds(c, job);
    const environment = { NOMAD_ADDR: terraformLiteral(c.servers.nomadHttpAddress), NOMAD_REGION: terraformLiteral(c.region) };
    const command = (args: (string | number)[]) => `bash ${[script, job, job, ...args].map((a) => shellQuote(String(a))).join(" ")}`;

    this.countChange = new DataResource(this, "count", {
      triggersReplace: { count: c.app[job].count },
      dependsOn: [nomadJob.resource],
      // Bounds count..count: the count alone is this resource's input (a bounds change is the other's).
      provisioners: [{ type: "local-exec", command: command([c.app[job].count, c.app[job].count, c.app[job].count]), environment } as never],
    });
    this.countChange.overrideLogicalId(`${job}_count`);
    this.boundsChange = new DataResource(this, "bounds", {
      triggersReplace: { min, max },
      // After a count change of the same release: the count set, then kept inside the bounds.
      dependsOn: [nomadJob.resource, this.countChange],
      provisioners: [{ type: "local-exec", command: command([min, max]), environment } as never],
    });
    this.boundsChange.overrideLogicalId(`${job}_scaling_bounds`);
    for (const r of [this.countChange, this.boundsChange]) dropTerraformVersionCheck(r);
  }
}
