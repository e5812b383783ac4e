/**
 * Input guards of issue 20: versions in canonical form, static ports unique across every
 * job, one host-key recommendation everywhere and a key's label equal to its body's type.
 * Each through the real loader (path, line, message) and, where output is involved, against
 * what the renderers really produce.
 */
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { parse, stringify } from "yaml";
import { loadDescriptionText } from "../constructs/description/load";
import { staticJobPorts } from "../constructs/description/rules";
import { extraConfigProblems } from "../constructs/description/hcl1-check";
import { BASTION_KEY_DEFECT_ENGINES, HOST_KEY_ADVICE, RECOMMENDED_HOST_KEY, embeddedKeyType, keyscanCommand } from "../constructs/description/host-keys";
import { renderJobspecs } from "../constructs/render/jobs";
import { renderAgentInstallScript } from "../constructs/render/scripts";
import { cleanup, clusterFromText, exampleText, hasCommand, itIf, parseHcl, REPO_ROOT, synthCluster } from "./helpers/synth";
import { jobsOf } from "./helpers/jobs";

const editedExample = (edit: (d: any) => void): string => {
  const d = parse(exampleText());
  edit(d);
  return stringify(d);
};
const problemsOf = (text: string) => {
  const r = loadDescriptionText(text);
  return r.ok ? [] : r.problems;
};

describe("versions: canonical major.minor.patch only", () => {
  it.each(["1.09.7", "01.9.7", "1.9.07", "1.9", "v1.9.7", "1.9.7-rc1"])("versions.nomad %s is refused naming the field and its line", (v) => {
    const problems = problemsOf(editedExample((d) => (d.versions.nomad = v)));
    expect(problems).toEqual([expect.objectContaining({ path: "versions.nomad", line: expect.any(Number), message: expect.stringMatching(/major\.minor\.patch, numbers without leading zeros/) })]);
  });

  it("1.10.0 and 1.9.7 are accepted", () => {
    expect(problemsOf(editedExample((d) => (d.versions = { consul: "1.20.0", nomad: "1.10.0" })))).toEqual([]);
    expect(problemsOf(editedExample((d) => (d.versions.nomad = "1.9.7")))).toEqual([]);
  });

  it("why: bash arithmetic (the install's version floor) refuses 09 as an octal number", () => {
    const r = spawnSync("bash", ["-c", 'IFS=. read -r a b _ <<<"1.09.7"; (( b < 10 )) && echo below'], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/value too great for base/);
  });
});

describe("static ports: no two jobs bind the same one", () => {
  it("two HAProxy ports equal: refused at the later field, naming the other", () => {
    const problems = problemsOf(editedExample((d) => {
      d.app.haproxy = { nodePort: 9000, floatingPort: 9000, statsPort: 8404 };
    }));
    expect(problems).toEqual([expect.objectContaining({ path: "app.haproxy.floatingPort", line: expect.any(Number), message: expect.stringMatching(/different from app\.haproxy\.nodePort \(9000\).*never be placed/) })]);
  });

  it("metrics.grafana.port may equal a HAProxy port: Grafana listens on its node's loopback, HAProxy on the overlay and floating addresses", () => {
    expect(problemsOf(editedExample((d) => {
      d.app.haproxy = { ...(d.app.haproxy ?? {}), statsPort: 8404 };
      d.metrics = { ...(d.metrics ?? {}), grafana: { port: 8404 } };
    }))).toEqual([]);
  });

  it("the list the rule checks is every static port the rendered jobspecs hold (parsed with HashiCorp's parser)", async () => {
    for (const metrics of [true, false]) {
      const c = clusterFromText(editedExample((d) => (d.metrics = { enabled: metrics })));
      const rendered: number[] = [];
      const walk = (x: unknown): void => {
        if (Array.isArray(x)) x.forEach(walk);
        else if (x && typeof x === "object") {
          for (const [k, v] of Object.entries(x)) (k === "static" ? rendered.push(Number(v)) : walk(v));
        }
      };
      for (const [name, text] of Object.entries(renderJobspecs(c))) if (text) walk(await parseHcl(`${name}.nomad.hcl`, text));
      expect(rendered.length).toBeGreaterThanOrEqual(3);
      expect(staticJobPorts(c).map((p) => p.port).sort()).toEqual([...rendered].sort());
    }
  });
});

