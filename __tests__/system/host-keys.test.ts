/**
 * System test: SSH host keys with the real engines (Terraform 1.11.4, OpenTofu 1.10.10),
 * through a real sshd bastion on port 2222 (known_hosts pattern `[host]:port`) to a real
 * sshd VM. What the synthesized connection does (constructs/ssh.ts): right keys connect;
 * a wrong bastion key or a wrong node key is refused before anything reaches the VM; no
 * key is checked only when the operator sets ssh.insecureIgnoreHostKey.
 *
 * It also pins down the engines' defect our design works around, so that a fixed engine
 * shows up here: with `host_key` = the node's key and `bastion_host_key`, the bastion hop
 * fails (checked against the node's key); `bastion_host_key` alone is not checked at all.
 *
 * Refused keys make the engines retry until the connection `timeout` (3m synthesized):
 * these runs shorten it to 15s, nothing else of the synthesized stack changes.
 */
import { itIf } from "../helpers/synth";
import type { Cluster } from "../../constructs/description/schema";
import { buildLab, labPrerequisites, type Lab } from "./lab";
import { ENGINE_NAMES, Workspace, enginePrerequisites, type EngineName } from "./engine";

const engines = enginePrerequisites();
const ok = labPrerequisites.ok && engines.ok;
const reason = [labPrerequisites.reason, engines.reason].filter(Boolean).join("; ");
const TARGET = "-target=null_resource.node-1_consul";

jest.setTimeout(600000);

