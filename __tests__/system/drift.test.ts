/**
 * System test of the drift check (`npm run drift`): a real OpenSSH bastion and two VMs
 * (sshd in network namespaces; each VM in a private mount namespace whose /etc is an
 * overlay on a tmpfs, so nothing reaches this machine), the description's files installed
 * on them as the install scripts install them (keepalived.conf with the VRRP password
 * spliced in), then edited by hand over SSH.
 *
 * It proves: no drift → exit 0; hand edits → exit 2 with a unified diff per node naming
 * the file, the mode drift and an undescribed extra file; the VRRP password never leaves
 * the node; nothing on the nodes changes; host keys come only from the description; an
 * unreachable node → exit 1 while the others are still reported.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as os from "os";
import { parse, stringify } from "yaml";
import { edited, exampleCluster, exampleText, itIf, REPO_ROOT } from "../helpers/synth";
import type { Cluster } from "../../constructs/description/schema";
import { nodeComponentFiles } from "../../constructs/render/node-files";
import { VRRP_PASSWORD_PLACEHOLDER } from "../../constructs/render/keepalived";
import { Sandbox, systemTestPrerequisites, waitFor } from "./sandbox";

const pre = systemTestPrerequisites(["ip", "unshare", "ssh", "ssh-keygen", "/usr/sbin/sshd", "diff", "base64"]);
const PASSWORD = "dr1ft-pw";
const TSX = path.join(REPO_ROOT, "node_modules", ".bin", "tsx");

jest.setTimeout(120000);

/** sudo on the VM: the test logs in as root; drop sudo's options and run the command. */
const SUDO_STANDIN = `#!/bin/sh
while [ "\${1#-}" != "$1" ]; do shift; done
exec "$@"
`;

