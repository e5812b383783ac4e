/**
 * The README's quickstart, followed step by step as a new operator would, in the lab
 * (lab.ts: namespace VMs behind a real sshd bastion, the provider's REAL Consul server, the
 * Nomad stand-in of provider-standins.ts). The commands are parsed out of README.md, so the
 * walkthrough cannot drift from it:
 *
 * 1. the `cp` of step 1, with the provider generation the lab reproduces (2022: servers on a
 *    separate host in dc1, no link DNS), which the README's comment on that line offers;
 * 2. "fill in what the provider sent": the lab's addresses and team name, and the host keys
 *    read with `ssh-keyscan` as docs/deploying.md says (ECDSA first; the lab's bastion has only
 *    an Ed25519 key, which that page says works where the host has no ECDSA or RSA key), the
 *    YAML edited in place so its comments stay;
 * 3. the synth command of step 3 on that file (exit 0, it names the file and its stacks);
 * 4. the block of step 4 as written (the exports, then `npm run preflight`), from the
 *    operator's namespace: exit 0, every check ok or not applicable;
 * 5. the `npm run diff` of step 5 on the nodes stack (the Commands table's `npm run diff --
 *    STACK` form): the real Terraform plans every resource instance of the synthesized stack.
 *    The jobs stack is left out: its providers (nomad, consul) are not in the engines' offline
 *    mirror (.engines/terraform.rc holds the null provider only). `--skip-provider-lock` (a
 *    cdktf option): cdktf's `terraform providers lock` for a fresh output directory asks the
 *    registry, which the lab does not reach; an operator online does not need it.
 *
 * Stand-ins added here (as in preflight.test.ts, following the documented behaviour of the
 * real thing): the Nomad servers' RPC port (a TCP listener on 4647 at the servers' address;
 * the Consul server answers 8301 itself) and the Docker daemon (a unix socket answering
 * `GET /_ping` with `OK`, Docker Engine API).
 */
import * as fs from "fs";
import * as path from "path";
import { parseDocument } from "yaml";
import { itIf, REPO_ROOT } from "../helpers/synth";
import { readmeCommandRows } from "../helpers/docs";
import { LAB_FLOATING_IP, LAB_OVERLAY_INTERFACE, LAB_SERVERS_ADDRESS, buildLab, labPrerequisites, type Lab } from "./lab";

jest.setTimeout(900000);

const README = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
const QUICKSTART = README.slice(README.indexOf("## Quickstart"), README.indexOf("## Commands"));
/** The fenced blocks of the quickstart, in order. */
const BLOCKS = [...QUICKSTART.matchAll(/^\s*```(\w*)\n([\s\S]*?)^\s*```/gm)].map((m) => ({ lang: m[1], text: m[2].split("\n").map((l) => l.trim()).join("\n") }));
/** The generation the lab reproduces (lab.ts: the provider's Consul server in the 2022 playbook's shape, dc1, no link DNS). */
const LAB_GENERATION = "provider-2022";

