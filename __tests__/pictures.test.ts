/**
 * The Mermaid pictures of docs/pictures/ (`npm run pictures`, scripts/lib/pictures.ts):
 * committed as generated, syntactically sane, and every figure in them (order of the steps,
 * batches, timings, job names, gates) the one the code produces, checked here against the
 * synthesized output, the rendered keepalived.conf and the workflows themselves.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { REPO_ROOT, cleanup, edited, exampleCluster, synthCluster, type SynthOutput } from "./helpers/synth";
import { checkMermaid, mermaidBlocks } from "./helpers/mermaid";
import { renderPictures } from "../scripts/pictures";
import { PICTURES_DIR, PICTURE_FILES, ciPicture, failoverPicture, installSteps, keepalivedTimings, masterDownSeconds, rolloutPicture } from "../scripts/lib/pictures";
import { HEALTH_CHECK, CONSUL_DNS_CHECK, GARP, renderKeepalivedConfig, renderKeepalivedInstallScript } from "../constructs/render/keepalived";
import { consulBatches, keepalivedBatches, nodeBatches } from "../constructs/description/rollout";
import { nodesStackName } from "../constructs/stack-names";
import type { Cluster } from "../constructs/description/schema";

const example = exampleCluster();
const read = (name: string) => fs.readFileSync(path.join(REPO_ROOT, PICTURES_DIR, name), "utf8");
const diagram = (name: string, i = 0) => mermaidBlocks(read(name))[i].split("\n").map((l) => l.trim());

let synth: SynthOutput;
let generated: Record<string, string>;
beforeAll(() => {
  synth = synthCluster(example);
  generated = renderPictures();
});
afterAll(() => cleanup(synth));

describe("docs/pictures", () => {
  test("are exactly what `npm run pictures` writes now (regenerated and compared)", () => {
    expect(Object.keys(generated).sort()).toEqual(Object.values(PICTURE_FILES).sort());
    expect(fs.readdirSync(path.join(REPO_ROOT, PICTURES_DIR)).sort()).toEqual(Object.values(PICTURE_FILES).sort());
    for (const [name, text] of Object.entries(generated)) expect({ name, text: read(name) }).toEqual({ name, text });
  });

  test("`npm run pictures -- --check` passes on the committed pictures and refuses an unknown argument", () => {
    const tsx = path.join(REPO_ROOT, "node_modules", ".bin", "tsx");
    const ok = spawnSync(tsx, ["scripts/pictures.ts", "--check"], { cwd: REPO_ROOT, encoding: "utf8" });
    expect({ status: ok.status, stderr: ok.stderr }).toEqual({ status: 0, stderr: "" });
    const bad = spawnSync(tsx, ["scripts/pictures.ts", "--chek"], { cwd: REPO_ROOT, encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("unknown argument --chek");
  });

  test("every Mermaid block of README.md and docs/ passes the syntax check", () => {
    const files = ["README.md", ...fs.readdirSync(path.join(REPO_ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`), ...Object.values(PICTURE_FILES).map((f) => `${PICTURES_DIR}/${f}`)];
    let blocks = 0;
    for (const f of files) {
      for (const b of mermaidBlocks(fs.readFileSync(path.join(REPO_ROOT, f), "utf8"))) {
        blocks++;
        expect({ f, problems: checkMermaid(b) }).toEqual({ f, problems: [] });
      }
    }
    expect(blocks).toBeGreaterThanOrEqual(Object.keys(PICTURE_FILES).length + 2);
  });
});

describe("the Mermaid check itself", () => {
  test("refuses what breaks a render", () => {
    expect(checkMermaid("flowchart LR\n  a[\"x\"]\n  a --> b")).toEqual(["line 3: b is not declared"]);
    expect(checkMermaid("flowchart LR\n  subgraph s[\"x\"]\n  a[\"y\"]")).toEqual(["1 subgraph(s) not closed"]);
    expect(checkMermaid("flowchart LR\n  end[\"x\"]")).toEqual(["line 2: reserved word end as an id"]);
    expect(checkMermaid("flowchart LR\n  a[\"x; y\"]")).toEqual(['line 2: ";" or "#" in a text (outside an entity code like #40;)']);
    expect(checkMermaid("flowchart LR\n  a[\"x #40;y#41;\"]")).toEqual([]);
    expect(checkMermaid("sequenceDiagram\n  participant A\n  A->>B: hi")).toEqual(["line 3: participant B is not declared"]);
    expect(checkMermaid("sequenceDiagram\n  participant A\n  else no")).toEqual(["line 3: else outside alt"]);
    expect(checkMermaid("sequenceDiagram\n  participant A\n  alt x\n  A->>A: y")).toEqual(["1 block(s) not closed: alt"]);
    expect(checkMermaid("sequenceDiagram\n  participant A\n  A=>A: y")).toEqual(["line 3: not a statement this checker knows: A=>A: y"]);
    expect(checkMermaid("graph LR")).toEqual(["line 1: a diagram type this checker does not know: graph LR"]);
  });
});

describe("provisioning of one node", () => {
  const stack = () => synth.stacks[nodesStackName(example)];
  const lines = () => diagram(PICTURE_FILES.provisioning);
  const node = example.nodes.find((n) => n.floatingIp.eligible)!;

  test("shows the node's resources in an order the synthesized depends_on allows, each once", () => {
    const shown = lines().filter((l) => l.startsWith("Note over T,N: ")).map((l) => l.slice("Note over T,N: ".length).replace(/\[.*\]$/, ""));
    const mine = Object.entries<any>(stack().resource.null_resource).filter(([n]) => n.startsWith(`${node.name}_`)).map(([n]) => `null_resource.${n}`);
    expect(shown.sort()).toEqual(["terraform_data.node_membership", ...mine].sort());
    const displayed = lines().filter((l) => l.startsWith("Note over T,N: ")).map((l) => l.slice("Note over T,N: ".length).replace(/\[.*\]$/, ""));
    for (const address of displayed) {
      const [type, name] = address.split(".");
      for (const dep of stack().resource[type][name].depends_on ?? []) {
        if (displayed.includes(dep)) expect({ address, dep, before: displayed.indexOf(dep) < displayed.indexOf(address) }).toEqual({ address, dep, before: true });
      }
    }
    expect(displayed).toEqual(["terraform_data.node_membership", `null_resource.${node.name}_consul`, `null_resource.${node.name}_keepalived`, `null_resource.${node.name}_nomad`]);
  });

  test("each upload lists exactly the rendered files of that component; the VRRP password comes from its variable", () => {
    const files = synth.files[nodesStackName(example)];
    for (const component of ["consul", "keepalived", "nomad"]) {
      const dir = `rendered/${node.name}/${component}/`;
      const inDir = Object.keys(files).filter((f) => f.startsWith(dir)).map((f) => f.slice(dir.length)).sort();
      expect(lines()).toContain(`T->>N: uploads ${dir} (${inDir.join(", ")})`);
    }
    expect(lines()).toContain("T->>N: uploads vrrp_password from the sensitive variable vrrp_password (never rendered, never in a trigger)");
  });

  test("the install steps are in the rendered scripts' order: validation before the marker, marker before the restart, rollback only without offline validation", () => {
    const l = lines();
    const at = (text: string, from = 0) => l.findIndex((x, i) => i >= from && x.includes(text));
    const keepalived = at(`null_resource.${node.name}_keepalived`);
    expect(at("keepalived -t", keepalived)).toBeLessThan(at("reload marker set", keepalived));
    expect(at("reload marker set", keepalived)).toBeLessThan(at("reloads keepalived", keepalived));
    const nomad = at(`null_resource.${node.name}_nomad`);
    const oldNomad = at("else Nomad ");
    expect(at("validates the candidate config directory", nomad)).toBeLessThan(oldNomad);
    expect(at("rollback:", nomad)).toBeGreaterThan(oldNomad);
    expect(at("no offline validation", oldNomad)).toBeLessThan(at("rollback:", oldNomad));
  });

  test("a script without a required step refuses to be drawn (the picture cannot silently lose it)", () => {
    const script = renderKeepalivedInstallScript(example, node);
    expect(() => installSteps(script.replace(/keepalived -t -f/g, "true"), [{ pattern: /keepalived -t -f/m, says: "validates", required: true }], "x")).toThrow(/install script without keepalived -t -f/);
  });
});

describe("rollout batches", () => {
  /** The batches of one agent kind as the synthesized depends_on chains them. */
  function synthBatches(kind: string): string[][] {
    const resources = synth.stacks[nodesStackName(example)].resource.null_resource;
    const level = new Map<string, number>();
    for (const n of example.nodes) {
      const deps: string[] = resources[`${n.name}_${kind}`].depends_on ?? [];
      const previous = deps.map((d) => /^null_resource\.(.+)_(\w+)$/.exec(d)).filter((m) => m && m[2] === kind && m[1] !== n.name).map((m) => level.get(m![1])!);
      level.set(n.name, previous.length ? Math.max(...previous) + 1 : 0);
    }
    const out: string[][] = [];
    for (const [name, k] of level) (out[k] ??= []).push(name);
    return out;
  }
  const lane = (lines: string[], id: string) => lines.filter((l) => new RegExp(`^${id}_\\d+\\["batch`).test(l)).map((l) => /: ([^"]*)"\]$/.exec(l)![1].split(", "));

  test("the example's batches are those of the synthesized nodes stack", () => {
    const l = diagram(PICTURE_FILES.rollout, 0);
    for (const kind of ["consul", "keepalived", "nomad"]) expect({ kind, batches: lane(l, kind) }).toEqual({ kind, batches: synthBatches(kind) });
  });

  test("the larger cluster's batches are rollout.ts's, and a different batchSize draws different batches", () => {
    const l = diagram(PICTURE_FILES.rollout, 1);
    const size = Number(/rollout\.batchSize (\d+)/.exec(l.join("\n"))![1]);
    const nodes = lane(l, "nomad").flat();
    const eligible = /eligible: ([^)]*)\)/.exec(read(PICTURE_FILES.rollout).split("```mermaid")[1].split("```")[1])![1].split(", ");
    const larger: Cluster = { ...example, rollout: { ...example.rollout, batchSize: size }, nodes: nodes.map((name) => ({ ...example.nodes[0], name, floatingIp: { ...example.nodes[0].floatingIp, eligible: eligible.includes(name) } })) };
    expect(lane(l, "consul")).toEqual(consulBatches(larger));
    expect(lane(l, "keepalived")).toEqual(keepalivedBatches(larger));
    expect(lane(l, "nomad")).toEqual(nodeBatches(larger));
    expect(lane(l, "consul")).not.toEqual(lane(l, "nomad"));
    const two = rolloutPicture({ cluster: example, source: "x" }, { cluster: { ...larger, rollout: { ...larger.rollout, batchSize: 2 } }, what: "y" });
    expect(two).toContain(`batch 1: ${nodes.slice(0, 2).join(", ")}`);
    expect(two).not.toEqual(rolloutPicture({ cluster: example, source: "x" }, { cluster: larger, what: "y" }));
  });
});

