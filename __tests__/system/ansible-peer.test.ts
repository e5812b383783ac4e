/**
 * System test of the engine benchmark's Ansible peer (scripts/bench/ansible/nodes.yml,
 * issue 24) on the lab (lab.ts: real sshd bastion and VMs, the REAL Consul 1.14.11 as the
 * provider's server and on the VMs, real keepalived; Nomad is the lab's stand-in, which
 * answers `nomad config validate` and `node status` as Nomad documents them, see
 * provider-standins.ts). The real ansible-playbook runs from the operator's namespace
 * through the bastion with the description's pinned host keys.
 *
 * It proves that the peer the benchmark times does the job: the Consul agents it starts
 * join the provider's server (in the server's own catalog, at their overlay addresses),
 * keepalived runs, the installed files are our rendered files (the VRRP password spliced
 * in, never shown), and a second run in `--check --diff` mode finds nothing to change.
 */
import * as fs from "fs";
import * as path from "path";
import { synthCluster, cleanup, hasCommand, itIf } from "../helpers/synth";
import { nodesStackName } from "../../constructs/stack-names";
import { VRRP_PASSWORD_PLACEHOLDER } from "../../constructs/render/keepalived";
import { writeSshConfig } from "../../scripts/lib/remote-nodes";
import { ansiblePeer } from "../../scripts/bench/peer";
import { buildLab, labPrerequisites, type Lab } from "./lab";
import { catalogNodes } from "./consul";

const ready = labPrerequisites.ok && hasCommand("ansible-playbook");
const reason = labPrerequisites.ok ? "ansible-playbook missing (Debian package ansible-core)" : labPrerequisites.reason;
const PASSWORD = "Pe3r.pw";

jest.setTimeout(900000);

describe("the engine benchmark's Ansible peer on the lab (real sshd, real Consul)", () => {
  let lab: Lab | undefined;
  afterAll(() => lab?.cleanup());

  itIf(ready, reason)("installs our rendered files, the Consul agents join the provider's server, keepalived runs; a --check run then changes nothing", async () => {
    lab = await buildLab({ vms: 2, tag: "apeer" });
    const c = lab.cluster((x) => (x.rollout = { ...x.rollout, batchSize: "50%" }));
    const out = synthCluster(c);
    try {
      const rendered = path.join(out.outdir, "stacks", nodesStackName(c), "rendered");
      const work = fs.mkdtempSync(path.join(lab.dir, "peer-"));
      const varsFile = path.join(work, "vars.json");
      fs.writeFileSync(varsFile, JSON.stringify({ vrrp_password: PASSWORD }), { mode: 0o600 });
      fs.mkdirSync(path.join(work, "home"));
      const run = ansiblePeer({
        cluster: c,
        renderedDir: rendered,
        work,
        sshConfig: writeSshConfig(c, c.nodes, work, "peer"),
        varsFile,
        opNs: lab.opNs,
        forks: 10,
        env: { PATH: process.env.PATH, HOME: path.join(work, "home"), LC_ALL: "C.UTF-8" },
      });

      const first = await run();
      expect({ status: first.status, tail: first.output.slice(-3000) }).toEqual({ status: 0, tail: expect.anything() });
      expect(first.changedHosts).toBe(2);
      expect(first.output).not.toContain(PASSWORD);
      // The provider's server knows both nodes at their overlay addresses (the join the playbook waited for).
      const catalog = catalogNodes(lab.sandbox, lab.servers.consul);
      for (const vm of lab.vms) {
        expect(catalog[vm.name]).toBe(vm.overlayAddress);
        expect(vm.keepalivedRunning()).toBe(true);
        expect(vm.read("/etc/consul.d/consul.hcl")).toBe(fs.readFileSync(path.join(rendered, vm.name, "consul", "consul.hcl"), "utf8"));
        expect(vm.read("/etc/nomad.d/nomad.hcl")).toBe(fs.readFileSync(path.join(rendered, vm.name, "nomad", "nomad.hcl"), "utf8"));
        const template = fs.readFileSync(path.join(rendered, vm.name, "keepalived", "keepalived.conf"), "utf8");
        expect(vm.read("/etc/keepalived/keepalived.conf")).toBe(`${template.replace(/\n+$/, "").split(VRRP_PASSWORD_PLACEHOLDER).join(PASSWORD)}\n`);
        expect(vm.exec("stat -c %a /etc/keepalived/keepalived.conf").stdout.trim()).toBe("600");
        // validated before install, restarted through the handlers
        expect(vm.calls()).toEqual(expect.arrayContaining([expect.stringMatching(/^consul validate -config-format=hcl /), "systemctl restart consul", "systemctl restart nomad"]));
      }

      const check = await run(["--check", "--diff"]);
      expect({ status: check.status, changed: check.changedHosts, failed: check.failedHosts }).toEqual({ status: 0, changed: 0, failed: 0 });
      expect(check.output).not.toContain(PASSWORD);
    } finally {
      cleanup(out);
    }
  });
});
