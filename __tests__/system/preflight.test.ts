/**
 * System test of `npm run preflight` in the lab (lab.ts): the real OpenSSH client of the
 * script, a real sshd bastion and real sshd VMs offering Ed25519 and ECDSA host keys, the
 * lab's REAL Consul server (its datacenter read by the real `consul members -detailed`;
 * the VM's `consul version` answers the described generation's version: lab.ts), the
 * Nomad stand-in (provider-standins.ts: `nomad server members` Region column, `nomad
 * version`), and the real keepalived, ip, ss, df and getent of the VM.
 *
 * Stand-ins this test adds, each following the documented behaviour of the real thing:
 * - the Nomad servers' RPC port: a TCP listener on 4647 at the lab's servers' address (the
 *   Consul server answers 8301 itself), named in each VM's /etc/hosts;
 * - the Docker daemon: a unix socket answering `GET /_ping` with `OK` (Docker Engine API).
 *
 * Each failure is made on node-1 alone and undone; node-2 stays good, so each run also
 * proves that one node's problem is reported on that node only.
 */
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { edited, itIf, REPO_ROOT } from "../helpers/synth";
import type { Cluster } from "../../constructs/description/schema";
import { LAB_SERVERS_ADDRESS, buildLab, labPrerequisites, type Lab, type LabVm } from "./lab";
import { generationProfile, writeProfile } from "./provider-standins";

jest.setTimeout(600000);
const TSX = path.join(REPO_ROOT, "node_modules", ".bin", "tsx");
const SERVERS = LAB_SERVERS_ADDRESS;
const JOIN_NAME = "servers.lab.internal";
const SECRET = "s3cr3t-agent-token-5d1e";

const LISTENER = `
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], port)); s.listen(16)
    while True: s.accept()[0].close()
ports = [int(p) for p in sys.argv[2:]]
for p in ports[1:]: threading.Thread(target=serve, args=(p,), daemon=True).start()
serve(ports[0])
`;
const DOCKER_PING = `
import os, socket, sys
path = sys.argv[1]
if os.path.exists(path): os.unlink(path)
s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(8)
while True:
    c, _ = s.accept(); c.recv(4096)
    c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nOK"); c.close()
`;

interface Result {
  node: string;
  check: string;
  status: "ok" | "fail" | "error" | "skip";
  detail: string;
  remedy?: string;
}

