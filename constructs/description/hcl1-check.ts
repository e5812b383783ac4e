/**
 * A strict reader of the HCL1 subset an agent config uses (Consul and Nomad read their
 * configs with HashiCorp's HCL1 parser): attributes, blocks with labels, strings, heredocs,
 * numbers, booleans, lists and objects, `#`, `//` and `/* *\/` comments. It exists so that
 * an `extraConfig` that is not HCL, or that sets what a client may not (EXTRA_CONFIG_ALLOWED),
 * is refused at synth time with its line, instead of failing on every node at apply time (the install
 * script validates with the real binary too; this is the early, offline check).
 *
 * Pure and synchronous (the description loader is synchronous; HashiCorp's parser in
 * @cdktf/hcl2json is an async WebAssembly build, and an HCL2 one).
 */

import { FLOATING_IP_META } from "./schema";

export interface HclItem {
  /** Keys from the top: block type, labels, nested keys. */
  path: string[];
  /** 1-based line in the HCL text. */
  line: number;
  /** Scalar value of an attribute (undefined for blocks, lists, objects). */
  value?: string | number | boolean;
}

export class HclSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
  }
}

type Tok =
  | { t: "ident"; v: string; line: number }
  | { t: "string"; v: string; line: number }
  | { t: "number"; v: number; line: number }
  | { t: "punct"; v: "=" | "{" | "}" | "[" | "]" | ","; line: number }
  | { t: "nl"; line: number }
  | { t: "eof"; line: number };

function tokenize(text: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  let line = 1;
  const err = (m: string): never => {
    throw new HclSyntaxError(m, line);
  };
  while (i < text.length) {
    const ch = text[i];
    if (ch === "\n") {
      toks.push({ t: "nl", line });
      line++;
      i++;
    } else if (ch === " " || ch === "\t" || ch === "\r") {
      i++;
    } else if (ch === "#" || (ch === "/" && text[i + 1] === "/")) {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (ch === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      if (end < 0) err("unterminated /* comment");
      line += (text.slice(i, end).match(/\n/g) ?? []).length;
      i = end + 2;
    } else if ("={}[],".includes(ch)) {
      toks.push({ t: "punct", v: ch as "=", line });
      i++;
    } else if (ch === '"') {
      const start = line;
      let v = "";
      i++;
      for (;;) {
        if (i >= text.length || text[i] === "\n") err("unterminated string (a quoted string ends on its line)");
        const c = text[i];
        if (c === '"') break;
        if (c === "\\") {
          const e = text[i + 1];
          if (e === "n") v += "\n";
          else if (e === "t") v += "\t";
          else if (e === "r") v += "\r";
          else if (e === '"' || e === "\\") v += e;
          else if (e === "u" && /^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6))) {
            v += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
            i += 4;
          } else err(`unknown escape \\${e ?? ""} in a string`);
          i += 2;
          continue;
        }
        if (c === "$" && text[i + 1] === "{") err("'${' in a string: agent configs are not templates (HCL1 keeps it verbatim)");
        v += c;
        i++;
      }
      i++;
      toks.push({ t: "string", v, line: start });
    } else if (ch === "<" && text[i + 1] === "<") {
      const m = /^<<-?([A-Za-z_][A-Za-z0-9_]*)\r?\n/.exec(text.slice(i));
      if (!m) err("a heredoc starts with <<MARKER at the end of the line");
      const start = line;
      i += m![0].length;
      line++;
      const lines: string[] = [];
      for (;;) {
        if (i >= text.length) err(`heredoc ${m![1]} is not closed`);
        const nl = text.indexOf("\n", i);
        const l = text.slice(i, nl < 0 ? text.length : nl);
        i = nl < 0 ? text.length : nl + 1;
        line++;
        if (l.trim() === m![1]) break;
        lines.push(l);
      }
      line--;
      toks.push({ t: "string", v: lines.join("\n"), line: start });
    } else if (/[-0-9]/.test(ch)) {
      const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
      if (!m) err(`unexpected '${ch}'`);
      toks.push({ t: "number", v: Number(m![0]), line });
      i += m![0].length;
    } else if (/[A-Za-z_]/.test(ch)) {
      const m = /^[A-Za-z_][A-Za-z0-9_.-]*/.exec(text.slice(i))!;
      toks.push({ t: "ident", v: m[0], line });
      i += m[0].length;
    } else {
      err(`unexpected character ${JSON.stringify(ch)}`);
    }
  }
  toks.push({ t: "eof", line });
  return toks;
}

