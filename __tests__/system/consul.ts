/**
 * The real Consul in system tests: Consul 1.14.11 (MPL-2.0), built from the Go module pinned
 * in engines/consul by `npm run engines` into .engines/bin/consul. No stand-in answers for
 * Consul anywhere under __tests__/system: servers, clients, DNS, catalog, KV and agent
 * metrics are the real agent's. What the lab cannot reproduce (the provider runs 1.11.5,
 * 1.15.2, 1.18.1 and 1.20.5) is listed in docs/lab.md, "The version gap".
 *
 * - `providerServerConfig(year, …)`: a server configured as that year's playbook configures
 *   its servers (playbook/roles/multi-consul/templates/consul.hcl in 2022: one instance per
 *   team on a provider host, datacenter not set (dc1), bind/client/advertise on its own
 *   address, UI, bootstrap_expect 1, no recursors; playbook/roles/consul/templates/consul.hcl
 *   from 2023: datacenter = the team, client_addr 0.0.0.0, DNS on the overlay address port 53,
 *   recursors 1.1.1.1 and 1.0.0.1).
 * - `startConsul(…)`: any agent (server or client) in a namespace of a Sandbox, recorded by
 *   PID. The update check is off whatever the config says (CHECKPOINT_DISABLE=1, which
 *   go-checkpoint honours), and the namespaces have no route out anyway.
 * - `registerAsNomad(…)`: what Nomad's stand-in does when it places an allocation: the
 *   allocation's services, read from OUR rendered jobspec with HashiCorp's HCL parser,
 *   registered in the node's real Consul agent the way Nomad's Consul integration does
 *   (agent API PUT /v1/agent/service/register; service ID `_nomad-task-<alloc>-<task>-<service>-<port label>`;
 *   Name, Tags, Address, Port; one check per check block with its HTTP URL, interval and
 *   timeout; documented at developer.hashicorp.com/nomad/docs/integrations/consul/service-mesh
 *   and …/job-specification/service: "Nomad registers the service with Consul … the
 *   address is the host IP of the port's host_network"). Deregistration on stop likewise.
 */
import * as fs from "fs";
import * as path from "path";
import { REPO_ROOT, hasCommand, parseHcl } from "../helpers/synth";
import { Sandbox, waitFor, type RunResult } from "./sandbox";

export const CONSUL_BIN = path.join(REPO_ROOT, ".engines", "bin", "consul");
/** The version the lab runs (engines/consul/go.mod). */
export const LAB_CONSUL_VERSION = "1.14.11";
export const CONSUL_MISSING = "no .engines/bin/consul: run npm run engines (builds Consul 1.14.11 from engines/consul)";

export function haveConsul(): boolean {
  return fs.existsSync(CONSUL_BIN) && hasCommand("curl");
}

export type ProviderYear = "2022" | "2023" | "2024" | "2025";
/** The recursors the 2023+ playbook gives its servers (group_vars: 1.1.1.1, 1.0.0.1). */
export const PROVIDER_RECURSORS = ["1.1.1.1", "1.0.0.1"];

/**
 * A Consul server as the year's playbook configures it. `address`: the server's overlay
 * address (2022: the provider host's per-team instance address).
 */
export function providerServerConfig(year: ProviderYear, o: { nodeName: string; address: string; team: string }): string {
  if (year === "2022") {
    // playbook/roles/multi-consul/templates/consul.hcl at the 2022 commit
    return `node_name = "${o.nodeName}"
data_dir = "/opt/consul/${o.nodeName}"
bind_addr = "${o.address}"
client_addr = "${o.address}"
advertise_addr = "${o.address}"

ui_config {
  enabled = true
}

telemetry {
  prometheus_retention_time = "360h"
}

server = true
bootstrap_expect = 1
`;
  }
  // playbook/roles/consul/templates/consul.hcl from the 2023 commit on
  return `datacenter = "${o.team}"
data_dir = "/opt/consul"
node_name = "${o.nodeName}"
client_addr = "0.0.0.0"
advertise_addr = "${o.address}"
ui_config {
  enabled = true
}
server = true
bootstrap_expect = 1
addresses {
  dns = "${o.address}"
}
ports {
  dns = 53
}
recursors = [${PROVIDER_RECURSORS.map((r) => `"${r}"`).join(", ")}]
`;
}

