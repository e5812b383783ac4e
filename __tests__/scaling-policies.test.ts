/**
 * The scaling policies of web, api and worker as HashiCorp's HCL parser reads them from the
 * rendered jobspecs, checked against what the Nomad Autoscaler (v0.4.5, the pinned image)
 * reads from a Nomad policy (policy/nomad/source.go keys, parser.go, validate.go). The
 * queries are run against a real Prometheus in __tests__/system/autoscaling.test.ts.
 */
import { renderJobspecs } from "../constructs/render/jobs";
import { APM_NAME, MAX_SCALE_DOWN, SCALE_THRESHOLD, STRATEGY_NAME, queryWindowSeconds, scalingQuery } from "../constructs/render/jobs/scaling";
import type { Cluster } from "../constructs/description/schema";
import { edited, exampleCluster, parseHcl } from "./helpers/synth";
import { groupOf } from "./helpers/jobs";

/** Keys of a policy document the autoscaler's Nomad policy source reads (policy/nomad/source.go v0.4.5). */
const POLICY_KEYS = ["cooldown", "evaluation_interval", "on_check_error", "target", "check"];
const CHECK_KEYS = ["source", "query", "query_window", "query_window_offset", "on_error", "group", "strategy"];
/** Config keys of the target-value strategy (plugins/builtin/strategy/target-value/plugin/plugin.go v0.4.5). */
const TARGET_VALUE_KEYS = ["target", "threshold", "max_scale_up", "max_scale_down"];

async function policyOf(c: Cluster, job: "web" | "api" | "worker"): Promise<any> {
  const parsed = await parseHcl(`${job}.nomad.hcl`, renderJobspecs(c)[job]);
  const scaling = groupOf(parsed.job[job][0], job).scaling;
  expect(scaling).toHaveLength(1);
  return scaling[0];
}

describe("scaling policies (autoscaling on, the default)", () => {
  const c = exampleCluster();

  it.each(["web", "api", "worker"] as const)("%s: one check on Prometheus with target-value, fail static on errors, only keys the autoscaler reads", async (job) => {
    const s = await policyOf(c, job);
    // min 0 in Nomad's block: the autoscaler's min check (before any query, on the RUNNING
    // count) never fires; the description's min is the floor in the query (clamp_min).
    expect({ min: s.min, max: s.max, enabled: s.enabled }).toEqual({ min: 0, max: 2 * c.app[job].count, enabled: true });
    expect(s.policy).toHaveLength(1);
    const p = s.policy[0];
    for (const k of Object.keys(p)) expect(POLICY_KEYS).toContain(k);
    expect(p.cooldown).toBe(c.metrics.autoscaling.cooldown);
    expect(p.evaluation_interval).toBe(c.metrics.autoscaling.evaluationInterval);
    // No `target` block: the Nomad source then targets this job's group (parser.go).
    expect(p.target).toBeUndefined();
    const checks = Object.entries(p.check);
    expect(checks).toHaveLength(1);
    expect(checks[0][0]).toBe(`${job}_load`);
    const [, [check]] = checks[0] as [string, any[]];
    for (const k of Object.keys(check)) expect(CHECK_KEYS).toContain(k);
    expect(check.source).toBe(APM_NAME);
    expect(check.on_error).toBe("fail");
    expect(check.query).toBe(scalingQuery(c, job));
    expect(check.query_window).toBe(`${queryWindowSeconds(c)}s`);
    const strategy = check.strategy[STRATEGY_NAME][0];
    for (const k of Object.keys(strategy)) expect(TARGET_VALUE_KEYS).toContain(k);
    const target = { web: c.metrics.autoscaling.webRequestsPerSecond, api: c.metrics.autoscaling.apiRequestsInFlight, worker: c.metrics.autoscaling.workerQueuedTasks }[job];
    expect(strategy.target).toBe(target);
    // Settling: a 20 % dead band at each ceil boundary, one instance down per action.
    expect({ threshold: strategy.threshold, max_scale_down: strategy.max_scale_down }).toEqual({ threshold: SCALE_THRESHOLD, max_scale_down: MAX_SCALE_DOWN });
    expect(check.query).toContain(`clamp_min(`);
    expect(check.query).toContain(`, ${c.app[job].count * target}) / `); // floor = min × target
    expect(check.query).toContain("[300s:15s]"); // the scale-down window (5m) at the scrape interval
  });

  it("the description's settings reach every policy", async () => {
    const tuned = edited(c, (d) => {
      d.metrics.autoscaling = { ...d.metrics.autoscaling, cooldown: "5m", evaluationInterval: "1m", webRequestsPerSecond: 55, apiRequestsInFlight: 3.5, workerQueuedTasks: 40 };
      d.app.api.scaling = { min: 1, max: 7 };
    });
    const [web, api, worker] = await Promise.all((["web", "api", "worker"] as const).map((j) => policyOf(tuned, j)));
    const strategyOf = (s: any) => (Object.values(s.policy[0].check)[0] as any[])[0].strategy[STRATEGY_NAME][0].target;
    expect([strategyOf(web), strategyOf(api), strategyOf(worker)]).toEqual([55, 3.5, 40]);
    expect([web.policy[0].cooldown, api.policy[0].evaluation_interval]).toEqual(["5m", "1m"]);
    expect([api.min, api.max]).toEqual([0, 7]);
    expect((Object.values(api.policy[0].check)[0] as any[])[0].query).toContain(", 3.5) / "); // floor: min 1 × 3.5
  });

  it("windows cover at least 4 scrapes: a rate over a window with fewer than 2 samples has no value, which would hold the count forever", () => {
    expect(queryWindowSeconds(c)).toBe(60); // 15s scrapes
    const slow = edited(c, (d) => void (d.metrics.prometheus.scrapeInterval = "45s"));
    expect(queryWindowSeconds(slow)).toBe(180);
    expect(scalingQuery(slow, "web")).toContain("[180s]");
    expect(scalingQuery(slow, "api")).toContain("[180s]");
  });

  it("with autoscaling or metrics off: no policy, the description's count, no count variable", async () => {
    for (const off of [edited(c, (d) => void (d.metrics.autoscaling.enabled = false)), edited(c, (d) => void (d.metrics.enabled = false))]) {
      const text = renderJobspecs(off).web;
      expect(text).not.toMatch(/policy|variable "/);
      const s = await policyOf(off, "web");
      expect(s.policy).toBeUndefined();
      expect(text).toMatch(/^ {4}count = 2$/m);
    }
  });
});