describe("host keys: one recommendation, and a label that matches the key", () => {
  const ed25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

  it("reads the type inside a key body (RFC 4253 length-prefixed string)", () => {
    expect(embeddedKeyType(ed25519.split(" ")[1])).toBe("ssh-ed25519");
    const exampleKey = parse(exampleText()).bastion.hostKey as string;
    expect(embeddedKeyType(exampleKey.split(" ")[1])).toBe(exampleKey.split(" ")[0]);
    expect(embeddedKeyType("AAAA")).toBeUndefined();
  });

  it("an Ed25519 body labelled ecdsa-sha2-nistp256 is refused with both types named", () => {
    const body = ed25519.split(" ")[1];
    const problems = problemsOf(editedExample((d) => {
      d.bastion.hostKey = `ecdsa-sha2-nistp256 ${body}`;
      d.nodes[1].hostKey = `ssh-rsa ${body}`;
    }));
    expect(problems).toEqual([
      expect.objectContaining({ path: "bastion.hostKey", line: expect.any(Number), message: expect.stringMatching(/says ecdsa-sha2-nistp256 but the key inside is ssh-ed25519/) }),
      expect.objectContaining({ path: "nodes[1].hostKey", line: expect.any(Number), message: expect.stringMatching(/says ssh-rsa but the key inside is ssh-ed25519/) }),
    ]);
  });

  it("a body that is no key at all is refused", () => {
    const problems = problemsOf(editedExample((d) => (d.bastion.hostKey = "ecdsa-sha2-nistp256 AAAAAAAA")));
    expect(problems).toEqual([expect.objectContaining({ path: "bastion.hostKey", message: expect.stringMatching(/does not start with a key type/) })]);
  });

  it("a genuine key of each accepted type passes (keys made by ssh-keygen)", () => {
    const dir = fs.mkdtempSync(path.join(require("os").tmpdir(), "hostkeys-"));
    try {
      for (const [t, bits] of [["ecdsa", "256"], ["ecdsa", "384"], ["ecdsa", "521"], ["ed25519", ""], ["rsa", "2048"]]) {
        const f = path.join(dir, `${t}${bits}`);
        const r = spawnSync("ssh-keygen", ["-q", "-t", t, ...(bits ? ["-b", bits] : []), "-N", "", "-C", "x", "-f", f]);
        expect(r.status).toBe(0);
        const line = fs.readFileSync(`${f}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
        expect([line.split(" ")[0], problemsOf(editedExample((d) => (d.bastion.hostKey = line)))]).toEqual([line.split(" ")[0], []]);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the schema hints, the examples, the messages and docs/deploying.md say the same", () => {
    const schema = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "cluster.schema.json"), "utf8"));
    const descriptions = JSON.stringify(schema).match(/Pinned SSH host key of the [^"]*/g) ?? [];
    expect(descriptions).toHaveLength(2);
    for (const d of descriptions) {
      expect(d).toContain(`ssh-keyscan -t ${RECOMMENDED_HOST_KEY.keyscanType} `);
      expect(d).not.toMatch(/-t ed25519/);
    }
    for (const file of fs.readdirSync(path.join(REPO_ROOT, "clusters")).filter((f) => f.endsWith(".yaml"))) {
      const text = fs.readFileSync(path.join(REPO_ROOT, "clusters", file), "utf8");
      const keys = text.match(/hostKey: "([^"]+)"/g) ?? [];
      for (const k of keys) expect([file, k.split('"')[1].split(" ")[0]]).toEqual([file, RECOMMENDED_HOST_KEY.label]);
    }
    const unpinned = problemsOf(editedExample((d) => delete d.nodes[0].hostKey));
    expect(unpinned[0].message).toContain(keyscanCommand("192.0.2.11"));
    expect(unpinned[0].message).toContain(HOST_KEY_ADVICE);
    // the host-key advice lives in docs/deploying.md ("Host keys"), the README links there
    const deploying = fs.readFileSync(path.join(REPO_ROOT, "docs", "deploying.md"), "utf8");
    const section = deploying.slice(deploying.indexOf("## Host keys"), deploying.indexOf("## State"));
    expect(section.length).toBeGreaterThan(1000);
    expect(section).toContain(`\`${keyscanCommand("HOST")}\``);
    expect(section).toMatch(/prefers[^.]*ECDSA host key over RSA over Ed25519/);
    expect(section).toContain("constructs/description/host-keys.ts");
    // the engines with the bastion-key defect: one fact, the same words in the code and docs/deploying.md
    expect(BASTION_KEY_DEFECT_ENGINES).toMatch(/up to 1\.15.*1\.16 pre-releases/);
    expect(section.replace(/\s+/g, " ")).toContain("Terraform up to 1.15 (the fix, hashicorp/terraform#38318, is in the 1.16 pre-releases only) and OpenTofu");
  });
});

describe("extraConfig: an allowlist of what a client may set, keys in any letter case", () => {
  const refused = (agent: "consul" | "nomad", hcl: string) =>
    problemsOf(editedExample((d) => (d[agent] = { ...(d[agent] ?? {}), extraConfig: hcl }))).filter((p) => p.path === `${agent}.extraConfig`);

  // Each as HCL1 and mapstructure read it: key lookups ignore letter case at every level.
  const hostile: [string, "consul" | "nomad", string, RegExp][] = [
    ["Consul made a server (Server)", "consul", "Server = true\n", /'Server' \(server: the agent reads keys in any letter case\) is not one: it would make this agent a server/],
    ["Consul made a server (SERVER, quoted key)", "consul", '"SERVER" = true\n', /'SERVER'.*would make this agent a server/],
    ["Consul bootstrapping (Bootstrap_Expect)", "consul", "Bootstrap_Expect = 1\n", /'Bootstrap_Expect'.*server-mode setting/],
    ["Consul HTTP API on every address (CLIENT_ADDR)", "consul", 'CLIENT_ADDR = "0.0.0.0"\n', /'CLIENT_ADDR'.*consul\.httpOnOverlay/],
    ["Consul gRPC on every address (addresses.grpc)", "consul", 'addresses { grpc = "0.0.0.0" }\n', /'addresses' is not one: it binds listeners/],
    ["Consul gRPC through a go-sockaddr template", "consul", 'Addresses {\n  GRPC = "{{ GetAllInterfaces | include \\"flags\\" \\"up\\" | attr \\"address\\" }}"\n}\n', /'Addresses'.*binds listeners/],
    ["Consul bound to another address (Bind_Addr template)", "consul", 'Bind_Addr = "{{ GetPublicIP }}"\n', /'Bind_Addr'.*binds the agent/],
    ["Consul advertising another address", "consul", 'advertise_addr = "10.0.0.1"\n', /'advertise_addr'.*advertises the overlay address/],
    ["Consul script checks (Enable_Script_Checks)", "consul", "Enable_Script_Checks = true\n", /script checks run in Nomad/],
    ["Consul update check back on", "consul", "disable_update_check = false\n", /'disable_update_check' may only be true/],
    ["Nomad made a server (SERVER block)", "nomad", "SERVER {\n  Enabled = true\n}\n", /'SERVER'.*would make this agent a server/],
    ["Nomad made a server (server = { ... } object form)", "nomad", "server = {\n  enabled = true\n}\n", /'server'.*would make this agent a server/],
    ["Nomad client disabled (Client.Enabled)", "nomad", "Client { Enabled = false }\n", /'Client\.Enabled' \(client\.enabled: .*\) may only be true/],
    ["Nomad client disabled (list-of-objects form)", "nomad", "client = [{ enabled = false }]\n", /'client\.enabled' may only be true/],
    ["Nomad bound to every address", "nomad", 'BIND_ADDR = "0.0.0.0"\n', /'BIND_ADDR'.*binds the agent/],
    ["Nomad addresses", "nomad", 'Addresses { Http = "0.0.0.0" }\n', /'Addresses'.*binds listeners/],
    ["Nomad advertise", "nomad", 'advertise { http = "{{ GetPublicIP }}" }\n', /'advertise'.*advertises/],
    ["raw_exec through the plugin block", "nomad", 'plugin "raw_exec" {\n  config { enabled = true }\n}\n', /'plugin\.raw_exec'.*raw_exec runs jobs as root/],
    ["raw_exec through client options", "nomad", 'Client {\n  Options { "driver.raw_exec.enable" = "1" }\n}\n', /'Client\.Options'.*client options enable drivers/],
    ["privileged containers (Allow_Privileged)", "nomad", 'Plugin "docker" {\n  Config { Allow_Privileged = true }\n}\n', /'Plugin\.docker\.Config\.Allow_Privileged'.*may only be false: a privileged container/],
    ["host volumes in the docker plugin (VOLUMES.Enabled)", "nomad", 'plugin "Docker" {\n  config {\n    VOLUMES { Enabled = true }\n  }\n}\n', /may only be false: host volumes/],
    ["host volumes in the client", "nomad", 'client {\n  host_volume "root" { path = "/" }\n}\n', /'client\.host_volume'.*host volumes/],
    ["docker capabilities", "nomad", 'plugin "docker" {\n  config { allow_caps = ["all"] }\n}\n', /'plugin\.docker\.config\.allow_caps' is not one/],
    ["the reserved node meta key", "nomad", 'client {\n  meta { Floating_IP_Eligible = "true" }\n}\n', /reserved key, set by this program from nodes\[\]\.floatingIp\.eligible/],
    ["Nomad's data directory", "nomad", 'data_dir = "/tmp/x"\n', /'data_dir'.*chosen by the install/],
  ];

  it.each(hostile)("%s: refused naming consul/nomad.extraConfig and the line inside the HCL", (_name, agent, hcl, message) => {
    const problems = refused(agent, hcl);
    expect(problems.length).toBeGreaterThanOrEqual(1);
    expect(problems[0]).toEqual(expect.objectContaining({ line: expect.any(Number), message: expect.stringMatching(message) }));
    expect(problems[0].message).toMatch(/\(line \d+ of the HCL\)$/);
  });

  it("every problem at once, each with its line in the HCL", () => {
    const problems = refused("nomad", 'log_level = "DEBUG"\nServer { enabled = true }\nclient {\n  Enabled = false\n  options { x = "1" }\n}\n');
    expect(problems.map((p) => /line (\d+) of the HCL/.exec(p.message)![1])).toEqual(["2", "4", "5"]);
  });

  it("what a client may tune passes, in any letter case", () => {
    const ok = (agent: "consul" | "nomad", hcl: string) => expect([hcl, refused(agent, hcl)]).toEqual([hcl, []]);
    ok("consul", 'Log_Level = "DEBUG"\nTelemetry {\n  Prometheus_Retention_Time = "60s"\n}\ndns_config { node_ttl = "10s" }\nnode_meta { rack = "r1" }\ndisable_update_check = true\n');
    ok("nomad", 'LOG_LEVEL = "DEBUG"\nclient {\n  Enabled = true\n  meta { rack = "r1" }\n  reserved { cpu = 500, memory = 256 }\n  gc_max_allocs = 100\n}\nplugin "docker" {\n  config {\n    allow_privileged = false\n    volumes { enabled = false }\n    gc { image_delay = "2h" }\n  }\n}\n');
  });
});

describe("the install refuses a server config in any letter case, HCL or JSON (the rendered shell function, run by bash)", () => {
  const c = clusterFromText(exampleText());
  const scriptOf = (agent: "consul" | "nomad") => renderAgentInstallScript(c, c.nodes[0], { agent, files: [], requiredFiles: [], removableTargets: [] });
  /** The function exactly as the install script holds it. */
  const functionIn = (script: string): string => {
    const start = script.indexOf("config_says_server() {");
    // the awk program's own functions close at column 0 too: the shell function ends after its awk call
    const end = script.indexOf("\n}\n", script.indexOf('"${files[@]}"', start));
    expect(start).toBeGreaterThan(0);
    return script.slice(start, end + 2);
  };
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(require("os").tmpdir(), "server-config-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Exit status of config_says_server for a config dir holding `files`. */
  const run = (agent: "consul" | "nomad", files: Record<string, string>): number => {
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    const r = spawnSync("bash", ["-euo", "pipefail", "-c", `CONFIG_DIR=${dir}\n${functionIn(scriptOf(agent))}\nconfig_says_server ${agent}`], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    return r.status!;
  };

  const consulServer: [string, Record<string, string>][] = [
    ["server = true", { "consul.hcl": 'datacenter = "dc1"\nserver = true\n' }],
    ["Server = true", { "consul.hcl": "Server = true\n" }],
    ["SERVER=true, no spaces, after other keys on one line", { "consul.hcl": 'log_level = "INFO", SERVER=true\n' }],
    ['"server" = "true" (quoted key, weakly typed value)', { "server.hcl": '"server" = "true"\n' }],
    ["bootstrap_expect = 1", { "consul.hcl": "Bootstrap_Expect = 1\n" }],
    ["JSON config", { "consul.json": '{\n  "datacenter": "dc1",\n  "Server": true\n}\n' }],
    ["JSON, value on the next line", { "consul.json": '{"server":\n  true}\n' }],
    ["after a block comment and a heredoc", { "a.hcl": '/* server = false\n*/\nui_config {\n  enabled = true\n}\nx = <<EOT\nserver = false\nEOT\nserver = true\n' }],
  ];
  const consulClient: [string, Record<string, string>][] = [
    ["the rendered client config shape", { "consul.hcl": 'datacenter = "dc1"\nserver = false\nlog_level = "INFO"\n' }],
    ["server in a comment", { "consul.hcl": "# server = true\n// server = true\nserver = false\n" }],
    ["server inside a string", { "consul.hcl": 'node_meta { note = "server = true" }\n' }],
    ["server = true only in a heredoc", { "consul.hcl": "x = <<EOT\nserver = true\nEOT\n" }],
    ["a nested key named server", { "consul.json": '{"node_meta": {"server": "true"}}' }],
    ["no config files at all", {}],
  ];
  const nomadServer: [string, Record<string, string>][] = [
    ["server { enabled = true }", { "nomad.hcl": "server {\n  enabled = true\n}\n" }],
    ["SERVER { Enabled = true } after other keys", { "nomad.hcl": 'Server {\n  bootstrap_expect = 1\n  server_join {\n    retry_join = ["a"]\n  }\n  ENABLED = true\n}\n' }],
    ["server = { enabled = true } on one line", { "nomad.hcl": "server = { enabled = true }\n" }],
    ['server "x" { enabled = true } (a label)', { "nomad.hcl": 'server "x" { enabled = true }\n' }],
    ["JSON", { "server.json": '{"Server": {"Enabled": true}}' }],
    ["JSON, list of objects", { "server.json": '{"server": [{"enabled": true}]}' }],
    ["second file of several", { "a.hcl": "client { enabled = true }\n", "b.hcl": "server {\n enabled = true\n}\n" }],
  ];
  const nomadClient: [string, Record<string, string>][] = [
    ["the rendered client shape", { "nomad.hcl": "server {\n  enabled = false\n}\nclient {\n  enabled = true\n}\n" }],
    ["client.enabled = true only", { "nomad.hcl": "client { enabled = true }\n" }],
    ["enabled = true in another block after the server block", { "nomad.hcl": "server { enabled = false }\nui { enabled = true }\n" }],
    ["JSON client", { "nomad.json": '{"server": {"enabled": false}, "client": {"enabled": true}}' }],
    ["an unclosed previous file does not leak into the next", { "a.hcl": "server {\n", "b.hcl": "enabled = true\n" }],
  ];

  it.each(consulServer)("consul, %s: a server (exit 0)", (_n, files) => expect(run("consul", files)).toBe(0));
  it.each(consulClient)("consul, %s: no server (exit 1)", (_n, files) => expect(run("consul", files)).toBe(1));
  it.each(nomadServer)("nomad, %s: a server (exit 0)", (_n, files) => expect(run("nomad", files)).toBe(0));
  it.each(nomadClient)("nomad, %s: no server (exit 1)", (_n, files) => expect(run("nomad", files)).toBe(1));

  it("an unreadable config file stops the install instead of passing it", () => {
    fs.writeFileSync(path.join(dir, "consul.hcl"), "server = false\n");
    fs.chmodSync(path.join(dir, "consul.hcl"), 0o000);
    fs.chmodSync(dir, 0o755); // listed, but the file cannot be read (run as nobody below)
    const script = scriptOf("consul");
    const start = script.indexOf("config_says_server() {");
    const end = script.indexOf("\nfi\n", start);
    const r = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-euo", "pipefail", "-c", `CONFIG_DIR=${dir}; AGENT=consul; fail() { echo "FAIL: $*"; exit 3; }\n${script.slice(start, end + 3)}\necho passed`], { encoding: "utf8" });
    if (r.error) throw r.error;
    expect(r.stdout).toMatch(/FAIL: cannot read the consul config files/);
    expect(r.status).toBe(3);
  });

  itIf(hasCommand("shellcheck"), "shellcheck is not installed (apt-get install shellcheck)")("both install scripts are shellcheck-clean with it", () => {
    for (const agent of ["consul", "nomad"] as const) {
      const f = path.join(dir, `${agent}-install.sh`);
      fs.writeFileSync(f, scriptOf(agent));
      const r = spawnSync("shellcheck", ["-S", "warning", "-s", "bash", f], { encoding: "utf8" });
      expect([agent, r.stdout]).toEqual([agent, ""]);
    }
  });
});

describe("tight types: each checked against what its consumer accepts", () => {
  const one = (edit: (d: any) => void) => problemsOf(editedExample(edit));
  const refusedAt = (edit: (d: any) => void, at: string, message: RegExp) => {
    const problems = one(edit);
    expect(problems).toEqual([expect.objectContaining({ path: at, line: expect.any(Number), message: expect.stringMatching(message) })]);
  };

  it.each([
    ["300.1.1.1", (d: any, v: string) => (d.nodes[0].address = v), "nodes[0].address"],
    ["1.2.3.400", (d: any, v: string) => (d.servers.join = [v]), "servers.join[0]"],
    ["10.1", (d: any, v: string) => (d.bastion.host = v), "bastion.host"],
    ["host.123", (d: any, v: string) => (d.app.broker.host = v), "app.broker.host"],
  ] as const)("an IPv4-looking %s is an address, and not a valid one: refused, not taken as a host name", (value, set, at) => {
    refusedAt((d) => set(d, value), at, /IPv4 address of four numbers 0-255.*last label is not a number/);
  });

  it("names and real addresses still pass", () => {
    expect(one((d) => { d.nodes[0].address = "vm-1.internal.example.org"; d.servers.join = ["172.16.0.2", "team.internal.example.org"]; d.bastion.host = "203.0.113.7"; })).toEqual([]);
    // glibc reads these as addresses too: the numeric forms the type refuses really are addresses to a resolver
    const r = spawnSync("getent", ["ahostsv4", "10.1"], { encoding: "utf8" });
    if (r.status === 0) expect(r.stdout).toMatch(/^10\.0\.0\.1\s/);
  });

  it.each([
    ["https://300.1.1.1:9000", /host 300\.1\.1\.1 is a host name or an IPv4 address/],
    ["https://s3.example.org:0", /port 0 is a TCP port 1-65535/],
    ["https://s3.example.org:65536", /port 65536 is a TCP port 1-65535/],
    ["https://s3.example.org:09000", /port 09000 .*without leading zeros/],
  ])("S3 endpoint %s: refused", (url, message) => refusedAt((d) => (d.app.s3.endpoint = url), "app.s3.endpoint", message));

  it.each([
    ["consul.example.org:99999"],
    ["consul.example.org:0"],
    ["300.1.1.1:8500"],
    ["consul.example.org:08500"],
  ])("state.consul.address %s: refused", (address) =>
    refusedAt((d) => (d.state = { consul: { address, path: "terraform/x" } }), "state.consul.address", /host:port .*port 1-65535 without leading zeros/));

  it.each([
    ["a..b", /no '\.\.', '\.-' or '-\.'/],
    ["a.-b", /no '\.\.', '\.-' or '-\.'/],
    ["192.168.1.1", /not an IP address/],
    ["xn--bucket", /no 'xn--' prefix/],
    ["ab", /3-63 lowercase/],
    ["Bucket", /3-63 lowercase/],
    ["bucket-", /a letter or digit at both ends/],
  ])("bucket %s: refused", (bucket, message) => refusedAt((d) => (d.app.s3.bucket = bucket), "app.s3.bucket", message));

  it("bucket names S3 accepts pass", () => {
    for (const bucket of ["abc", "team-images", "images.v1.example", "0-images"]) expect([bucket, one((d) => (d.app.s3.bucket = bucket))]).toEqual([bucket, []]);
  });

  it.each([".", ".."])("interface %s: refused (the kernel's dev_valid_name)", (name) =>
    refusedAt((d) => (d.overlay.interface = name), "overlay.interface", /other than '\.' or '\.\.'/));

  it("interface names of 16 characters are refused (IFNAMSIZ), 15 pass, and the kernel agrees", () => {
    refusedAt((d) => (d.overlay.interface = "vxlan10000000000"), "overlay.interface", /1-15 letters/);
    expect(one((d) => (d.overlay.interface = "vxlan1000000000"))).toEqual([]);
    const r = spawnSync("ip", ["link", "show", "dev", "vxlan10000000000"], { encoding: "utf8" });
    if (r.error === undefined) expect(r.stderr).toMatch(/not a valid ifname|too long|does not exist/i);
  });

  it.each([
    [".rack", /leading, trailing or double '\.'/],
    ["rack.", /leading, trailing or double '\.'/],
    ["rack..a", /leading, trailing or double '\.'/],
    ["floating_ip_eligible", /other than floating_ip_eligible \(set by this program/],
  ])("node meta key %s: refused naming the key", (key, message) =>
    refusedAt((d) => (d.nodes[0].meta = { [key]: "x" }), `nodes[0].meta.${key}`, message));

  it("dotted meta keys Nomad reads pass", () => {
    expect(one((d) => (d.nodes[0].meta = { "rack.row": "a", "zone-1": "b", Rack_2: "c" }))).toEqual([]);
  });
});

describe("rendered output true for the year it renders", () => {
  const years = ["2022", "2023", "2024", "2025"] as const;
  const synthYear = (year: string) => {
    const c = clusterFromText(fs.readFileSync(path.join(REPO_ROOT, "clusters", `provider-${year}.yaml`), "utf8"));
    const out = synthCluster(c);
    return { c, out };
  };

  it.each(years)("%s: every script a job renders is run by something (its command or a change_script)", async (year) => {
    const { c, out } = synthYear(year);
    try {
      const jobs = await jobsOf(out, c);
      for (const [name, { job }] of Object.entries(jobs)) {
        for (const group of Object.values<any>(job.group)) {
          for (const task of Object.values<any>(group[0].task)) {
            const t = task[0];
            const runs = JSON.stringify([t.config?.[0]?.command, t.config?.[0]?.args, t.config?.[0]?.entrypoint, (t.template ?? []).map((x: any) => x.change_script)]);
            for (const tpl of t.template ?? []) {
              if (!String(tpl.destination).endsWith(".sh")) continue;
              const file = String(tpl.destination).split("/").pop();
              expect([year, name, tpl.destination, runs.includes(`/${file}`)]).toEqual([year, name, tpl.destination, true]);
            }
          }
        }
      }
    } finally {
      cleanup(out);
    }
  });

  it("2022 (Nomad 1.2.6, Consul KV): no rendered file speaks of Nomad Variables; 2025's do", () => {
    for (const year of ["2022", "2025"]) {
      const { c, out } = synthYear(year);
      try {
        const texts = Object.entries(out.files).flatMap(([stack, files]) => Object.entries(files).map(([f, t]) => [`${stack}/${f}`, t] as const));
        const saying = texts.filter(([, t]) => /Nomad Variable|nomadVar/.test(t)).map(([f]) => f);
        if (year === "2022") {
          expect(c.versions.nomad).toBe("1.2.6");
          expect(saying).toEqual([]);
          const haproxyCfg = texts.find(([f]) => f.endsWith("rendered/jobs/haproxy.cfg"))![1];
          expect(haproxyCfg).toMatch(/Consul KV\n# nomad-secrets\/haproxy\/haproxy_cfg: Nomad 1\.2\.6 has no Variables/);
          expect(haproxyCfg).not.toMatch(/reload script/);
        } else {
          expect(saying.length).toBeGreaterThan(0);
        }
      } finally {
        cleanup(out);
      }
    }
  });
});

describe("the Nomad client's data_dir moves out of /opt/nomad, and an existing node moves safely (the rendered step, run by bash with stand-in commands)", () => {
  const base = clusterFromText(exampleText());
  const scriptFor = (maintenance: boolean) => {
    const c = structuredClone(base);
    c.nodes[0].maintenance = maintenance;
    return renderAgentInstallScript(c, c.nodes[0], { agent: "nomad", files: [], requiredFiles: [], removableTargets: [] });
  };
  /** The move step exactly as the install holds it, its two directories pointed into `root`. */
  const moveStep = (script: string, root: string): string => {
    const start = script.indexOf("readonly MAINTENANCE=");
    const end = script.indexOf("\nfi\n", script.indexOf('log "moved the Nomad client'));
    expect([start, end].every((i) => i > 0)).toBe(true);
    return script
      .slice(start, end + 4)
      .replace("readonly DATA_DIR='/var/lib/nomad-client'", `readonly DATA_DIR='${root}/var/lib/nomad-client'`)
      .replace("readonly PREVIOUS_DATA_DIR='/opt/nomad'", `readonly PREVIOUS_DATA_DIR='${root}/opt/nomad'`);
  };
  let root: string;
  beforeEach(() => (root = fs.mkdtempSync(path.join(require("os").tmpdir(), "data-dir-move-"))));
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  /** Runs the step: `containers` Nomad containers running until a drain stops them; returns its output and the commands it ran. */
  const run = (maintenance: boolean, opts: { containers: number; oldState: boolean; newState?: boolean; mounts?: string[] }) => {
    const prev = path.join(root, "opt/nomad");
    if (opts.oldState) {
      fs.mkdirSync(path.join(prev, "client"), { recursive: true });
      fs.writeFileSync(path.join(prev, "client", "client-id"), "5e1f-node-id\n");
      fs.mkdirSync(path.join(prev, "alloc", "a1", "alloc"), { recursive: true });
    }
    if (opts.newState) {
      fs.mkdirSync(path.join(root, "var/lib/nomad-client/client"), { recursive: true });
      fs.writeFileSync(path.join(root, "var/lib/nomad-client/client/client-id"), "new\n");
    }
    fs.writeFileSync(path.join(root, "containers"), Array.from({ length: opts.containers }, (_, i) => `c${i}\n`).join(""));
    fs.writeFileSync(path.join(root, "mounts"), (opts.mounts ?? []).map((m) => `${m}\n`).join(""));
    const stubs = `
calls=${root}/calls
log() { echo "LOG: $*"; }
fail() { echo "FAIL: $*"; exit 1; }
docker() { [[ "$*" == "ps -q --filter label=com.hashicorp.nomad.alloc_id" ]] || return 9; cat ${root}/containers; }
nomad() { echo "nomad $*" >>"$calls"; if [[ "$1 $2" == "node drain" ]]; then : >${root}/containers; fi; }
systemctl() { echo "systemctl $*" >>"$calls"; }
findmnt() { cat ${root}/mounts; }
umount() { echo "umount $*" >>"$calls"; }
RESTART_PENDING=${root}/restart-pending/nomad
`;
    const r = spawnSync("bash", ["-euo", "pipefail", "-c", `${stubs}\n${moveStep(scriptFor(maintenance), root)}\necho DONE`], { encoding: "utf8" });
    // (the metrics job's whereabouts, asked before a drain, are metrics-history.test.ts's)
    const calls = (fs.existsSync(path.join(root, "calls")) ? fs.readFileSync(path.join(root, "calls"), "utf8").trim().split("\n") : []).filter((l) => !/^nomad (node status -self -t \{\{ \.ID \}\}|job allocs)/.test(l));
    return { out: r.stdout, err: r.stderr, status: r.status, calls };
  };
  const newId = () => path.join(root, "var/lib/nomad-client/client/client-id");
  const oldId = () => path.join(root, "opt/nomad/client/client-id");

  it("the rendered config's data_dir is /var/lib/nomad-client in every provider year", async () => {
    for (const year of ["2022", "2023", "2024", "2025"]) {
      const c = clusterFromText(fs.readFileSync(path.join(REPO_ROOT, "clusters", `provider-${year}.yaml`), "utf8"));
      const out = synthCluster(c);
      try {
        const hcl = await parseHcl("nomad.hcl", out.files[`${c.name}-nodes`][`rendered/${c.nodes[0].name}/nomad/nomad.hcl`]);
        expect([year, hcl.data_dir]).toEqual([year, "/var/lib/nomad-client"]);
      } finally {
        cleanup(out);
      }
    }
  });

  it("a node still running allocations, not in maintenance: refused with what to do; nothing stopped, nothing moved", () => {
    const r = run(false, { containers: 3, oldState: true });
    expect(r.out).toMatch(/FAIL: this node still runs 3 Nomad allocation container\(s\).*set maintenance: true on node node-1 and deploy.*nothing was changed/);
    expect(r.status).toBe(1);
    expect(r.calls).toEqual([]);
    expect(fs.readFileSync(oldId(), "utf8")).toBe("5e1f-node-id\n");
    expect(fs.existsSync(newId())).toBe(false);
  });

  it("under maintenance: drained first, then Nomad stopped and its state moved with the node ID", () => {
    const prev = path.join(root, "opt/nomad");
    const r = run(true, { containers: 2, oldState: true, mounts: ["/proc", `${prev}/alloc/a1/web/secrets`, `${prev}/alloc/a1/web/private`, `${prev}/alloc/a1`] });
    expect(r.out).toMatch(/DONE/);
    expect(r.calls[0]).toMatch(/^nomad node drain -self -enable -deadline 5m -yes$/);
    expect(r.calls[1]).toBe("systemctl stop nomad");
    // deepest mount first, nothing outside the old directory
    expect(r.calls.slice(2)).toEqual([`umount ${prev}/alloc/a1/web/secrets`, `umount ${prev}/alloc/a1/web/private`, `umount ${prev}/alloc/a1`]);
    expect(fs.readFileSync(newId(), "utf8")).toBe("5e1f-node-id\n");
    expect(fs.existsSync(path.join(root, "var/lib/nomad-client/alloc/a1/alloc"))).toBe(true);
    expect(fs.readdirSync(prev)).toEqual([]);
    expect(fs.existsSync(path.join(root, "restart-pending/nomad"))).toBe(true);
  });

  it("no allocation running: moved without a drain", () => {
    const r = run(false, { containers: 0, oldState: true });
    expect(r.out).toMatch(/moved the Nomad client's state/);
    expect(r.calls).toEqual(["systemctl stop nomad"]);
    expect(fs.readFileSync(newId(), "utf8")).toBe("5e1f-node-id\n");
  });

  it("already moved, or a fresh node: nothing happens", () => {
    expect(run(false, { containers: 3, oldState: true, newState: true })).toEqual(expect.objectContaining({ status: 0, calls: [] }));
    expect(fs.readFileSync(newId(), "utf8")).toBe("new\n");
    fs.rmSync(path.join(root, "var"), { recursive: true, force: true });
    fs.rmSync(path.join(root, "opt"), { recursive: true, force: true });
    const fresh = run(false, { containers: 0, oldState: false });
    expect(fresh).toEqual(expect.objectContaining({ status: 0, calls: [] }));
    expect(fresh.out).not.toMatch(/data_dir moves/);
  });
});

describe("the premise, with the real Consul (1.14.11 from `npm run engines`)", () => {
  const consul = path.join(REPO_ROOT, ".engines", "bin", "consul");
  const present = fs.existsSync(consul);
  /** `consul validate` of a directory holding `hcl` (plus a data_dir): exit status and output. */
  const validate = (hcl: string) => {
    const dir = fs.mkdtempSync(path.join(require("os").tmpdir(), "consul-case-"));
    try {
      fs.writeFileSync(path.join(dir, "a.hcl"), `data_dir = "${dir}/data"\n${hcl}`);
      const r = spawnSync(consul, ["validate", dir], { encoding: "utf8" });
      return { status: r.status, out: `${r.stdout}${r.stderr}`.split(dir).join("<dir>") };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  itIf(present, "no .engines/bin/consul: run npm run engines")("Consul reads Server and BOOTSTRAP_EXPECT as server and bootstrap_expect (why the checks fold letter case)", () => {
    // bootstrap_expect needs server mode: Consul's refusal (and, in server mode, its "expecting
    // 3 servers" warning) shows that it took the keys as those settings, whatever their case.
    const lower = validate("server = false\nbootstrap_expect = 3\n");
    const mixed = validate("Server = false\nBOOTSTRAP_EXPECT = 3\n");
    expect(lower.status).toBe(1);
    expect(lower.out).toContain("'bootstrap_expect > 0' requires 'server = true'");
    expect(mixed).toEqual(lower);
    const server = validate("Server = true\nBOOTSTRAP_EXPECT = 3\n");
    expect(server).toEqual({ status: 0, out: expect.stringContaining("bootstrap_expect > 0: expecting 3 servers") });
    // and the allowlist refuses both spellings before any node sees them
    for (const hcl of ["Server = true\n", "BOOTSTRAP_EXPECT = 1\n"]) expect(extraConfigProblems("consul", hcl)).toHaveLength(1);
  });
});