export interface ConsulAgent {
  name: string;
  ns: string;
  pid: number;
  /** Where its HTTP API answers, as reached from inside `ns`. */
  http: string;
  dataDir: string;
  log(): string;
}

/**
 * Starts a real agent in `ns` with `configText` (HCL). `dataDir` overrides the config's
 * data_dir (a directory of the sandbox: these namespaces share the machine's /opt).
 */
export function startConsul(sb: Sandbox, ns: string, o: { name: string; configText: string; http: string; extraArgs?: string[] }): ConsulAgent {
  const dir = path.join(sb.dir, `consul-${o.name}`);
  const dataDir = path.join(dir, "data");
  fs.mkdirSync(dataDir, { recursive: true });
  const config = path.join(dir, "config.hcl");
  fs.writeFileSync(config, o.configText);
  const t = sb.start(`consul-${o.name}`, ns, [CONSUL_BIN, "agent", `-config-file=${config}`, `-data-dir=${dataDir}`, ...(o.extraArgs ?? [])], {
    env: { ...process.env, CHECKPOINT_DISABLE: "1" },
  });
  return { name: o.name, ns, pid: t.pid, http: o.http, dataDir, log: () => sb.log(t) };
}

/** `consul <args>` inside `ns` (the real CLI). */
export function consulCli(sb: Sandbox, ns: string, args: string[], timeoutMs = 20000): RunResult {
  return sb.inNs(ns, [CONSUL_BIN, ...args], { timeoutMs });
}

/** GET on an agent's HTTP API from inside its namespace; undefined unless 200. */
export function consulGet(sb: Sandbox, agent: Pick<ConsulAgent, "ns" | "http">, apiPath: string): string | undefined {
  const r = sb.inNs(agent.ns, ["curl", "-fsS", "--max-time", "3", `${agent.http}${apiPath}`]);
  return r.status === 0 ? r.stdout : undefined;
}

/** Waits until the agent's datacenter has a leader (a server is up and elected itself). */
export async function waitForLeader(sb: Sandbox, agent: ConsulAgent, timeoutMs = 30000): Promise<void> {
  await waitFor(`a Consul leader seen by ${agent.name}`, () => /"[0-9.]+:8300"/.test(consulGet(sb, agent, "/v1/status/leader") ?? ""), timeoutMs, () => agent.log().split("\n").slice(-20).join("\n"), 200);
}

/** The servers' catalog of nodes: name → address. */
export function catalogNodes(sb: Sandbox, agent: Pick<ConsulAgent, "ns" | "http">): Record<string, string> {
  const text = consulGet(sb, agent, "/v1/catalog/nodes");
  if (!text) return {};
  return Object.fromEntries((JSON.parse(text) as { Node: string; Address: string }[]).map((n) => [n.Node, n.Address]));
}

/** Waits until `node` is in the catalog (registered through the servers) at `address`. */
export async function waitForCatalogNode(sb: Sandbox, agent: ConsulAgent, node: string, address: string, timeoutMs = 30000): Promise<void> {
  await waitFor(`${node} in the Consul catalog at ${address}`, () => catalogNodes(sb, agent)[node] === address, timeoutMs, () => JSON.stringify(catalogNodes(sb, agent)), 200);
}

/** One Consul service registration as Nomad makes it for a task's service block. */
export interface NomadRegistration {
  ID: string;
  Name: string;
  Tags: string[];
  Address: string;
  Port: number;
  Meta: Record<string, string>;
  Checks: { CheckID: string; Name: string; HTTP: string; Interval: string; Timeout: string }[];
}

/**
 * The registrations Nomad makes for one allocation of `jobspec` (our rendered HCL): every
 * service block of the task `task`, with the address and port Nomad gave the allocation.
 */
