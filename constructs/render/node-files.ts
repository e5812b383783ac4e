/**
 * The files each node component receives, and where its install script puts them. One
 * list, used by the constructs (what is uploaded and hashed into the triggers) and by the
 * drift check (`npm run drift`: what should be on the node). Pure: description in, texts
 * and paths out.
 */
import type { Cluster, ClusterNode } from "../description/schema";
import { CONSUL_CONFIG_DIR, NOMAD_CONFIG_DIR, consulSecretFiles, nomadSecretFiles, renderConsulConfig, renderNomadConfig } from "./agents";
import {
  KEEPALIVED_CONF,
  KEEPALIVED_STAGED,
  NONLOCAL_BIND_SYSCTL_FILE,
  VRRP_PASSWORD_PLACEHOLDER,
  renderKeepalivedConfig,
  renderKeepalivedInstallScript,
  renderKeepalivedRemovalScript,
  renderNonlocalBindSysctl,
} from "./keepalived";
import { renderAgentInstallScript, type AgentKind, type ManagedFile } from "./scripts";

/** systemd drop-in: Consul's packaged unit runs as user consul, and DNS on port 53 needs the capability. */
export const CONSUL_DNS_DROPIN = `# Consul serves DNS on the overlay address, port 53 (systemd-networkd forwards *.consul there).
[Service]
AmbientCapabilities=CAP_NET_BIND_SERVICE
`;
export const CONSUL_DNS_DROPIN_TARGET = "/etc/systemd/system/consul.service.d/10-dns-port.conf";

export type NodeComponent = AgentKind | "keepalived";
export const NODE_COMPONENTS: readonly NodeComponent[] = ["consul", "keepalived", "nomad"];

/** A file installed on the node, with a secret spliced in on the node (never rendered). */
export interface InstalledFile extends ManagedFile {
  /**
   * A line whose first word is this keyword carries a secret on the node (`auth_pass`);
   * it is rendered with `placeholder`, and the drift check masks it on the node before
   * anything leaves the machine.
   */
  readonly secretLine?: { keyword: string; placeholder: string };
}

export interface ComponentFiles {
  readonly component: NodeComponent;
  /** File name in the staging directory → content (uploaded and hashed). */
  readonly files: Record<string, string>;
  /** Which staged files the install script puts where. */
  readonly installed: InstalledFile[];
  /** Paths the install script removes when present (a dropped extraConfig, keepalived on a non-eligible node). */
  readonly removed: string[];
}

/** Files of one agent: config, optional escape-hatch file, DNS drop-in (Consul), install script. */
export function agentComponentFiles(c: Cluster, n: ClusterNode, agent: AgentKind): ComponentFiles {
  const configDir = agent === "consul" ? CONSUL_CONFIG_DIR : NOMAD_CONFIG_DIR;
  const extra = agent === "consul" ? c.consul.extraConfig : c.nomad.extraConfig;
  const files: Record<string, string> = {};
  const installed: ManagedFile[] = [];
  const add = (name: string, text: string, target: string, mode: string) => {
    files[name] = text;
    installed.push({ source: name, target, mode });
  };
  add(`${agent}.hcl`, agent === "consul" ? renderConsulConfig(c, n) : renderNomadConfig(c, n), `${configDir}/${agent}.hcl`, "0640");
  if (extra !== undefined) add("zz-extra.hcl", extra.endsWith("\n") ? extra : `${extra}\n`, `${configDir}/zz-extra.hcl`, "0640");
  if (agent === "consul") add("consul-dns.conf", CONSUL_DNS_DROPIN, CONSUL_DNS_DROPIN_TARGET, "0644");
  const removed = extra === undefined ? [`${configDir}/zz-extra.hcl`] : [];
  files["install.sh"] = renderAgentInstallScript(c, n, {
    agent,
    files: installed,
    requiredFiles: agent === "consul" ? consulSecretFiles(c) : nomadSecretFiles(c),
    removableTargets: removed,
  });
  return { component: agent, files, installed, removed };
}

/** keepalived: the config template (password placeholder), the sysctl, the script; only a removal script on a non-eligible node. */
export function keepalivedComponentFiles(c: Cluster, n: ClusterNode): ComponentFiles {
  if (!n.floatingIp.eligible) {
    return { component: "keepalived", files: { [KEEPALIVED_STAGED.script]: renderKeepalivedRemovalScript(c, n) }, installed: [], removed: [KEEPALIVED_CONF, NONLOCAL_BIND_SYSCTL_FILE] };
  }
  return {
    component: "keepalived",
    files: {
      [KEEPALIVED_STAGED.config]: renderKeepalivedConfig(c, n),
      [KEEPALIVED_STAGED.sysctl]: renderNonlocalBindSysctl(c),
      [KEEPALIVED_STAGED.script]: renderKeepalivedInstallScript(c, n),
    },
    installed: [
      { source: KEEPALIVED_STAGED.config, target: KEEPALIVED_CONF, mode: "0600", secretLine: { keyword: "auth_pass", placeholder: VRRP_PASSWORD_PLACEHOLDER } },
      { source: KEEPALIVED_STAGED.sysctl, target: NONLOCAL_BIND_SYSCTL_FILE, mode: "0644" },
    ],
    removed: [],
  };
}

/** Every component of a node, in provisioning order. */
export function nodeComponentFiles(c: Cluster, n: ClusterNode): ComponentFiles[] {
  return [agentComponentFiles(c, n, "consul"), keepalivedComponentFiles(c, n), agentComponentFiles(c, n, "nomad")];
}
