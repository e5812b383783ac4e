/**
 * Every description shipped in clusters/ is valid and synthesizes; each provider
 * generation's description produces what that generation needs (facts from the provider's
 * playbook/, see /work/shared/docs/infrastructure.md and docs/description.md "Supported provider
 * generations"), read back from the real synth output with HashiCorp's HCL parser.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { loadDescriptionFile, loadDescriptionText } from "../constructs/description/load";
import type { Cluster } from "../constructs/description/schema";
import { renderTopologyMermaid } from "../constructs/render/topology";
import { cleanup, hasCommand, itIf, parseHcl, REPO_ROOT, resourcesOf, synthCluster, type SynthOutput } from "./helpers/synth";

const CLUSTERS = path.join(REPO_ROOT, "clusters");
const descriptions = fs.readdirSync(CLUSTERS).filter((f) => f.endsWith(".yaml"));
const GENERATIONS = ["2022", "2023", "2024", "2025"] as const;

function load(file: string): Cluster {
  const r = loadDescriptionFile(path.join(CLUSTERS, file));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.cluster;
}

describe("shipped cluster descriptions", () => {
  it("there is one per provider generation, plus the example", () => {
    expect(descriptions.sort()).toEqual(["example.yaml", ...GENERATIONS.map((g) => `provider-${g}.yaml`)]);
  });

  it.each(descriptions)("%s is valid and synthesizes both stacks", (f) => {
    const c = load(f);
    const out = synthCluster(c);
    try {
      expect(Object.keys(out.stacks).sort()).toEqual([`${c.name}-jobs`, `${c.name}-nodes`]);
    } finally {
      cleanup(out);
    }
  });
});

/** What each generation's provisioning code sets (playbook/ at that year's commit). */
const FACTS = {
  "2022": { consul: "1.11.5", nomad: "1.2.6", datacenter: "dc1", serverVm: false, iface: "vxlan100", linkDns: "none", nodes: 2 },
  "2023": { consul: "1.15.2", nomad: "1.5.3", datacenter: "team-2023", serverVm: true, iface: "vxlan100", linkDns: "agent", nodes: 2 },
  "2024": { consul: "1.18.1", nomad: "1.7.7", datacenter: "team-2024", serverVm: true, iface: "vxlan4", linkDns: "agent", nodes: 2 },
  "2025": { consul: "1.20.5", nomad: "1.9.7", datacenter: "team-2025", serverVm: true, iface: "vxlan5", linkDns: "agent", nodes: 2 },
} as const;

/**
 * What the shipped descriptions join: an address that year's provider gives, since no
 * year's playbook publishes a name for the servers (2022 writes its zone to a local file,
 * 2023+ has no zone task). 2022: the mail's consul_address of the placeholder team
 * (172.16.2.N, N = 7, as its floating IP 172.16.3.7); 2023+: the server VM's overlay
 * address, which its agents advertise.
 */
const JOIN: Record<(typeof GENERATIONS)[number], string> = { "2022": "172.16.2.7", "2023": "172.16.1.30", "2024": "172.16.4.100", "2025": "172.16.5.100" };
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