/** Parses `text`; returns every attribute and block with its path. Throws HclSyntaxError. */
export function readHcl1(text: string): HclItem[] {
  const toks = tokenize(text);
  let p = 0;
  const items: HclItem[] = [];
  const peek = () => toks[p];
  const skipNl = () => {
    while (toks[p].t === "nl") p++;
  };
  const err = (m: string, tok = peek()): never => {
    throw new HclSyntaxError(m, tok.line);
  };
  const describe = (tok: Tok): string => (tok.t === "eof" ? "the end of the text" : tok.t === "nl" ? "a line break" : `'${String(tok.v)}'`);

  function body(path: string[], closing: boolean, depth: number): void {
    if (depth > 32) err("nested more than 32 levels deep");
    for (;;) {
      skipNl();
      const tok = peek();
      if (tok.t === "eof") {
        if (closing) err("a block is not closed: '}' expected");
        return;
      }
      if (tok.t === "punct" && tok.v === "}") {
        if (!closing) err("unexpected '}'");
        p++;
        return;
      }
      if (tok.t === "punct" && tok.v === ",") {
        p++;
        continue;
      }
      if (tok.t !== "ident" && tok.t !== "string") err(`expected a key, got ${describe(tok)}`);
      const keys = [String((tok as { v: string }).v)];
      const line = tok.line;
      p++;
      while (peek().t === "ident" || peek().t === "string") keys.push(String((toks[p++] as { v: string }).v));
      const next = peek();
      if (next.t === "punct" && next.v === "=") {
        if (keys.length > 1) err(`expected '{' after the block labels, got '='`);
        p++;
        value([...path, keys[0]], line, depth);
      } else if (next.t === "punct" && next.v === "{") {
        p++;
        items.push({ path: [...path, ...keys], line });
        body([...path, ...keys], true, depth + 1);
      } else {
        err(`expected '=' or '{' after ${keys.map((k) => `'${k}'`).join(" ")}, got ${describe(next)}`);
      }
      const after = peek();
      if (!(after.t === "nl" || after.t === "eof" || (after.t === "punct" && (after.v === "}" || after.v === ",")))) {
        err(`expected a line break after the value, got ${describe(after)}`);
      }
    }
  }

  function value(path: string[], line: number, depth: number): void {
    const tok = peek();
    if (tok.t === "string" || tok.t === "number") {
      p++;
      items.push({ path, line, value: tok.v });
    } else if (tok.t === "ident" && (tok.v === "true" || tok.v === "false")) {
      p++;
      items.push({ path, line, value: tok.v === "true" });
    } else if (tok.t === "punct" && tok.v === "{") {
      p++;
      items.push({ path, line });
      body(path, true, depth + 1);
    } else if (tok.t === "punct" && tok.v === "[") {
      p++;
      items.push({ path, line });
      for (;;) {
        skipNl();
        const t = peek();
        if (t.t === "punct" && t.v === "]") {
          p++;
          return;
        }
        value(path, t.line, depth + 1);
        skipNl();
        const sep = peek();
        if (sep.t === "punct" && sep.v === ",") p++;
        else if (!(sep.t === "punct" && sep.v === "]")) err(`expected ',' or ']' in a list, got ${describe(sep)}`);
      }
    } else {
      err(`expected a value (string, number, true/false, list or block), got ${describe(tok)}`);
    }
  }

  body([], false, 0);
  return items;
}