describe("SSH host keys with the real engines, bastion on port 2222", () => {
  let lab: Lab;

  beforeAll(async () => {
    if (!ok) return;
    lab = await buildLab({ vms: 1, tag: "hk", bastionPort: 2222 });
  });

  afterAll(() => {
    if (!lab) return;
    lab.cleanup();
    expect(lab.sandbox.leftoverNamespaces()).toEqual([]);
  });

  /** A fresh workspace (own state) applying node-1's Consul resource of `cluster`. */
  async function applyConsul(engine: EngineName, cluster: Cluster, edit?: (conn: any) => void) {
    const ws = new Workspace(lab, engine, { vrrp_password: "unused1" });
    ws.synth(cluster);
    ws.connectionTimeout("15s");
    if (edit) ws.editStack((json) => edit(json.resource.null_resource["node-1_consul"].connection));
    const init = await ws.init();
    if (!init.ok) throw new Error(init.output);
    lab.vms[0].clearCalls();
    return ws.apply({ args: [TARGET] });
  }
  const reachedVm = () => lab.vms[0].calls().length > 0;

  describe.each(ENGINE_NAMES)("%s", (engine) => {
    itIf(ok, reason)("right bastion and node keys: connects and provisions", async () => {
      const r = await applyConsul(engine, lab.cluster());
      expect({ status: r.status, output: r.ok ? "" : r.output }).toEqual({ status: 0, output: "" });
      expect(r.output).toContain("Checking Host Key: true");
      expect(reachedVm()).toBe(true);
    });

    itIf(ok, reason)("a wrong bastion key is refused at the bastion; nothing reaches the VM", async () => {
      const r = await applyConsul(engine, lab.cluster((c) => (c.bastion.hostKey = lab.otherHostKey())));
      expect(r.status).toBe(1);
      expect(r.output).toMatch(/Error connecting to bastion:\s+ssh:\s+handshake\s+failed:\s+knownhosts:\s+key\s+mismatch/);
      expect(reachedVm()).toBe(false);
    });

    itIf(ok, reason)("a wrong node key is refused at the node; nothing reaches the VM", async () => {
      const r = await applyConsul(engine, lab.cluster((c) => (c.nodes[0].hostKey = lab.otherHostKey())));
      expect(r.status).toBe(1);
      expect(r.output).toMatch(/ssh:\s+handshake\s+failed:\s+knownhosts:\s+key\s+mismatch/);
      expect(r.output).not.toMatch(/Error connecting to\s+bastion/);
      expect(reachedVm()).toBe(false);
    });

    itIf(ok, reason)("ssh.insecureIgnoreHostKey without keys: connects unchecked (the operator's explicit choice)", async () => {
      const r = await applyConsul(
        engine,
        lab.cluster((c) => {
          c.ssh.insecureIgnoreHostKey = true;
          delete c.bastion.hostKey;
          for (const n of c.nodes) delete n.hostKey;
        }),
      );
      expect({ status: r.status, output: r.ok ? "" : r.output }).toEqual({ status: 0, output: "" });
      expect(r.output).toContain("Checking Host Key: false");
    });

    itIf(ok, reason)("the engine's defect: host_key = the node's key fails at the bastion; bastion_host_key alone is not checked", async () => {
      const nodeKeyOnly = await applyConsul(engine, lab.cluster(), (conn) => (conn.host_key = lab.vms[0].hostKey));
      expect(nodeKeyOnly.status).toBe(1);
      expect(nodeKeyOnly.output).toMatch(/Error connecting to bastion:\s+ssh:\s+handshake\s+failed:\s+knownhosts:\s+key\s+(mismatch|is\s+unknown)/);
      expect(reachedVm()).toBe(false);

      const wrongBastionKeyAlone = await applyConsul(engine, lab.cluster(), (conn) => {
        delete conn.host_key;
        conn.bastion_host_key = lab.otherHostKey();
      });
      expect({ status: wrongBastionKeyAlone.status, output: wrongBastionKeyAlone.ok ? "" : wrongBastionKeyAlone.output }).toEqual({ status: 0, output: "" });
      expect(reachedVm()).toBe(true);
    });
  });

  /**
   * docs/deploying.md "Host keys", which key to pin: the engines' SSH client (golang.org/x/crypto/ssh) asks for an
   * ECDSA host key before RSA before Ed25519 and the engines restrict nothing, so a VM with
   * the stock Debian/Ubuntu key set presents its ECDSA key: pinning its Ed25519 key fails.
   */
  describe("a VM with ECDSA, RSA and Ed25519 host keys (stock Debian/Ubuntu)", () => {
    let stock: Lab;
    beforeAll(async () => {
      if (!ok) return;
      stock = await buildLab({ vms: 1, tag: "hkt", vmHostKeyTypes: ["ecdsa", "rsa"] });
    });
    afterAll(() => {
      if (!stock) return;
      stock.cleanup();
      expect(stock.sandbox.leftoverNamespaces()).toEqual([]);
    });

    async function applyWithNodeKey(engine: EngineName, type: string) {
      const ws = new Workspace(stock, engine, { vrrp_password: "unused1" });
      ws.synth(stock.cluster((c) => (c.nodes[0].hostKey = stock.vms[0].hostKeys[type])));
      ws.connectionTimeout("15s");
      const init = await ws.init();
      if (!init.ok) throw new Error(init.output);
      stock.vms[0].clearCalls();
      return ws.apply({ args: [TARGET] });
    }

    describe.each(ENGINE_NAMES)("%s", (engine) => {
      itIf(ok, reason)("pinning the ECDSA key (ssh-keyscan -t ecdsa) connects and provisions", async () => {
        const r = await applyWithNodeKey(engine, "ecdsa");
        expect({ status: r.status, output: r.ok ? "" : r.output }).toEqual({ status: 0, output: "" });
        expect(stock.vms[0].calls().length).toBeGreaterThan(0);
      });

      itIf(ok, reason)("pinning its Ed25519 key is refused at the node (the server presents ECDSA); nothing reaches the VM", async () => {
        const r = await applyWithNodeKey(engine, "ed25519");
        expect(r.status).toBe(1);
        expect(r.output).toMatch(/ssh:\s+handshake\s+failed:\s+knownhosts:\s+key\s+(mismatch|is\s+unknown)/);
        expect(stock.vms[0].calls()).toEqual([]);
      });
    });
  });
});
