/**
 * System test: the keepalived.conf the deployment renders, run by the real keepalived in
 * two network namespaces joined by a veth pair named like the overlay interface. The
 * configs come from the production renderer; only its inputs differ (test addresses, the
 * veth name, a health port) plus `script_user nobody` (the renderer's parameter: the CI
 * machine has no keepalived_script user and must not get one).
 *
 * Checks: exactly one node holds the floating IP; a clean stop of the holder moves it;
 * the restarted node does not take it back (nopreempt); a failing HAProxy health endpoint
 * moves it; a dead local Consul agent moves it (each node runs the REAL Consul 1.14.11 with
 * the client config the deployment renders for it, joined to a real server in a third
 * namespace as the provider runs it; keepalived's check asks that agent's DNS on the
 * overlay port 53 for consul.service.consul); a crash of the holder moves it. Each takeover
 * is timed and recorded (recordMeasurement, keys failover.*: docs/floating-ip.md and
 * docs/operations.md cite them from docs/generated/test-measurements.md).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { edited, exampleCluster, itIf } from "../helpers/synth";
import { crossFieldViolations } from "../../constructs/description/rules";
import type { Cluster, ClusterNode } from "../../constructs/description/schema";
import { VRRP_PASSWORD_PLACEHOLDER, consulDnsCheckCommand, renderKeepalivedConfig } from "../../constructs/render/keepalived";
import { renderConsulConfig } from "../../constructs/render/agents";
import { recordMeasurement } from "../helpers/measurements";
import { Sandbox, pidAlive, sleep, systemTestPrerequisites, waitFor } from "./sandbox";
import { CONSUL_MISSING, haveConsul, startProviderServer, startRenderedClient, type ConsulAgent } from "./consul";

const system = systemTestPrerequisites(["keepalived", "ip", "curl", "/usr/bin/python3", "/usr/bin/dig"]);
const pre = !system.ok || haveConsul() ? system : { ok: false, reason: CONSUL_MISSING };
const SERVER = "10.213.0.250";

const IFACE = "ovl213";
const VIP = "10.213.0.100";
const HEALTH_PORT = 18404;

/** The example cluster with namespace addresses and the veth name as renderer inputs. */
export function testCluster(): Cluster {
  return edited(exampleCluster(), (c) => {
    c.overlay.interface = IFACE;
    c.overlay.prefix = "10.213.0.0/24";
    c.floatingIp.address = VIP;
    c.floatingIp.virtualRouterId = 213;
    c.nodes[0].overlayAddress = "10.213.0.1";
    c.nodes[1].overlayAddress = "10.213.0.2";
    c.app.haproxy.statsPort = HEALTH_PORT;
    c.servers = { ...c.servers, datacenter: "dc1", join: [SERVER] };
  });
}

jest.setTimeout(90000);

