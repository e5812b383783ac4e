/**
 * System test: what another team on the shared overlay reaches, tried from that team's seat.
 * The lab (lab.ts) with a neighbour: a namespace on the same overlay running a real Consul
 * client of the same shared dc1, as any VM on the 2022 overlay can (docs/trust-model.md).
 * Our two nodes are deployed by the real Terraform through the bastion, their rendered
 * Consul clients run by the real agent, joined to the provider's real server.
 *
 * What is closed is shown closed from the neighbour's namespace; what the provider's setup
 * leaves open is shown open with the exact command docs/trust-model.md gives, so that the
 * document cannot claim a protection the lab disproves.
 */
import { itIf } from "../helpers/synth";
import type { Cluster } from "../../constructs/description/schema";
import { buildLab, labPrerequisites, LAB_SERVERS_ADDRESS, type Lab } from "./lab";
import { Workspace, enginePrerequisites } from "./engine";
import { CONSUL_BIN, catalogNodes, consulCli, consulGet, dig } from "./consul";
import { waitFor } from "./sandbox";

const engines = enginePrerequisites();
const ok = labPrerequisites.ok && engines.ok;
const reason = [labPrerequisites.reason, engines.reason].filter(Boolean).join("; ");

jest.setTimeout(600000);

describe("from a neighbour team's seat on the shared overlay (real Consul, real Terraform)", () => {
  let lab: Lab;
  let cluster: Cluster;
  const nb = () => lab.neighbour!;
  const fromNeighbour = (cmd: string[]) => lab.sandbox.inNs(nb().ns, cmd, { timeoutMs: 20000 });

  beforeAll(async () => {
    if (!ok) return;
    lab = await buildLab({ vms: 2, tag: "nb", neighbour: true });
    cluster = lab.cluster();
    for (const v of lab.vms) v.serveHealth(cluster.app.haproxy.statsPort);
    const ws = new Workspace(lab, "terraform", { vrrp_password: "t3st-pw" });
    ws.synth(cluster);
    const init = await ws.init();
    if (!init.ok) throw new Error(init.output);
    const run = await ws.apply();
    if (!run.ok) throw new Error(run.output);
    ws.assertNoSecret(run);
  });

  afterAll(() => {
    if (!lab) return;
    lab.cleanup();
    expect(lab.sandbox.leftoverNamespaces()).toEqual([]);
  });

  itIf(ok, reason)("our agents' HTTP API answers on the node's loopback only: the neighbour's connection is refused", () => {
    for (const vm of lab.vms) {
      // the agent is up and serves its API to the node itself…
      expect(vm.exec("curl -fsS --max-time 3 http://127.0.0.1:8500/v1/agent/self").status).toBe(0);
      // …and to nobody on the overlay
      const r = fromNeighbour(["curl", "-sS", "--max-time", "3", `http://${vm.overlayAddress}:8500/v1/agent/self`]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/Connection refused|Failed to connect/);
    }
  });

  itIf(ok, reason)("our agents' DNS on the overlay: it answers anyone about the catalog (Consul DNS has no ACL) and forwards nothing where no recursors are rendered", () => {
    const node = lab.vms[0];
    expect(dig(lab.sandbox, nb().ns, node.overlayAddress, "consul.service.consul")).toEqual([LAB_SERVERS_ADDRESS]);
    // a name only the public resolvers know: our agent is not an open recursive resolver
    expect(cluster.consul.recursors).toEqual([]);
    expect(dig(lab.sandbox, node.ns, "1.1.1.1", "bastion.lab.internal")).toEqual(["10.210.1.2"]);
    expect(dig(lab.sandbox, nb().ns, node.overlayAddress, "bastion.lab.internal")).toEqual([]);
  });

  itIf(ok, reason)("the provider's servers (2022): the neighbour writes our Consul KV and registers a service under our node's name, with the commands the trust model gives", async () => {
    const server = `http://${LAB_SERVERS_ADDRESS}:8500`;
    // docs/trust-model.md: consul kv put -http-addr=… nomad-secrets/haproxy/haproxy_cfg …
    const put = fromNeighbour([CONSUL_BIN, "kv", "put", `-http-addr=${server}`, "nomad-secrets/haproxy/haproxy_cfg", "frontend evil"]);
    expect({ status: put.status, out: put.stdout.trim() }).toEqual({ status: 0, out: "Success! Data written to: nomad-secrets/haproxy/haproxy_cfg" });
    const read = consulCli(lab.sandbox, lab.servers.ns, ["kv", "get", `-http-addr=${server}`, "nomad-secrets/haproxy/haproxy_cfg"]);
    expect(read.stdout.trim()).toBe("frontend evil");
    // a "haproxy" service registered through the neighbour's own agent, claiming node-1's name in its meta
    const reg = fromNeighbour(["curl", "-fsS", "--max-time", "5", "-X", "PUT", "--data-binary", JSON.stringify({ Name: "haproxy", Port: 8404, Address: nb().address, Meta: { node: "node-1" } }), "http://127.0.0.1:8500/v1/agent/service/register"]);
    expect(reg.status).toBe(0);
    await waitFor("the fake haproxy in the servers' catalog", () => (consulGet(lab.sandbox, lab.servers.consul, "/v1/catalog/service/haproxy") ?? "").includes(nb().address), 20000);
    // our nodes are in the same catalog, next to the neighbour's
    const nodes = catalogNodes(lab.sandbox, lab.servers.consul);
    expect(nodes).toMatchObject({ "node-1": lab.vms[0].overlayAddress, "node-2": lab.vms[1].overlayAddress, "other-team-vm": nb().address });
  });
});
