/**
 * The cluster description: the example is valid, and a corpus of broken descriptions
 * yields, all at once, one message per problem naming its path and what was expected.
 */
import { parse, stringify } from "yaml";
import { loadDescriptionText, type Problem } from "../constructs/description/load";
import { exampleText } from "./helpers/synth";

type Raw = any;
/** A broken description: an edit of the example, and the problems it must produce. */
interface BrokenCase {
  name: string;
  edit: (d: Raw) => void;
  expected: { path: string; message: RegExp }[];
}

const corpus: BrokenCase[] = [
  { name: "unknown top-level key", edit: (d) => (d.nodez = []), expected: [{ path: "nodez", message: /unknown key 'nodez'/ }] },
  { name: "misspelled node key", edit: (d) => (d.nodes[0].overlayAdress = "172.16.1.11"), expected: [{ path: "nodes[0].overlayAdress", message: /unknown key/ }] },
  { name: "missing bastion user", edit: (d) => delete d.bastion.user, expected: [{ path: "bastion.user", message: /required \(expected string\)/ }] },
  { name: "duplicate node names", edit: (d) => (d.nodes[1].name = "node-1"), expected: [{ path: "nodes[1].name", message: /unique node names: node-1 is also nodes\[0\]\.name/ }] },
  { name: "duplicate node addresses", edit: (d) => (d.nodes[1].address = d.nodes[0].address), expected: [{ path: "nodes[1].address", message: /unique node addresses/ }] },
  { name: "duplicate overlay addresses", edit: (d) => (d.nodes[1].overlayAddress = d.nodes[0].overlayAddress), expected: [{ path: "nodes[1].overlayAddress", message: /unique overlay addresses/ }] },
  { name: "overlay address outside the prefix", edit: (d) => (d.nodes[0].overlayAddress = "10.1.1.11"), expected: [{ path: "nodes[0].overlayAddress", message: /inside overlay\.prefix 172\.16\.0\.0\/16, got 10\.1\.1\.11/ }] },
  { name: "floating IP outside the prefix", edit: (d) => (d.floatingIp.address = "192.168.3.100"), expected: [{ path: "floatingIp.address", message: /inside overlay\.prefix/ }] },
  { name: "floating IP equal to a node's overlay address", edit: (d) => (d.floatingIp.address = d.nodes[1].overlayAddress), expected: [{ path: "floatingIp.address", message: /different from every node's overlay address.*node-2/ }] },
  { name: "router id out of range", edit: (d) => (d.floatingIp.virtualRouterId = 256), expected: [{ path: "floatingIp.virtualRouterId", message: /VRRP router id 1-255, got number 256/ }] },
  { name: "router id zero", edit: (d) => (d.floatingIp.virtualRouterId = 0), expected: [{ path: "floatingIp.virtualRouterId", message: /VRRP router id 1-255/ }] },
  { name: "count zero", edit: (d) => (d.app.api.count = 0), expected: [{ path: "app.api.count", message: /at least 1 instance, got number 0/ }] },
  { name: "image tag latest", edit: (d) => (d.app.images.web = "ghcr.io/example-team/image-web:latest"), expected: [{ path: "app.images.web", message: /not 'latest'/ }] },
  { name: "untagged image", edit: (d) => (d.app.images.api = "ghcr.io/example-team/image-api"), expected: [{ path: "app.images.api", message: /explicit tag/ }] },
  { name: "malformed overlay prefix", edit: (d) => (d.overlay.prefix = "172.16.0.0"), expected: [{ path: "overlay.prefix", message: /CIDR notation/ }] },
  { name: "overlay prefix with host bits", edit: (d) => (d.overlay.prefix = "172.16.1.0/16"), expected: [{ path: "overlay.prefix", message: /network address \(host bits zero\)/ }] },
  { name: "invalid IPv4 overlay address", edit: (d) => (d.nodes[0].overlayAddress = "172.16.1.300"), expected: [{ path: "nodes[0].overlayAddress", message: /IPv4 address/ }] },
  { name: "http public URL", edit: (d) => (d.app.publicUrl = "http://team-example.example.org"), expected: [{ path: "app.publicUrl", message: /https:\/\// }] },
  { name: "private key given inline", edit: (d) => (d.ssh.privateKey = { key: "-----BEGIN OPENSSH PRIVATE KEY-----" }), expected: [{ path: "ssh.privateKey", message: /either \{ agent: true \}.*\{ file:/ }] },
  { name: "bad host key", edit: (d) => (d.bastion.hostKey = "not-a-key"), expected: [{ path: "bastion.hostKey", message: /OpenSSH public host key/ }] },
  { name: "no host keys, no opt-out", edit: (d) => { delete d.bastion.hostKey; delete d.nodes[1].hostKey; }, expected: [
    { path: "bastion.hostKey", message: /expected the bastion's pinned host key.*or set ssh\.insecureIgnoreHostKey: true/ },
    { path: "nodes[1].hostKey", message: /expected the node's pinned host key.*ssh-keyscan -t ecdsa 192\.0\.2\.12/ },
  ] },
  { name: "a node key without the bastion's (opt-out set)", edit: (d) => { d.ssh.insecureIgnoreHostKey = true; delete d.bastion.hostKey; delete d.nodes[1].hostKey; }, expected: [
    { path: "bastion.hostKey", message: /expected bastion\.hostKey too, since nodes\[0\] pins a host key: .*fails every connection at the bastion/ },
  ] },
  { name: "the bastion's key without a node's (opt-out set)", edit: (d) => { d.ssh.insecureIgnoreHostKey = true; delete d.nodes[1].hostKey; }, expected: [
    { path: "nodes[1].hostKey", message: /ignore bastion_host_key.*the bastion would go unchecked/ },
  ] },
  { name: "no nodes", edit: (d) => (d.nodes = []), expected: [{ path: "nodes", message: /at least 1 item/ }] },
  { name: "bad node name", edit: (d) => (d.nodes[0].name = "Node_1"), expected: [{ path: "nodes[0].name", message: /lowercase letters/ }] },
  { name: "port out of range", edit: (d) => (d.bastion.port = 70000), expected: [{ path: "bastion.port", message: /TCP port 1-65535, got number 70000/ }] },
  { name: "wrong type", edit: (d) => (d.floatingIp.virtualRouterId = "100"), expected: [{ path: "floatingIp.virtualRouterId", message: /expected number, got string "100"/ }] },
  { name: "no node eligible for the floating IP", edit: (d) => d.nodes.forEach((n: Raw) => (n.floatingIp = { eligible: false })), expected: [{ path: "nodes", message: /floatingIp\.eligible: true/ }] },
  { name: "equal explicit keepalived priorities", edit: (d) => (d.nodes[1].floatingIp.priority = 150), expected: [{ path: "nodes[1].floatingIp.priority", message: /distinct keepalived priorities/ }] },
  { name: "scaling bounds exclude the count", edit: (d) => (d.app.web = { count: 5, scaling: { min: 1, max: 3 } }), expected: [{ path: "app.web.count", message: /within scaling\.min\.\.max \(1\.\.3\), got 5/ }] },
  { name: "bad duration", edit: (d) => (d.app.worker.killTimeout = "2 minutes"), expected: [{ path: "app.worker.killTimeout", message: /duration such as 30s/ }] },
  { name: "haproxy ports collide", edit: (d) => (d.app.haproxy = { nodePort: 8080, floatingPort: 8080 }), expected: [{ path: "app.haproxy.floatingPort", message: /different from app\.haproxy\.nodePort/ }] },
  // Hostile and careless input (issue #12): each class the attacker's corpus used.
  { name: "haproxy port = Consul HTTP", edit: (d) => (d.app.haproxy = { nodePort: 8500 }), expected: [{ path: "app.haproxy.nodePort", message: /Consul\/Nomad agents do not use/ }] },
  { name: "haproxy port = Consul DNS (privileged)", edit: (d) => (d.app.haproxy = { statsPort: 53 }), expected: [{ path: "app.haproxy.statsPort", message: /unprivileged TCP port 1024-65535/ }] },
  { name: "haproxy port = Nomad RPC", edit: (d) => (d.app.haproxy = { floatingPort: 4647 }), expected: [{ path: "app.haproxy.floatingPort", message: /agents do not use/ }] },
  { name: "haproxy port in Nomad's dynamic range", edit: (d) => (d.app.haproxy = { floatingPort: 25000 }), expected: [{ path: "app.haproxy.floatingPort", message: /dynamic port range 20000-32000/ }] },
  { name: "overlay prefix /0", edit: (d) => (d.overlay.prefix = "0.0.0.0/0"), expected: [{ path: "overlay.prefix", message: /prefix length 8-30/ }] },
  { name: "overlay prefix /31", edit: (d) => (d.overlay.prefix = "172.16.1.10/31"), expected: [{ path: "overlay.prefix", message: /prefix length 8-30/ }] },
  { name: "floating IP on the network address", edit: (d) => (d.floatingIp.address = "172.16.0.0"), expected: [{ path: "floatingIp.address", message: /not the network address of 172\.16\.0\.0\/16/ }] },
  { name: "node on the broadcast address", edit: (d) => (d.nodes[1].overlayAddress = "172.16.255.255"), expected: [{ path: "nodes[1].overlayAddress", message: /not the broadcast address/ }] },
  { name: "template marker in a meta value", edit: (d) => (d.nodes[0].meta = { rack: "${env.HOME}" }), expected: [{ path: "nodes[0].meta.rack", message: /no quotes, \$, % or braces/ }] },
  { name: "control character in a meta value", edit: (d) => (d.nodes[0].meta = { rack: "r1\u0007" }), expected: [{ path: "nodes[0].meta.rack", message: /meta value/ }] },
  { name: "directive in the S3 region", edit: (d) => (d.app.s3.region = "%{ if true }x%{ endif }"), expected: [{ path: "app.s3.region", message: /S3 region/ }] },
  { name: "interpolation in the broker user (secret exfiltration)", edit: (d) => (d.app.broker.user = "${nonsensitive(var.s3_secret_access_key)}"), expected: [{ path: "app.broker.user", message: /RabbitMQ user name/ }] },
  { name: "interpolation in the bastion user (operator's key)", edit: (d) => (d.bastion.user = '${file("~/.ssh/id_ed25519")}'), expected: [{ path: "bastion.user", message: /Unix user name/ }] },
  { name: "command substitution in a TLS path", edit: (d) => (d.nomad = { tls: { caFile: "/etc/$(id)", certFile: "/etc/c.pem", keyFile: "/etc/k.pem" } }), expected: [{ path: "nomad.tls.caFile", message: /absolute path on the node/ }] },
  { name: "newline in a TLS path", edit: (d) => (d.consul = { tls: { caFile: "/etc/ca.pem\nid", certFile: "/etc/c.pem", keyFile: "/etc/k.pem" } }), expected: [{ path: "consul.tls.caFile", message: /absolute path on the node/ }] },
  { name: "space in a TLS path", edit: (d) => (d.nomad = { tls: { caFile: "/etc/ca.pem", certFile: "/etc/my cert.pem", keyFile: "/etc/k.pem" } }), expected: [{ path: "nomad.tls.certFile", message: /no spaces/ }] },
  { name: "quote in the key file path", edit: (d) => (d.ssh.privateKey = { file: '~/.ssh/id"x' }), expected: [{ path: "ssh.privateKey.file", message: /file path/ }] },
  { name: "duration beyond Go's limit", edit: (d) => (d.nomad = { drainDeadline: "9999999999h" }), expected: [{ path: "nomad.drainDeadline", message: /duration/ }] },
  { name: "kill timeout longer than an hour", edit: (d) => (d.app.worker.killTimeout = "2h"), expected: [{ path: "app.worker.killTimeout", message: /between 1s and 1h/ }] },
  { name: "count of 100000", edit: (d) => (d.app.web = { count: 100000 }), expected: [{ path: "app.web.count", message: /at most 100 instances/ }] },
  { name: "worker concurrency of 100000", edit: (d) => (d.app.worker.concurrency = 100000), expected: [{ path: "app.worker.concurrency", message: /at most 64/ }] },
  { name: "extraConfig that is not HCL", edit: (d) => (d.consul = { extraConfig: "log_level = \"DEBUG\"\nthis is not hcl\n" }), expected: [{ path: "consul.extraConfig", message: /expected HCL.*\(line 2 of the HCL\)/ }] },
  { name: "extraConfig turning Consul into a server", edit: (d) => (d.consul = { extraConfig: "server = true\nbootstrap_expect = 1\n" }), expected: [{ path: "consul.extraConfig", message: /'server' is not one: it would make this agent a server.*line 1 of the HCL/ }, { path: "consul.extraConfig", message: /'bootstrap_expect' is not one.*line 2 of the HCL/ }] },
  { name: "extraConfig turning Nomad into a server", edit: (d) => (d.nomad = { extraConfig: "server {\n  enabled = true\n}\n" }), expected: [{ path: "nomad.extraConfig", message: /'server' is not one: it would make this agent a server/ }] },
  { name: "extraConfig disabling the Nomad client", edit: (d) => (d.nomad = { extraConfig: "client {\n  enabled = false\n}\n" }), expected: [{ path: "nomad.extraConfig", message: /'client\.enabled' may only be true.*line 2 of the HCL/ }] },
  { name: "extraConfig opening Consul's HTTP API", edit: (d) => (d.consul = { extraConfig: 'client_addr = "0.0.0.0"\n' }), expected: [{ path: "consul.extraConfig", message: /consul\.httpOnOverlay/ }] },
  { name: "javascript: URL", edit: (d) => (d.app.publicUrl = "javascript:alert(1)"), expected: [{ path: "app.publicUrl", message: /https:\/\/ URL/ }] },
  { name: "file: URL", edit: (d) => (d.app.s3.endpoint = "file:///etc/passwd"), expected: [{ path: "app.s3.endpoint", message: /http\(s\) URL/ }] },
  { name: "URL with credentials", edit: (d) => (d.app.s3.endpoint = "https://admin:secret@s3.example.org"), expected: [{ path: "app.s3.endpoint", message: /without user:password@/ }] },
  { name: "URL with a query", edit: (d) => (d.servers.nomadHttpAddress = "http://nomad.example.org:4646/?x=${a}"), expected: [{ path: "servers.nomadHttpAddress", message: /no query/ }] },
  { name: "every eligible node in maintenance", edit: (d) => d.nodes.forEach((n: Raw) => (n.maintenance = true)), expected: [{ path: "nodes", message: /maintenance: false.*full outage/ }] },
];

function loadEdited(edit: (d: Raw) => void) {
  const doc = parse(exampleText());
  edit(doc);
  return loadDescriptionText(stringify(doc));
}

function problemsOf(edit: (d: Raw) => void): Problem[] {
  const r = loadEdited(edit);
  if (r.ok) throw new Error("expected the description to be rejected");
  return r.problems;
}

describe("cluster description", () => {
  it("accepts the example and applies documented defaults", () => {
    const r = loadDescriptionText(exampleText());
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.cluster.nomad.drainDeadline).toBe("5m");
    expect(r.cluster.nodes[0].maintenance).toBe(false);
    expect(r.cluster.nodes[0].floatingIp).toEqual({ eligible: true, priority: 150 });
    expect(r.cluster.consul).toEqual({ gossipEncryption: false, acl: false, recursors: [] });
  });

  it("has a corpus of at least 15 broken descriptions", () => {
    expect(corpus.length).toBeGreaterThanOrEqual(15);
  });

  it.each(corpus.map((c) => [c.name, c] as const))("rejects: %s", (_name, c) => {
    const problems = problemsOf(c.edit);
    for (const e of c.expected) {
      const match = problems.find((p) => p.path === e.path && e.message.test(p.message));
      if (!match) throw new Error(`no problem at ${e.path} matching ${e.message}; got:\n${problems.map((p) => `${p.path}: ${p.message}`).join("\n")}`);
      expect(match.message).toMatch(/expected|unknown key|required/);
    }
  });

  it("reports every problem at once, shape and cross-field together, with line numbers", () => {
    const problems = problemsOf((d) => {
      d.floatingIp.virtualRouterId = 999;
      d.app.images.haproxy = "haproxy:latest";
      d.nodes[1].overlayAddress = "10.0.0.12";
      d.bastion.usr = "x";
    });
    expect(problems.map((p) => p.path).sort()).toEqual(["app.images.haproxy", "bastion.usr", "floatingIp.virtualRouterId", "nodes[1].overlayAddress"]);
    for (const p of problems) expect(p.line).toBeGreaterThan(0);
  });

  it("points at the line of the offending value", () => {
    const text = exampleText().replace("virtualRouterId: 100", "virtualRouterId: 0");
    const r = loadDescriptionText(text);
    if (r.ok) throw new Error("expected rejection");
    const expectedLine = text.split("\n").findIndex((l) => l.includes("virtualRouterId: 0")) + 1;
    expect(r.problems).toEqual([expect.objectContaining({ path: "floatingIp.virtualRouterId", line: expectedLine })]);
  });

  it("rejects YAML syntax errors with a line", () => {
    const r = loadDescriptionText("name: a\n  bad: [unclosed\n");
    if (r.ok) throw new Error("expected rejection");
    expect(r.problems[0].message).toMatch(/not valid YAML/);
    expect(r.problems[0].line).toBeGreaterThan(0);
  });

  it("refuses YAML alias amplification (billion laughs) with the line of the first alias", () => {
    const lol = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 9; i++) lol.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(", ")}]`);
    const text = `${exampleText()}\n${lol.join("\n")}\n`;
    const r = loadDescriptionText(text);
    if (r.ok) throw new Error("expected rejection");
    const aliasLine = text.split("\n").findIndex((l) => l.includes("*a")) + 1;
    expect(r.problems).toEqual([expect.objectContaining({ path: "(yaml)", line: aliasLine, message: expect.stringMatching(/alias amplification/) })]);
  });

  it("refuses a file that expands past 1 MiB through a few aliases", () => {
    const big = "x".repeat(60_000);
    const text = `${exampleText()}\nblob: &b "${big}"\ncopies: [${Array(40).fill("*b").join(", ")}]\n`;
    const r = loadDescriptionText(text);
    if (r.ok) throw new Error("expected rejection");
    expect(r.problems[0]).toMatchObject({ path: "(yaml)", message: expect.stringMatching(/expands to \d+ KiB/) });
  });

  it("accepts a modest use of aliases (a shared meta map)", () => {
    const text = exampleText().replace("    floatingIp: { priority: 150 }", "    floatingIp: { priority: 150 }\n    meta: &meta { rack: r1 }").replace("    floatingIp: { priority: 100 }", "    floatingIp: { priority: 100 }\n    meta: *meta");
    const r = loadDescriptionText(text);
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.cluster.nodes[1].meta).toEqual({ rack: "r1" });
  });

  it("accepts an ordinary extraConfig (blocks, labels, lists, heredocs, comments) and reads it as HCL", () => {
    const r = loadEdited((d) => {
      d.consul = { extraConfig: 'telemetry {\n  prometheus_retention_time = "30s" # scraped\n}\nnode_meta { rack = "r1" }\n/* more */ log_level = "DEBUG"\n' };
      d.nomad = { extraConfig: 'plugin "docker" {\n  config {\n    volumes { enabled = false }\n    extra_labels = ["job_name", "task_name"]\n  }\n}\nclient {\n  enabled = true\n  reserved { cpu = 500 }\n  meta { rack = <<EOT\nr1\nEOT\n  }\n}\n' };
    });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.cluster.nomad.extraConfig).toContain('plugin "docker"');
  });

  it("rejects duplicate keys instead of silently keeping the last", () => {
    const r = loadDescriptionText(exampleText().replace("region: global", "region: global\nregion: other"));
    expect(r.ok).toBe(false);
  });
});
/** Text edits of the example, as an operator would make them (line numbers matter here). */
function problemsOfText(edit: (t: string) => string): Problem[] {
  const r = loadDescriptionText(edit(exampleText()));
  if (r.ok) throw new Error("expected the description to be rejected");
  return r.problems;
}
const lineOf = (t: string, needle: string) => t.split("\n").findIndex((l) => l.includes(needle)) + 1;

describe("misspelled keys and one message per root cause (issue 21)", () => {
  it("a misspelled top-level key: one problem, at its own line, with 'did you mean' (not 'bastion' missing at line 8)", () => {
    const edit = (t: string) => t.replace(/^bastion:/m, "bastoin:");
    const problems = problemsOfText(edit);
    expect(problems).toEqual([{ path: "bastoin", line: lineOf(edit(exampleText()), "bastoin:"), message: "unknown key 'bastoin': did you mean 'bastion'? ('bastion' is required and missing)" }]);
  });

  it("did you mean at every level: a node's key, a nested section's key, a key with a default", () => {
    const edit = (t: string) => t.replace("overlayAddress: 172.16.1.12", "overlayAdress: 172.16.1.12").replace("virtualRouterId:", "virtualRouterID:").replace("advertInterval: 1", "advertIntervall: 1");
    const problems = problemsOfText(edit);
    expect(problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      "floatingIp.virtualRouterID: unknown key 'virtualRouterID': did you mean 'virtualRouterId'? ('virtualRouterId' is required and missing)",
      "floatingIp.advertIntervall: unknown key 'advertIntervall': did you mean 'advertInterval'?",
      "nodes[1].overlayAdress: unknown key 'overlayAdress': did you mean 'overlayAddress'? ('overlayAddress' is required and missing)",
    ]);
    for (const p of problems) expect(p.line).toBe(lineOf(edit(exampleText()), p.path.replace(/.*\./, "") + ":"));
  });

  it("an unknown key that resembles nothing lists the keys known there (from the schema), each unknown key at its own line", () => {
    const problems = problemsOfText((t) => t.replace("advertInterval: 1", "advertInterval: 1\n  colour: red\n  size: 3"));
    expect(problems.map((p) => p.message)).toEqual([
      "unknown key 'colour': expected one of 'address', 'virtualRouterId', 'advertInterval' (cluster.schema.json)",
      "unknown key 'size': expected one of 'address', 'virtualRouterId', 'advertInterval' (cluster.schema.json)",
    ]);
    expect(problems[1].line).toBe(problems[0].line! + 1);
  });

  it("one missing bastion.hostKey is one message, however many nodes pin theirs", () => {
    const threeNodes = (t: string) =>
      t.replace(/^  hostKey:.*\n/m, "").replace(
        "    floatingIp: { priority: 100 }\n",
        '    floatingIp: { priority: 100 }\n  - name: node-3\n    address: 192.0.2.13\n    overlayAddress: 172.16.1.13\n    hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIELyyGJXRe9qdKJ4YNIUzzbH1WgvIMyWLbABg4kdNOrB"\n    floatingIp: { priority: 50 }\n',
      );
    expect(threeNodes(exampleText())).toContain("node-3");
    const problems = problemsOfText(threeNodes);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ path: "bastion.hostKey", message: expect.stringMatching(/expected the bastion's pinned host key.*the nodes' pinned keys need it too/) });
  });
});


describe("ssh section", () => {
  it("is optional: without it, docs/description.md's defaults (user ubuntu, the ssh-agent)", () => {
    const d = parse(exampleText());
    delete d.ssh;
    const r = loadDescriptionText(stringify(d));
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.cluster.ssh).toEqual({ user: "ubuntu", privateKey: { agent: true }, insecureIgnoreHostKey: false });
    // a partial section keeps the other default
    const partial = parse(exampleText());
    partial.ssh = { user: "debian" };
    const p = loadDescriptionText(stringify(partial));
    if (!p.ok) throw new Error(JSON.stringify(p.problems));
    expect(p.cluster.ssh).toEqual({ user: "debian", privateKey: { agent: true }, insecureIgnoreHostKey: false });
    // and a wrong value in it is still reported with its path
    const bad = parse(exampleText());
    bad.ssh = { user: "Not A User" };
    const b = loadDescriptionText(stringify(bad));
    expect(b.ok).toBe(false);
    if (!b.ok) expect(b.problems.map((x) => x.path)).toEqual(["ssh.user"]);
  });
});

describe("HAProxy memory holds its derived maxconn", () => {
  it("refuses app.haproxy.resources.memory below the least that gives maxconn 100, naming the field", () => {
    const { crossFieldViolations } = require("../constructs/description/rules");
    const { exampleCluster, edited } = require("./helpers/synth");
    const { HAPROXY_MIN_MEMORY_MIB, haproxyMaxconn } = require("../constructs/render/jobs/haproxy-cfg");
    const small = edited(exampleCluster(), (x: any) => (x.app.haproxy.resources = { cpu: 200, memory: HAPROXY_MIN_MEMORY_MIB - 1 }));
    const v = crossFieldViolations(small);
    expect(v.map((x: any) => x.path.join("."))).toEqual(["app.haproxy.resources.memory"]);
    expect(v[0].message).toContain(`expected at least ${HAPROXY_MIN_MEMORY_MIB} MiB`);
    expect(haproxyMaxconn(HAPROXY_MIN_MEMORY_MIB)).toBeGreaterThanOrEqual(100);
    expect(() => haproxyMaxconn(HAPROXY_MIN_MEMORY_MIB - 2)).toThrow();
  });
});

describe("api memory holds its gunicorn processes", () => {
  it("refuses app.api.resources.memory below ~48 MiB per gunicorn process, naming the field", () => {
    const { crossFieldViolations } = require("../constructs/description/rules");
    const { exampleCluster, edited } = require("./helpers/synth");
    const ok = edited(exampleCluster(), (x: any) => (x.app.api = { ...x.app.api, workers: 4, resources: { cpu: 300, memory: 240 } }));
    expect(crossFieldViolations(ok)).toEqual([]);
    const tight = edited(exampleCluster(), (x: any) => (x.app.api = { ...x.app.api, workers: 6, resources: { cpu: 300, memory: 300 } }));
    const v = crossFieldViolations(tight);
    expect(v.map((x: any) => x.path.join("."))).toEqual(["app.api.resources.memory"]);
    expect(v[0].message).toBe("expected at least 336 MiB for 6 gunicorn workers (~48 MiB per process, master included), got 300");
  });
});
