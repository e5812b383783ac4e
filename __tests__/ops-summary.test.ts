/**
 * Plan-review summary (`npm run summary`): from two synth outputs, what would change per
 * node and per job. Synthesizes the example and edited variants with the real app.
 */
import { execFileSync } from "child_process";
import * as path from "path";
import { cleanup, edited, exampleCluster, itIf, REPO_ROOT, synthCluster, type SynthOutput } from "./helpers/synth";
import type { Cluster } from "../constructs/description/schema";
import { renderPlanMarkdown, summarizePlan, totalLine, type PlanRow, type SynthSet } from "../plan-review/summary";
import { jobspecDiff, jobspecSettings, variableItemsDiff } from "../plan-review/jobspec-diff";

const example = exampleCluster();
const outputs: SynthOutput[] = [];
function synth(c: Cluster): SynthOutput {
  const out = synthCluster(c);
  outputs.push(out);
  return out;
}
// Synthesized at collection time: whether the jobs stack exists decides which tests run.
const base = synth(example);
afterAll(() => outputs.forEach(cleanup));

const hasJobs = Object.values(base.stacks).some((s: any) => Object.keys(s.resource?.nomad_job ?? {}).length > 0);
const NO_JOBS = "the synth has no nomad_job yet (the jobs stack is not merged on this branch)";