describe.each(GENERATIONS)("clusters/provider-%s.yaml", (year) => {
  const facts = FACTS[year];
  let c: Cluster;
  let out: SynthOutput;
  let nodes: Record<string, string>;
  let jobs: Record<string, string>;
  beforeAll(() => {
    c = load(`provider-${year}.yaml`);
    out = synthCluster(c);
    nodes = out.files[`${c.name}-nodes`];
    jobs = out.files[`${c.name}-jobs`];
  });
  afterAll(() => cleanup(out));

  it("describes that year's shape: versions, datacenter, overlay, link DNS, server placement, VM count", () => {
    expect(c.versions).toEqual({ consul: facts.consul, nomad: facts.nomad });
    expect(c.servers.datacenter).toBe(facts.datacenter);
    expect(c.region).toBe("global");
    expect(c.overlay.interface).toBe(facts.iface);
    expect(c.overlay.linkDns).toBe(facts.linkDns);
    expect(c.servers.vm !== undefined).toBe(facts.serverVm);
    // 2023+: three VMs = the server VM + two client nodes; 2022: two client nodes.
    expect(c.nodes.length + (c.servers.vm ? 1 : 0)).toBe(facts.serverVm ? 3 : 2);
  });

  it("joins an address that year's provider gives (no name: no playbook publishes one), in both agents and the install's server checks", async () => {
    expect(c.servers.join).toEqual([JOIN[year]]);
    expect(c.servers.join.every((a) => IPV4.test(a))).toBe(true);
    if (c.servers.vm) expect(c.servers.join).toEqual([c.servers.vm.overlayAddress]);
    for (const n of c.nodes) {
      const consul = await parseHcl("c.hcl", nodes[`rendered/${n.name}/consul/consul.hcl`]);
      expect(consul.retry_join).toEqual([JOIN[year]]);
      const nomad = await parseHcl("n.hcl", nodes[`rendered/${n.name}/nomad/nomad.hcl`]);
      expect(nomad.client[0].server_join[0].retry_join).toEqual([JOIN[year]]);
      // the install asks the servers at that address: nothing to resolve before the join
      expect(nodes[`rendered/${n.name}/consul/install.sh`]).toContain(`readonly SERVERS_HTTP='http://${JOIN[year]}:8500'`);
      expect(nodes[`rendered/${n.name}/nomad/install.sh`]).toContain(`readonly SERVERS_HTTP='http://${JOIN[year]}:4646'`);
    }
  });

  it("clients join the servers' datacenter and region, and never provision the server VM", async () => {
    for (const n of c.nodes) {
      const consul = await parseHcl("c.hcl", nodes[`rendered/${n.name}/consul/consul.hcl`]);
      expect(consul).toMatchObject({ datacenter: facts.datacenter, server: false });
      const nomad = await parseHcl("n.hcl", nodes[`rendered/${n.name}/nomad/nomad.hcl`]);
      expect(nomad).toMatchObject({ datacenter: facts.datacenter, region: "global" });
      expect(nomad.server[0].enabled).toBe(false);
      expect(nodes[`rendered/${n.name}/consul/install.sh`]).toContain(`readonly SERVERS_DATACENTER='${facts.datacenter}'`);
    }
    if (c.servers.vm) {
      const vm = c.servers.vm.name;
      expect(Object.keys(nodes).filter((f) => f.startsWith(`rendered/${vm}/`))).toEqual([]);
      expect(Object.keys(resourcesOf(out.stacks[`${c.name}-nodes`], "null_resource")).filter((r) => r.startsWith(`${vm}_`))).toEqual([]);
      // the install asks the servers on the server VM's advertised overlay address
      expect(nodes[`rendered/${c.nodes[0].name}/consul/install.sh`]).toContain(`readonly SERVERS_HTTP='http://${c.servers.vm.overlayAddress}:8500'`);
    }
    // the topology picture shows where the servers are: the server VM, or the provider's host
    const servers = renderTopologyMermaid(c).split("\n").find((l) => l.includes("servers[("))!;
    expect(servers).toContain(`datacenter ${facts.datacenter}, region global`);
    expect(servers).toContain(c.servers.vm ? `on team VM ${c.servers.vm.name} · ${c.servers.vm.overlayAddress}, not provisioned here` : c.servers.join[0]);
    const jobspec = await parseHcl("web.hcl", jobs["rendered/jobs/web.nomad.hcl"]);
    expect(jobspec.job.web[0].datacenters).toEqual([facts.datacenter]);
  });

  itIf(hasCommand("shellcheck"), "shellcheck is not installed (apt-get install shellcheck)")("its install scripts (this version's branches) are shellcheck-clean", () => {
    const scripts = Object.keys(nodes).filter((f) => f.endsWith(".sh"));
    expect(scripts.length).toBeGreaterThanOrEqual(c.nodes.length * 3);
    // throws (non-zero exit) with shellcheck's findings on any warning
    execFileSync("shellcheck", ["-S", "warning", "-s", "bash", ...scripts], { cwd: path.join(out.outdir, "stacks", `${c.name}-nodes`), stdio: "pipe" });
  });

  it("client DNS fits the link: recursors where the link sends the internal domain to the agent, none where it does not", async () => {
    const consul = await parseHcl("c.hcl", nodes[`rendered/${c.nodes[0].name}/consul/consul.hcl`]);
    // the agent serves DNS on the overlay address, port 53, in every generation (HAProxy's resolvers)
    expect(consul.addresses[0].dns).toBe(c.nodes[0].overlayAddress);
    expect(consul.ports[0].dns).toBe(53);
    if (facts.linkDns === "agent") expect(consul.recursors).toEqual(["1.1.1.1", "1.0.0.1"]);
    else expect(consul).not.toHaveProperty("recursors");
  });

  it("uses only what that year's Nomad offers: Variables and config validate from 1.4/1.3, Consul KV and a restart check before", async () => {
    const install = nodes[`rendered/${c.nodes[0].name}/nomad/install.sh`];
    const api = jobs["rendered/jobs/api.nomad.hcl"];
    const haproxy = await parseHcl("h.hcl", jobs["rendered/jobs/haproxy.nomad.hcl"]);
    const haproxyTask = haproxy.job.haproxy[0].group.haproxy[0].task.haproxy[0];
    // From Nomad 1.4 (change_script) the template writes a candidate that start.sh/reload.sh
    // install after haproxy -c; before, the running file itself.
    const cfgTemplate = haproxyTask.template.find((t: any) => t.destination === "local/haproxy.cfg" || t.destination === "local/haproxy.cfg.next");
    const jobsStack = out.stacks[`${c.name}-jobs`];
    if (year === "2022") {
      expect(install).not.toContain('nomad config validate "$candidate"');
      expect(install).toContain("restore_previous");
      expect(api).not.toContain("nomadVar");
      expect(api).toContain('AWS_SECRET_ACCESS_KEY={{ key "nomad-secrets/api/AWS_SECRET_ACCESS_KEY" | toJSON }}');
      expect(Object.keys(resourcesOf(jobsStack, "nomad_variable"))).toEqual([]);
      expect(resourcesOf(jobsStack, "consul_keys").api.key.map((k: any) => k.path)).toContain("nomad-secrets/api/AWS_SECRET_ACCESS_KEY");
      expect(cfgTemplate).toMatchObject({ destination: "local/haproxy.cfg", change_mode: "signal", change_signal: "SIGUSR2" });
      expect(haproxyTask.service[0]).not.toHaveProperty("provider");
    } else {
      expect(install).toContain('nomad config validate "$candidate"');
      expect(install).not.toContain("restore_previous");
      expect(api).toContain('{{ with nomadVar "nomad/jobs/api" -}}');
      expect(Object.keys(resourcesOf(jobsStack, "consul_keys"))).toEqual([]);
      // metrics: Grafana's admin password, the queue exporter's broker URL (autoscaling is on by default)
      expect(Object.keys(resourcesOf(jobsStack, "nomad_variable")).sort()).toEqual(["api", "haproxy", "metrics", "worker"]);
      expect(cfgTemplate.change_mode).toBe("script");
      expect(cfgTemplate.destination).toBe("local/haproxy.cfg.next");
      expect(haproxyTask.service[0].provider).toBe("consul");
    }
    // in either form the secret is an apply-time reference to a sensitive variable, never a value
    const items = year === "2022" ? Object.fromEntries(resourcesOf(jobsStack, "consul_keys").api.key.map((k: any) => [k.path.split("/").pop(), k.value])) : resourcesOf(jobsStack, "nomad_variable").api.items;
    expect(items.AWS_SECRET_ACCESS_KEY).toBe("${var.s3_secret_access_key}");
    expect(jobsStack.variable.s3_secret_access_key).toMatchObject({ sensitive: true });
    expect(jobsStack.variable.s3_secret_access_key).not.toHaveProperty("default");
  });
});