describe("keepalived with the rendered configuration, in two namespaces", () => {
  let sb: Sandbox | undefined;
  afterAll(() => {
    if (!sb) return;
    sb.cleanup();
    expect(sb.leftoverNamespaces()).toEqual([]);
  });

  itIf(pre.ok, pre.reason)("one holder; the floating IP moves on stop, on HAProxy failure, on a dead Consul DNS and on crash, not back (nopreempt)", async () => {
    const cluster = testCluster();
    expect(crossFieldViolations(cluster)).toEqual([]);
    const s = (sb = new Sandbox("ka"));
    const [n1, n2] = cluster.nodes;
    const ns: Record<string, string> = { [n1.name]: s.netns("n1"), [n2.name]: s.netns("n2") };
    // The overlay: a bridge joining both nodes and the provider's Consul server.
    const overlay = s.bridge("sw");
    const srv = s.netns("srv");
    for (const [n, a] of [[ns[n1.name], n1.overlayAddress], [ns[n2.name], n2.overlayAddress], [srv, SERVER]]) overlay.plug(n, IFACE, [`${a}/24`]);
    await startProviderServer(s, srv, "2022", SERVER);

    // Per node: the rendered config (password spliced in as the install script does).
    const confs: Record<string, string> = {};
    for (const n of [n1, n2]) {
      const dir = path.join(s.dir, n.name);
      fs.mkdirSync(path.join(dir, "www"), { recursive: true });
      fs.writeFileSync(path.join(dir, "www", "healthz"), "ok\n");
      const text = renderKeepalivedConfig(cluster, n, { scriptUser: "nobody" }).replace(VRRP_PASSWORD_PLACEHOLDER, "t3st-pw");
      confs[n.name] = path.join(dir, "keepalived.conf");
      fs.writeFileSync(confs[n.name], text, { mode: 0o600 });
      // The same check the install script makes (with its script_user workaround).
      const check = path.join(dir, "check.conf");
      fs.writeFileSync(check, text.replace(/^(\s*script_user)\s.*$/m, "$1 root"));
      const t = s.inNs(ns[n.name], ["keepalived", "-t", "-f", check]);
      expect({ status: t.status, out: t.stderr }).toEqual({ status: 0, out: "" });
    }

    // Stand-in HAProxy health endpoints: GET http://<overlay address>:<statsPort>/healthz → 200.
    const health: Record<string, ReturnType<Sandbox["start"]>> = {};
    const startHealth = (n: ClusterNode) => {
      health[n.name] = s.start(`health-${n.name}`, ns[n.name], [
        "/usr/bin/python3", "-m", "http.server", "--bind", n.overlayAddress, "--directory", path.join(s.dir, n.name, "www"), String(HEALTH_PORT),
      ]);
    };
    const healthy = (n: ClusterNode) =>
      s.inNs(ns[n.name], ["curl", "-fsS", "--max-time", "1", "-o", "/dev/null", `http://${n.overlayAddress}:${HEALTH_PORT}/healthz`]).status === 0;
    for (const n of [n1, n2]) startHealth(n);
    for (const n of [n1, n2]) await waitFor(`health endpoint of ${n.name}`, () => healthy(n), 10000);

    // Each node's real Consul agent, with its rendered client config (DNS on <overlay address>:53).
    const agents: Record<string, ConsulAgent> = {};
    const startAgent = (n: ClusterNode) => {
      agents[n.name] = startRenderedClient(s, ns[n.name], renderConsulConfig(cluster, n), n.name);
    };
    // The rendered check command itself, run inside the node's namespace.
    const dnsAnswers = (n: ClusterNode) => s.inNs(ns[n.name], consulDnsCheckCommand(n).split(" ")).status === 0;
    for (const n of [n1, n2]) startAgent(n);
    for (const n of [n1, n2]) await waitFor(`${n.name}'s Consul agent answering DNS`, () => dnsAnswers(n), 30000, () => agents[n.name].log().split("\n").slice(-15).join("\n"));

    const kad: Record<string, ReturnType<Sandbox["start"]>> = {};
    const startKeepalived = (n: ClusterNode) => {
      const d = path.join(s.dir, n.name);
      kad[n.name] = s.start(`keepalived-${n.name}`, ns[n.name], [
        "keepalived", "-n", "-l", "-D", "-f", confs[n.name],
        "-p", path.join(d, "keepalived.pid"), "-r", path.join(d, "vrrp.pid"), "-c", path.join(d, "checkers.pid"),
      ]);
    };
    const holds = (n: ClusterNode) => s.inNs(ns[n.name], ["ip", "-o", "-4", "address", "show", "dev", IFACE, "to", `${VIP}/32`]).stdout.trim() !== "";
    const holders = () => [n1, n2].filter(holds).map((n) => n.name);
    const diag = () =>
      `holders: ${JSON.stringify(holders())}\n` +
      [n1, n2].map((n) => `--- keepalived ${n.name}\n${kad[n.name] ? s.log(kad[n.name]).split("\n").slice(-25).join("\n") : ""}`).join("\n");
    /** Waits until `n` alone holds the floating IP; returns the milliseconds it took. */
    const takeover = (n: ClusterNode, what: string, timeoutMs = 15000) =>
      waitFor(`${n.name} alone holding ${VIP} (${what})`, () => JSON.stringify(holders()) === JSON.stringify([n.name]), timeoutMs, diag);
    const newHolders: string[] = [];
    /** One takeover, recorded for the docs (seconds from the event). */
    // Recorded only once every step has passed: a run that fails half-way must not leave
    // part of its figures in docs/generated/test-measurements.md.
    const keepalivedVersion = /Keepalived v([\d.]+)/.exec(spawnSync("keepalived", ["--version"], { encoding: "utf8" }).stderr)?.[1] ?? "version unknown";
    const figures: Parameters<typeof recordMeasurement>[0][] = [];
    const measured = (key: string, what: string, newHolder: ClusterNode, ms: number) => {
      newHolders.push(newHolder.name);
      figures.push({ key, what: `${what} (keepalived ${keepalivedVersion}, rendered config, advert_int ${cluster.floatingIp.advertInterval})`, value: ms / 1000, unit: "s", decimals: 2 });
    };

    // 1. Both start together: exactly one holds the floating IP, the higher priority (node-1).
    let t0 = Date.now();
    startKeepalived(n1);
    startKeepalived(n2);
    await takeover(n1, "election");
    measured("failover.first-election", "both keepalived start together → the higher priority alone holds the floating IP", n1, Date.now() - t0);
    for (const n of [n1, n2]) {
      const vrrpPid = Number(fs.readFileSync(path.join(s.dir, n.name, "vrrp.pid"), "utf8"));
      s.adopt(`vrrp-${n.name}`, vrrpPid);
    }
    await sleep(1500);
    expect(holders()).toEqual([n1.name]);

    // 2. Clean stop of the holder (SIGTERM: it sends priority 0): node-2 takes over.
    t0 = Date.now();
    const stopping = s.stop(kad[n1.name], "SIGTERM");
    await takeover(n2, "clean stop");
    measured("failover.clean-stop", "holder's keepalived stopped (SIGTERM: it sends priority 0) → the peer alone holds it", n2, Date.now() - t0);
    await stopping;
    expect(pidAlive(kad[n1.name].pid)).toBe(false);

    // 3. node-1 returns with its higher priority: nopreempt, node-2 keeps the floating IP
    //    (longer than node-1's master-down timer, 3 × advert_int + skew ≈ 3.4 s).
    startKeepalived(n1);
    await sleep(5000);
    expect(holders()).toEqual([n2.name]);

    // 4. HAProxy on the holder fails (its health endpoint stops): node-1 takes over.
    t0 = Date.now();
    await s.stop(health[n2.name], "SIGTERM");
    expect(healthy(n2)).toBe(false);
    await takeover(n1, "health failure");
    measured("failover.haproxy-healthz", "holder's HAProxy /healthz fails (server stopped) → the peer alone holds it", n1, Date.now() - t0);

    // 5. node-2's HAProxy recovers; then the holder's Consul agent dies: node-2 takes over.
    startHealth(n2);
    await waitFor("node-2 health endpoint back", () => healthy(n2), 10000);
    // rise 2 × interval 2 s: node-2 is a candidate again after ~4 s; give it 6 s.
    await sleep(6000);
    expect(holders()).toEqual([n1.name]);
    t0 = Date.now();
    await s.stop({ name: agents[n1.name].name, pid: agents[n1.name].pid }, "SIGKILL");
    expect(dnsAnswers(n1)).toBe(false);
    await takeover(n2, "Consul agent dead");
    measured("failover.consul-dns", "holder's Consul agent killed (its DNS stops answering) → the peer alone holds it", n2, Date.now() - t0);

    // 6. node-1's agent is back (it rejoins); then the holder (node-2) crashes (SIGKILL: no goodbye advert).
    startAgent(n1);
    await waitFor("node-1 Consul DNS back", () => dnsAnswers(n1), 30000);
    await sleep(6000);
    expect(holders()).toEqual([n2.name]);
    t0 = Date.now();
    const vrrp2 = Number(fs.readFileSync(path.join(s.dir, n2.name, "vrrp.pid"), "utf8"));
    s.adopt(`vrrp-${n2.name}`, vrrp2);
    process.kill(vrrp2, "SIGKILL");
    process.kill(kad[n2.name].pid, "SIGKILL");
    // A crashed node keeps its address configured (a dead machine would not answer);
    // the takeover is node-1 holding it.
    await waitFor(`${n1.name} holding ${VIP} after a crash`, () => holds(n1), 15000, diag);
    measured("failover.crash", "holder crashes (keepalived SIGKILL: no goodbye advert) → the peer holds it", n1, Date.now() - t0);
    expect(newHolders).toEqual([n1.name, n2.name, n1.name, n2.name, n1.name]);
    for (const f of figures) recordMeasurement(f);
  });
});