const summaryOf = (edit: (c: Cluster) => void) => summarizePlan(base, synth(edited(example, edit)));
const row = (rows: PlanRow[], address: string) => rows.find((r) => r.address === address);
/** A Consul or Nomad agent resource (by name, whatever its type or stack). */
const isAgent = (r: PlanRow) => /(^|[._-])(consul|nomad)($|[._"\]-])/.test(r.address.split(".").slice(1).join("."));
const newTag = (image: string, tag: string) => image.replace(/:[^:/@]+$/, `:${tag}`);

describe("plan summary of synthesized variants", () => {
  it("reports no change for an identical synth: empty table and a 'no changes' line", () => {
    const s = summarizePlan(base, synth(example));
    expect(s.rows).toEqual([]);
    expect(s.totals).toEqual({ create: 0, update: 0, replace: 0, destroy: 0 });
    const md = renderPlanMarkdown(s);
    expect(md).toContain("No changes");
    expect(md).not.toContain("| group |");
  });

  it("without a baseline, every instance is new and grouped by node", () => {
    const s = summarizePlan(undefined, base);
    expect(s.notes.join(" ")).toMatch(/no baseline/i);
    expect(s.rows.length).toBeGreaterThan(0);
    expect(s.rows.every((r) => r.change === "create")).toBe(true);
    for (const n of example.nodes) {
      expect(row(s.rows, `terraform_data.node_membership["${n.name}"]`)).toMatchObject({ groupKind: "node", group: n.name, change: "create" });
      expect(s.rows.filter((r) => r.group === n.name && isAgent(r)).length).toBeGreaterThanOrEqual(2);
    }
    expect(s.totals.create).toBe(s.rows.length);
    expect(totalLine(s)).toMatch(new RegExp(`^Plan: ${s.rows.length} to create, 0 to update in place, 0 to replace, 0 to destroy`));
  });

  it("maintenance on node-1: only node-1 rows, its Nomad agent re-provisioned, the changed trigger named", () => {
    const s = summaryOf((c) => {
      c.nodes[0].maintenance = true;
    });
    expect(s.rows.length).toBeGreaterThan(0);
    expect(s.rows.filter((r) => r.group !== "node-1")).toEqual([]);
    expect(s.rows.every((r) => r.groupKind === "node")).toBe(true);
    const nomad = row(s.rows, "null_resource.node-1_nomad");
    expect(nomad?.change).toBe("replace");
    expect(nomad?.why).toContain("re-provision");
    // in words, from the rendered files of the two outputs: the drain and its deadline
    expect(nomad?.why).toContain(`maintenance on: Nomad drains node-1 (deadline ${example.nomad.drainDeadline}; allocations migrate one at a time per each job's migrate block), the node becomes ineligible`);
    expect(nomad?.why).toContain("install.sh: MAINTENANCE false → true");
    expect(nomad?.why.some((w) => /sha256_/.test(w))).toBe(false);
    // keepalived first hands the floating IP over, with the priority it runs with
    const keepalived = row(s.rows, "null_resource.node-1_keepalived");
    expect(keepalived?.why[1]).toBe(
      `maintenance on (priority ${example.nodes[0].floatingIp.priority} → 1): if node-1 holds the floating IP, its keepalived restarts and a peer takes the IP over (~0.6 s), before the Nomad drain`,
    );
    expect(keepalived?.why).toContain(`keepalived.conf: priority ${example.nodes[0].floatingIp.priority} → 1`);
    // Consul does not care about maintenance; the membership (decommission) is untouched.
    expect(row(s.rows, "null_resource.node-1_consul")).toBeUndefined();
    expect(s.rows.some((r) => r.type === "terraform_data")).toBe(false);
    const md = renderPlanMarkdown(s);
    expect(md).toContain("| node **node-1** |");
    expect(md).toMatch(/\| `null_resource\.node-1_nomad` \| -\/\+ replace \| re-provision; maintenance on: Nomad drains node-1 /);

    // and back: the drain ends, the floating IP stays where it is
    const back = summarizePlan(synth(edited(example, (c) => void (c.nodes[0].maintenance = true))), base);
    expect(row(back.rows, "null_resource.node-1_nomad")?.why).toContain("maintenance off: the drain of node-1 ends, the node is eligible again");
    expect(row(back.rows, "null_resource.node-1_keepalived")?.why[1]).toMatch(/^maintenance off \(priority 1 → \d+\): node-1 is a floating-IP candidate again; the IP does not move back \(nopreempt\)$/);
    expect(md).toContain(`**${totalLine(s)}**`);
  });

  it("a node added: its resources are created; no other node's Consul/Nomad agent or membership changes", () => {
    const s = summaryOf((c) => {
      c.nodes.push({ ...structuredClone(c.nodes[1]), name: "node-3", address: "192.0.2.13", overlayAddress: "172.16.1.13", floatingIp: { eligible: true, priority: 50 } });
    });
    const mine = s.rows.filter((r) => r.group === "node-3");
    expect(mine.length).toBeGreaterThanOrEqual(3);
    expect(mine.every((r) => r.change === "create")).toBe(true);
    expect(row(s.rows, 'terraform_data.node_membership["node-3"]')?.change).toBe("create");
    expect(mine.filter(isAgent).length).toBeGreaterThanOrEqual(2);
    const others = s.rows.filter((r) => r.groupKind === "node" && r.group !== "node-3");
    // Only peers may change (keepalived's unicast peer list), never an agent or a membership.
    expect(others.filter(isAgent)).toEqual([]);
    expect(others.filter((r) => r.type === "terraform_data")).toEqual([]);
    expect(others.every((r) => /keepalived/.test(r.address))).toBe(true);
    expect(s.totals.destroy).toBe(0);
  });

  it("a node removed: its membership instance is destroyed (decommission), the remaining node untouched", () => {
    const s = summaryOf((c) => {
      c.nodes = c.nodes.filter((n) => n.name !== "node-2");
    });
    const membership = row(s.rows, 'terraform_data.node_membership["node-2"]');
    expect(membership).toMatchObject({ groupKind: "node", group: "node-2", change: "destroy" });
    expect(membership?.why.join(" ")).toMatch(/decommission/);
    expect(s.rows.filter((r) => r.group === "node-2").every((r) => r.change === "destroy")).toBe(true);
    expect(s.rows.filter((r) => r.group === "node-2" && isAgent(r)).length).toBeGreaterThanOrEqual(2);
    expect(s.rows.filter((r) => r.group === "node-1" && (isAgent(r) || r.type === "terraform_data"))).toEqual([]);
    expect(renderPlanMarkdown(s)).toMatch(/`terraform_data\.node_membership\["node-2"\]` \| - destroy \| .*decommission/);
  });

  it("a config key changed: which key, old → new, in the agent's file, and that the agent restarts", () => {
    const s = summaryOf((c) => {
      c.nodes[1].overlayAddress = "172.16.1.22";
    });
    const consul = row(s.rows, "null_resource.node-2_consul");
    expect(consul?.why).toEqual(expect.arrayContaining([
      "consul config changed: validated on node-2 first, then consul restarts there (one node at a time)",
      "consul.hcl: bind_addr: 172.16.1.12 → 172.16.1.22",
    ]));
    // the peer's keepalived: its unicast peer list changes, a reload, no failover
    const peer = row(s.rows, "null_resource.node-1_keepalived");
    expect(peer?.why).toEqual(expect.arrayContaining(["VRRP peer list changed: keepalived reloads, no failover", "keepalived.conf: + 172.16.1.22 # node-2", "keepalived.conf: - 172.16.1.12 # node-2"]));
    // extraConfig: a new file of its own
    const extra = summaryOf((c) => {
      c.nomad.extraConfig = 'log_level = "DEBUG"\n';
    });
    expect(row(extra.rows, "null_resource.node-1_nomad")?.why).toEqual(expect.arrayContaining(["+zz-extra.hcl (new file)", "nomad config changed: validated on node-1 first, then nomad restarts there (one node at a time)"]));
  });

  itIf(hasJobs, NO_JOBS)("autoscaling off: every job row says that a count scaled in Nomad is reset to the description's", () => {
    const off = (c: Cluster) => void (c.metrics.autoscaling.enabled = false);
    const offBase = synth(edited(example, off));
    const changed = synth(edited(example, (c) => {
      off(c);
      c.app.web.count = 3;
    }));
    const web = row(summarizePlan(offBase, changed).rows, "nomad_job.web");
    expect(web?.why).toContain("group.web.count: 2 → 3");
    expect(web?.why[web.why.length - 1]).toBe("count reset to the description's (web = 3): a scale made in Nomad (UI, `nomad job scale`) is undone");
    // even when the row is cut to maxWhy items, the note stays
    const short = summarizePlan(offBase, changed, { maxWhy: 1 });
    expect(row(short.rows, "nomad_job.web")?.why).toEqual(["group.web.count: 2 → 3", "+3 more", "count reset to the description's (web = 3): a scale made in Nomad (UI, `nomad job scale`) is undone"]);
  });

  itIf(hasJobs, NO_JOBS)("autoscaling on (the default): every job row says Nomad keeps the count (preserve_counts), never that it is reset", () => {
    const s = summaryOf((c) => {
      c.app.web.resources.cpu = 150;
      c.app.web.scaling = { min: 2, max: 6 };
    });
    const web = row(s.rows, "nomad_job.web");
    expect(web?.why).toEqual(expect.arrayContaining(["group.web.scaling.max: 4 → 6"]));
    expect(web?.why[web.why.length - 1]).toBe("count kept by Nomad (preserve_counts): web keeps the count it runs, set by the autoscaler (at most 6); 2 only when the job is new; not reset");
    expect(web?.why.join("\n")).not.toMatch(/count reset/);
    const short = summarizePlan(base, synth(edited(example, (c) => void (c.app.web.resources.cpu = 150))), { maxWhy: 1 });
    expect(row(short.rows, "nomad_job.web")?.why.slice(-1)).toEqual(["count kept by Nomad (preserve_counts): web keeps the count it runs, set by the autoscaler (at most 4); 2 only when the job is new; not reset"]);
    // The bounds change is applied once by the release: its resource is replaced.
    expect(row(s.rows, "terraform_data.web_scaling_bounds")?.change).toBe("replace");
  });

  it("a bastion change updates the membership inputs in place: no decommission, no re-provisioning", () => {
    const s = summaryOf((c) => {
      c.bastion.host = "bastion2.example.org";
    });
    const memberships = s.rows.filter((r) => r.type === "terraform_data");
    expect(memberships.map((r) => r.group).sort()).toEqual(["node-1", "node-2"]);
    for (const r of memberships) {
      expect(r.change).toBe("update");
      expect(r.why).toContain("input.bastion_host: bastion.example.org → bastion2.example.org");
    }
    expect(s.rows.some((r) => r.change === "destroy" || (r.type === "terraform_data" && r.change === "replace"))).toBe(false);
  });

  itIf(hasJobs, NO_JOBS)("an image tag changed: only that job's row, the tag old → new, a Nomad deployment", () => {
    const before = example.app.images.web;
    const after = newTag(before, "4d5e6f7");
    const s = summaryOf((c) => {
      c.app.images.web = after;
    });
    expect(s.rows.length).toBeGreaterThan(0);
    expect(s.rows.filter((r) => !(r.groupKind === "job" && r.group === "web"))).toEqual([]);
    const job = row(s.rows, "nomad_job.web");
    expect(job?.change).toBe("update");
    const oldTag = before.split(":").pop();
    expect(job?.why.join("; ")).toContain(`image tag ${oldTag} → 4d5e6f7`);
    expect(job?.why.join("; ")).toMatch(/deployment/);
  });

  itIf(hasJobs, NO_JOBS)("the api image (shared by api, worker and the metrics job's queue exporter) changes those three jobs only", () => {
    const s = summaryOf((c) => {
      c.app.images.api = newTag(c.app.images.api, "4d5e6f7");
    });
    expect([...new Set(s.rows.map((r) => `${r.groupKind}:${r.group}`))].sort()).toEqual(["job:api", "job:metrics", "job:worker"]);
    expect(row(s.rows, "nomad_job.api")?.change).toBe("update");
    expect(row(s.rows, "nomad_job.worker")?.change).toBe("update");
  });

  it("a HAProxy setting: HAProxy's Nomad Variable, the changed config line named, reloaded in place", () => {
    const rows = summaryOf((c) => (c.app.web.scaling = { min: 2, max: 6 })).rows;
    const v = row(rows, "nomad_variable.haproxy");
    expect(v).toMatchObject({ change: "update", group: "haproxy" });
    expect(v!.why.join("; ")).toMatch(/items\.haproxy_cfg: \d+ line\(s\) changed \(\+ "server-template web 7 /);
    expect(v!.why).toContain("re-rendered on the running allocations: HAProxy reloads in place");
    expect(row(rows, "nomad_job.haproxy")).toBeUndefined();
  });

  it("names the variable items that changed; secrets are references, their values never appear", () => {
    expect(variableItemsDiff({ A: "${var.a}", B: "x" }, { A: "${var.a}", B: "y" }, "nomad/jobs/api")).toEqual([
      "items.B",
      "re-rendered on the running allocations: their tasks restart",
    ]);
    expect(variableItemsDiff({ A: "1" }, { A: "1" })).toEqual([]);
  });

  it("npm run summary prints the table from two cdktf.out directories", () => {
    const head = synth(edited(example, (c) => void (c.nodes[0].maintenance = true)));
    const run = (...args: string[]) =>
      execFileSync(process.execPath, [require.resolve("tsx/cli"), path.join(REPO_ROOT, "scripts", "plan-summary.ts"), ...args], { cwd: REPO_ROOT, encoding: "utf8" });
    const md = run("--out", head.outdir, "--base", base.outdir);
    expect(md).toContain("`null_resource.node-1_nomad` | -/+ replace");
    expect(md).toMatch(/\*\*Plan: 0 to create, 0 to update in place, \d+ to replace, 0 to destroy/);
    expect(run("--out", base.outdir, "--base", base.outdir)).toContain("No changes");
  });
});

describe("plan summary rules (hand-written stacks)", () => {
  const jobspec = (image: string, count: number) => `# web ${image}
job "web" {
  datacenters = ["dc1"]
  group "web" {
    count = ${count}
    update {
      canary = 1
    }
    task "web" {
      driver = "docker"
      config {
        image = "${image}"
      }
      template {
        data = <<EOH
PORT={{ env "NOMAD_PORT_http" }}
EOH
        destination = "local/env"
      }
    }
  }
}
`;
  const stackWith = (resource: any): SynthSet => ({ stacks: { "team-jobs": { resource } }, files: { "team-jobs": {} } });

  it("a nomad_job jobspec change is an update with the changed settings; the job ID change a replace", () => {
    const a = stackWith({ nomad_job: { web: { jobspec: jobspec("ghcr.io/t/web:1.0.0", 2) } } });
    const b = stackWith({ nomad_job: { web: { jobspec: jobspec("ghcr.io/t/web:1.1.0", 3) } } });
    const s = summarizePlan(a, b);
    expect(s.rows).toHaveLength(1);
    expect(s.rows[0]).toMatchObject({ groupKind: "job", group: "web", change: "update" });
    expect(s.rows[0].why).toEqual([
      "image tag 1.0.0 → 1.1.0 (task.web.config.image)",
      "group.web.count: 2 → 3",
      "new Nomad deployment (canary first)",
      "count reset to the description's (web = 3): a scale made in Nomad (UI, `nomad job scale`) is undone",
    ]);
    const renamed = stackWith({ nomad_job: { web: { jobspec: jobspec("ghcr.io/t/web:1.0.0", 2).replace('job "web"', 'job "www"') } } });
    expect(summarizePlan(a, renamed).rows[0]).toMatchObject({ change: "replace" });
  });

  it("a jobspec changed in comments only plans nothing (the provider compares parsed jobs): a note, no row", () => {
    const a = stackWith({ nomad_job: { web: { jobspec: jobspec("x:1", 2) } } });
    const b = stackWith({ nomad_job: { web: { jobspec: jobspec("x:1", 2).replace("# web", "# web, placed on 1 node") } } });
    const s = summarizePlan(a, b);
    expect(s.rows).toEqual([]);
    expect(s.notes.join(" ")).toMatch(/nomad_job\.web.*comments\/formatting only/);
  });

  it("a template change names the changed words of its changed line", () => {
    const cfg = (slots: number) => `job "haproxy" {\n  group "lb" {\n    task "haproxy" {\n      template {\n        data = <<EOH\n# ${slots} slots\nbackend api\n  server-template api ${slots} _api._tcp.service.consul check\nEOH\n      }\n    }\n  }\n}\n`;
    expect(jobspecDiff(cfg(5), cfg(7))).toEqual(["task.haproxy.template.data: server-template api 5 → 7"]);
  });

  it("reads a jobspec given as ${file(...)} from the rendered files", () => {
    const ref = '${file("rendered/jobs/web.nomad.hcl")}';
    const mk = (tag: string): SynthSet => ({
      stacks: { jobs: { resource: { nomad_job: { web: { jobspec: ref } } } } },
      files: { jobs: { "rendered/jobs/web.nomad.hcl": jobspec(`ghcr.io/t/web:${tag}`, 2) } },
    });
    expect(summarizePlan(mk("1"), mk("1")).rows).toEqual([]);
    expect(summarizePlan(mk("1"), mk("2")).rows[0].why[0]).toBe("image tag 1 → 2 (task.web.config.image)");
  });

  it("an argument added on one side reads as added (+hcl2.vars.web_count), not as removed and added", () => {
    const a = stackWith({ nomad_job: { web: { jobspec: jobspec("x:1", 2) } } });
    const b = stackWith({ nomad_job: { web: { jobspec: jobspec("x:1", 2), hcl2: { vars: { web_count: "${min(2, 4)}" } } } } });
    const why = summarizePlan(a, b).rows[0].why;
    expect(why).toContain("+hcl2.vars.web_count");
    expect(why.filter((w) => w.startsWith("-"))).toEqual([]);
    expect(summarizePlan(b, a).rows[0].why).toContain("-hcl2.vars.web_count");
  });

  it("groups a nomad_variable by its nomad/jobs/<job> path; a path change is a replace", () => {
    const v = (p: string) => stackWith({ nomad_job: { api: { jobspec: 'job "api" {\n}\n' } }, nomad_variable: { api_secrets: { path: p, items: { A: "${var.a}" } } } });
    const s = summarizePlan(v("nomad/jobs/api"), v("nomad/jobs/api/secrets"));
    expect(s.rows).toEqual([expect.objectContaining({ groupKind: "job", group: "api", address: "nomad_variable.api_secrets", change: "replace" })]);
    expect(s.rows[0].why).toEqual(["path: nomad/jobs/api → nomad/jobs/api/secrets"]);
  });

  it("ignores what Terraform does not plan (provisioners, connection, depends_on)", () => {
    const a = stackWith({ null_resource: { "n1_x": { triggers: { a: "1" }, depends_on: ["x"], provisioner: [{ "remote-exec": { inline: ["a"] } }] } } });
    const b = stackWith({ null_resource: { "n1_x": { triggers: { a: "1" }, depends_on: ["y"], provisioner: [{ "remote-exec": { inline: ["b"] } }] } } });
    expect(summarizePlan(a, b).rows).toEqual([]);
  });

  it("tells node-1 from node-10 and escapes Markdown table cells", () => {
    const nodesOut = { value: { "node-1": {}, "node-10": {} } };
    const mk = (v: string): SynthSet => ({ stacks: { s: { output: { nodes: nodesOut }, resource: { null_resource: { "node-10_nomad": { triggers: { k: v } } } } } } });
    const s = summarizePlan(mk("a|b"), mk("c"));
    expect(s.rows[0].group).toBe("node-10");
    expect(renderPlanMarkdown(s)).toContain("k: a\\|b → c");
  });

  it("jobspec settings: block paths, heredocs whole, comments ignored", () => {
    const settings = jobspecSettings(jobspec("x:1", 2));
    expect(settings.get("job.web/group.web/task.web/config/image")).toBe('"x:1"');
    expect(settings.get("job.web/group.web/task.web/template/data")).toBe('PORT={{ env "NOMAD_PORT_http" }}');
    expect(jobspecDiff(jobspec("x:1", 2), jobspec("x:1", 2).replace("# web", "# the web"))).toEqual(["comments/formatting only"]);
  });
});