/**
 * What an agent's extraConfig may set: an ALLOWLIST, because HCL1 and mapstructure match
 * keys case-insensitively (`Server = true`, `CLIENT_ADDR`, `Client { Enabled = false }` are
 * the keys `server`, `client_addr`, `client.enabled` to the agents) and a blocklist misses
 * every spelling and every key it did not think of (`addresses { grpc = ... }`, go-sockaddr
 * templates, `client.options` that enable raw_exec).
 *
 * A rule is: `"any"` (any value or sub-block: the setting cannot make the agent a server,
 * bind an address or widen what a job may do), `"value"` (a plain value), `{ only, why }`
 * (this exact value: the setting exists to keep something off), or `{ keys }` (a block whose
 * keys are again checked; block labels such as `plugin "docker"` are keys here), or
 * `{ anyBut }` (any key except these, each with why).
 */
export type ExtraConfigRule = "any" | "value" | { only: boolean; why: string } | { keys: Record<string, ExtraConfigRule> } | { anyBut: Record<string, string> };

/** Settings every agent shares: logging, the update check, telemetry. */
const COMMON_SETTINGS: Record<string, ExtraConfigRule> = {
  log_level: "value",
  log_json: "value",
  log_file: "value",
  log_rotate_bytes: "value",
  log_rotate_duration: "value",
  log_rotate_max_files: "value",
  enable_syslog: "value",
  syslog_facility: "value",
  disable_update_check: { only: true, why: "the agents never call HashiCorp's checkpoint service" },
  telemetry: "any",
};

export const EXTRA_CONFIG_ALLOWED: Record<"consul" | "nomad", { keys: Record<string, ExtraConfigRule> }> = {
  consul: {
    keys: {
      ...COMMON_SETTINGS,
      dns_config: "any",
      node_meta: "any",
      limits: "any",
      cache: "any",
      http_config: { keys: { response_headers: "any", use_cache: "value" } },
      performance: { keys: { leave_drain_time: "value", rpc_hold_timeout: "value" } },
      retry_interval: "value",
      retry_max: "value",
      leave_on_terminate: "value",
      skip_leave_on_interrupt: "value",
      rejoin_after_leave: "value",
      disable_host_node_id: "value",
      check_update_interval: "value",
      discard_check_output: "value",
    },
  },
  nomad: {
    keys: {
      ...COMMON_SETTINGS,
      leave_on_interrupt: "value",
      leave_on_terminate: "value",
      limits: "any",
      client: {
        keys: {
          enabled: { only: true, why: "this agent is a client; disabling it would take the node out of the cluster" },
          meta: { anyBut: { [FLOATING_IP_META]: "set by this program from nodes[].floatingIp.eligible (HAProxy's placement constraint)" } },
          reserved: { keys: { cpu: "value", cores: "value", memory: "value", disk: "value", reserved_ports: "value" } },
          gc_interval: "value",
          gc_disk_usage_threshold: "value",
          gc_inode_usage_threshold: "value",
          gc_max_allocs: "value",
          gc_parallel_destroys: "value",
          max_kill_timeout: "value",
          cpu_total_compute: "value",
          memory_total_mb: "value",
          disk_total_mb: "value",
          disk_free_mb: "value",
        },
      },
      plugin: {
        keys: {
          docker: {
            keys: {
              config: {
                keys: {
                  allow_privileged: { only: false, why: "a privileged container owns the node" },
                  volumes: { keys: { enabled: { only: false, why: "host volumes let a job read and write the node's files" } } },
                  gc: "any",
                  extra_labels: "value",
                  logging: "any",
                  pull_activity_timeout: "value",
                  infra_image: "value",
                  infra_image_pull_timeout: "value",
                  disable_log_collection: "value",
                },
              },
            },
          },
        },
      },
    },
  },
};

