/**
 * Metrics history across a node's departure: decommission.sh (run as rendered, by bash)
 * stops Nomad only once the metrics job's allocation runs on another node, because its
 * replacement copies the sticky ephemeral disk (Prometheus' TSDB, Grafana's database) from
 * THIS node's Nomad client while it starts (Nomad client/allocwatcher: the new node's client
 * GETs /v1/client/allocation/<previous>/snapshot from the previous node's HTTP address),
 * which is after `nomad node drain` returned.
 *
 * Nomad, systemctl, consul, rm and sleep are stand-ins on PATH that record their calls
 * (no root needed, nothing on this machine is touched). The Nomad stand-in follows the
 * documented behaviour of the commands the script uses: `nomad node status -self -t
 * '{{ .ID }}'` prints the node's ID; `nomad job allocs -t <tpl> metrics` prints what the
 * script's template selects from the job's allocation list (the NodeID of each running
 * allocation), and fails when the job cannot be read; `nomad node drain -self -enable
 * -yes` returns once this node's allocations are stopped: the replacement is then still
 * pending (migrating its data) for a few polls before it runs elsewhere.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { renderDecommissionScript, renderAgentInstallScript } from "../constructs/render/scripts";
import { edited, exampleCluster } from "./helpers/synth";

type Scenario = "moves" | "elsewhere" | "unreadable";

function run(scenario: Scenario, pendingPolls = 3): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "metrics-history-"));
  try {
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    const log = path.join(dir, "calls");
    const state = path.join(dir, "state");
    fs.writeFileSync(state, "before\n0\n");
    const stub = (name: string, body: string) => fs.writeFileSync(path.join(bin, name), `#!/bin/bash\necho "${name} $*" >>"${log}"\n${body}\n`, { mode: 0o755 });
    stub(
      "nomad",
      `phase=$(sed -n 1p "${state}"); polls=$(sed -n 2p "${state}")
case "$1 $2" in
  "node status") echo self-node-id ;;
  "node drain") printf 'drained\\n0\\n' >"${state}" ;;
  "job allocs")
    [[ "${scenario}" == unreadable ]] && { echo "Error querying job: Unexpected response code: 403" >&2; exit 1; }
    if [[ "${scenario}" == elsewhere ]]; then echo other-node-id
    elif [[ "$phase" == before ]]; then echo self-node-id
    else
      polls=$((polls + 1)); printf 'drained\\n%d\\n' "$polls" >"${state}"
      if ((polls > ${pendingPolls})); then echo other-node-id; echo "allocs: running elsewhere" >>"${log}"; fi
    fi ;;
esac`,
    );
    stub("systemctl", `[[ "$1" == is-active ]] && { [[ "$3" == nomad || "$3" == consul ]]; exit; }; exit 0`);
    for (const n of ["consul", "rm", "sleep"]) stub(n, "exit 0");
    const script = path.join(dir, "decommission.sh");
    fs.writeFileSync(script, renderDecommissionScript());
    const r = spawnSync("bash", [script, "node-2", "172.16.1.12", "5m"], { encoding: "utf8", env: { PATH: `${bin}:/usr/bin:/bin`, HOME: dir }, timeout: 30000 });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    return fs.readFileSync(log, "utf8").trim().split("\n");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const idx = (calls: string[], re: RegExp) => calls.findIndex((c) => re.test(c));

describe("decommission.sh keeps the metrics history (Nomad stand-in)", () => {
  it("the metrics allocation ran here: Nomad stops only after it runs on another node", () => {
    const calls = run("moves");
    const drain = idx(calls, /^nomad node drain -self -enable/);
    const moved = idx(calls, /^allocs: running elsewhere$/);
    const stop = idx(calls, /^systemctl disable --now --quiet nomad$/);
    expect(drain).toBeGreaterThan(-1);
    expect(moved).toBeGreaterThan(drain);
    expect(stop).toBeGreaterThan(moved);
    // it polled while the replacement was pending (3 polls here), sleeping between polls
    expect(calls.slice(drain, stop).filter((c) => c.startsWith("nomad job allocs")).length).toBe(4);
    expect(calls.slice(drain, stop).filter((c) => c.startsWith("sleep")).length).toBe(3);
    // the template selects the running allocations' node IDs of job metrics
    expect(calls.find((c) => c.startsWith("nomad job allocs"))).toBe('nomad job allocs -t {{ range . }}{{ if eq .ClientStatus "running" }}{{ .NodeID }}{{ "\\n" }}{{ end }}{{ end }} metrics');
    // then Consul leaves, as before
    expect(idx(calls, /^consul leave/)).toBeGreaterThan(stop);
  });

  it("the metrics allocation runs elsewhere already: no wait", () => {
    const calls = run("elsewhere");
    const drain = idx(calls, /^nomad node drain/);
    const stop = idx(calls, /^systemctl disable --now --quiet nomad$/);
    expect(calls.slice(drain, stop).filter((c) => /^(nomad job allocs|sleep)/.test(c))).toEqual([]);
  });

  it("the job cannot be read (no metrics job, a token without read-job): no wait, the decommission goes on", () => {
    const calls = run("unreadable");
    const drain = idx(calls, /^nomad node drain/);
    const stop = idx(calls, /^systemctl disable --now --quiet nomad$/);
    expect(stop).toBeGreaterThan(drain);
    expect(calls.slice(drain, stop).filter((c) => c.startsWith("sleep"))).toEqual([]);
  });

  it("(the stand-in can tell: with the wait removed from the script, Nomad stops before the move)", () => {
    const broken = renderDecommissionScript().replace('if [[ "$metrics_here" == true ]]; then wait_metrics_elsewhere "$self_id"; fi', "");
    expect(broken).not.toBe(renderDecommissionScript());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "metrics-history-"));
    try {
      // the same run, on the broken text: no poll between the drain and the stop
      const bin = path.join(dir, "bin");
      fs.mkdirSync(bin);
      const log = path.join(dir, "calls");
      for (const n of ["nomad", "systemctl", "consul", "rm", "sleep"]) {
        const body = n === "systemctl" ? `[[ "$1" == is-active ]] && { [[ "$3" == nomad ]]; exit; }; exit 0` : n === "nomad" ? `[[ "$1 $2" == "node status" ]] && echo self-node-id; [[ "$1 $2" == "job allocs" ]] && echo self-node-id; exit 0` : "exit 0";
        fs.writeFileSync(path.join(bin, n), `#!/bin/bash\necho "${n} $*" >>"${log}"\n${body}\n`, { mode: 0o755 });
      }
      fs.writeFileSync(path.join(dir, "d.sh"), broken);
      const r = spawnSync("bash", [path.join(dir, "d.sh"), "node-2", "172.16.1.12", "5m"], { encoding: "utf8", env: { PATH: `${bin}:/usr/bin:/bin`, HOME: dir } });
      expect(r.status).toBe(0);
      const calls = fs.readFileSync(log, "utf8").trim().split("\n");
      const drain = idx(calls, /^nomad node drain/);
      expect(calls[drain + 1]).toBe("systemctl disable --now --quiet nomad");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("maintenance: the Nomad install's drain step", () => {
  const c = exampleCluster();
  const script = (x: typeof c) => renderAgentInstallScript(x, x.nodes[0], { agent: "nomad", files: [], requiredFiles: [], removableTargets: [] });

  it("with metrics, returns only once the metrics allocation runs elsewhere (the node may then be powered off)", () => {
    const s = script(edited(c, (x) => (x.nodes[0].maintenance = true)));
    // every drain the script can make (the maintenance step's, and the one before a move of
    // the client's data_dir): asked first whether metrics runs here, waited for after
    const lines = s.split("\n");
    const drains = lines.flatMap((l, i) => (l.includes("nomad node drain -self -enable") ? [i] : []));
    expect(drains.length).toBe(2);
    for (const d of drains) {
      expect(lines.slice(d - 3, d).join("\n")).toContain("if metrics_runs_here; then metrics_here=true; fi");
      expect(lines.slice(d + 1, d + 3).join("\n")).toContain('if [[ "$metrics_here" == true ]]; then wait_metrics_elsewhere "$self_id"; fi');
    }
    expect(s.indexOf("metrics_runs_here() {")).toBeLessThan(drains.length ? s.indexOf("nomad node drain -self -enable") : -1);
  });

  it("without metrics, no wait", () => {
    expect(script(edited(c, (x) => (x.metrics.enabled = false)))).not.toContain("wait_metrics_elsewhere");
  });
});
