/**
 * The count the Nomad Autoscaler's target-value strategy asks for, from one query value:
 * the documented formula, transcribed from hashicorp/nomad-autoscaler v0.4.5 (MPL-2.0):
 * - plugins/builtin/strategy/target-value/plugin/plugin.go, Run: factor = value / target
 *   (value itself when target is 0); no action while factor is within [1 - threshold,
 *   1 + threshold] (default threshold 0.01, calculateDirection); else new count =
 *   ceil(count × factor) (ceil(factor) from 0); equal to count → no action;
 * - policyeval/base_worker.go, checkHandler.start: the result capped into [min, max]
 *   (Action.CapCount); a count already outside [min, max] is moved into it even when the
 *   strategy says none.
 * The autoscaler binary itself is not run here: its Go module pulls cloud SDKs (AWS, Azure,
 * GCP, IBM, DataDog) whose build would take most of the CI budget on 2 cores.
 */
export function targetValueDesired(opts: { count: number; value: number; target: number; min: number; max: number; threshold?: number }): number {
  const { count, value, target, min, max } = opts;
  const e = opts.threshold ?? 0.01;
  const factor = target === 0 ? value : value / target;
  const cap = (n: number) => Math.min(Math.max(n, min), max);
  const direction = count === 0 ? (factor > 0 ? "up" : "none") : factor < 1 - e ? "down" : factor > 1 + e ? "up" : "none";
  if (direction === "none") return cap(count);
  const next = count === 0 ? Math.ceil(factor) : Math.ceil(count * factor);
  return cap(next);
}