describe("CI flow", () => {
  const workflows = ["ci", "deploy"].map((w) => ({ w, doc: parse(fs.readFileSync(path.join(REPO_ROOT, "ci-templates", "github", "workflows", `${w}.yml`), "utf8")) }));

  test("every job and every `needs` of the GitHub workflows is drawn", () => {
    const l = diagram(PICTURE_FILES.ci);
    for (const { w, doc } of workflows) {
      for (const [id, job] of Object.entries<any>(doc.jobs)) {
        expect(l.some((x) => x.startsWith(`${w}_${id}["${job.name}`))).toBe(true);
        for (const n of [job.needs ?? []].flat()) expect(l).toContain(`${w}_${n} --> ${w}_${id}`);
      }
    }
  });

  test("each refusal hangs on the job that refuses: approval, plan, deploy with its preflight and apply", () => {
    const l = diagram(PICTURE_FILES.ci);
    const gatesOf = (job: string) => l.filter((x) => x.startsWith(`${job} -.- `)).map((x) => x.split(" -.- ")[1]).map((id) => l.find((y) => y.startsWith(`${id}{{`))!);
    expect(gatesOf("deploy_approval").join()).toContain("check-approval.ts");
    expect(gatesOf("deploy_plan").join()).toContain("tip of main");
    expect(gatesOf("deploy_plan").join()).toContain("environment production-plan");
    const deploy = gatesOf("deploy_deploy").join();
    for (const g of ["plan-bundle.sh", "preflight", "Apply the reviewed plans", "environment production"]) expect(deploy).toContain(g);
    expect(gatesOf("ci_synth")).toEqual([]);
    // a step renamed in the workflow is renamed in the picture
    const renamed = structuredClone(workflows[1].doc);
    renamed.jobs.plan.steps.find((s: any) => /refused/.test(s.name ?? "")).name = "Plan (refused when stale)";
    expect(ciPicture([{ file: "x.yml", workflow: renamed }])).toContain("step: Plan (refused when stale)");
  });
});

