/**
 * The nodes stack: per-node provisioning resources through the bastion, hash triggers,
 * agent configs that parse with HashiCorp's HCL parser and say what was intended,
 * shellcheck-clean scripts, destroy-time decommission, blast radius and determinism.
 */
import * as crypto from "crypto";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Testing } from "cdktf";
import { Resource as NullResource } from "@cdktf/provider-null/lib/resource";
import { NEVER_MATCHING_KEY } from "../constructs/ssh";
import {
  cleanup, edited, exampleCluster, hasCommand, itIf, parseHcl, resourcesOf, synthCluster, type SynthOutput,
} from "./helpers/synth";

Testing.setupJest();

const STACK = "team-example-nodes";
const sha = (t: string) => crypto.createHash("sha256").update(t).digest("hex");
/** Paths (in the stack directory) of the files a resource's remote-execs write from the synth output. */
const writtenFiles = (res: any): string[] =>
  res.provisioner.flatMap((p: any) => [...(p["remote-exec"]?.inline ?? []).join("\n").matchAll(/\$\{filebase64\(("[^"]+")\)\}/g)].map((m) => JSON.parse(m[1]) as string));
/** Every resource of a stack as "type.name" → JSON text of its body. */
function resourceBodies(stack: any): Map<string, string> {
  const m = new Map<string, string>();
  for (const [type, byName] of Object.entries(stack.resource ?? {})) {
    for (const [name, body] of Object.entries(byName as object)) m.set(`${type}.${name}`, JSON.stringify(body));
  }
  return m;
}
function changedResources(a: SynthOutput, b: SynthOutput, stack: string): string[] {
  const ra = resourceBodies(a.stacks[stack]);
  const rb = resourceBodies(b.stacks[stack]);
  return [...new Set([...ra.keys(), ...rb.keys()])].filter((k) => ra.get(k) !== rb.get(k)).sort();
}

describe("nodes stack (example cluster)", () => {
  let out: SynthOutput;
  let stack: any;
  let files: Record<string, string>;
  beforeAll(() => {
    out = synthCluster(exampleCluster());
    stack = out.stacks[STACK];
    files = out.files[STACK];
  });
  afterAll(() => cleanup(out));

  it("has a Consul and a Nomad resource per node, connected through the bastion", () => {
    const json = JSON.stringify(stack);
    for (const node of ["node-1", "node-2"]) {
      for (const agent of ["consul", "nomad"]) {
        expect(json).toHaveResourceWithProperties(NullResource, {
          connection: expect.objectContaining({
            type: "ssh",
            host: node === "node-1" ? "192.0.2.11" : "192.0.2.12",
            user: "ubuntu",
            bastion_host: "bastion.example.org",
            bastion_port: 22,
            bastion_user: "student",
            agent: "true",
          }),
          triggers: expect.objectContaining({ node }),
        });
        expect(resourcesOf(stack, "null_resource")[`${node}_${agent}`]).toBeDefined();
      }
    }
  });

  it("triggers carry the SHA-256 of each provisioned file, never its text", () => {
    for (const [name, res] of Object.entries(resourcesOf(stack, "null_resource")) as [string, any][]) {
      // the rendered files reach the node inside the last remote-exec (`filebase64`); keepalived
      // also uploads its password as a file provisioner's `content`, untriggered
      expect(res.provisioner.filter((p: any) => p.file?.source)).toEqual([]);
      const uploads = writtenFiles(res);
      expect(uploads.length).toBeGreaterThan(1);
      expect(uploads.every((f) => f in files)).toBe(true);
      // every file written is a trigger, so no file escapes re-provisioning
      expect(Object.keys(res.triggers).filter((k) => k.startsWith("sha256_")).sort()).toEqual(uploads.map((f) => `sha256_${path.basename(f).replace(/[^A-Za-z0-9]/g, "_")}`).sort());
      for (const source of uploads) {
        const key = `sha256_${path.basename(source).replace(/[^A-Za-z0-9]/g, "_")}`;
        expect({ name, key, value: res.triggers[key] }).toEqual({ name, key, value: sha(files[source]) });
      }
      for (const v of Object.values(res.triggers) as string[]) expect(v.length).toBeLessThan(100);
    }
  });

  it("provisions each resource in two SSH connections (three with a secret file): a fresh private stage, then one script uploaded into it", () => {
    for (const [name, res] of Object.entries(resourcesOf(stack, "null_resource")) as [string, any][]) {
      const steps = res.provisioner.map((p: any) => Object.keys(p)[0]);
      const secrets = res.provisioner.filter((p: any) => p.file?.content !== undefined).length;
      expect({ name, steps }).toEqual({ name, steps: ["remote-exec", ...Array(secrets).fill("file"), "remote-exec"] });
      const [first, last] = [res.provisioner[0]["remote-exec"], res.provisioner[steps.length - 1]["remote-exec"]];
      const stage = first.inline[0].match(/rm -rf '([^']+)'/)[1];
      // the script is uploaded into the private stage, not the engines' shared /tmp default
      expect(last.connection).toEqual({ script_path: `${stage}/script/provision.sh` });
      expect(first.connection).toBeUndefined();
    }
  });

  it("references every rendered file from the Terraform JSON", () => {
    const json = JSON.stringify(stack);
    const rendered = Object.keys(files).filter((f) => f.startsWith("rendered/"));
    expect(rendered.length).toBeGreaterThanOrEqual(11);
    // a file is referenced by its own path: a file provisioner's source or a remote-exec's filebase64
    for (const f of rendered) expect({ f, referenced: json.includes(`"source":"${f}"`) || json.includes(`filebase64(\\"${f}\\")`) }).toEqual({ f, referenced: true });
  });

  it("rolls agent restarts one node at a time, Consul before Nomad", () => {
    const nr = resourcesOf(stack, "null_resource");
    expect(nr["node-2_consul"].depends_on).toContain("null_resource.node-1_consul");
    expect(nr["node-2_nomad"].depends_on).toContain("null_resource.node-1_nomad");
    expect(nr["node-1_nomad"].depends_on).toContain("null_resource.node-1_consul");
    expect(nr["node-1_consul"].depends_on).not.toContain("null_resource.node-2_consul");
    // keepalived between them: under maintenance the floating IP leaves before the drain
    expect(nr["node-1_keepalived"].depends_on).toContain("null_resource.node-1_consul");
    expect(nr["node-1_nomad"].depends_on).toContain("null_resource.node-1_keepalived");
    expect(nr["node-1_keepalived"].depends_on).not.toContain("null_resource.node-1_nomad");
  });

  it("pins the Nomad overlay host network to the node's own address, never the floating IP", async () => {
    const hcl = await parseHcl("nomad.hcl", files["rendered/node-1/nomad/nomad.hcl"]);
    expect(hcl.client[0].host_network.overlay[0]).toEqual({ interface: "vxlan100", cidr: "172.16.1.11/32" });
    expect(files["rendered/node-1/consul/install.sh"]).toContain("readonly FLOATING_IP='172.16.3.100'");
    expect(files["rendered/node-1/consul/install.sh"]).toContain('[[ -n "$addr" && "$addr" != "$FLOATING_IP" ]] || continue');
  });

  it("renders a Consul client config that binds and advertises the overlay address", async () => {
    const hcl = await parseHcl("consul.hcl", files["rendered/node-1/consul/consul.hcl"]);
    expect(hcl).toMatchObject({
      datacenter: "dc1",
      node_name: "node-1",
      server: false,
      data_dir: "/opt/consul",
      bind_addr: "172.16.1.11",
      advertise_addr: "172.16.1.11",
      client_addr: "127.0.0.1", // loopback only unless consul.httpOnOverlay
      retry_join: ["172.16.2.100"], // the servers' IP: no name is published for them
      leave_on_terminate: false,
      disable_update_check: true, // no call to HashiCorp's checkpoint service at start
      rejoin_after_leave: true,
      enable_script_checks: false,
    });
    expect(hcl.addresses[0].dns).toBe("172.16.1.11");
    expect(hcl.ports[0].dns).toBe(53);
    expect(hcl.dns_config[0]).toMatchObject({ use_cache: true, allow_stale: true });
    // linkDns: none (the example): nothing sends host lookups to this agent, so no open resolver on the overlay
    expect(hcl).not.toHaveProperty("recursors");
    expect(hcl).not.toHaveProperty("encrypt");
    const node2 = await parseHcl("consul.hcl", files["rendered/node-2/consul/consul.hcl"]);
    expect(node2.bind_addr).toBe("172.16.1.12");
  });

  it("renders a Nomad client config: client only, overlay host network, no drain_on_shutdown", async () => {
    const hcl = await parseHcl("nomad.hcl", files["rendered/node-2/nomad/nomad.hcl"]);
    expect(hcl).toMatchObject({ datacenter: "dc1", region: "global", name: "node-2", bind_addr: "172.16.1.12", leave_on_terminate: false });
    expect(hcl.server[0].enabled).toBe(false);
    const client = hcl.client[0];
    expect(client.enabled).toBe(true);
    expect(client.network_interface).toBe("vxlan100");
    expect(client.host_network.overlay[0].interface).toBe("vxlan100");
    expect(client.server_join[0].retry_join).toEqual(["172.16.2.100"]);
    // nobody who reaches the servers' API can exec into our tasks; no checkpoint call at start
    expect(client.disable_remote_exec).toBe(true);
    expect(hcl.disable_update_check).toBe(true);
    expect(client.meta).toEqual({ floating_ip_eligible: "true" });
    expect(client).not.toHaveProperty("drain_on_shutdown");
    // Nomad caps kill_timeout at the client's max_kill_timeout (default 30s): the worker's
    // 120s must fit, or Celery tasks are killed mid-way.
    expect(client.max_kill_timeout).toBe("120s");
    expect(hcl.advertise[0]).toEqual({ http: "172.16.1.12", rpc: "172.16.1.12", serf: "172.16.1.12" });
    expect(hcl.consul[0].address).toBe("127.0.0.1:8500");
    expect(hcl.plugin.docker[0].config[0].allow_privileged).toBe(false);
  });

  itIf(hasCommand("shellcheck"), "shellcheck is not installed (apt-get install shellcheck)")("has shellcheck-clean scripts", () => {
    const scripts = Object.keys(files).filter((f) => f.endsWith(".sh"));
    // consul + nomad install per node, keepalived install per node, decommission
    expect(scripts.length).toBe(7);
    const dir = path.join(out.outdir, "stacks", STACK);
    // throws (non-zero exit) with shellcheck's findings on any warning
    execFileSync("shellcheck", ["-S", "warning", "-s", "bash", ...scripts], { cwd: dir, stdio: "pipe" });
    for (const s of scripts) expect(files[s]).toMatch(/^#!\/usr\/bin\/env bash\n(#.*\n)*set -euo pipefail$/m);
  });

  it("counts Consul as joined only when the local agent is alive with its overlay address AND the servers' catalog has it there, in their datacenter", () => {
    const script = files["rendered/node-1/consul/install.sh"];
    const joined = script.slice(script.indexOf("joined() {"), script.indexOf("\n}\n", script.indexOf("joined() {")) + 3);
    // `consul members` (local gossip) and `consul catalog nodes` (asked of the servers) print what the real CLI prints.
    const run = (members: string, catalog: string) =>
      spawnSync("bash", ["-c", `NODE_NAME=node-1\nSERVERS_DATACENTER=dc1\nSERVERS_HTTP=http://x:8500\nconsul() { case $1 in members) printf '%s\\n' "$MEMBERS" ;; catalog) printf '%s\\n' "$CATALOG" ;; esac; }\n${joined}\njoined 172.16.1.11`], {
        env: { ...process.env, MEMBERS: members, CATALOG: catalog },
      }).status;
    const header = "Node Address Status Type Build Protocol DC Partition Segment";
    const self = "node-1 172.16.1.11:8301 alive client 1.20.5 2 dc1 default <default>";
    const members = [header, "consul-1 172.16.0.2:8301 alive server 1.20.5 2 dc1 default <all>", self].join("\n");
    const catalogHeader = "Node ID Address DC";
    const registered = [catalogHeader, "consul-1 0e4d5c11 172.16.0.2 dc1", "node-1 7a1b2c3d 172.16.1.11 dc1"].join("\n");
    expect(run(members, registered)).toBe(0);
    expect(run(members, [catalogHeader, "consul-1 0e4d5c11 172.16.0.2 dc1"].join("\n"))).toBe(1); // gossip only: the servers never registered it
    expect(run(members, registered.replace("172.16.1.11", "10.0.2.15"))).toBe(1); // the servers know it at another address
    expect(run(members, registered.replace("172.16.1.11 dc1", "172.16.1.11 team-x"))).toBe(1); // another datacenter
    expect(run(members.replace(`\n${self}`, ""), registered)).toBe(1); // not among the locally alive members (-status=alive)
  });

  it("decommission disables every agent whatever its state, so nothing comes back at boot", () => {
    const d = files["rendered/decommission.sh"];
    expect(d).toContain("systemctl disable --now --quiet keepalived nomad consul 2>/dev/null || true");
    expect(d.indexOf("systemctl disable --now --quiet keepalived nomad consul")).toBeGreaterThan(d.indexOf("consul leave"));
    expect(d).toContain(". '/etc/nomad.d/cli.env'");
  });

  it("installs only validated configs and restarts only on change", () => {
    const script = files["rendered/node-1/consul/install.sh"];
    const validate = script.indexOf('consul validate "$candidate"');
    const install = script.indexOf('install -D -m "$mode"');
    const restart = script.indexOf('systemctl restart "$AGENT"');
    expect(validate).toBeGreaterThan(0);
    expect(install).toBeGreaterThan(validate);
    expect(restart).toBeGreaterThan(install);
    expect(script).toMatch(/if \[\[ "\$changed" == true \]\]; then\n.*\n\s+systemctl restart "\$AGENT"/);
    expect(files["rendered/node-1/nomad/install.sh"]).toContain('nomad config validate "$candidate"');
    expect(files["rendered/node-1/nomad/install.sh"]).toContain("-self -t '{{ .Status }} {{ .HTTPAddr }} {{ .Datacenter }}'");
  });

  it("decommissions a removed node at destroy time, reading only self", () => {
    const m = resourcesOf(stack, "terraform_data").node_membership;
    expect(Object.keys(m.for_each)).toEqual(["node-1", "node-2"]);
    expect(m.input).toBe("${each.value}");
    const destroySteps = m.provisioner.filter((p: any) => (p.file ?? p["remote-exec"]).when === "destroy");
    // two SSH connections: the fresh private stage, then one script uploaded into it
    expect(destroySteps.map((p: any) => Object.keys(p)[0])).toEqual(["remote-exec", "remote-exec"]);
    const refs = JSON.stringify([m.connection, m.provisioner]).match(/\$\{[^}]*\}/g) ?? [];
    expect(refs.length).toBeGreaterThan(3);
    // a destroy-time provisioner may reference only self (a function of a literal is no reference)
    for (const r of refs) expect(r).toMatch(/^\$\{((tonumber\()?self\.input\.|filebase64\(\\"rendered\/decommission\.sh\\"\)\}$)/);
    expect(files["rendered/decommission.sh"]).toMatch(/keepalived[\s\S]*nomad node drain[\s\S]*consul leave/);
  });

  it("outputs what an operator looks up", () => {
    expect(Object.keys(stack.output).sort()).toEqual(["consul_ui", "floating_ip", "floating_ip_candidates", "nodes", "nomad_ui", "public_url"]);
    expect(stack.output.nodes.value["node-1"]).toEqual({ address: "192.0.2.11", overlay_address: "172.16.1.11", maintenance: false });
  });
});

describe("nodes stack options", () => {
  it("raises the Nomad client's max_kill_timeout to the worker's kill timeout, never below Nomad's 30s", async () => {
    for (const [killTimeout, expected] of [["5m", "300s"], ["10s", "30s"]]) {
      const out = synthCluster(edited(exampleCluster(), (c) => (c.app.worker.killTimeout = killTimeout)));
      try {
        const nomad = await parseHcl("n.hcl", out.files[STACK]["rendered/node-1/nomad/nomad.hcl"]);
        expect(nomad.client[0].max_kill_timeout).toBe(expected);
        const worker = await parseHcl("w.hcl", out.files["team-example-jobs"]["rendered/jobs/worker.nomad.hcl"]);
        expect(worker.job.worker[0].group.worker[0].task.worker[0].kill_timeout).toBe(killTimeout);
      } finally {
        cleanup(out);
      }
    }
  });

  it("pins host keys (the bastion's also inside host_key, for engines that check the hop against it) and reads a private key file only at apply time", () => {
    const c = edited(exampleCluster(), (c) => {
      c.bastion.port = 2222;
      c.ssh.privateKey = { file: "~/.ssh/team_ed25519" };
    });
    const out = synthCluster(c);
    try {
      const nr = resourcesOf(out.stacks[STACK], "null_resource");
      const hostKey = nr["node-1_consul"].connection.host_key as string;
      // a known_hosts file of its own: the never-matching first line fills the engines'
      // "@cert-authority <host:port>" slot, then the node's and the bastion's patterns
      expect(hostKey.split("\n")).toEqual([
        `${NEVER_MATCHING_KEY} placeholder-matching-no-host`,
        `192.0.2.11 ${c.nodes[0].hostKey}`,
        `[bastion.example.org]:2222 ${c.bastion.hostKey}`,
      ]);
      expect(nr["node-1_consul"].connection).toMatchObject({ bastion_host_key: c.bastion.hostKey, private_key: '${file(pathexpand("~/.ssh/team_ed25519"))}' });
      expect(nr["node-2_consul"].connection.host_key).toContain(`192.0.2.12 ${c.nodes[1].hostKey}`);
      const m = resourcesOf(out.stacks[STACK], "terraform_data").node_membership;
      expect(m.for_each["node-1"]).toMatchObject({ host_key: hostKey, bastion_host_key: c.bastion.hostKey, private_key_file: "~/.ssh/team_ed25519" });
      expect(m.connection.private_key).toBe("${file(pathexpand(self.input.private_key_file))}");
    } finally {
      cleanup(out);
    }
  });

  it("connects unchecked only under ssh.insecureIgnoreHostKey, and then with no key at all", () => {
    const out = synthCluster(edited(exampleCluster(), (c) => {
      c.ssh.insecureIgnoreHostKey = true;
      delete c.bastion.hostKey;
      for (const n of c.nodes) delete n.hostKey;
    }));
    try {
      const conn = resourcesOf(out.stacks[STACK], "null_resource")["node-1_consul"].connection;
      expect(conn).not.toHaveProperty("host_key");
      expect(conn).not.toHaveProperty("bastion_host_key");
    } finally {
      cleanup(out);
    }
  });

  it("with Nomad TLS, the node's CLI calls use https and the agent's certificate settings", () => {
    const tls = { caFile: "/etc/nomad.d/tls/ca.pem", certFile: "/etc/nomad.d/tls/cli.pem", keyFile: "/etc/nomad.d/tls/cli-key.pem" };
    const out = synthCluster(edited(exampleCluster(), (c) => (c.nomad = { ...c.nomad, tls })));
    try {
      const install = out.files[STACK]["rendered/node-1/nomad/install.sh"];
      expect(install).toContain(`printf 'NOMAD_ADDR=%q\\n' "https://$address:4646"`);
      expect(install).toContain("printf 'NOMAD_CACERT=%q\\n' '/etc/nomad.d/tls/ca.pem'");
      expect(install).toContain("printf 'NOMAD_TLS_SERVER_NAME=%q\\n' 'client.global.nomad'");
      // the node's own agent through the environment; only the servers and the loopback server probe are named
      expect(install.match(/-address=\S+/g)).toEqual(["-address=https://127.0.0.1:4646", '-address="$SERVERS_HTTP"']);
      expect(install).toContain("readonly SERVERS_HTTP='https://172.16.2.100:4646'");
    } finally {
      cleanup(out);
    }
  });

  it("uses go-sockaddr interface lookup when addressing is `interface`", async () => {
    const out = synthCluster(edited(exampleCluster(), (c) => (c.overlay.addressing = "interface")));
    try {
      const consul = await parseHcl("c.hcl", out.files[STACK]["rendered/node-1/consul/consul.hcl"]);
      expect(consul.bind_addr).toBe('{{ GetInterfaceIP "vxlan100" }}');
      const nomad = await parseHcl("n.hcl", out.files[STACK]["rendered/node-1/nomad/nomad.hcl"]);
      expect(nomad.advertise[0].rpc).toBe('{{ GetInterfaceIP "vxlan100" }}');
      expect(out.files[STACK]["rendered/node-1/consul/install.sh"]).toContain("readonly EXPECTED_ADDRESS=''");
    } finally {
      cleanup(out);
    }
  });

  it("supports gossip encryption, TLS and ACLs with secrets read on the node, plus an extraConfig escape hatch", async () => {
    const tls = { caFile: "/etc/consul.d/tls/ca.pem", certFile: "/etc/consul.d/tls/client.pem", keyFile: "/etc/consul.d/tls/client-key.pem" };
    const out = synthCluster(edited(exampleCluster(), (c) => {
      c.consul = { ...c.consul, gossipEncryption: true, acl: true, tls, extraConfig: 'log_level = "DEBUG"' };
      c.nomad = { ...c.nomad, acl: true };
    }));
    try {
      const f = out.files[STACK];
      const consul = await parseHcl("c.hcl", f["rendered/node-1/consul/consul.hcl"]);
      expect(consul.encrypt_verify_incoming).toBe(true);
      expect(consul.acl[0]).toMatchObject({ enabled: true, default_policy: "deny" });
      expect(consul.tls[0].defaults[0]).toMatchObject({ ca_file: tls.caFile, cert_file: tls.certFile, key_file: tls.keyFile });
      expect(consul).not.toHaveProperty("encrypt"); // the key itself is never synthesized
      expect(await parseHcl("x.hcl", f["rendered/node-1/consul/zz-extra.hcl"])).toEqual({ log_level: "DEBUG" });
      expect(f["rendered/node-1/consul/install.sh"]).toContain("readonly -a REQUIRED_FILES=('/etc/consul.d/gossip.hcl' '/etc/consul.d/acl-tokens.hcl' '/etc/consul.d/tls/ca.pem'");
      expect(f["rendered/node-1/nomad/install.sh"]).toContain("readonly -a REQUIRED_FILES=('/etc/nomad.d/operator.token' '/etc/nomad.d/consul-token.hcl')");
      // the CLIs on the node get the operator-managed tokens (never printed)
      expect(f["rendered/node-1/nomad/install.sh"]).toContain("NOMAD_TOKEN=$(<'/etc/nomad.d/operator.token')\nexport NOMAD_TOKEN");
      const consulInstall = f["rendered/node-1/consul/install.sh"];
      const extraction = consulInstall.split("\n").find((l) => l.startsWith("CONSUL_HTTP_TOKEN=$(sed"))!;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "acl-"));
      try {
        const script = `${extraction.replace("/etc/consul.d/acl-tokens.hcl", path.join(dir, "acl-tokens.hcl"))}\nprintf %s "$CONSUL_HTTP_TOKEN"`;
        // the multi-line form, the one-line form of docs/trust-model.md (Security), and no agent token at all
        for (const [hcl, token] of [
          ['acl {\n  tokens {\n    agent = "3f1c-agent-token"\n  }\n}\n', "3f1c-agent-token"],
          ['acl { tokens { agent = "9e2d-inline" } }\n', "9e2d-inline"],
          ['acl { tokens { default = "x" replication = "y" } }\n', ""],
        ]) {
          fs.writeFileSync(path.join(dir, "acl-tokens.hcl"), hcl);
          expect(execFileSync("bash", ["-c", script], { encoding: "utf8" })).toBe(token);
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      expect(f["rendered/node-1/nomad/install.sh"]).toContain("readonly -a REMOVABLE=('/etc/nomad.d/zz-extra.hcl')");
      const nomad = await parseHcl("n.hcl", f["rendered/node-1/nomad/nomad.hcl"]);
      expect(nomad.acl[0].enabled).toBe(true);
    } finally {
      cleanup(out);
    }
  });
});

describe("blast radius and determinism", () => {
  let base: SynthOutput;
  beforeAll(() => (base = synthCluster(exampleCluster())));
  afterAll(() => cleanup(base));

  function changedBy(edit: (c: ReturnType<typeof exampleCluster>) => void): string[] {
    const next = synthCluster(edited(exampleCluster(), edit));
    try {
      return changedResources(base, next, STACK);
    } finally {
      cleanup(next);
    }
  }

  it("synthesizing twice gives byte-identical output", () => {
    const again = synthCluster(exampleCluster());
    try {
      const list = (o: SynthOutput) => Object.fromEntries(Object.entries(o.files).map(([s, f]) => [s, Object.keys(f).sort()]));
      expect(list(again)).toEqual(list(base));
      for (const s of Object.keys(base.stacks)) {
        const p = (o: SynthOutput) => path.join(o.outdir, "stacks", s);
        for (const f of ["cdk.tf.json", ...Object.keys(base.files[s])]) {
          expect({ f, same: fs.readFileSync(path.join(p(base), f)).equals(fs.readFileSync(path.join(p(again), f))) }).toEqual({ f, same: true });
        }
      }
    } finally {
      cleanup(again);
    }
  });

  it("a Nomad-only setting of one node re-provisions only that node's Nomad agent", () => {
    expect(changedBy((c) => (c.nodes[1].nodeClass = "edge"))).toEqual(["null_resource.node-2_nomad"]);
  });

  it("a change of one node's overlay address re-provisions that node's agents, and only keepalived (peer list) elsewhere", () => {
    expect(changedBy((c) => (c.nodes[0].overlayAddress = "172.16.1.21"))).toEqual([
      "null_resource.node-1_consul",
      "null_resource.node-1_keepalived",
      "null_resource.node-1_nomad",
      "null_resource.node-2_keepalived",
      "terraform_data.node_membership",
    ]);
  });

  it("a Consul-only setting touches Consul agents, never Nomad", () => {
    const changed = changedBy((c) => (c.consul.extraConfig = 'log_level = "DEBUG"'));
    expect(changed).toEqual(["null_resource.node-1_consul", "null_resource.node-2_consul"]);
  });
});

describe("secrets", () => {
  it("no secret planted in the environment appears anywhere under cdktf.out (main.ts run as cdktf runs it)", () => {
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), "cdktf-secrets-"));
    const planted: Record<string, string> = {};
    for (const v of ["s3_access_key_id", "s3_secret_access_key", "rabbitmq_password", "registry_password", "vrrp_password"]) {
      planted[`TF_VAR_${v}`] = `PLANTED-${v}-${crypto.randomBytes(12).toString("hex")}`;
    }
    planted.AWS_SECRET_ACCESS_KEY = `PLANTED-aws-${crypto.randomBytes(12).toString("hex")}`;
    planted.CONSUL_HTTP_TOKEN = `PLANTED-consul-${crypto.randomBytes(12).toString("hex")}`;
    planted.NOMAD_TOKEN = `PLANTED-nomad-${crypto.randomBytes(12).toString("hex")}`;
    try {
      execFileSync(path.join(__dirname, "..", "node_modules", ".bin", "tsx"), ["main.ts"], {
        cwd: path.join(__dirname, ".."),
        env: { ...process.env, ...planted, CDKTF_OUTDIR: outdir },
        stdio: "pipe",
      });
      const all = execFileSync("find", [outdir, "-type", "f"], { encoding: "utf8" }).trim().split("\n");
      expect(all.length).toBeGreaterThan(5);
      for (const f of all) {
        const text = fs.readFileSync(f, "utf8");
        for (const [name, value] of Object.entries(planted)) {
          if (text.includes(value)) throw new Error(`${name} leaked into ${path.relative(outdir, f)}`);
        }
      }
    } finally {
      fs.rmSync(outdir, { recursive: true, force: true });
    }
  });
});

describe("state backend", () => {
  it("keeps local state per stack by default", () => {
    const out = synthCluster(exampleCluster());
    try {
      expect(out.stacks[STACK].terraform.backend).toEqual({ local: { path: "../../../terraform.team-example-nodes.tfstate" } });
    } finally {
      cleanup(out);
    }
  });

  it("uses Consul's locking KV backend when described, without a token in the output", () => {
    const out = synthCluster(edited(exampleCluster(), (c) => (c.state = { consul: { address: "consul.example.org:8501", scheme: "https", path: "terraform/team-example/" } })));
    try {
      expect(out.stacks[STACK].terraform.backend).toEqual({
        consul: { address: "consul.example.org:8501", scheme: "https", path: "terraform/team-example/team-example-nodes", lock: true, gzip: true },
      });
    } finally {
      cleanup(out);
    }
  });
});

describe("state backend: http", () => {
  it("declares an http backend configured only by TF_HTTP_* at init time", () => {
    const out = synthCluster(edited(exampleCluster(), (c) => (c.state = { http: true })));
    try {
      expect(out.stacks[STACK].terraform.backend).toEqual({ http: {} });
    } finally {
      cleanup(out);
    }
  });
});
