/**
 * Hostile and careless input, per target (issue #12): the file the Nomad install sources
 * as root, construct ids, Consul's HTTP exposure, and what main.ts leaves behind on failure.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderAgentInstallScript, NOMAD_CLI_ENV_FILE } from "../constructs/render/scripts";
import { REPO_ROOT, cleanup, edited, exampleCluster, exampleText, hasCommand, itIf, parseHcl, synthCluster } from "./helpers/synth";
import { remoteExecScript } from "./helpers/remote-exec";

const TSX = path.join(REPO_ROOT, "node_modules", ".bin", "tsx");

let tmp: string;
beforeAll(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hostile-targets-"))));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("the Nomad CLI environment file (sourced as root)", () => {
  it("keeps any TLS path as data: no command runs, spaces and line breaks survive", () => {
    const pwned = path.join(tmp, "pwned");
    // Types bypassed on purpose: the file must be safe even for what the schema refuses.
    const tls = { caFile: `/etc/ca$(touch ${pwned}).pem`, certFile: "/etc/my cert.pem", keyFile: `/etc/k'\n.pem; touch ${pwned}` };
    const c = edited(exampleCluster(), (x) => (x.nomad = { ...x.nomad, tls }));
    const script = renderAgentInstallScript(c, c.nodes[0], { agent: "nomad", files: [], requiredFiles: [], removableTargets: [] });
    const start = script.indexOf("# How the Nomad CLI reaches");
    const end = script.indexOf("set +a", start) + "set +a".length;
    expect(start).toBeGreaterThan(0);
    const envFile = path.join(tmp, "cli.env");
    // The install script's own lines, run by bash, writing to a temp file instead of /etc.
    const block = script.slice(start, end).split(`'${NOMAD_CLI_ENV_FILE}`).join(`'${envFile}`);
    const r = spawnSync("bash", ["-euo", "pipefail", "-c", `address=172.16.1.11 CONFIG_DIR=${tmp}\n${block}\nprintf '%s\\0' "$NOMAD_ADDR" "$NOMAD_CACERT" "$NOMAD_CLIENT_CERT" "$NOMAD_CLIENT_KEY"`], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(fs.existsSync(pwned)).toBe(false);
    expect(r.stdout.split("\0").slice(0, 4)).toEqual(["https://172.16.1.11:4646", tls.caFile, tls.certFile, tls.keyFile]);
    // and the file reads back the same in a fresh shell, as decommission.sh sources it
    const again = spawnSync("bash", ["-c", `set -a; . '${envFile}'; printf '%s\\0' "$NOMAD_CLIENT_KEY"`], { encoding: "utf8" });
    expect(again.stdout).toBe(`${tls.keyFile}\0`);
    expect(fs.existsSync(pwned)).toBe(false);
  });
});

describe("node names that are also construct ids", () => {
  it.each(["membership", "nodes", "node-agents", "floating-ip", "candidates", "null", "secrets", "consul-catalog"])("a node named %s synthesizes, with its readable addresses", (name) => {
    const out = synthCluster(edited(exampleCluster(), (c) => (c.nodes[1].name = name)));
    try {
      const stack = out.stacks["team-example-nodes"];
      expect(Object.keys(stack.resource.null_resource).sort()).toEqual([`${name}_consul`, `${name}_keepalived`, `${name}_nomad`, "node-1_consul", "node-1_keepalived", "node-1_nomad"].sort());
      expect(stack.resource.terraform_data.node_membership.for_each[name]).toMatchObject({ node: name });
      expect(Object.keys(stack.output).sort()).toEqual(["consul_ui", "floating_ip", "floating_ip_candidates", "nodes", "nomad_ui", "public_url"]);
    } finally {
      cleanup(out);
    }
  });
});

describe("Consul's HTTP API", () => {
  it("listens on loopback only by default, on the overlay too only when the description asks", async () => {
    const closed = synthCluster(exampleCluster());
    const open = synthCluster(edited(exampleCluster(), (c) => (c.consul = { ...c.consul, httpOnOverlay: true })));
    try {
      const file = "rendered/node-1/consul/consul.hcl";
      expect((await parseHcl("consul.hcl", closed.files["team-example-nodes"][file])).client_addr).toBe("127.0.0.1");
      expect((await parseHcl("consul.hcl", open.files["team-example-nodes"][file])).client_addr).toBe("127.0.0.1 172.16.1.11");
    } finally {
      cleanup(closed);
      cleanup(open);
    }
  });
});

describe("main.ts on failure", () => {
  function run(file: string, outdir: string) {
    return spawnSync(TSX, ["main.ts"], { cwd: REPO_ROOT, env: { ...process.env, CDKTF_OUTDIR: outdir, CLUSTER_FILE: file }, encoding: "utf8" });
  }

  it("a quote in the key file path: the field and line, exit 1, and the previous output removed", () => {
    const file = path.join(tmp, "quote.yaml");
    fs.writeFileSync(file, exampleText().replace("privateKey: { agent: true }", `privateKey: { file: '~/.ssh/id"x' }`));
    const outdir = path.join(tmp, "cdktf.out");
    fs.mkdirSync(path.join(outdir, "stacks", "team-example-nodes"), { recursive: true });
    fs.writeFileSync(path.join(outdir, "stacks", "team-example-nodes", "cdk.tf.json"), "{}");
    const r = run(file, outdir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/ssh\.privateKey\.file \(line \d+\): expected a file path/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(fs.existsSync(outdir)).toBe(false);
  });

  it("a billion-laughs file: the line of the first alias, exit 1, no output directory", () => {
    const file = path.join(tmp, "lol.yaml");
    const lol = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 9; i++) lol.push(`l${i}: &l${i} [${Array(10).fill(i === 1 ? "*a" : `*l${i - 1}`).join(", ")}]`);
    fs.writeFileSync(file, `${lol.join("\n")}\n`);
    const outdir = path.join(tmp, "lol.out");
    const r = run(file, outdir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/\(yaml\) \(line 2\): expected a description without alias amplification/);
    expect(fs.existsSync(outdir)).toBe(false);
  });
});

describe("staging on the node", () => {
  const out = () => synthCluster(exampleCluster());

  it("stages in the SSH user's home, private (umask 077), never under a shared /tmp path", () => {
    const o = out();
    try {
      const stack = o.stacks["team-example-nodes"];
      const all = [...Object.values<any>(stack.resource.null_resource), stack.resource.terraform_data.node_membership];
      const provisioners = all.flatMap((r) => r.provisioner.map((p: any) => Object.values(p)[0] as any));
      expect(JSON.stringify(provisioners)).not.toMatch(/\/tmp\//);
      // a file in the staging directory, or the staging directory itself (the rendered files' directory upload)
      for (const p of provisioners) if (p.destination) expect(p.destination).toMatch(/^\.nomad-cluster-deploy\/team-example\/[a-z]+(\/[A-Za-z0-9_.-]+)?$/);
      const first = (r: any) => (Object.values(r.provisioner[0])[0] as any).inline[0];
      for (const r of all) expect(first(r)).toMatch(/^umask 077 && rm -rf '(\.nomad-cluster-deploy\/team-example\/[a-z]+)' && mkdir -p '\1\/script'$/);
      // every remote-exec after the first is uploaded into the staging directory the first made
      for (const r of all) {
        const stage = first(r).match(/rm -rf '([^']+)'/)[1];
        const later = r.provisioner.slice(1).flatMap((p: any) => (p["remote-exec"] ? [p["remote-exec"].connection?.script_path] : []));
        expect(later).toEqual([`${stage}/script/provision.sh`]);
      }
    } finally {
      cleanup(o);
    }
  });

  /** Runs `script` with /bin/sh in a fresh fake home holding the staging directory `stage`, with a stub sudo that records its call and exits `sudoStatus`. */
  function inFakeHome(script: string, stage: string, sudoStatus = 0) {
    const home = fs.mkdtempSync(path.join(tmp, "home-"));
    const bin = path.join(home, "bin");
    fs.mkdirSync(bin);
    const staged = path.join(home, stage);
    fs.mkdirSync(staged, { recursive: true, mode: 0o700 });
    // What the engine does: upload the script into script_path, chmod 0777, run it from the home directory.
    const scriptFile = path.join(staged, "script", "provision.sh");
    fs.mkdirSync(path.dirname(scriptFile), { mode: 0o700 });
    fs.writeFileSync(scriptFile, script);
    fs.chmodSync(scriptFile, 0o777);
    // The install script's view of the stage, captured by the stub before the stage is removed.
    fs.writeFileSync(path.join(bin, "sudo"), `#!/bin/sh\necho "$@" > ${home}/sudo-called\nstat -c '%a %n' ${staged}/* ${staged}/script/* > ${home}/stage-seen\nexit ${sudoStatus}\n`, { mode: 0o755 });
    const r = spawnSync("/bin/sh", [path.relative(home, scriptFile)], { cwd: home, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, encoding: "utf8" });
    const read = (f: string) => (fs.existsSync(path.join(home, f)) ? fs.readFileSync(path.join(home, f), "utf8").trim() : undefined);
    return { status: r.status, stderr: r.stderr, sudo: read("sudo-called"), seen: read("stage-seen"), stageLeft: fs.existsSync(staged) };
  }

  itIf(hasCommand("shellcheck"), "shellcheck is not installed")("the remote-exec scripts an engine runs pass shellcheck (sh)", () => {
    const o = out();
    try {
      const stack = o.stacks["team-example-nodes"];
      const all = [...Object.values<any>(stack.resource.null_resource), stack.resource.terraform_data.node_membership];
      const self = { node: "node-2", overlay_address: "172.16.1.12", drain_deadline: "5m" };
      const scripts = all.flatMap((r) => r.provisioner.filter((p: any) => p["remote-exec"]).map((p: any) => remoteExecScript(p["remote-exec"].inline, o.files["team-example-nodes"], self)));
      expect(scripts.length).toBe(2 * all.length);
      for (const [i, text] of scripts.entries()) {
        const r = spawnSync("shellcheck", ["-s", "sh", "-"], { input: text, encoding: "utf8" });
        expect({ i, status: r.status, out: r.stdout }).toEqual({ i, status: 0, out: "" });
      }
    } finally {
      cleanup(o);
    }
  });

  it("a resource's script writes the rendered files privately, installs only when all arrived intact, keeps the install's exit status and removes the stage", () => {
    const o = out();
    try {
      const res = o.stacks["team-example-nodes"].resource.null_resource["node-1_consul"];
      const stage = ".nomad-cluster-deploy/team-example/consul";
      const steps = res.provisioner.map((p: any) => Object.values(p)[0] as any);
      const files = o.files["team-example-nodes"];
      const script = (f: Record<string, string>) => remoteExecScript(steps[steps.length - 1].inline, f);

      const good = inFakeHome(script(files), stage);
      expect(good.status).toBe(0);
      expect(good.sudo).toBe(`bash ${stage}/install.sh`);
      // every rendered file of the resource (and the script itself), readable by its owner only
      const names = Object.keys(files).filter((f) => f.startsWith("rendered/node-1/consul/")).map((f) => path.basename(f));
      expect(good.seen!.split("\n").map((l) => [l.split(" ")[0], path.basename(l.split(" ")[1])]).sort()).toEqual([...names.map((n) => ["600", n]), ["700", "script"], ["777", "provision.sh"]].sort());
      expect(good.stageLeft).toBe(false);

      // The install fails: the step fails with its status, and the stage is removed all the same.
      const failed = inFakeHome(script(files), stage, 3);
      expect({ status: failed.status, stageLeft: failed.stageLeft }).toEqual({ status: 3, stageLeft: false });

      // A rendered file that is not the one synthesized with the triggers (edited after synth): nothing installed.
      const edited = { ...files, "rendered/node-1/consul/consul.hcl": `${files["rendered/node-1/consul/consul.hcl"]}# edited\n` };
      const bad = inFakeHome(script(edited), stage);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toContain("the rendered files of consul did not arrive intact; nothing was installed");
      expect(bad.sudo).toBeUndefined();
      expect(bad.stageLeft).toBe(false);
    } finally {
      cleanup(o);
    }
  });

  it("decommission: fails by default (the node stays in state), and runs the script only when it arrived intact", () => {
    const o = out();
    try {
      const m = o.stacks["team-example-nodes"].resource.terraform_data.node_membership;
      const steps = m.provisioner.map((p: any) => Object.values(p)[0] as any);
      expect(steps.map((s: any) => s.when)).toEqual(["destroy", "destroy"]);
      // No on_failure = continue: Terraform's default (fail) keeps the instance for a retry.
      expect(steps.map((s: any) => s.on_failure)).toEqual([undefined, undefined]);
      const stage = ".nomad-cluster-deploy/team-example/decommission";
      const self = { node: "node-2", overlay_address: "172.16.1.12", drain_deadline: "5m" };
      const files = o.files["team-example-nodes"];

      // A script that is not the one synthesized (edited after synth): not run, the step fails.
      const bad = inFakeHome(remoteExecScript(steps[1].inline, { ...files, "rendered/decommission.sh": "#!/bin/sh\necho planted\n" }, self), stage);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/did not arrive intact; not running it/);
      expect(bad.sudo).toBeUndefined();
      expect(bad.stageLeft).toBe(false);

      // The synthesized script: run with the node's arguments, staging removed.
      const good = inFakeHome(remoteExecScript(steps[1].inline, files, self), stage);
      expect(good.status).toBe(0);
      expect(good.sudo).toBe(`bash ${stage}/decommission.sh node-2 172.16.1.12 5m`);
      expect(good.stageLeft).toBe(false);
    } finally {
      cleanup(o);
    }
  });
});