describe("floating-IP failover", () => {
  const eligible = example.nodes.filter((n) => n.floatingIp.eligible);
  const text = () => read(PICTURE_FILES.failover);

  test("timings are the rendered keepalived.conf's: advert interval, checks, priorities, skew, GARP", () => {
    const backup = [...eligible].sort((a, b) => a.floatingIp.priority - b.floatingIp.priority)[0];
    const adv = example.floatingIp.advertInterval;
    const skew = ((256 - backup.floatingIp.priority) * adv) / 256;
    const t = text();
    expect(t).toContain(`VRRP advert every ${adv} s (advert_int)`);
    expect(t).toContain(`t = ${Number((3 * adv + skew).toFixed(2))} s: no advert for 3 x ${adv} s + skew ${Number(skew.toFixed(2))} s (priority ${backup.floatingIp.priority})`);
    expect(t).toContain(`health check every ${HEALTH_CHECK.interval} s, fails after at most ${HEALTH_CHECK.timeout} s`);
    expect(t).toContain(`t ≤ ${HEALTH_CHECK.fall * HEALTH_CHECK.interval} s: ${HEALTH_CHECK.fall} failures in a row (fall ${HEALTH_CHECK.fall})`);
    expect(t).toContain(`consul_dns fails ${CONSUL_DNS_CHECK.fall} times (every ${CONSUL_DNS_CHECK.interval} s)`);
    expect(t).toContain(`gratuitous ARP again ${GARP.masterDelay} s later, then every ${GARP.masterRefresh} s`);
    expect(t).toContain(`${HEALTH_CHECK.rise} good checks (rise ${HEALTH_CHECK.rise})`);
    for (const n of eligible) expect(t).toContain(`${n.name} (priority ${n.floatingIp.priority}`);
  });

  test("another description draws other timings (advert_int 2, priority 200 for the backup of node-1 at 250)", () => {
    const c = edited(example, (x) => {
      x.floatingIp.advertInterval = 2;
      x.nodes[0].floatingIp.priority = 250;
      x.nodes[1].floatingIp.priority = 200;
    });
    const timings = c.nodes.filter((n) => n.floatingIp.eligible).map((n) => keepalivedTimings(n.name, renderKeepalivedConfig(c, n)));
    expect(masterDownSeconds(timings[1])).toBeCloseTo(6 + (56 * 2) / 256, 6);
    expect(failoverPicture(timings, "x")).toContain(`t = ${Number((6 + 112 / 256).toFixed(2))} s: no advert for 3 x 2 s`);
  });
});