const LISTENER = `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
while True: s.accept()[0].close()
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

describe("the README's quickstart parses into the steps the walkthrough follows", () => {
  it("step 1 copies a shipped description and names the others; step 3 synthesizes; step 4 exports and runs the preflight; step 5 diffs", () => {
    const steps = quickstartSteps();
    expect(fs.existsSync(path.join(REPO_ROOT, steps.copy.from))).toBe(true);
    expect(steps.copy.alternatives).toContain(LAB_GENERATION);
    expect(fs.existsSync(path.join(REPO_ROOT, "clusters", `${LAB_GENERATION}.yaml`))).toBe(true);
    expect(steps.synth).toMatch(/^CLUSTER_FILE=\S+ npm run synth$/);
    expect(steps.preflight.split("\n").filter((l) => l.startsWith("npm run ")).map((l) => l.split(/\s+/).slice(0, 3).join(" "))).toEqual(["npm run preflight"]);
    expect(steps.preflight).toContain(`export CLUSTER_FILE=${steps.copy.to}`);
    expect(steps.diff).toMatch(/^npm run diff\b/);
  });
});

interface Steps {
  copy: { line: string; from: string; to: string; alternatives: string[] };
  synth: string;
  preflight: string;
  diff: string;
}

function quickstartSteps(): Steps {
  const sh = BLOCKS.filter((b) => b.lang === "sh");
  const cpLine = sh.map((b) => b.text.split("\n").find((l) => l.startsWith("cp "))).find(Boolean);
  if (!cpLine) throw new Error("README quickstart: no `cp` line in a sh block");
  const [, from, to, comment] = /^cp (\S+) (\S+)\s*(?:#(.*))?$/.exec(cpLine) ?? [];
  // "# or provider-2022/2023/2024": the other generations, named as their files are
  const alternatives = [...(comment ?? "").matchAll(/(provider-)?(\d{4})/g)].map((m) => `provider-${m[2]}`);
  const synthLine = BLOCKS.map((b) => b.text.split("\n").find((l) => /^\$ CLUSTER_FILE=\S+ npm run synth$/.test(l))).find(Boolean);
  const preflight = sh.find((b) => /^npm run preflight\b/m.test(b.text))?.text.trim();
  const diff = sh.map((b) => b.text.split("\n").find((l) => /^npm run diff\b/.test(l))).find(Boolean);
  if (!synthLine || !preflight || !diff) throw new Error(`README quickstart: missing step (synth: ${synthLine}, preflight: ${!!preflight}, diff: ${diff})`);
  return { copy: { line: cpLine, from, to, alternatives }, synth: synthLine.slice(2), preflight, diff: diff.replace(/\s+#.*$/, "") };
}

describe("walkthrough: the README's quickstart in the lab, from the copy to a validated, preflighted description", () => {
  const pre = labPrerequisites;
  let lab: Lab;
  let work: string;
  /** The operator's filled-in description, once the walkthrough has written it. */
  let filledIn: string | undefined;
  const started: ReturnType<Lab["sandbox"]["start"]>[] = [];

  beforeAll(async () => {
    if (!pre.ok) return;
    lab = await buildLab({ vms: 2, tag: "wt", vmHostKeyTypes: ["ecdsa"] });
    started.push(lab.sandbox.start("nomad-servers-rpc", lab.servers.ns, ["/usr/bin/python3", "-c", LISTENER, LAB_SERVERS_ADDRESS, "4647"]));
    for (const vm of lab.vms) {
      const sock = path.join(lab.dir, `${vm.name}-docker.sock`);
      started.push(lab.sandbox.start(`docker-${vm.name}`, vm.ns, ["/usr/bin/python3", "-c", DOCKER_PING, sock]));
      const r = vm.exec(`for i in $(seq 50); do [ -S ${sock} ] && break; sleep 0.1; done; mkdir -p /run && ln -sf ${sock} /var/run/docker.sock`);
      if (r.status !== 0) throw new Error(`${vm.name}: docker stand-in: ${r.stderr}`);
    }
    // The operator's checkout: the README's relative paths (clusters/…) resolve here; the
    // commands themselves run in the repository (npm scripts), with the paths rewritten.
    work = path.join(lab.dir, "checkout");
    fs.mkdirSync(path.join(work, "clusters"), { recursive: true });
  }, 240000);
  afterAll(async () => {
    if (!lab) return;
    for (const t of started) await lab.sandbox.stop(t);
    lab.cleanup();
  });

  /** A README path (relative to the checkout) where the operator's copy lives. */
  const operatorPath = (p: string) => (p.startsWith("clusters/") && !fs.existsSync(path.join(REPO_ROOT, p)) ? path.join(work, p) : p);
  const rewrite = (text: string, steps: Steps) => text.split(steps.copy.to).join(operatorPath(steps.copy.to));

  /** `ssh-keyscan` as docs/deploying.md says: ECDSA first, then RSA, then Ed25519 (what the host has); the key without the host name. */
  function keyscan(ns: string, host: string, port = 22): string {
    for (const type of ["ecdsa", "rsa", "ed25519"]) {
      const r = lab.sandbox.inNs(ns, ["ssh-keyscan", "-T", "10", "-p", String(port), "-t", type, host], { timeoutMs: 20000 });
      const line = r.stdout.split("\n").find((l) => l.startsWith(`${host} `) || l.startsWith(`[${host}]:${port} `));
      if (line) return line.split(" ").slice(1, 3).join(" ");
    }
    throw new Error(`ssh-keyscan ${host}: no key`);
  }

  function npm(ns: string | undefined, script: string, env: NodeJS.ProcessEnv) {
    const argv = ["bash", "-c", script];
    return lab.sandbox.run(ns ? ["ip", "netns", "exec", ns, ...argv] : argv, { timeoutMs: 600000, env: { ...process.env, ...env } });
  }

  itIf(pre.ok, pre.reason)("copy, fill in, synth, preflight (exit 0), diff: every step as the README writes it", () => {
    const steps = quickstartSteps();
    const team = path.basename(steps.copy.to, ".yaml");
    const file = operatorPath(steps.copy.to);

    // 1. Copy the description of the lab's generation (the README's line, the source swapped for the alternative it names).
    const cp = npm(undefined, `cd ${JSON.stringify(REPO_ROOT)} && ${rewrite(steps.copy.line.replace(steps.copy.from, `clusters/${LAB_GENERATION}.yaml`), steps)}`, {});
    expect({ step: "cp", status: cp.status, stderr: cp.stderr }).toEqual({ step: "cp", status: 0, stderr: "" });
    const shipped = fs.readFileSync(file, "utf8");
    expect(shipped).toBe(fs.readFileSync(path.join(REPO_ROOT, "clusters", `${LAB_GENERATION}.yaml`), "utf8"));

    // 2. Fill in what the provider sent (the lab's "mail"), keep the rest and the comments.
    const doc = parseDocument(shipped);
    const set = (p: (string | number)[], v: unknown) => doc.setIn(p, v);
    set(["name"], team);
    set(["servers", "datacenter"], lab.servers.datacenter);
    set(["servers", "join"], [LAB_SERVERS_ADDRESS]);
    set(["servers", "consulHttpAddress"], `http://${LAB_SERVERS_ADDRESS}:8500`);
    set(["servers", "nomadHttpAddress"], `http://${LAB_SERVERS_ADDRESS}:4646`);
    set(["bastion", "host"], lab.bastion.host);
    set(["bastion", "user"], lab.bastion.user);
    set(["bastion", "hostKey"], keyscan(lab.opNs, lab.bastion.host, lab.bastion.port));
    set(["ssh", "user"], "root");
    set(["ssh", "privateKey"], { file: lab.operatorKey });
    set(["overlay", "interface"], LAB_OVERLAY_INTERFACE);
    set(["overlay", "prefix"], "10.210.0.0/24");
    set(["floatingIp", "address"], LAB_FLOATING_IP);
    set(["floatingIp", "virtualRouterId"], 210);
    const shippedNodes = (doc.toJS().nodes as unknown[]).length;
    expect(shippedNodes).toBe(lab.vms.length);
    lab.vms.forEach((vm, i) => {
      set(["nodes", i, "name"], vm.name);
      set(["nodes", i, "address"], vm.address);
      set(["nodes", i, "overlayAddress"], vm.overlayAddress);
      // "for the nodes, run on the bastion" (docs/deploying.md)
      set(["nodes", i, "hostKey"], keyscan(lab.bastion.ns, vm.address));
    });
    set(["app", "s3", "bucket"], team);
    set(["app", "broker", "vhost"], team);
    set(["app", "broker", "user"], team);
    const filled = doc.toString();
    fs.writeFileSync(file, filled);
    // what keyscan read is what the VMs' sshd hold (the engines are shown ECDSA: preflight checks it too)
    lab.vms.forEach((vm, i) => expect((doc.toJS().nodes as any[])[i].hostKey).toBe(vm.hostKeys.ecdsa));
    expect(doc.toJS().bastion.hostKey).toBe(lab.bastion.hostKey);
    expect(filled).toContain("# the servers set none: Consul's default"); // comments kept

    // 3. Synthesize (into a directory of the lab's: the README's command, plus the documented `--output`).
    const out = path.join(lab.dir, "cdktf.out");
    const synth = npm(undefined, `cd ${JSON.stringify(REPO_ROOT)} && ${rewrite(steps.synth.replace(/^CLUSTER_FILE=\S+/, `CLUSTER_FILE=${steps.copy.to}`), steps)} -- --output ${JSON.stringify(out)}`, {});
    expect({ step: "synth", status: synth.status, stderr: synth.status === 0 ? "" : synth.stderr }).toEqual({ step: "synth", status: 0, stderr: "" });
    expect(synth.stderr).toContain(`cluster description: ${file} (CLUSTER_FILE) -> stacks ${team}-nodes, ${team}-jobs`);
    const nodesStack = JSON.parse(fs.readFileSync(path.join(out, "stacks", `${team}-nodes`, "cdk.tf.json"), "utf8"));
    expect(fs.existsSync(path.join(out, "stacks", `${team}-jobs`, "cdk.tf.json"))).toBe(true);

    // 4. The block as written: the exports (secrets are not read by the preflight), then `npm run preflight`, from the operator's namespace.
    const preflight = npm(lab.opNs, `set -e\ncd ${JSON.stringify(REPO_ROOT)}\n${rewrite(steps.preflight, steps)}`, {});
    expect({ step: "preflight", status: preflight.status, out: preflight.status === 0 ? "" : `${preflight.stdout}\n${preflight.stderr}` }).toEqual({ step: "preflight", status: 0, out: "" });
    expect(preflight.stderr).toContain(`preflight: all good on ${lab.vms.length} nodes`);
    const lines = preflight.stdout.split("\n").filter((l) => /^(ok  |FAIL|ERR |skip) /.test(l));
    expect(lines.filter((l) => !/^(ok  |skip) /.test(l))).toEqual([]);
    for (const vm of lab.vms) expect(lines).toContain(`ok   ${vm.name}: host key: the key presented to the engines' SSH client is the pinned one`);

    // 5. What would change: the real Terraform plans every instance of the synthesized nodes stack.
    const instances = Object.values(nodesStack.resource as Record<string, Record<string, any>>)
      .flatMap((byName) => Object.values(byName))
      .reduce((n: number, r: any) => n + (r.for_each && typeof r.for_each === "object" ? Object.keys(r.for_each).length : 1), 0);
    const diff = npm(undefined, `set -e\ncd ${JSON.stringify(REPO_ROOT)}\n${rewrite(steps.preflight.split("\n").filter((l) => l.startsWith("export ")).join("\n"), steps)}\n${steps.diff} -- ${team}-nodes --output ${JSON.stringify(path.join(lab.dir, "diff.out"))} --skip-provider-lock`, {
      TF_CLI_CONFIG_FILE: path.join(REPO_ROOT, ".engines", "terraform.rc"),
    });
    expect({ step: "diff", status: diff.status, out: diff.status === 0 ? "" : `${diff.stdout}\n${diff.stderr}` }).toEqual({ step: "diff", status: 0, out: "" });
    expect(diff.stdout).toContain(`Plan: ${instances} to add, 0 to change, 0 to destroy`);
    expect(instances).toBe(lab.vms.length * 4); // consul, nomad, keepalived and the membership instance per node
    filledIn = file;
  });

  itIf(pre.ok, pre.reason)("the Commands table's preflight and drift rows, as written, on the walkthrough's description", () => {
    expect(filledIn).toBeDefined();
    const rows = readmeCommandRows(README).filter((r) => /^npm run (preflight|drift)\b/.test(r));
    expect(rows).toEqual(expect.arrayContaining(["npm run preflight -- --json", "npm run drift", "npm run drift -- --node node-1"]));
    for (const row of rows) {
      const r = npm(lab.opNs, `cd ${JSON.stringify(REPO_ROOT)} && ${row}`, { CLUSTER_FILE: filledIn! });
      if (row === "npm run preflight") expect({ row, status: r.status }).toEqual({ row, status: 0 }); // the walkthrough's step 4 checked its lines
      else if (row === "npm run preflight -- --json") {
        // npm's own "> script" banner comes first on stdout; the JSON document follows it
        const parsed = JSON.parse(r.stdout.slice(r.stdout.search(/^\{/m))) as { exitCode: number; results: { node: string; status: string }[] };
        expect({ row, status: r.status, exitCode: parsed.exitCode, bad: parsed.results.filter((x) => x.status !== "ok" && x.status !== "skip") }).toEqual({ row, status: 0, exitCode: 0, bad: [] });
        expect(new Set(parsed.results.map((x) => x.node))).toEqual(new Set(lab.vms.map((vm) => vm.name)));
      } else {
        // Nothing is deployed yet: every node drifts (its files are absent), reached through the bastion with the pinned keys.
        const only = /--node (\S+)/.exec(row)?.[1];
        const nodes = only ? [only] : lab.vms.map((vm) => vm.name);
        expect({ row, status: r.status, err: r.status === 2 ? "" : r.stderr }).toEqual({ row, status: 2, err: "" });
        for (const name of lab.vms.map((vm) => vm.name)) {
          expect({ row, name, drift: r.stdout.includes(`${name}: DRIFT in `) }).toEqual({ row, name, drift: nodes.includes(name) });
        }
        expect(r.stdout).not.toContain("ERROR");
      }
    }
  });
});
