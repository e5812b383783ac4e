/**
 * Topology picture (`npm run topology`): Mermaid generated from the description, committed
 * as docs/topology.mmd and docs/topology.md, syntactically sane.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { clusterFromText, edited, exampleCluster, exampleText, REPO_ROOT } from "./helpers/synth";
import type { Cluster } from "../constructs/description/schema";
import { escapeLabel, renderTopologyMarkdown, renderTopologyMermaid } from "../constructs/render/topology";
import { renderKeepalivedConfig } from "../constructs/render/keepalived";

const example = exampleCluster();
const SOURCE = "clusters/example.yaml";
const render = (c: Cluster) => renderTopologyMermaid(c, { source: SOURCE });

/** Mermaid node ids declared (nodes and subgraphs) and referenced by edges, labels and structure. */
function parseMermaid(text: string) {
  const declared = new Set<string>();
  const referenced: string[] = [];
  const labels: string[] = [];
  let depth = 0;
  const lines = text.split("\n").map((l) => l.trim());
  expect(lines[0]).toBe("flowchart LR");
  for (const line of lines.slice(1)) {
    if (!line || line.startsWith("%%") || line.startsWith("classDef ") || line.startsWith("direction ")) continue;
    for (const m of line.matchAll(/"([^"]*)"/g)) labels.push(m[1]);
    // every quote is paired: labels never contain one
    expect((line.match(/"/g) ?? []).length % 2).toBe(0);
    if (line === "end") {
      depth--;
      continue;
    }
    const sub = /^subgraph ([A-Za-z0-9_]+)\["[^"]*"\]$/.exec(line);
    if (sub) {
      declared.add(sub[1]);
      depth++;
      continue;
    }
    const cls = /^class ([A-Za-z0-9_,]+) [A-Za-z]+$/.exec(line);
    if (cls) {
      referenced.push(...cls[1].split(","));
      continue;
    }
    const edge = /^([A-Za-z0-9_]+) (-->|-\.->|-\.-)\|"[^"]*"\| ([A-Za-z0-9_]+)$/.exec(line);
    if (edge) {
      referenced.push(edge[1], edge[3]);
      continue;
    }
    const node = /^([A-Za-z0-9_]+)(\["[^"]*"\]|\(\["[^"]*"\]\)|\[\("[^"]*"\)\]|\{\{"[^"]*"\}\})$/.exec(line);
    if (node) {
      expect(declared.has(node[1])).toBe(false);
      declared.add(node[1]);
      continue;
    }
    throw new Error(`unrecognized Mermaid line: ${line}`);
  }
  expect(depth).toBe(0);
  return { declared, referenced, labels };
}

describe("topology picture", () => {
  it("is generated from the example description: nodes, overlay addresses, floating IP, tunnels, servers, jobs, routes, services", () => {
    const m = render(example);
    for (const n of example.nodes) {
      expect(m).toContain(`${n.name} · ${n.overlayAddress}`);
      expect(m).toContain(`keepalived priority ${n.floatingIp.priority}`);
      expect(m).toContain(`https://${n.name}.example.org/`);
      expect(m).toContain(`${n.overlayAddress}:${example.app.haproxy.nodePort}`);
    }
    expect(m).toContain(`floating IP ${example.floatingIp.address}`);
    expect(m).toMatch(/tunnel_public -->\|":8081"\| fip/);
    expect(m).toContain("https://team-example.example.org/");
    expect(m).toContain("Consul + Nomad servers");
    expect(m).toContain("172.16.2.100"); // servers.join: the servers' IP
    expect(m).toMatch(/n_node_1_keepalived -\.-\|"VRRP unicast"\| n_node_2_keepalived/);
    expect(m).toContain(`web ×${example.app.web.count}`);
    expect(m).toContain(`api ×${example.app.api.count}`);
    expect(m).toContain(`worker ×${example.app.worker.count}`);
    expect(m).toMatch(/n_node_1_haproxy -->\|"\/image…"\| job_api/);
    expect(m).toMatch(/n_node_1_haproxy -->\|"\/"\| job_web/);
    expect(m).toMatch(/job_worker -->\|"[^"]*"\| broker/);
    expect(m).toContain(example.app.broker.host);
    expect(m).toMatch(/job_api -->\|"S3 API"\| s3/);
    expect(m).toMatch(/job_worker -->\|"S3 API"\| s3/);
    expect(m).toContain(example.app.s3.endpoint);
    expect(m).toMatch(/actor_operator -->\|"[^"]*"\| bastion/);
    expect(m).not.toContain("⚑");
  });

  it("follows the description: a node added, maintenance, counts, a node not eligible for the floating IP", () => {
    const c = edited(example, (d) => {
      d.nodes.push({ ...structuredClone(d.nodes[1]), name: "node-3", address: "192.0.2.13", overlayAddress: "172.16.1.13", floatingIp: { eligible: false, priority: 100 } });
      d.nodes[0].maintenance = true;
      d.app.web.count = 3;
      d.app.worker.count = 5;
    });
    const m = render(c);
    expect(m).toContain("node-3 · 172.16.1.13");
    expect(m).toMatch(/bastion -->\|"ssh 192\.0\.2\.13"\| n_node_3_agents/);
    expect(m).toContain("node-1 · 172.16.1.11 · ⚑ maintenance");
    // under maintenance the picture shows the priority keepalived runs with (the rendered config's)
    const rendered = renderKeepalivedConfig(c, c.nodes[0]);
    expect(rendered).toMatch(/^\s*priority 1$/m);
    expect(m).toContain(`keepalived priority 1, maintenance: ${c.nodes[0].floatingIp.priority} otherwise`);
    expect(m).toMatch(/n_node_1_keepalived -\.->\|"only if no peer can, priority 1"\| fip/);
    expect(m).not.toContain(`may hold, priority ${c.nodes[0].floatingIp.priority}"| fip`);
    expect(m).not.toContain("node-2 · 172.16.1.12 · ⚑");
    expect(m).toMatch(/^ {2}class n_node_1_agents,n_node_1_haproxy,n_node_1_keepalived maintenance$/m);
    expect(m).toContain("placed on node-2, node-3");
    expect(m).toContain("web ×3");
    expect(m).toContain("worker ×5");
    // node-3: no HAProxy, no keepalived, no VRRP peering; its tunnel has no listener
    expect(m).not.toContain("n_node_3_haproxy");
    expect(m).not.toContain("n_node_3_keepalived");
    expect(m).toMatch(/tunnel_node_3 -\.->\|"172\.16\.1\.13:8080: no listener"\| n_node_3_agents/);
    parseMermaid(m);
  });

  it("is syntactically sane: ids declared before use, labels without quotes or brackets, subgraphs closed", () => {
    const variants = [example, edited(example, (d) => void (d.nodes[1].maintenance = true))];
    for (const c of variants) {
      const { declared, referenced, labels } = parseMermaid(render(c));
      expect(referenced.filter((id) => !declared.has(id))).toEqual([]);
      expect([...declared].filter((id) => /^(end|graph|subgraph|flowchart|class|style)$/.test(id))).toEqual([]);
      for (const l of labels) expect(l.replace(/<br\/>/g, "")).not.toMatch(/["[\](){}<>|]/);
    }
    expect(escapeLabel('a "b" [c] (d) {e} <f> |g| #h')).toBe("a #quot;b#quot; #91;c#93; #40;d#41; #123;e#125; #lt;f#gt; #124;g#124; #35;h");
  });

  it("escapes description values that would break a label", () => {
    const c = edited(example, (d) => {
      d.bastion.user = 'stu"dent[x]';
    });
    const { labels } = parseMermaid(render(c));
    expect(labels.some((l) => l.includes("stu#quot;dent#91;x#93;@"))).toBe(true);
  });

  it("the committed docs/topology.mmd and docs/topology.md are the freshly generated ones", () => {
    expect(fs.readFileSync(path.join(REPO_ROOT, "docs", "topology.mmd"), "utf8")).toBe(render(example));
    const md = fs.readFileSync(path.join(REPO_ROOT, "docs", "topology.md"), "utf8");
    expect(md).toBe(renderTopologyMarkdown(example, { source: SOURCE }));
    expect(md).toContain("```mermaid\nflowchart LR\n");
    // the README shows the same picture
    const block = md.slice(md.indexOf("```mermaid"), md.lastIndexOf("```") + 3);
    expect(fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8")).toContain(block);
  });

  describe("npm run topology", () => {
    const run = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [require.resolve("tsx/cli"), path.join(REPO_ROOT, "scripts", "topology.ts"), ...args], {
        cwd: REPO_ROOT,
        encoding: "utf8",
        env: { ...process.env, ...env },
      });

    it("--check passes on the committed files, and says that it loaded the example", () => {
      const r = run(["--check"], { CLUSTER_FILE: "" });
      expect(r.stderr).toBe(
        "cluster description: clusters/example.yaml -> stacks team-example-nodes, team-example-jobs\n" +
          "NOTE: CLUSTER_FILE is not set, so this is THE EXAMPLE cluster, not yours. Pick yours with e.g. CLUSTER_FILE=clusters/<team>.yaml npm run <command>\n",
      );
      expect(r.stdout).toBe("");
      expect(r.status).toBe(0);
    });

    it("another description: refuses to overwrite the project's docs; --out DIR draws it there", () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "topology-"));
      const docs = () => ["topology.mmd", "topology.md"].map((f) => fs.readFileSync(path.join(REPO_ROOT, "docs", f), "utf8"));
      const before = docs();
      try {
        const file = path.join(dir, "team-blue.yaml");
        fs.writeFileSync(file, exampleText().replace("name: team-example", "name: team-blue"));
        const refused = run([], { CLUSTER_FILE: file });
        expect(refused.status).toBe(2);
        expect(refused.stderr).toContain(`cluster description: ${file} (CLUSTER_FILE) -> stacks team-blue-nodes, team-blue-jobs`);
        expect(refused.stderr).toContain("npm run topology -- --out DIR");
        expect(docs()).toEqual(before);

        const out = path.join(dir, "pictures");
        const r = run(["--out", out], { CLUSTER_FILE: file });
        expect(r.stderr).not.toContain("error");
        expect(r.status).toBe(0);
        expect(r.stdout).toContain(`wrote ${path.relative(REPO_ROOT, path.join(out, "topology.mmd"))}`);
        const mmd = fs.readFileSync(path.join(out, "topology.mmd"), "utf8");
        expect(mmd).toContain("Topology of cluster team-blue");
        expect(mmd).toBe(renderTopologyMermaid(clusterFromText(fs.readFileSync(file, "utf8")), { source: path.relative(REPO_ROOT, file) }));
        expect(fs.readFileSync(path.join(out, "topology.md"), "utf8")).toContain("```mermaid\nflowchart LR\n");
        expect(docs()).toEqual(before);
        // the directory is now fresh for --check, the docs are not touched
        expect(run(["--out", out, "--check"], { CLUSTER_FILE: file }).status).toBe(0);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("--check fails for a description the committed picture does not show, writing nothing", () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "topology-"));
      try {
        const file = path.join(dir, "other.yaml");
        fs.writeFileSync(file, exampleText().replace("count: 2 }", "count: 3 }"));
        const r = run(["--check", "--out", path.join(REPO_ROOT, "docs")], { CLUSTER_FILE: file });
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/docs\/topology\.mmd is stale/);
        expect(fs.readFileSync(path.join(REPO_ROOT, "docs", "topology.mmd"), "utf8")).toBe(render(example));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("an invalid description prints its problems and exits 1", () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "topology-"));
      try {
        const file = path.join(dir, "bad.yaml");
        fs.writeFileSync(file, exampleText().replace("virtualRouterId: 100", "virtualRouterId: 300"));
        const r = run(["--check"], { CLUSTER_FILE: file });
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/floatingIp\.virtualRouterId \(line \d+\)/);
        expect(r.stderr).not.toMatch(/\n\s+at /);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