/** Why a refused key matters, for the keys people reach for (the message names it). */
const REFUSED_BECAUSE: Record<string, string> = {
  server: "it would make this agent a server: the provider's single server must not gain peers",
  bootstrap: "a server-mode setting: this agent stays a client",
  bootstrap_expect: "a server-mode setting: this agent stays a client",
  client_addr: "it binds the HTTP API to other addresses: the HTTP API's exposure is consul.httpOnOverlay in the description",
  bind_addr: "it binds the agent to other addresses than the overlay address",
  advertise_addr: "the agent advertises the overlay address (overlay.addressing)",
  advertise: "the agent advertises the overlay address (overlay.addressing)",
  addresses: "it binds listeners (HTTP, HTTPS, gRPC, DNS) to other addresses than the ones rendered",
  ports: "the jobs, scripts and keepalived use the agents' standard ports",
  recursors: "the upstream DNS servers are consul.recursors in the description",
  enable_script_checks: "script checks run in Nomad, never in Consul",
  enable_local_script_checks: "script checks run in Nomad, never in Consul",
  options: "client options enable drivers and privileges (driver.raw_exec.enable, docker.privileged.enabled)",
  raw_exec: "raw_exec runs jobs as root without isolation",
  host_volume: "host volumes let a job read and write the node's files",
  data_dir: "the data directory is chosen by the install",
  acl: "ACLs are nomad.acl / consul.acl in the description",
  tls: "TLS is nomad.tls / consul.tls in the description",
};

/** Problems of an agent's extraConfig: not HCL, or a setting a client may not change. Each with its line in the HCL. */
export function extraConfigProblems(agent: "consul" | "nomad", text: string): { line: number; message: string }[] {
  let items: HclItem[];
  try {
    items = readHcl1(text);
  } catch (e) {
    if (e instanceof HclSyntaxError) return [{ line: e.line, message: `expected HCL (an agent config fragment): ${e.message}` }];
    throw e;
  }
  const problems: { line: number; message: string }[] = [];
  const reported = new Set<string>();
  const report = (written: string[], normalized: string[], line: number, message: string) => {
    const key = normalized.join(".");
    if (reported.has(key)) return;
    reported.add(key);
    const spelled = written.join(".") === key ? `'${key}'` : `'${written.join(".")}' (${key}: the agent reads keys in any letter case)`;
    problems.push({ line, message: `expected only settings a client may change; ${spelled} ${message}` });
  };
  for (const item of items) {
    // HCL1 and mapstructure match keys case-insensitively, at every level.
    const normalized = item.path.map((k) => k.toLowerCase());
    let rule: ExtraConfigRule = EXTRA_CONFIG_ALLOWED[agent];
    for (let i = 0; i < normalized.length && rule !== "any"; i++) {
      if (typeof rule === "object" && "anyBut" in rule) {
        const why = rule.anyBut[normalized[i]];
        if (why) report(item.path.slice(0, i + 1), normalized.slice(0, i + 1), item.line, `is not one: a reserved key, ${why}`);
        rule = "any";
        break;
      }
      if (rule === "value" || "only" in rule) {
        report(item.path.slice(0, i + 1), normalized.slice(0, i + 1), item.line, `is not one: ${normalized.slice(0, i).join(".")} takes a plain value, not a block`);
        rule = "any";
        break;
      }
      const next: ExtraConfigRule | undefined = Object.hasOwn(rule.keys, normalized[i]) ? rule.keys[normalized[i]] : undefined;
      if (next === undefined) {
        const why = Object.hasOwn(REFUSED_BECAUSE, normalized[i]) ? REFUSED_BECAUSE[normalized[i]] : undefined;
        const here = i === 0 ? "at the top" : `in ${normalized.slice(0, i).join(".")}`;
        report(item.path.slice(0, i + 1), normalized.slice(0, i + 1), item.line, `is not one${why ? `: ${why}` : ""} (allowed ${here}: ${Object.keys(rule.keys).join(", ")})`);
        rule = "any";
        break;
      }
      rule = next;
    }
    if (typeof rule === "object" && "only" in rule && item.value !== rule.only) {
      report(item.path, normalized, item.line, `may only be ${rule.only}: ${rule.why}`);
    }
  }
  return problems;
}