describe("npm run preflight against lab VMs through a real bastion", () => {
  let lab: Lab;
  let good: Cluster;
  const started: ReturnType<Lab["sandbox"]["start"]>[] = [];
  const pre = labPrerequisites;

  beforeAll(async () => {
    if (!pre.ok) return;
    lab = await buildLab({ vms: 2, tag: "pf", vmHostKeyTypes: ["ecdsa"] });
    started.push(lab.sandbox.start("nomad-servers-rpc", lab.servers.ns, ["/usr/bin/python3", "-c", LISTENER, SERVERS, "4647"]));
    for (const vm of lab.vms) {
      must(vm, `echo '${SERVERS} ${JOIN_NAME}' >> /etc/hosts`);
      const sock = path.join(lab.dir, `${vm.name}-docker.sock`);
      started.push(lab.sandbox.start(`docker-${vm.name}`, vm.ns, ["/usr/bin/python3", "-c", DOCKER_PING, sock]));
      must(vm, `for i in $(seq 50); do [ -S ${sock} ] && break; sleep 0.1; done; mkdir -p /run && ln -sf ${sock} /var/run/docker.sock`);
    }
    // The engines' SSH client is shown the ECDSA key of a VM that has one: that is what is pinned.
    good = lab.cluster((c) => {
      c.servers.join = [JOIN_NAME];
      c.nodes.forEach((n, i) => (n.hostKey = lab.vms[i].hostKeys.ecdsa));
    });
  }, 180000);
  afterAll(async () => {
    if (!lab) return;
    for (const t of started) await lab.sandbox.stop(t);
    lab.cleanup();
  });

  function must(vm: LabVm, cmd: string): string {
    const r = vm.exec(cmd);
    if (r.status !== 0) throw new Error(`${vm.name}: ${cmd}: ${r.stderr}`);
    return r.stdout;
  }

  let n = 0;
  /** Runs the script from the operator's namespace on a description; JSON and text runs both. */
  function preflight(c: Cluster, args: string[] = []) {
    const file = path.join(lab.dir, `preflight-${n++}.yaml`);
    fs.writeFileSync(file, stringify(c));
    const run = (extra: string[]) =>
      lab.sandbox.run(["ip", "netns", "exec", lab.opNs, TSX, path.join(REPO_ROOT, "scripts", "preflight.ts"), ...args, ...extra], {
        timeoutMs: 240000,
        env: { ...process.env, CLUSTER_FILE: file },
      });
    const json = run(["--json"]);
    let parsed: { exitCode: number; results: Result[] };
    try {
      parsed = JSON.parse(json.stdout);
    } catch {
      throw new Error(`no JSON (exit ${json.status}): ${json.stdout}\n${json.stderr}`);
    }
    expect(parsed.exitCode).toBe(json.status);
    const of = (node: string, check: string) => parsed.results.find((r) => r.node === node && r.check === check);
    return { status: json.status, results: parsed.results, of, stderr: json.stderr, all: `${json.stdout}${json.stderr}`, text: () => run([]) };
  }
  /** Every check of a node is ok (or not applicable), but those named. */
  const goodBut = (results: Result[], node: string, except: string[] = []) =>
    results.filter((r) => r.node === node && !except.includes(r.check) && r.status !== "ok" && r.status !== "skip").map((r) => `${r.check}: ${r.status} ${r.detail}`);

  itIf(pre.ok, pre.reason)("good nodes: every check passes, one line per check and node, exit 0", () => {
    const r = preflight(good);
    expect({ status: r.status, failed: r.results.filter((x) => x.status !== "ok" && x.status !== "skip") }).toEqual({ status: 0, failed: [] });
    for (const vm of lab.vms) {
      expect(goodBut(r.results, vm.name)).toEqual([]);
      for (const check of ["host key", "sudo", "consul binary", "nomad binary", "keepalived binary", "servers datacenter", "servers region", `join ${JOIN_NAME}`, "link DNS", "operator files", "disk /opt/consul", "disk /var/lib/nomad-client", "docker", "overlay", "ports"])
        expect({ check, present: !!r.of(vm.name, check) }).toEqual({ check, present: true });
      expect(r.of(vm.name, "consul binary")!.detail).toBe("consul 1.20.5");
      expect(r.of(vm.name, "servers datacenter")!.detail).toBe(`Consul servers in datacenter '${good.servers.datacenter}'`);
      expect(r.of(vm.name, `join ${JOIN_NAME}`)!.detail).toBe(`${JOIN_NAME} → ${SERVERS}, answers on 8301/tcp (Consul) and 4647/tcp (Nomad)`);
      expect(r.of(vm.name, "overlay")!.detail).toBe(`ovl210 up, addresses ${vm.overlayAddress}/24`);
    }
    const text = r.text();
    const lines = text.stdout.split("\n").filter((l) => /^(ok  |FAIL|ERR |skip) /.test(l));
    expect(lines.length).toBe(r.results.length);
    expect(text.stdout).toContain(`ok   node-1: host key: the key presented to the engines' SSH client is the pinned one`);
  });

  itIf(pre.ok, pre.reason)("an Ed25519 key pinned where the VM also has ECDSA: the engines would be shown ECDSA; the remedy names the key to pin", () => {
    const r = preflight(lab.cluster((c) => {
      c.servers.join = [JOIN_NAME];
      c.nodes.forEach((nd, i) => (nd.hostKey = i === 0 ? lab.vms[0].hostKeys.ed25519 : lab.vms[i].hostKeys.ecdsa));
    }));
    expect(r.status).toBe(2);
    expect(r.of("node-1", "host key")).toMatchObject({
      status: "fail",
      detail: "node-1 presents its ecdsa key to the engines' SSH client (it prefers ECDSA, then RSA, then Ed25519); nodes[0].hostKey pins a ssh-ed25519 key",
      remedy: expect.stringContaining(`ssh-keyscan -t ecdsa ${lab.vms[0].address} (on the bastion), without the host name, in nodes[0].hostKey`),
    });
    expect(r.of("node-2", "host key")!.status).toBe("ok");

    // Another key of the right type at the bastion: every node is refused there, before any node is asked.
    const wrongBastion = preflight(lab.cluster((c) => {
      c.servers.join = [JOIN_NAME];
      c.bastion.hostKey = lab.otherHostKey();
      c.nodes.forEach((nd, i) => (nd.hostKey = lab.vms[i].hostKeys.ecdsa));
    }));
    expect(wrongBastion.status).toBe(2);
    for (const node of ["node-1", "node-2"]) {
      expect(wrongBastion.of(node, "host key")).toMatchObject({
        status: "fail",
        detail: "the bastion presents an ed25519 key that is not the pinned one (the host key changed, or the wrong host answers)",
        remedy: expect.stringContaining(`ssh-keyscan -p 22 -t ed25519 ${lab.bastion.host}, without the host name, in bastion.hostKey`),
      });
      expect(wrongBastion.of(node, "sudo")).toBeUndefined();
    }
  });

  itIf(pre.ok, pre.reason)("no passwordless sudo: sudo fails with a remedy, the checks that need it could not be done (exit 1)", () => {
    const vm = lab.vms[0];
    must(vm, `printf '#!/bin/sh\\necho "sudo: a password is required" >&2\\nexit 1\\n' > /tmp/nosudo && chmod +x /tmp/nosudo && mount --bind /tmp/nosudo /usr/local/sbin/sudo`);
    try {
      const r = preflight(good);
      expect(r.status).toBe(1);
      expect(r.of("node-1", "sudo")).toMatchObject({ status: "fail", detail: "sudo -n true refused: sudo: a password is required", remedy: expect.stringContaining("passwordless sudo") });
      expect(r.of("node-1", "ports")!.status).toBe("error");
      expect(r.of("node-2", "sudo")!.status).toBe("ok");
    } finally {
      must(vm, "umount /usr/local/sbin/sudo");
    }
  });

  itIf(pre.ok, pre.reason)("an older Consul than described, and servers in another datacenter than described (the real server's)", () => {
    const vm = lab.vms[0];
    const profile = { ...generationProfile("2025", SERVERS, "unused"), serversDatacenter: good.servers.datacenter };
    writeProfile(vm.stateDir, { ...profile, consulVersion: "1.15.2" });
    try {
      const r = preflight(edited(good, (c) => (c.servers.datacenter = "dc9")));
      expect(r.status).toBe(2);
      expect(r.of("node-1", "consul binary")).toMatchObject({ status: "fail", detail: "consul 1.15.2, older than versions.consul 1.20.5", remedy: expect.stringContaining("set versions.consul: 1.15.2") });
      for (const node of ["node-1", "node-2"]) expect(r.of(node, "servers datacenter")).toMatchObject({ status: "fail", detail: "Consul servers in datacenter 'dc1'", remedy: expect.stringContaining("set servers.datacenter: dc1") });
      expect(r.of("node-1", "nomad binary")!.status).toBe("ok");
      expect(r.of("node-2", "consul binary")!.status).toBe("ok");
    } finally {
      writeProfile(vm.stateDir, profile);
    }
  });

  itIf(pre.ok, pre.reason)("operator-placed files: a missing token file is named, a present one is never read", () => {
    const vm = lab.vms[0];
    must(vm, `mkdir -p /etc/consul.d && printf 'acl { tokens { agent = "${SECRET}" } }\\n' > /etc/consul.d/acl-tokens.hcl`);
    try {
      const r = preflight(lab.cluster((c) => {
        c.servers.join = [JOIN_NAME];
        c.nodes.forEach((nd, i) => (nd.hostKey = lab.vms[i].hostKeys.ecdsa));
        c.consul = { ...c.consul, acl: true };
      }));
      expect(r.status).toBe(2);
      expect(r.of("node-1", "file /etc/consul.d/acl-tokens.hcl")).toMatchObject({ status: "ok", detail: "present (not read)" });
      expect(r.of("node-1", "file /etc/nomad.d/consul-token.hcl")).toMatchObject({ status: "fail", detail: "missing", remedy: expect.stringContaining("place /etc/nomad.d/consul-token.hcl on node-1") });
      expect(r.of("node-2", "file /etc/consul.d/acl-tokens.hcl")!.status).toBe("fail");
      expect(r.all).not.toContain(SECRET);
      expect(r.text().stdout).not.toContain(SECRET);
    } finally {
      must(vm, "rm -f /etc/consul.d/acl-tokens.hcl");
    }
  });

  itIf(pre.ok, pre.reason)("a full disk where the agents write (a 1 MiB tmpfs on /opt, Consul's data_dir, inside the VM)", () => {
    const vm = lab.vms[0];
    must(vm, "mount -t tmpfs -o size=1m tmpfs /opt");
    try {
      const r = preflight(good);
      expect(r.status).toBe(2);
      expect(r.of("node-1", "disk /opt/consul")).toMatchObject({ status: "fail", detail: "1 MiB free (on /opt)", remedy: expect.stringContaining("free at least 1024 MiB") });
      expect(r.of("node-2", "disk /opt/consul")!.status).toBe("ok");
    } finally {
      must(vm, "umount /opt");
    }
  });

  itIf(pre.ok, pre.reason)("Docker not answering, a join name that does not resolve, a missing overlay interface", () => {
    const vm = lab.vms[0];
    const link = must(vm, "readlink /var/run/docker.sock").trim();
    must(vm, "rm /var/run/docker.sock");
    try {
      const r = preflight(lab.cluster((c) => {
        c.servers.join = [JOIN_NAME, "nowhere.lab.internal"];
        c.nodes.forEach((nd, i) => (nd.hostKey = lab.vms[i].hostKeys.ecdsa));
        c.overlay = { ...c.overlay, interface: "ovl999" };
      }));
      expect(r.status).toBe(2);
      expect(r.of("node-1", "docker")).toMatchObject({ status: "fail", remedy: expect.stringContaining("start Docker on node-1") });
      expect(r.of("node-2", "docker")!.status).toBe("ok");
      expect(r.of("node-1", "join nowhere.lab.internal")).toMatchObject({ status: "fail", detail: "nowhere.lab.internal does not resolve on node-1" });
      expect(r.of("node-1", `join ${JOIN_NAME}`)!.status).toBe("ok");
      for (const node of ["node-1", "node-2"]) expect(r.of(node, "overlay")).toMatchObject({ status: "fail", detail: "no interface ovl999" });
    } finally {
      must(vm, `ln -sf ${link} /var/run/docker.sock`);
    }
  });

  itIf(pre.ok, pre.reason)("a foreign process on a port we reserve (HAProxy's node port) is named with its PID", async () => {
    const vm = lab.vms[0];
    const squatter = lab.sandbox.start("squatter", vm.ns, ["/usr/bin/python3", "-c", LISTENER, "0.0.0.0", String(good.app.haproxy.nodePort)]);
    try {
      for (let i = 0; i < 50 && vm.exec(`ss -Htln 'sport = :${good.app.haproxy.nodePort}' | grep -q .`).status !== 0; i++) await new Promise((res) => setTimeout(res, 100));
      const r = preflight(good);
      expect(r.status).toBe(2);
      expect(r.of("node-1", "ports")!.detail).toContain(`${good.app.haproxy.nodePort}/tcp on 0.0.0.0 held by python3 (pid ${squatter.pid}) (reserved: HAProxy node port (job haproxy))`);
      expect(r.of("node-2", "ports")!.detail).not.toContain(`${good.app.haproxy.nodePort}/tcp`);
    } finally {
      await lab.sandbox.stop(squatter);
    }
  });

  itIf(pre.ok, pre.reason)("refuses without CLUSTER_FILE (the example's hosts are placeholders), before any ssh", () => {
    const r = lab.sandbox.run(["ip", "netns", "exec", lab.opNs, TSX, path.join(REPO_ROOT, "scripts", "preflight.ts")], { env: { ...process.env, CLUSTER_FILE: "" } });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("refusing to run the preflight without CLUSTER_FILE");
    expect(r.stderr).not.toContain("checking 2 nodes");
  });
});
