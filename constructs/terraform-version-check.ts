/**
 * cdktf attaches to every `terraform_data` (DataResource) a synth-time validation that runs
 * `terraform version` on the synthesizing machine. It makes `cdktf synth` (and every test
 * that synthesizes) fail where no `terraform` binary is on PATH, e.g. a fresh CI machine or
 * an operator with only OpenTofu, although synthesizing needs no Terraform (README), and
 * it costs a process spawn per synth (~50 ms of a ~400 ms precompiled synth, ~100 ms at 200
 * nodes: docs/benchmark.md). The check belongs to apply time, where Terraform < 1.4 refuses
 * `terraform_data` by itself. Other validations (e.g. provider presence) stay.
 *
 * constructs 10 has no API to remove a validation: this filters its (pinned) internal list
 * and fails loudly if that list ever changes shape, instead of silently keeping the check.
 */
import type { IConstruct } from "constructs";
import { ValidateTerraformVersion } from "cdktf/lib/validations/validate-terraform-version";

export function dropTerraformVersionCheck(scope: IConstruct): void {
  const node = scope.node as unknown as { _validations?: unknown };
  const list = node._validations;
  if (!Array.isArray(list)) throw new Error("constructs internals changed (Node._validations): update dropTerraformVersionCheck");
  const kept = list.filter((v) => !(v instanceof ValidateTerraformVersion));
  list.splice(0, list.length, ...kept);
}