describe("npm run drift against VMs through a bastion (real sshd)", () => {
  let sb: Sandbox;
  let opNs: string;
  let cluster: Cluster;
  let descriptionFile: string;
  let keyFile: string;
  const vms: Record<string, { ns: string; address: string; proc?: ReturnType<Sandbox["start"]> }> = {};

  /** Runs `npm run drift` (the script itself) from the operator's namespace. */
  const drift = (args: string[] = [], file = descriptionFile) => {
    const r = sb.run(["ip", "netns", "exec", opNs, TSX, path.join(REPO_ROOT, "scripts", "drift.ts"), ...args], {
      timeoutMs: 90000,
      env: { ...process.env, CLUSTER_FILE: file },
    });
    return { ...r, all: `${r.stdout}${r.stderr}` };
  };
  /** A command on a VM as root, through the bastion (the test's own ssh, not the script's). */
  const onVm = (node: string, cmd: string) =>
    sb.run(["ip", "netns", "exec", opNs, "ssh", "-F", path.join(sb.dir, "test_ssh_config"), "-J", "bastion", node, cmd], { timeoutMs: 30000 });
  /** Checksums and modes of everything under the managed directories of a VM. */
  const fingerprint = (node: string) =>
    onVm(node, "find /etc/consul.d /etc/nomad.d /etc/keepalived /etc/sysctl.d /etc/systemd/system/consul.service.d -type f -exec stat -c '%a %n' {} \\; -exec sha256sum {} \\; | sort").stdout;

  beforeAll(async () => {
    if (!pre.ok) return;
    sb = new Sandbox("dr");
    const d = sb.dir;
    opNs = sb.netns("op");
    const bastionNs = sb.netns("bastion");
    sb.link(opNs, "eth0", "10.214.1.1/24", bastionNs, "eth0", "10.214.1.2/24");
    for (const k of ["operator", "bastion_host", "node-1_host", "node-2_host"]) sb.must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", path.join(d, k)]);
    fs.copyFileSync(path.join(d, "operator.pub"), path.join(d, "authorized_keys"));
    keyFile = path.join(d, "operator");
    const pub = (k: string) => fs.readFileSync(path.join(d, `${k}.pub`), "utf8").trim().split(" ").slice(0, 2).join(" ");
    const sshdConfig = (name: string, listen: string) => {
      const file = path.join(d, `${name}_sshd_config`);
      fs.writeFileSync(
        file,
        [
          `ListenAddress ${listen}`,
          `HostKey ${path.join(d, `${name}_host`)}`,
          `AuthorizedKeysFile ${path.join(d, "authorized_keys")}`,
          "PidFile none",
          "StrictModes no",
          "UsePAM no",
          "PermitRootLogin prohibit-password",
          "PasswordAuthentication no",
          "KbdInteractiveAuthentication no",
          "PermitTTY no",
          "",
        ].join("\n"),
      );
      return file;
    };
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    sb.start("sshd-bastion", bastionNs, ["/usr/sbin/sshd", "-D", "-e", "-f", sshdConfig("bastion", "10.214.1.2")]);

    // The description: the example, pointed at this lab, every host key pinned.
    const raw = parse(exampleText());
    raw.name = `drift-${sb.id}`;
    raw.bastion = { host: "10.214.1.2", port: 22, user: "root", hostKey: pub("bastion_host") };
    raw.ssh = { user: "root", privateKey: { file: keyFile } };
    raw.nodes[0] = { ...raw.nodes[0], address: "10.214.2.2", hostKey: pub("node-1_host") };
    raw.nodes[1] = { ...raw.nodes[1], address: "10.214.3.2", hostKey: pub("node-2_host") };
    descriptionFile = path.join(d, "team.yaml");
    fs.writeFileSync(descriptionFile, stringify(raw));
    cluster = edited(exampleCluster(), (c) => {
      c.name = raw.name;
      c.bastion = raw.bastion;
      c.ssh = raw.ssh;
      c.nodes[0] = { ...c.nodes[0], address: "10.214.2.2", hostKey: pub("node-1_host") };
      c.nodes[1] = { ...c.nodes[1], address: "10.214.3.2", hostKey: pub("node-2_host") };
    });

    const bin = path.join(d, "vm-bin");
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, "sudo"), SUDO_STANDIN, { mode: 0o755 });
    cluster.nodes.forEach((n, i) => {
      const ns = sb.netns(n.name);
      const subnet = `10.214.${i + 2}`;
      sb.link(bastionNs, `eth${i + 1}`, `${subnet}.1/24`, ns, "eth0", `${subnet}.2/24`);
      // The node as provisioned: each installed file where the install script puts it, with its mode.
      const stage = path.join(d, `${n.name}-files`);
      fs.mkdirSync(stage);
      const installs: string[] = [];
      let k = 0;
      for (const comp of nodeComponentFiles(cluster, n)) {
        for (const f of comp.installed) {
          let text = comp.files[f.source];
          // keepalived's install script: printf '%s\n' "${template//PLACEHOLDER/password}"
          if (f.secretLine) text = `${text.replace(/\n+$/, "").split(VRRP_PASSWORD_PLACEHOLDER).join(PASSWORD)}\n`;
          const src = path.join(stage, String(k++));
          fs.writeFileSync(src, text);
          installs.push(`install -D -m ${f.mode} ${src} ${f.target}`);
        }
      }
      const priv = path.join(d, `${n.name}-private`);
      fs.mkdirSync(priv);
      const setup = `set -euo pipefail
mount -t tmpfs tmpfs ${priv}
mkdir -p ${priv}/etc-upper ${priv}/etc-work
mount -t overlay overlay -o lowerdir=/etc,upperdir=${priv}/etc-upper,workdir=${priv}/etc-work /etc
mount -t tmpfs tmpfs /root
mount --bind ${bin} /usr/local/sbin
${installs.join("\n")}
exec /usr/sbin/sshd -D -e -f ${sshdConfig(`${n.name}`, `${subnet}.2`)}`;
      vms[n.name] = { ns, address: `${subnet}.2`, proc: sb.start(`sshd-${n.name}`, ns, ["unshare", "--mount", "--propagation", "private", "bash", "-c", setup]) };
    });

    // The test's own ssh access (to edit files by hand and to check nothing changed).
    fs.writeFileSync(path.join(d, "test_known_hosts"), [`10.214.1.2 ${pub("bastion_host")}`, `10.214.2.2 ${pub("node-1_host")}`, `10.214.3.2 ${pub("node-2_host")}`, ""].join("\n"));
    const common = [`  IdentityFile ${keyFile}`, "  IdentitiesOnly yes", `  UserKnownHostsFile ${path.join(d, "test_known_hosts")}`, "  StrictHostKeyChecking yes", "  BatchMode yes", "  LogLevel ERROR"];
    fs.writeFileSync(
      path.join(d, "test_ssh_config"),
      ["Host bastion", "  HostName 10.214.1.2", "  User root", ...common, "Host node-1", "  HostName 10.214.2.2", "  User root", ...common, "Host node-2", "  HostName 10.214.3.2", "  User root", ...common, ""].join("\n"),
    );
    for (const n of ["node-1", "node-2"]) await waitFor(`ssh to ${n}`, () => onVm(n, "test -f /etc/consul.d/consul.hcl").status === 0, 20000, () => onVm(n, "true").stderr);
  });

  afterAll(() => {
    if (!sb) return;
    sb.cleanup();
    expect(sb.leftoverNamespaces()).toEqual([]);
  });

  itIf(pre.ok, pre.reason)("nodes as provisioned: no drift, exit 0, the description and stacks named", () => {
    const r = drift();
    expect({ status: r.status, all: r.all }).toMatchObject({ status: 0 });
    expect(r.stderr).toContain(`cluster description: ${descriptionFile} (CLUSTER_FILE) -> stacks ${cluster.name}-nodes, ${cluster.name}-jobs`);
    // 5 installed files (consul.hcl, its DNS drop-in, keepalived.conf, the sysctl, nomad.hcl); no zz-extra.hcl for either agent
    expect(r.stdout).toContain("node-1: no drift (5 files as rendered, 2 absent as they should be)");
    expect(r.stdout).toMatch(/^node-2: no drift \(5 files as rendered/m);
    expect(r.all).not.toContain(PASSWORD);
  });

  itIf(pre.ok, pre.reason)("hand edits: a unified diff per node, exit 2, the password never leaves the node, nothing changed", () => {
    // node-1: a Consul setting edited, Nomad's config made world-readable, an undescribed extra file
    expect(onVm("node-1", `sed -i 's/^log_level  = "INFO"$/log_level  = "DEBUG"/' /etc/consul.d/consul.hcl && chmod 0644 /etc/nomad.d/nomad.hcl && echo 'disable_update_check = true' >/etc/consul.d/zz-extra.hcl`).status).toBe(0);
    // node-2: keepalived's priority changed in the file that also holds the VRRP password
    expect(onVm("node-2", "sed -i 's/^  priority 100$/  priority 200/' /etc/keepalived/keepalived.conf && grep -c 'auth_pass " + PASSWORD + "' /etc/keepalived/keepalived.conf").stdout.trim()).toBe("1");
    const before = { "node-1": fingerprint("node-1"), "node-2": fingerprint("node-2") };
    expect(before["node-1"]).toContain("/etc/consul.d/consul.hcl");

    const r = drift();
    expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 2 });
    const out = r.stdout;
    expect(out).toContain("node-1: DRIFT in consul, nomad");
    expect(out).toContain("--- node-1:/etc/consul.d/consul.hcl (on the node)");
    expect(out).toContain(`+++ /etc/consul.d/consul.hcl (rendered from ${descriptionFile})`);
    expect(out).toMatch(/^-log_level {2}= "DEBUG"$/m);
    expect(out).toMatch(/^\+log_level {2}= "INFO"$/m);
    expect(out).toContain("--- node-1:/etc/nomad.d/nomad.hcl: mode 0644 on the node, 0640 described");
    expect(out).toContain("--- node-1:/etc/consul.d/zz-extra.hcl is on the node but not described (consul): removed at its next provisioning");
    expect(out).toContain("node-2: DRIFT in keepalived");
    expect(out).toMatch(/^- {2}priority 200$/m);
    expect(out).toMatch(/^\+ {2}priority 100$/m);
    // only the changed hunk: the masked password line is equal on both sides (context at most)
    expect(out).not.toMatch(/^[-+]\s*auth_pass/m);
    expect(r.all).not.toContain(PASSWORD);
    // how to put the files back, per drifting component
    expect(r.stderr).toContain(`terraform -chdir=cdktf.out/stacks/${cluster.name}-nodes apply -replace='null_resource.node-1_consul' -replace='null_resource.node-1_nomad' -replace='null_resource.node-2_keepalived'`);
    expect(r.stderr).toContain("Nothing was changed.");
    // read-only: the nodes are exactly as before
    expect(fingerprint("node-1")).toBe(before["node-1"]);
    expect(fingerprint("node-2")).toBe(before["node-2"]);

    // --node limits the check
    const one = drift(["--node", "node-2"]);
    expect(one.status).toBe(2);
    expect(one.stdout).not.toContain("node-1");
  });

  itIf(pre.ok, pre.reason)("trusts only the pinned host keys: a node whose key differs is an error, not a connection", () => {
    const other = path.join(sb.dir, "wrong-key.yaml");
    const raw = parse(fs.readFileSync(descriptionFile, "utf8"));
    raw.nodes[0].hostKey = fs.readFileSync(path.join(sb.dir, "node-2_host.pub"), "utf8").trim().split(" ").slice(0, 2).join(" ");
    fs.writeFileSync(other, stringify(raw));
    const r = drift(["--node", "node-1"], other);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^node-1: ERROR: could not read the files/m);
    expect(r.all).toMatch(/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/);
  });

  itIf(pre.ok, pre.reason)("an unreachable node: exit 1, the other node still reported", async () => {
    await sb.stop(vms["node-2"].proc!);
    const r = drift();
    expect(r.status).toBe(1);
    expect(r.stdout).toContain("node-1: DRIFT in consul, nomad");
    expect(r.stdout).toMatch(/^node-2: ERROR: could not read the files \(ssh root@10\.214\.3\.2 via the bastion, exit 255\)/m);
    expect(r.stderr).toContain("1 node could not be checked");
  });
});

describe("npm run drift without pinned host keys", () => {
  it("refuses before connecting, naming the fields, even where the description opts out of host-key checks", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "drift-"));
    try {
      // Descriptions must pin keys unless ssh.insecureIgnoreHostKey: true (the only unpinned
      // form left); the drift check still never connects to an unpinned host.
      const doc = parse(exampleText());
      delete doc.bastion.hostKey;
      for (const n of doc.nodes) delete n.hostKey;
      doc.ssh = { ...doc.ssh, insecureIgnoreHostKey: true };
      const file = path.join(dir, "unpinned.yaml");
      fs.writeFileSync(file, stringify(doc));
      const r = spawnSync(TSX, [path.join(REPO_ROOT, "scripts", "drift.ts")], { encoding: "utf8", env: { ...process.env, CLUSTER_FILE: file } });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("error: bastion.hostKey, nodes[0].hostKey (node-1), nodes[1].hostKey (node-2) not pinned");
      expect(r.stderr).not.toContain("checking");
      expect(r.stdout).toBe("");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