export async function nomadRegistrations(jobspec: string, o: { task: string; allocId: string; address: string; port: number }): Promise<NomadRegistration[]> {
  const parsed = await parseHcl("job.nomad.hcl", jobspec);
  const out: NomadRegistration[] = [];
  for (const job of Object.values(parsed.job ?? {}) as any[][]) {
    for (const groups of job.map((j: any) => j.group ?? {})) {
      for (const group of Object.values(groups) as any[][]) {
        for (const g of group) {
          const task = (g.task ?? {})[o.task];
          if (!task) continue;
          for (const svc of task.flatMap((t: any) => t.service ?? [])) {
            const portLabel = svc.port ?? "";
            const id = `_nomad-task-${o.allocId}-${o.task}-${svc.name}-${portLabel}`;
            out.push({
              ID: id,
              Name: svc.name,
              Tags: svc.tags ?? [],
              Address: o.address,
              Port: o.port,
              Meta: { "external-source": "nomad" },
              Checks: (svc.check ?? [])
                .filter((ck: any) => ck.type === "http")
                .map((ck: any, i: number) => ({
                  CheckID: `_nomad-check-${o.allocId}-${i}`,
                  Name: ck.name,
                  HTTP: `http://${o.address}:${o.port}${ck.path}`,
                  Interval: ck.interval,
                  Timeout: ck.timeout,
                })),
            });
          }
        }
      }
    }
  }
  if (out.length === 0) throw new Error(`no service of task ${o.task} in the jobspec`);
  return out;
}

/** Registers with the agent (PUT /v1/agent/service/register), as Nomad's Consul client does. */
export function registerService(sb: Sandbox, agent: Pick<ConsulAgent, "ns" | "http">, reg: NomadRegistration | Record<string, unknown>): void {
  const r = sb.inNs(agent.ns, ["curl", "-fsS", "--max-time", "5", "-X", "PUT", "--data-binary", "@-", `${agent.http}/v1/agent/service/register`], { input: JSON.stringify(reg) });
  if (r.status !== 0) throw new Error(`service registration refused: ${r.stderr}`);
}

export function deregisterService(sb: Sandbox, agent: Pick<ConsulAgent, "ns" | "http">, id: string): void {
  const r = sb.inNs(agent.ns, ["curl", "-fsS", "--max-time", "5", "-X", "PUT", `${agent.http}/v1/agent/service/deregister/${encodeURIComponent(id)}`]);
  if (r.status !== 0) throw new Error(`service deregistration refused: ${r.stderr}`);
}

/** `dig` of `name` at a Consul DNS interface, from inside `ns`: the +short answer lines. */
export function dig(sb: Sandbox, ns: string, server: string, name: string, type: "A" | "SRV" = "A", port = 53): string[] {
  const r = sb.inNs(ns, ["dig", "+time=1", "+tries=1", "+short", "-p", String(port), `@${server}`, name, type]);
  return r.stdout.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith(";"));
}

/**
 * The provider's server (providerServerConfig) in `ns`, which must hold `address`; resolves
 * once it has elected itself.
 */
export async function startProviderServer(sb: Sandbox, ns: string, year: ProviderYear, address: string, team = "lab"): Promise<ConsulAgent> {
  const agent = startConsul(sb, ns, { name: `server-${address}`, configText: providerServerConfig(year, { nodeName: `provider-${year}`, address, team }), http: `http://${address}:8500` });
  await waitForLeader(sb, agent);
  return agent;
}

/**
 * A node's Consul client as the deployment renders it (renderConsulConfig: the production
 * renderer, the test's cluster as input), run by the real agent in the node's namespace.
 * Its HTTP API is on the namespace's loopback (client_addr), its DNS on the overlay port 53.
 */
export function startRenderedClient(sb: Sandbox, ns: string, configText: string, nodeName: string): ConsulAgent {
  return startConsul(sb, ns, { name: nodeName, configText, http: "http://127.0.0.1:8500" });
}

/**
 * Makes the servers forget a node (a test bed reused across cases): `consul force-leave
 * -prune` removes it from the members, then the catalog entry is deregistered.
 */
export function forgetNode(sb: Sandbox, server: ConsulAgent, node: string): void {
  consulCli(sb, server.ns, ["force-leave", "-prune", `-http-addr=${server.http}`, node]);
  sb.inNs(server.ns, ["curl", "-sS", "--max-time", "5", "-X", "PUT", "--data-binary", JSON.stringify({ Node: node }), `${server.http}/v1/catalog/deregister`]);
}
