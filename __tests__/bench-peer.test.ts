/**
 * The engine benchmark's peer and floor (issue 24, scripts/bench/): the Ansible playbook is
 * one Ansible accepts, and it installs exactly what our nodes stack renders and installs
 * (so that the parity the benchmark claims cannot go stale); the floor script passes
 * shellcheck; the bench's targets say FAIL when ours is slower than allowed.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { nodeComponentFiles } from "../constructs/render/node-files";
import { nodesStackName } from "../constructs/stack-names";
import { ANSIBLE_CFG, FLOOR_SCRIPT, PLAYBOOK, peerReport, type Run, type SizeFigures, ONE_NODE_ORDERS, median } from "../scripts/bench/peer";
import { cleanup, edited, exampleCluster, hasCommand, itIf, synthCluster } from "./helpers/synth";

interface Managed {
  src: string;
  dest: string;
  mode: string;
  optional?: boolean;
}
const play = (YAML.parse(fs.readFileSync(PLAYBOOK, "utf8")) as any[])[0];
const managed: Record<string, Managed[]> = play.vars.managed;

describe("the Ansible peer of the engine benchmark (scripts/bench/ansible)", () => {
  itIf(hasCommand("ansible-playbook"), "ansible-playbook missing (Debian package ansible-core)")("passes ansible-playbook --syntax-check with the bench's settings", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "peer-syntax-"));
    try {
      const inventory = path.join(dir, "inventory.json");
      fs.writeFileSync(inventory, JSON.stringify({ all: { children: { nodes: { hosts: { "node-1": {} } } } } }));
      const r = spawnSync("ansible-playbook", ["--syntax-check", "-i", inventory, "-e", "batch_size=25%", PLAYBOOK], {
        encoding: "utf8",
        env: { PATH: process.env.PATH, HOME: dir, ANSIBLE_CONFIG: ANSIBLE_CFG, ANSIBLE_LOCAL_TEMP: path.join(dir, "tmp") },
      });
      expect(`${r.stdout}${r.stderr}`).toContain("playbook: ");
      expect(r.status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs in batches (serial), validates and restarts only through handlers, with the speed settings docs/benchmark.md states", () => {
    expect(play.serial).toBe("{{ batch_size }}");
    expect(play.handlers.map((h: any) => h.name)).toEqual(["reload systemd", "restart consul", "apply sysctl", "reload keepalived", "restart nomad"]);
    const copies = play.tasks.filter((t: any) => t["ansible.builtin.copy"]);
    // every copy of an agent's or keepalived's config is validated by the real binary first
    expect(copies.filter((t: any) => t["ansible.builtin.copy"].validate).map((t: any) => t["ansible.builtin.copy"].validate)).toEqual([
      "{{ item.validate | default(omit) }}",
      "{{ keepalived_check }}",
      "{{ item.validate | default(omit) }}",
    ]);
    expect(managed.consul.filter((m: any) => m.validate).map((m: any) => m.validate.split(" ")[0])).toEqual(["consul", "consul"]);
    expect(managed.nomad.filter((m: any) => m.validate).map((m: any) => m.validate.split(" ")[0])).toEqual(["nomad", "nomad"]);
    expect(play.vars.keepalived_check).toContain("keepalived -t -f");
    const cfg = fs.readFileSync(ANSIBLE_CFG, "utf8");
    expect(cfg).toMatch(/^forks = 10$/m);
    expect(cfg).toMatch(/^pipelining = True$/m);
    expect(cfg).toMatch(/^ssh_args = .*ControlPersist=60s/m);
  });

  for (const variant of ["without extraConfig", "with consul and nomad extraConfig"] as const) {
    it(`installs exactly the files our nodes stack renders, at the same targets and modes (${variant})`, () => {
      const c = edited(exampleCluster(), (x) => {
        if (variant !== "without extraConfig") {
          x.consul.extraConfig = 'log_level = "DEBUG"\n';
          x.nomad.extraConfig = 'log_level = "DEBUG"\n';
        }
      });
      const out = synthCluster(c);
      try {
        const stackFiles = Object.keys(out.files[nodesStackName(c)]);
        for (const n of c.nodes) {
          for (const comp of nodeComponentFiles(c, n)) {
            const dir = `rendered/${n.name}/${comp.component}/`;
            const rendered = stackFiles.filter((f) => f.startsWith(dir)).map((f) => f.slice(dir.length));
            // what the playbook installs from that directory (optional files when rendered)
            const peer = managed[comp.component].filter((m) => !m.optional || rendered.includes(m.src));
            // every rendered file is installed by the playbook, except our install script (its tasks are the playbook's)
            expect(peer.map((m) => m.src).sort()).toEqual(rendered.filter((f) => f !== "install.sh").sort());
            expect(peer.map((m) => ({ source: m.src, target: m.dest, mode: m.mode })).sort((a, b) => a.source.localeCompare(b.source))).toEqual(
              comp.installed.map((f) => ({ source: f.source, target: f.target, mode: f.mode })).sort((a, b) => a.source.localeCompare(b.source)),
            );
            // what our install removes when the description drops it, the playbook removes too
            expect(managed[comp.component].filter((m) => m.optional && !rendered.includes(m.src)).map((m) => m.dest)).toEqual(comp.removed);
          }
        }
      } finally {
        cleanup(out);
      }
    });
  }

  itIf(hasCommand("shellcheck"), "shellcheck missing")("the floor's script (one SSH session per node) passes shellcheck", () => {
    const r = spawnSync("shellcheck", ["-s", "bash", FLOOR_SCRIPT], { encoding: "utf8" });
    expect(r.stdout).toBe("");
    expect(r.status).toBe(0);
  });

  it("reports each target PASS or FAIL from the figures, and says when the machine was not idle", () => {
    const run = (s: number): Run => ({ ms: s * 1000, cpuS: 1, connectionsPerNode: 1, sessionsPerNode: 1, bastionConnections: 1 });
    const f: SizeFigures = {
      vms: 16,
      load: { before: [9, 9, 9], after: [9, 9, 9] },
      runs: {
        fresh: { ours: run(60), ansible: run(30), floor: run(10) }, // 2× Ansible: FAIL (limit 1.5×)
        check: { ours: run(5), ansible: run(10) }, // PASS
        oneNode: { ours: run(9), ansible: run(10), floor: run(3) }, // PASS against Ansible, 3× the floor: FAIL
        everyNode: { ours: run(40), ansible: run(30), floor: run(20) }, // 1.33×: PASS
      },
    };
    const report = peerReport([f], { started: new Date(0), engine: "terraform", parallelism: 10 });
    expect(report.split("\n")[0]).toContain("Generated by npm run bench:engine");
    const target = (name: string) => report.split("\n").find((l) => l.startsWith(`| ${name}`));
    expect(target("fresh install, ours ÷ Ansible")).toMatch(/\| 2\.00× \| ≤ 1\.5× \| \*\*FAIL\*\* \|$/);
    expect(target("check of an unchanged cluster, ours ÷ Ansible")).toMatch(/\| 0\.50× \| ≤ 1× \| PASS \|$/);
    expect(target("one-node change, ours ÷ Ansible")).toMatch(/PASS \|$/);
    expect(target("one-node change, ours ÷ floor")).toMatch(/\| 3\.00× \| ≤ 2× \| \*\*FAIL\*\* \|$/);
    expect(target("every-node change (25%), ours ÷ Ansible")).toMatch(/\| 1\.33× \| ≤ 1\.5× \| PASS \|$/);
    expect(report).toContain("not figures of an idle machine");
    // idle is judged by the load the size started from; the load after is the bench's own work
    const quiet = peerReport([{ ...f, load: { before: [0.2, 0.4, 0.9], after: [3, 2, 1] } }], { started: new Date(0), engine: "terraform", parallelism: 10 });
    expect(quiet).not.toContain("not figures of an idle machine");
    expect(quiet).toMatch(/^\| 16 \| 0\.20, 0\.40, 0\.90 \| 3\.00, 2\.00, 1\.00 \| yes \|$/m);
  });

  it("the one-node change rotates the tools' order so that each runs first, second and last once, and the report gives every round, ours' plan and the medians", () => {
    for (const pos of [0, 1, 2]) expect(ONE_NODE_ORDERS.map((o) => o[pos]).sort()).toEqual(["ansible", "floor", "ours"]);
    expect(median([3, 1, 2])).toBe(2);
    const run = (s: number): Run => ({ ms: s * 1000, cpuS: 1, connectionsPerNode: 1, sessionsPerNode: 1, bastionConnections: 1 });
    const f: SizeFigures = {
      vms: 16,
      load: { before: [0.1, 0.1, 0.1], after: [1, 1, 1] },
      runs: { oneNode: { ours: run(2.6), ansible: run(90), floor: run(1) } },
      oneNodeRounds: { ms: { ours: [3000, 2600, 2400], ansible: [90000, 95000, 99000], floor: [1200, 1000, 900] }, oursPlanMs: [1700, 1500, 1600] },
    };
    const report = peerReport([f], { started: new Date(0), engine: "terraform", parallelism: 10 });
    // medians: ours 2.6 s, floor 1.0 s, plan 1.6 s → 2.60× and (2.6 − 1.6) ÷ 1.0 = 1.00×
    expect(report).toMatch(/^\| 16 \| 3\.0 \/ 2\.6 \/ 2\.4 s \| 90\.0 \/ 95\.0 \/ 99\.0 s \| 1\.2 \/ 1\.0 \/ 0\.9 s \| 1\.7 \/ 1\.5 \/ 1\.6 s \| 2\.60× \| 1\.00× \|$/m);
  });
});
