/**
 * The cluster's topology as a Mermaid flowchart, generated from the description (pure:
 * description in, Mermaid text out; no cdktf here). `npm run topology` writes it to
 * docs/topology.mmd and docs/topology.md; CI checks that the committed copy is fresh.
 *
 * Shows: operator → bastion → nodes (name, overlay address, ⚑ maintenance), the floating
 * IP and the nodes that may hold it (keepalived priority, VRRP unicast peers), the
 * provider's tunnels (public URL → floating IP:floatingPort, per-VM URL → overlay:nodePort),
 * the provider's Consul/Nomad servers, HAProxy on eligible nodes, the jobs with their
 * counts and routes, and the shared services (RabbitMQ, S3) the application uses.
 */
import type { Cluster, ClusterNode } from "../description/schema";
import { effectivePriority } from "./keepalived";

export interface TopologyOptions {
  /** Description file named in the header comment (e.g. clusters/example.yaml). */
  readonly source?: string;
}

/**
 * Label text, safe inside a quoted Mermaid label: quotes, brackets, braces, angle
 * brackets, pipes and '#' become Mermaid entity codes. Line breaks are added by `lines`.
 */
export function escapeLabel(text: string): string {
  return text
    .replace(/#/g, "#35;")
    .replace(/"/g, "#quot;")
    .replace(/\[/g, "#91;")
    .replace(/\]/g, "#93;")
    .replace(/\(/g, "#40;")
    .replace(/\)/g, "#41;")
    .replace(/\{/g, "#123;")
    .replace(/\}/g, "#125;")
    .replace(/</g, "#lt;")
    .replace(/>/g, "#gt;")
    .replace(/\|/g, "#124;")
    .replace(/\r?\n/g, " ");
}

/** A quoted label of several lines. */
function lines(...parts: (string | undefined | false)[]): string {
  return `"${parts
    .filter((p): p is string => typeof p === "string" && p.length > 0)
    .map(escapeLabel)
    .join("<br/>")}"`;
}

/** A Mermaid node id for any name (node names are [a-z0-9-]: '-' → '_' keeps ids distinct). */
export function mermaidId(...parts: string[]): string {
  return parts.map((p) => p.replace(/[^A-Za-z0-9]/g, "_")).join("_");
}

/** `https://<vm>.<domain>/`: the provider's per-VM tunnel, the domain taken from app.publicUrl. */
export function nodeTunnelUrl(c: Cluster, n: ClusterNode): string {
  const host = new URL(c.app.publicUrl).hostname;
  const domain = host.startsWith(`${c.name}.`) ? host.slice(c.name.length + 1) : host.split(".").slice(1).join(".") || host;
  return `https://${n.name}.${domain}/`;
}

export function renderTopologyMermaid(c: Cluster, opts: TopologyOptions = {}): string {
  const out: string[] = [];
  const emit = (indent: number, line: string) => out.push(`${"  ".repeat(indent)}${line}`);
  const eligible = c.nodes.filter((n) => n.floatingIp.eligible);
  const schedulable = c.nodes.filter((n) => !n.maintenance);
  const hp = c.app.haproxy;
  const publicUrl = c.app.publicUrl.endsWith("/") ? c.app.publicUrl : `${c.app.publicUrl}/`;
  const id = {
    agents: (n: ClusterNode) => mermaidId("n", n.name, "agents"),
    haproxy: (n: ClusterNode) => mermaidId("n", n.name, "haproxy"),
    keepalived: (n: ClusterNode) => mermaidId("n", n.name, "keepalived"),
    box: (n: ClusterNode) => mermaidId("node", n.name),
    tunnel: (n: ClusterNode) => mermaidId("tunnel", n.name),
  };

  emit(0, "flowchart LR");
  emit(1, `%% Topology of cluster ${c.name}, generated from ${opts.source ?? "the cluster description"} by \`npm run topology\`. Do not edit.`);
  emit(1, `actor_operator([${lines("operator / CI", "Terraform + ssh")}])`);
  emit(1, `bastion[${lines("bastion", `${c.bastion.user}@${c.bastion.host}:${c.bastion.port}`)}]`);
  emit(1, `actor_operator -->|${lines("ssh -J: provisioning")}| bastion`);
  out.push("");

  emit(1, `subgraph provider[${lines("provider: TLS tunnels and shared services")}]`);
  emit(2, "direction TB");
  emit(2, `tunnel_public[${lines(publicUrl, "public site tunnel")}]`);
  for (const n of c.nodes) emit(2, `${id.tunnel(n)}[${lines(nodeTunnelUrl(c, n), "per-VM tunnel")}]`);
  // 2023+: the servers run on one of the team's VMs (servers.vm), which our program never provisions.
  const where = c.servers.vm ? `on team VM ${c.servers.vm.name} · ${c.servers.vm.overlayAddress}, not provisioned here` : c.servers.join.join(", ");
  emit(2, `servers[(${lines("Consul + Nomad servers", `datacenter ${c.servers.datacenter}, region ${c.region}`, where)})]`);
  emit(2, `broker[(${lines("RabbitMQ", `${c.app.broker.host}:${c.app.broker.port}`, `vhost ${c.app.broker.vhost}`)})]`);
  emit(2, `s3[(${lines("S3 storage", c.app.s3.endpoint, `bucket ${c.app.s3.bucket}`)})]`);
  emit(1, "end");
  out.push("");

  emit(1, `subgraph overlay[${lines(`overlay ${c.overlay.interface} ${c.overlay.prefix}`)}]`);
  emit(2, `fip{{${lines(`floating IP ${c.floatingIp.address}`, `VRRP router id ${c.floatingIp.virtualRouterId}, unicast`)}}}`);
  for (const n of c.nodes) {
    emit(2, `subgraph ${id.box(n)}[${lines(`${n.name} · ${n.overlayAddress}${n.maintenance ? " · ⚑ maintenance" : ""}`)}]`);
    emit(3, "direction TB");
    emit(
      3,
      `${id.agents(n)}[${lines(
        "Consul + Nomad clients",
        `ssh ${n.address}`,
        n.maintenance ? "⚑ maintenance: drained, ineligible" : undefined,
        n.floatingIp.eligible ? undefined : "no HAProxy, never holds the floating IP",
      )}]`,
    );
    if (n.floatingIp.eligible) {
      emit(3, `${id.haproxy(n)}[${lines("HAProxy system job", `${n.overlayAddress}:${hp.nodePort} and floating IP :${hp.floatingPort}`)}]`);
      // The priority keepalived runs with: 1 under maintenance, not the described one.
      const priority = n.maintenance
        ? `keepalived priority ${effectivePriority(n)}, maintenance: ${n.floatingIp.priority} otherwise`
        : `keepalived priority ${n.floatingIp.priority}`;
      emit(3, `${id.keepalived(n)}[${lines(priority, n.maintenance ? "⚑ gives the floating IP away" : undefined)}]`);
    }
    emit(2, "end");
  }
  emit(1, "end");
  out.push("");

  emit(1, `subgraph jobs[${lines(`Nomad service jobs, placed on ${schedulable.length ? schedulable.map((n) => n.name).join(", ") : "no schedulable node"}`)}]`);
  emit(2, `job_web[${lines(`web ×${c.app.web.count}`, c.app.images.web)}]`);
  emit(2, `job_api[${lines(`api ×${c.app.api.count}`, c.app.images.api)}]`);
  emit(2, `job_worker[${lines(`worker ×${c.app.worker.count}`, `concurrency ${c.app.worker.concurrency}`)}]`);
  if (c.metrics.enabled) emit(2, `job_metrics[${lines("metrics ×1", `Prometheus + Grafana :${c.metrics.grafana.port} (loopback)`)}]`);
  emit(1, "end");
  out.push("");

  for (const n of c.nodes) {
    emit(1, `bastion -->|${lines(`ssh ${n.address}`)}| ${id.agents(n)}`);
    emit(1, `${id.agents(n)} -->|${lines("client join")}| servers`);
  }
  emit(1, `tunnel_public -->|${lines(`:${hp.floatingPort}`)}| fip`);
  for (const n of c.nodes) {
    if (n.floatingIp.eligible) emit(1, `${id.tunnel(n)} -->|${lines(`${n.overlayAddress}:${hp.nodePort}`)}| ${id.haproxy(n)}`);
    else emit(1, `${id.tunnel(n)} -.->|${lines(`${n.overlayAddress}:${hp.nodePort}: no listener`)}| ${id.agents(n)}`);
  }
  for (const n of eligible) {
    emit(1, `${id.keepalived(n)} -.->|${lines(n.maintenance ? `only if no peer can, priority ${effectivePriority(n)}` : `may hold, priority ${n.floatingIp.priority}`)}| fip`);
    emit(1, `fip -->|${lines(`:${hp.floatingPort} on the holder`)}| ${id.haproxy(n)}`);
  }
  for (let i = 0; i < eligible.length; i++) {
    for (let j = i + 1; j < eligible.length; j++) {
      emit(1, `${id.keepalived(eligible[i])} -.-|${lines("VRRP unicast")}| ${id.keepalived(eligible[j])}`);
    }
  }
  for (const n of eligible) {
    emit(1, `${id.haproxy(n)} -->|${lines("/image…")}| job_api`);
    emit(1, `${id.haproxy(n)} -->|${lines("/")}| job_web`);
  }
  emit(1, `job_api -->|${lines("AMQP: resize tasks")}| broker`);
  emit(1, `job_worker -->|${lines("AMQP: consume")}| broker`);
  emit(1, `job_api -->|${lines("S3 API")}| s3`);
  emit(1, `job_worker -->|${lines("S3 API")}| s3`);
  if (c.metrics.enabled) {
    for (const n of eligible) emit(1, `job_metrics -.->|${lines("scrapes /metrics")}| ${id.haproxy(n)}`);
  }
  out.push("");

  emit(1, "classDef maintenance stroke-dasharray: 5 5,fill:#eeeeee,color:#555555");
  emit(1, "classDef shared fill:#fff7e6");
  const maintained = c.nodes
    .filter((n) => n.maintenance)
    .flatMap((n) => [id.agents(n), ...(n.floatingIp.eligible ? [id.haproxy(n), id.keepalived(n)] : [])]);
  if (maintained.length) emit(1, `class ${maintained.join(",")} maintenance`);
  emit(1, "class servers,broker,s3 shared");
  return `${out.join("\n")}\n`;
}

/** docs/topology.md: the Mermaid text in a ```mermaid block, for README and code hosts. */
export function renderTopologyMarkdown(c: Cluster, opts: TopologyOptions = {}): string {
  return `# Topology of ${c.name}

Generated from \`${opts.source ?? "the cluster description"}\` by \`npm run topology\` (do not edit:
CI runs \`npm run topology -- --check\`). Dashed boxes: nodes in maintenance.

\`\`\`mermaid
${renderTopologyMermaid(c, opts)}\`\`\`
`;
}