describe("descriptions the generations' facts rule out", () => {
  const text = fs.readFileSync(path.join(CLUSTERS, "provider-2024.yaml"), "utf8");
  const problems = (t: string) => {
    const r = loadDescriptionText(t);
    return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
  };

  it("the server VM listed as a node is refused, with the field", () => {
    const t = text.replace("overlayAddress: 172.16.4.101", "overlayAddress: 172.16.4.100");
    expect(problems(t)).toEqual([expect.stringMatching(/^nodes\[0\]\.overlayAddress: expected a node other than the server VM \(servers\.vm\.overlayAddress is 172\.16\.4\.100\)/)]);
  });

  it("a link that sends DNS to the agent needs recursors", () => {
    const t = text.replace("  recursors: [1.1.1.1, 1.0.0.1] # as the provider's servers\n", "  recursors: []\n");
    expect(problems(t)).toEqual([expect.stringMatching(/^consul\.recursors: expected at least one upstream DNS server/)]);
  });

  it("a link that sends no DNS to the agent refuses recursors (they would only open a resolver to the overlay)", () => {
    const t2022 = fs.readFileSync(path.join(CLUSTERS, "provider-2022.yaml"), "utf8").replace("  linkDns: none\n", "  linkDns: none\nconsul:\n  recursors: [1.1.1.1]\n");
    expect(t2022).toContain("recursors: [1.1.1.1]");
    expect(problems(t2022)).toEqual([expect.stringMatching(/^consul\.recursors: expected none with overlay\.linkDns: none: .*open resolver for everyone on the shared overlay/)]);
    // the same recursors with the link that needs them are accepted
    expect(problems(t2022.replace("  linkDns: none\n", "  linkDns: agent\n"))).toEqual([]);
  });

  it("a version older than the oldest supported names the field, the version and the minimum", () => {
    const t = text.replace("nomad: 1.7.7", "nomad: 1.1.4");
    expect(problems(t)).toEqual(["versions.nomad: expected nomad 1.2.0 or newer (the oldest the output is checked against), got string \"1.1.4\""]);
  });

  it("the datacenter is required: no default could be right for every generation", () => {
    const t = text.replace("  datacenter: team-2024           # the provider's servers: datacenter = the group name\n", "");
    expect(problems(t)).toEqual([expect.stringMatching(/^servers\.datacenter: /)]);
  });
});
