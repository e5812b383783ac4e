/**
 * The cluster description: the one file an operator edits by hand.
 *
 * Field-level shape and defaults live here (zod); rules that relate several fields
 * (unique names, addresses inside the overlay prefix, ...) live in `rules.ts`.
 * Every object is strict: an unknown key is a typo until proven otherwise.
 *
 * No secret is ever a field here. Secrets are Terraform variables resolved at apply
 * time (see `SECRET_VARIABLES` in `secrets.ts`); the description names only non-secret
 * parts (user names, hosts, buckets).
 */
import { z } from "zod";
import { MINIMUM_VERSIONS, compareVersions } from "../versions";
import { HOST_KEY_ADVICE, HOST_KEY_TYPES, RECOMMENDED_HOST_KEY, embeddedKeyType, keyscanCommand } from "./host-keys";

/**
 * Nomad client meta key set on every node (constructs/render/agents.ts): "true" where HAProxy
 * and the floating IP may run. Defined here, with the description, so that the description
 * reserves it without depending on the rendering.
 */
export const FLOATING_IP_META = "floating_ip_eligible";

/** Node meta keys this program sets itself (constructs/render/agents.ts). */
export const RESERVED_NODE_META_KEYS: readonly string[] = [FLOATING_IP_META];

const NAME_RE = /^[a-z][a-z0-9-]{0,62}$/;
const name = (what: string) =>
  z.string().regex(NAME_RE, `${what}: lowercase letters, digits and '-', starting with a letter, at most 63 characters`);

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
export const ipv4 = z.string().regex(IPV4_RE, "an IPv4 address such as 172.16.1.11");

const HOST_RE = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/**
 * A DNS name or an IPv4 address. A name whose last label is all digits is no name (RFC 3696
 * §2: no top-level domain is numeric) but an address to every resolver (glibc's inet_aton
 * reads `300.1.1.1` and even `10.1` as one): such a string must be a valid IPv4 address.
 */
export function isHost(v: string): boolean {
  if (IPV4_RE.test(v)) return true;
  return HOST_RE.test(v) && !/(^|\.)\d+$/.test(v);
}
const LOOKS_NUMERIC_RE = /^[\d.]+$/;
export const host = z.string().superRefine((v, ctx) => {
  if (isHost(v)) return;
  ctx.addIssue({
    code: "custom",
    message: LOOKS_NUMERIC_RE.test(v) || /(^|\.)\d+$/.test(v)
      ? "an IPv4 address of four numbers 0-255 such as 172.16.1.11, or a host name whose last label is not a number (resolvers read a numeric one as an address)"
      : "a host name or an IPv4 address",
  });
});

/** A TCP port as written in a URL or host:port: 1-65535, no leading zero. */
const PORT_TEXT_RE = /^[1-9]\d{0,4}$/;
const isPortText = (p: string) => PORT_TEXT_RE.test(p) && Number(p) <= 65535;

const CIDR_RE = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d|[12]\d|3[0-2])$/;
export const cidr = z
  .string()
  .regex(CIDR_RE, "an IPv4 prefix in CIDR notation such as 172.16.0.0/16")
  .refine((v) => IPV4_RE.test(v.split("/")[0]), "an IPv4 prefix in CIDR notation such as 172.16.0.0/16")
  // /31 and /32 leave no room for nodes plus a floating IP; below /8 is no team's overlay.
  .refine((v) => { if (!CIDR_RE.test(v)) return true; const bits = Number(v.split("/")[1]); return bits >= 8 && bits <= 30; }, "a prefix length 8-30 (room for the nodes and the floating IP)");

/**
 * A Linux network interface name as the kernel accepts it (dev_valid_name): 1-15 bytes
 * (IFNAMSIZ 16 with the NUL), not "." or "..", no '/', ':' or white space; of those, the
 * letters, digits and _ . - that every tool (ip, systemd-networkd, go-sockaddr templates)
 * takes as they are.
 */
const interfaceName = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,15}$/, "a Linux interface name: 1-15 letters, digits, '_', '.', '-' (IFNAMSIZ)")
  .refine((v) => v !== "." && v !== "..", "a Linux interface name other than '.' or '..' (the kernel refuses them)");

const port = z.number().int().min(1, "a TCP port 1-65535").max(65535, "a TCP port 1-65535");

/**
 * Ports the agents on every node own (Consul: DNS 53, server RPC 8300, LAN/WAN serf
 * 8301-8302, HTTP(S)/gRPC 8500-8503, DNS 8600; Nomad: HTTP/RPC/serf 4646-4648) and Nomad's
 * default dynamic port range (20000-32000, where jobs' dynamic ports land).
 */
export const AGENT_PORTS: readonly number[] = [53, 4646, 4647, 4648, 8300, 8301, 8302, 8500, 8501, 8502, 8503, 8600];
export const NOMAD_DYNAMIC_PORTS = { min: 20000, max: 32000 } as const;
/** A port a job binds on the node: unprivileged, and neither an agent's nor Nomad's dynamic range. */
const jobPort = z
  .number()
  .int()
  .min(1024, "an unprivileged TCP port 1024-65535")
  .max(65535, "an unprivileged TCP port 1024-65535")
  .refine((p) => !AGENT_PORTS.includes(p), `a port the Consul/Nomad agents do not use (not ${AGENT_PORTS.join(", ")})`)
  .refine((p) => p < NOMAD_DYNAMIC_PORTS.min || p > NOMAD_DYNAMIC_PORTS.max, `a port outside Nomad's dynamic port range ${NOMAD_DYNAMIC_PORTS.min}-${NOMAD_DYNAMIC_PORTS.max}`);

/** A Unix login name (useradd's portable rule, at most 32 characters). */
const unixUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "a Unix user name (lowercase letters, digits, '_', '-', at most 32 characters)");

/** Characters of a path we accept: no spaces, quotes, `$`, `%`, braces, backslashes or control characters. */
const PATH_CHARS = "[A-Za-z0-9._+@=,/-]";
const noDotDot = (v: string) => !v.split("/").includes("..");
/** An absolute path on a node, written into agent configs and scripts. */
const nodePath = z
  .string()
  .regex(new RegExp(`^/${PATH_CHARS}{1,254}$`), "an absolute path on the node of letters, digits and . _ + @ = , / - (no spaces, quotes or $), at most 255 characters")
  .refine(noDotDot, "a path without '..'");
/** A path on the operator's machine (absolute, relative, or under ~/). */
const localPath = z
  .string()
  .regex(new RegExp(`^(~/)?${PATH_CHARS}{1,254}$`), "a file path of letters, digits and . _ + @ = , / - (optionally starting with ~/; no spaces, quotes or $), at most 255 characters");

/** An http(s) URL: scheme, host, optional port and path; no credentials, query or fragment. */
const URL_RE = /^(https?):\/\/([A-Za-z0-9.-]{1,253})(?::(\d{1,5}))?(\/[A-Za-z0-9._~\/-]*)?$/;
export const httpUrl = (example: string, opts: { httpsOnly?: boolean } = {}) =>
  z.string().superRefine((v, ctx) => {
    const what = opts.httpsOnly ? `an https:// URL such as ${example}` : `an http(s) URL such as ${example}`;
    if (/^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(v)) {
      ctx.addIssue({ code: "custom", message: `${what}, without user:password@ (credentials never belong in the description)` });
      return;
    }
    const m = URL_RE.exec(v);
    if (!m) {
      ctx.addIssue({ code: "custom", message: `${what} (scheme http or https, a host, an optional port and path; no query, fragment or special characters)` });
      return;
    }
    if (!isHost(m[2])) {
      ctx.addIssue({ code: "custom", message: `${what}, whose host ${m[2]} is a host name or an IPv4 address of four numbers 0-255 (a name's last label is not a number)` });
      return;
    }
    if (m[3] !== undefined && !isPortText(m[3])) {
      ctx.addIssue({ code: "custom", message: `${what}, whose port ${m[3]} is a TCP port 1-65535 written without leading zeros` });
      return;
    }
    if (opts.httpsOnly && m[1] !== "https") ctx.addIssue({ code: "custom", message: `${what} (the browser loads it over HTTPS)` });
  });

/** An OpenSSH public host key line: "<type> <base64>" (what ssh-keyscan prints after the host). */
const HOST_KEY_RE = new RegExp(`^(${HOST_KEY_TYPES.join("|")}) [A-Za-z0-9+/]+={0,3}$`);
const sshHostKey = z
  .string()
  .max(16384, "a host key line of at most 16 KiB")
  .regex(HOST_KEY_RE, `an OpenSSH public host key such as '${RECOMMENDED_HOST_KEY.label} AAAAE2Vj...' (ssh-keyscan output without the host name; ${HOST_KEY_ADVICE})`)
  // The body names its own type (RFC 4253 §6.6); a label that disagrees is a pasting mistake
  // that the engines would only report at deploy time, as a key mismatch.
  .superRefine((v, ctx) => {
    if (!HOST_KEY_RE.test(v)) return;
    const [label, body] = v.split(" ");
    const inside = embeddedKeyType(body);
    if (inside !== label) {
      ctx.addIssue({
        code: "custom",
        message: inside
          ? `a key whose label matches its body: the line says ${label} but the key inside is ${inside} (copy the whole line ssh-keyscan prints, type and key together)`
          : `a key body that is an OpenSSH public key (base64 of the ${label} key, as ssh-keyscan prints it): this one does not start with a key type`,
      });
    }
  });

/** major.minor.patch, each a number without leading zeros. */
const CANONICAL_VERSION_RE = /^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$/;

const durationRe = /^\d{1,9}(ms|s|m|h)$/;
/** Seconds of a duration such as 90s, 5m, 1h or 500ms. */
export function durationToSeconds(d: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(d);
  if (!m) throw new Error(`not a duration: ${d}`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n / 1000 : m[2] === "s" ? n : m[2] === "m" ? n * 60 : n * 3600;
}
/**
 * A duration between `min` and `max`, both written as the description writes durations (Go's
 * own limit is ~292 years; ours is what makes sense). The bounds stay in that form so the
 * error message and docs/description.md name them as written here.
 */
export const boundedDuration = (min: string, max: string) => {
  const [minSeconds, maxSeconds] = [durationToSeconds(min), durationToSeconds(max)];
  return z
    .string()
    .regex(durationRe, "a duration such as 30s, 5m or 1h")
    // (zod runs refinements after a failed regex too: leave that case to the regex's message)
    .refine((v) => { if (!durationRe.test(v)) return true; const s = durationToSeconds(v); return s >= minSeconds && s <= maxSeconds; }, `a duration between ${min} and ${max}`);
};
export const duration = boundedDuration("1s", "24h");

/**
 * A container image reference with an explicit tag (or digest). `latest` and untagged
 * references are refused: a rollout must be reproducible and revertible.
 */
export const imageRef = z
  .string()
  .regex(
    /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/,
    "an image reference such as ghcr.io/team/image-api:1.4.2",
  )
  .max(255, "an image reference of at most 255 characters")
  .superRefine((v, ctx) => {
    const [withoutDigest, digest] = v.split("@");
    const lastSlash = withoutDigest.lastIndexOf("/");
    const tail = withoutDigest.slice(lastSlash + 1);
    const tag = tail.includes(":") ? tail.split(":")[1] : undefined;
    if (tag === undefined && digest === undefined) {
      ctx.addIssue({ code: "custom", message: "an explicit tag (e.g. ':1.4.2' or ':3f9c2ab'), not an untagged image" });
    } else if (tag === "latest") {
      ctx.addIssue({ code: "custom", message: "an explicit version tag, not 'latest' (a rollout must be reproducible and revertible)" });
    }
  });

/** An agent's extra HCL: text without control characters (tabs and newlines aside), at most 64 KiB; parsed in rules.ts. */
const extraConfig = z
  .string()
  .max(65536, "at most 64 KiB of HCL")
  .regex(/^[^\u0000-\u0008\u000b-\u001f\u007f]*$/, "HCL text without control characters (tabs and newlines aside)");

const resources = z.strictObject({
  /** CPU in MHz reserved for one instance. */
  cpu: z.number().int().min(20, "at least 20 (MHz)").max(100000, "at most 100000 (MHz)").describe("CPU in MHz reserved for one instance."),
  /** Memory in MiB reserved for one instance. */
  memory: z.number().int().min(16, "at least 16 (MiB)").max(1048576, "at most 1048576 (MiB)").describe("Memory in MiB reserved for one instance."),
  /** Memory in MiB an instance may burst to (Nomad memory_max, needs memory oversubscription on the servers). */
  memoryMax: z.number().int().min(16).max(1048576, "at most 1048576 (MiB)").optional().describe("Memory in MiB an instance may burst to (Nomad memory_max, needs memory oversubscription on the servers)."),
});

/**
 * An S3 bucket name as S3 and S3-compatible stores (MinIO, Ceph RGW) accept it for
 * virtual-host and path-style requests: 3-63 lowercase letters, digits, '.' and '-', a
 * letter or digit at both ends, no empty or dash-edged label ('..', '.-', '-.'), not an
 * IPv4 address, no 'xn--' prefix (reserved for punycode).
 */
const s3Bucket = z.string().superRefine((v, ctx) => {
  const why =
    !/^[a-z0-9.-]{3,63}$/.test(v) ? "3-63 lowercase letters, digits, '.' and '-'"
    : !/^[a-z0-9].*[a-z0-9]$/.test(v) ? "a letter or digit at both ends"
    : /\.\.|\.-|-\./.test(v) ? "no '..', '.-' or '-.' (each dot-separated part is a DNS label)"
    : /^\d+\.\d+\.\d+\.\d+$/.test(v) ? "not an IP address"
    : v.startsWith("xn--") ? "no 'xn--' prefix (reserved for internationalized names)"
    : undefined;
  if (why) ctx.addIssue({ code: "custom", message: `an S3 bucket name: ${why}` });
});

/** Instances of one job: enough for any team's VMs, far below what would flood the servers. */
export const MAX_COUNT = 100;
const count = z.number().int().min(1, "at least 1 instance").max(MAX_COUNT, `at most ${MAX_COUNT} instances`);

const scaling = z.strictObject({ min: count, max: count }).optional();

const service = (defaults: { count: number; cpu: number; memory: number }) =>
  z.strictObject({
    /** Number of instances. Default: as many as the example needs for one per node. */
    count: count.default(defaults.count).describe("Number of instances. Default: as many as the example needs for one per node."),
    resources: resources.default({ cpu: defaults.cpu, memory: defaults.memory }),
    /** Bounds for an autoscaler (Nomad `scaling` block). Default: min = count, max = 2 × count. */
    scaling,
  });

const sshPrivateKey = z.union([
  z.strictObject({
    /** Use the operator's ssh-agent (SSH_AUTH_SOCK): the key never leaves the agent. */
    agent: z.literal(true).describe("Use the operator's ssh-agent (SSH_AUTH_SOCK): the key never leaves the agent."),
  }),
  z.strictObject({
    /** Path of the private key file on the operator's machine, read by Terraform at apply time. */
    file: localPath.describe("Path of the private key file on the operator's machine, read by Terraform at apply time."),
  }),
], { error: "either { agent: true } (use the ssh-agent) or { file: <path of the private key on the operator's machine> }" });

const tlsFiles = z.strictObject({
  /** Paths ON THE NODE (the files are placed there by the operator, never synthesized). */
  caFile: nodePath.describe("Paths ON THE NODE (the files are placed there by the operator, never synthesized)."),
  certFile: nodePath,
  keyFile: nodePath,
});

const node = z.strictObject({
  /** Node name: Consul node_name, Nomad name, and part of every Terraform address of this node. */
  name: name("node name").describe("Node name: Consul node_name, Nomad name, and part of every Terraform address of this node."),
  /** Address the bastion reaches the VM at (SSH). */
  address: host.describe("Address the bastion reaches the VM at (SSH)."),
  /** The VM's address on the overlay interface (Consul/Nomad bind and advertise it). */
  overlayAddress: ipv4.describe("The VM's address on the overlay interface (Consul/Nomad bind and advertise it)."),
  /** Pinned SSH host key of the VM (required unless ssh.insecureIgnoreHostKey). */
  hostKey: sshHostKey.optional().describe(`Pinned SSH host key of the VM: \`${keyscanCommand("ADDRESS")}\` on the bastion, without the host name (${HOST_KEY_ADVICE}). Required unless ssh.insecureIgnoreHostKey is true.`),
  /** Nomad node_class. */
  nodeClass: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits, '_', '.', '-', at most 64 characters").optional().describe("Nomad node_class."),
  /** Nomad client meta. */
  meta: z
    .record(
      z
        .string()
        .regex(/^[A-Za-z0-9_.-]{1,64}$/, "meta keys: letters, digits, '_', '.', '-', at most 64 characters")
        // Nomad refuses to start with a client.meta key that is no dotted variable name
        // (helper.IsValidInterpVariable: no empty part, so no leading, trailing or double dot).
        .refine((k) => !/^[A-Za-z0-9_.-]{1,64}$/.test(k) || /^[^.]+(\.[^.]+)*$/.test(k), "a meta key without a leading, trailing or double '.' (Nomad reads dotted keys part by part)")
        .refine((k) => !RESERVED_NODE_META_KEYS.includes(k), `a meta key other than ${RESERVED_NODE_META_KEYS.join(", ")} (set by this program: HAProxy's placement follows floatingIp.eligible)`),
      z.string().regex(/^[A-Za-z0-9 _.,:/@+=-]{0,128}$/, "a meta value of letters, digits, spaces and _ . , : / @ + = - (no quotes, $, % or braces), at most 128 characters"),
    )
    .refine((m) => Object.keys(m).length <= 64, "at most 64 meta entries")
    .default({}).describe("Nomad client meta."),
  /**
   * Whether this node runs HAProxy and may hold the floating IP, and its keepalived
   * priority (higher wins). Default: eligible, priority 100.
   */
  floatingIp: z
    .strictObject({
      eligible: z.boolean().default(true),
      priority: z.number().int().min(1, "a VRRP priority 1-254").max(254, "a VRRP priority 1-254").default(100),
    })
    .default({ eligible: true, priority: 100 }),
  /**
   * Planned maintenance: drain the node's allocations, keep it out of scheduling and move
   * the floating IP away. Clear the flag to bring it back.
   */
  maintenance: z.boolean().default(false),
});

const jobsDefaults = {
  web: { count: 2, cpu: 100, memory: 128 },
  // Measured with scripts/api-load.ts --app-dir on the real api, 2026-12-02 (the figures are
  // in docs/jobs.md as of commit 1f8f148; upstream's code is not reachable here to write them
  // into docs/generated/api-load.md again): 2 gthread workers peak at
  // ~170 MiB under 12 concurrent 4 MiB uploads; + opentelemetry (not measurable here) and
  // upload buffers (up to 8 MiB per upload in flight) → 320 MiB.
  api: { count: 2, cpu: 300, memory: 320 },
  worker: { count: 2, cpu: 300, memory: 512 },
  haproxy: { count: 1, cpu: 200, memory: 128 },
};

// --- metrics and autoscaling (issue 15) ---
/**
 * Pinned images of the metrics stack (Docker Hub tags; pin by digest where a registry is
 * reachable, as for the application's images).
 */
export const METRICS_IMAGES = {
  prometheus: "prom/prometheus:v2.53.3",
  grafana: "grafana/grafana:11.3.1",
  autoscaler: "hashicorp/nomad-autoscaler:0.4.5",
  /** 0.27: webhook url_file and e-mail auth_password_file, so no secret is in its config file. */
  alertmanager: "prom/alertmanager:v0.27.0",
} as const;

/**
 * Loopback ports the metrics group's tasks listen on (host network mode, 127.0.0.1 only):
 * Prometheus, Alertmanager, the queue exporter and the autoscaler. Grafana's port may not
 * be one of them (it listens on loopback too). The renderers' constants equal these
 * (__tests__/metrics-alerting.test.ts checks it).
 */
export const METRICS_LOOPBACK_PORTS: readonly number[] = [9090, 9093, 9808, 9809];

const emailAddress = z
  .string()
  .max(254, "an e-mail address of at most 254 characters")
  .regex(/^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/, "an e-mail address such as team@example.org");

/**
 * Where alerts go (metrics.alerting). No receiver, no Alertmanager: the rules are still
 * evaluated and shown on Prometheus' and Grafana's alert pages. The secret part of each
 * receiver is a Terraform variable, never a field here (secrets.ts).
 */
const alertingSchema = z
  .strictObject({
    webhook: z
      .strictObject({
        sendResolved: z.boolean().default(true).describe("Also POST when an alert resolves. Default: true."),
      })
      .optional()
      .describe("Alerts POSTed as Alertmanager's webhook JSON. The URL (it usually holds a token) is the sensitive Terraform variable alert_webhook_url."),
    email: z
      .strictObject({
        to: z.array(emailAddress).min(1, "at least one address").max(20, "at most 20 addresses").describe("Recipients."),
        from: emailAddress.describe("Sender address."),
        smarthost: host.describe("SMTP server (host name or IPv4 address)."),
        port: port.default(587).describe("SMTP port. Default: 587 (submission, STARTTLS)."),
        username: z.string().regex(/^[^\s\x00-\x1f"\\]{1,254}$/, "an SMTP user name without spaces, quotes, backslashes or control characters").optional().describe("SMTP user; its password is the sensitive Terraform variable alert_smtp_password. Omit for a relay without authentication."),
        requireTls: z.boolean().default(true).describe("Refuse to send without STARTTLS. Default: true."),
      })
      .optional()
      .describe("Alerts e-mailed through an SMTP server."),
  })
  .prefault({})
  .describe("Receivers of the alert rules' notifications (Alertmanager in the metrics job). None: no Alertmanager; the rules still show on Prometheus' alert page.");

const metricsDefaults = {
  prometheus: { cpu: 200, memory: 512, diskMiB: 2048, retentionDays: 15, scrapeInterval: "15s" },
  grafana: { cpu: 100, memory: 256, port: 3000 },
  autoscaler: { cpu: 50, memory: 128 },
} as const;

const metricsSchema = z
  .strictObject({
    /** The metrics stack (Prometheus, Grafana, the Nomad Autoscaler) and the agents' telemetry. Default: on. */
    enabled: z.boolean().default(true).describe("The metrics stack (Prometheus, Grafana, the Nomad Autoscaler as Nomad jobs) and the agents' Prometheus telemetry. Default: on."),
    images: z
      .strictObject({
        prometheus: imageRef.default(METRICS_IMAGES.prometheus),
        grafana: imageRef.default(METRICS_IMAGES.grafana),
        autoscaler: imageRef.default(METRICS_IMAGES.autoscaler),
        alertmanager: imageRef.default(METRICS_IMAGES.alertmanager),
      })
      .prefault({})
      .describe("Images of the metrics stack (defaults pinned by tag)."),
    prometheus: z
      .strictObject({
        resources: resources.default({ cpu: metricsDefaults.prometheus.cpu, memory: metricsDefaults.prometheus.memory }),
        /** Nomad ephemeral disk of the Prometheus allocation (sticky, migrated on reschedule); the TSDB is capped below it. */
        diskMiB: z.number().int().min(256, "at least 256 (MiB)").max(1048576, "at most 1048576 (MiB)").default(metricsDefaults.prometheus.diskMiB).describe("Nomad ephemeral disk (MiB) of the Prometheus allocation, sticky and migrated on reschedule; the TSDB's size cap is set below it."),
        /** How long samples are kept (days), unless the disk cap is reached first. */
        retentionDays: z.number().int().min(1, "at least 1 (day)").max(365, "at most 365 (days)").default(metricsDefaults.prometheus.retentionDays).describe("How long samples are kept, in days (the disk cap may drop older ones first)."),
        scrapeInterval: boundedDuration("5s", "5m").default(metricsDefaults.prometheus.scrapeInterval).describe("How often every target is scraped."),
      })
      .prefault({}),
    grafana: z
      .strictObject({
        resources: resources.default({ cpu: metricsDefaults.grafana.cpu, memory: metricsDefaults.grafana.memory }),
        /** Grafana's port on the loopback address of the node running it (reached by an SSH port-forward through the bastion). */
        port: jobPort
          .refine((p) => !METRICS_LOOPBACK_PORTS.includes(p), `a port the metrics group's other tasks do not use (not ${METRICS_LOOPBACK_PORTS.join(", ")})`)
          .default(metricsDefaults.grafana.port)
          .describe("Grafana's port on the loopback address (127.0.0.1) of the node that runs it (reached through an SSH port-forward via the bastion)."),
      })
      .prefault({}),
    autoscaling: z
      .strictObject({
        /** The Nomad Autoscaler scales web, api and worker within app.<job>.scaling. Default: on (with metrics). */
        enabled: z.boolean().default(true).describe("The Nomad Autoscaler scales web, api and worker within app.<job>.scaling. Default: on (needs metrics.enabled)."),
        resources: resources.default({ cpu: metricsDefaults.autoscaler.cpu, memory: metricsDefaults.autoscaler.memory }),
        /** How often each policy is evaluated. */
        evaluationInterval: boundedDuration("5s", "1h").default("30s").describe("How often each scaling policy is evaluated."),
        /** Quiet time after a scaling action before the same job is scaled again. */
        cooldown: boundedDuration("10s", "24h").default("2m").describe("Quiet time after a scaling action before the same job may be scaled again."),
        /** Scale-down window: a job is scaled down only for the highest load seen over this window (scale-up is immediate). */
        scaleDownWindow: boundedDuration("30s", "24h").default("5m").describe("A job is scaled down only to what the highest load of this window needs (scale-up uses the current load): a dip shorter than the window never scales down."),
        /** Target of the web policy: HTTP requests per second per web instance (HAProxy's web backend). */
        webRequestsPerSecond: z.number().min(0.1).max(100000).default(20).describe("web's target: HTTP requests per second per instance, measured at HAProxy's web backend."),
        /** Target of the api policy: requests in flight per api instance (HAProxy's api and api_uploads backends). */
        apiRequestsInFlight: z.number().min(0.1).max(10000).default(6).describe("api's target: requests in flight per instance (HAProxy's api and api_uploads backends, queued ones included)."),
        /** Target of the worker policy: tasks waiting in the Celery queue per worker instance. */
        workerQueuedTasks: z.number().min(0.1).max(1000000).default(8).describe("worker's target: tasks waiting in the Celery queue per worker instance."),
      })
      .prefault({}),
    alerting: alertingSchema,
  })
  .prefault({})
  .describe("Metrics (Prometheus, Grafana) and autoscaling (Nomad Autoscaler) as Nomad jobs; on by default.");
// --- end metrics ---

export const clusterSchema = z.strictObject({
  /** Team / cluster name: part of stack names (the datacenter is servers.datacenter). */
  name: name("cluster name").describe("Team / cluster name: part of stack names (the Consul datacenter is servers.datacenter)."),
  /** Nomad region of the provider's servers (every generation: global). */
  region: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, "a Nomad region name such as global (at most 63 characters)").default("global").describe("Nomad region of the provider's servers (every generation: global)."),
  servers: z.strictObject({
    /**
     * The Consul datacenter the provider's servers run in (and the Nomad datacenter our
     * clients and jobs use). Not the team name by rule: 2022's servers set none (`dc1`),
     * 2023-2025's use the team name. The install checks it against the servers before it
     * writes anything.
     */
    datacenter: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "a Consul datacenter name (letters, digits, '_', '-'), e.g. dc1").describe("The Consul datacenter of the provider's servers (2022: dc1, 2023-2025: the team name); clients must use it or Consul refuses their join."),
    /**
     * The team's VM that runs the servers (2023-2025: one of the team's three VMs). Our
     * agents never touch it: it is listed so that no node is mistaken for it, and the
     * install refuses any node whose running agent is a server.
     */
    vm: z.strictObject({
      name: name("server VM name"),
      /** Address the bastion reaches it at (informational: nothing is provisioned there). */
      address: host,
      /** Its overlay address (the servers advertise it). */
      overlayAddress: ipv4,
      /** The servers' VM runs no Nomad client, so no HAProxy system job: it never holds the floating IP. */
      floatingIp: z
        .strictObject({ eligible: z.literal(false, { error: "false: the server VM runs no Nomad client (client.enabled = false), so no HAProxy, and keepalived there would hold the floating IP with nothing behind it" }) })
        .default({ eligible: false }),
    }).optional().describe("The team's VM that runs the Consul and Nomad servers (2023-2025). Never provisioned by this program."),
    /**
     * Addresses the clients retry_join (Consul) and register with (Nomad), as the VMs reach
     * them. Join what the provider really gives: the servers' IP from its mail ("IP interne
     * utilisée par Consul et Nomad"; 2022: "IP de Nomad/Consul", 172.16.2.N) or, 2023+, the server VM's overlay
     * address (what its agents advertise). A name only where something publishes it: no
     * year's playbook does (2022 writes its <team>.internal zone to a local file, 2023+ has
     * no zone task), and an unresolvable name fails the install after the join timeout.
     */
    join: z
      .array(host)
      .min(1, "at least one server address")
      .max(16, "at most 16 server addresses")
      .describe(
        "Addresses the clients retry_join (Consul) and register with (Nomad), as the VMs reach them. Use the servers' IP from the provider's mail (\"IP interne utilisée par Consul et Nomad\"; 2022: \"IP de Nomad/Consul\", 172.16.2.N) or, 2023+, the server VM's overlay address. A host name only if something publishes it: no year's playbook does (2022 writes its <team>.internal zone to a local file only, 2023+ has no zone task), and a name that does not resolve fails the install after the join timeout.",
      ),
    /** Consul HTTP API used by Terraform (provider) and shown in outputs. */
    consulHttpAddress: httpUrl("https://consul-team.example.org").describe("Consul HTTP API used by Terraform (provider) and shown in outputs."),
    /** Nomad HTTP API used by Terraform (provider) and shown in outputs. */
    nomadHttpAddress: httpUrl("https://nomad-team.example.org").describe("Nomad HTTP API used by Terraform (provider) and shown in outputs."),
  }),
  bastion: z.strictObject({
    host,
    port: port.default(22),
    user: unixUser,
    /** Pinned SSH host key of the bastion (required unless ssh.insecureIgnoreHostKey). */
    hostKey: sshHostKey.optional().describe(`Pinned SSH host key of the bastion: \`${keyscanCommand("HOST")}\` without the host name (${HOST_KEY_ADVICE}). Required unless ssh.insecureIgnoreHostKey is true.`),
  }),
  ssh: z.strictObject({
    /** SSH user on the VMs (has sudo). */
    user: unixUser.default("ubuntu").describe("SSH user on the VMs (has sudo)."),
    /** Where the private key comes from: never the key itself. */
    privateKey: sshPrivateKey.default({ agent: true }).describe("Where the private key comes from: never the key itself."),
    /**
     * Connect without checking the host keys that are not pinned (bastion.hostKey,
     * nodes[].hostKey). Off by default: then every key must be pinned.
     */
    insecureIgnoreHostKey: z
      .boolean()
      .default(false)
      .describe("Connect without checking the host keys that are not pinned (bastion.hostKey, nodes[].hostKey): Terraform and OpenTofu then accept any key, not only the first one seen. Off by default: then every key must be pinned."),
  })
    // Optional as a whole: without it, user ubuntu and the ssh-agent (the defaults above).
    .prefault({})
    .describe("SSH login on the VMs; optional (defaults: user ubuntu, the ssh-agent)."),
  overlay: z.strictObject({
    /** Overlay interface on every VM (vxlan100, later years vxlan<N>). */
    interface: interfaceName.describe("Overlay interface on every VM (vxlan100, later years vxlan<N>)."),
    /** Overlay prefix: node overlay addresses and the floating IP must be inside it. */
    prefix: cidr.describe("Overlay prefix: node overlay addresses and the floating IP must be inside it."),
    /**
     * How agents find their overlay address: `static` writes the node's overlayAddress;
     * `interface` writes go-sockaddr `{{ GetInterfaceIP "<iface>" }}` so a re-addressed VM keeps working.
     */
    addressing: z.enum(["static", "interface"]).default("static"),
    /**
     * What the provider's systemd-networkd does with DNS on the overlay link: `none` (2022:
     * a search domain only, the host resolves through its uplink) or `agent` (2023-2025:
     * `*.consul` AND `*.internal.<domain>` go to a DNS server on the VM's own overlay
     * address, port 53, i.e. our Consul agent, which must then forward the rest: consul.recursors).
     */
    linkDns: z.enum(["none", "agent"]).describe("DNS routing of the provider's overlay link: none (2022) or agent (2023-2025: *.consul and the internal domain go to the VM's own overlay address, port 53)."),
  }),
  floatingIp: z.strictObject({
    address: ipv4,
    /** VRRP virtual_router_id: unique on the shared overlay. */
    virtualRouterId: z.number().int().min(1, "a VRRP router id 1-255").max(255, "a VRRP router id 1-255").describe("VRRP virtual_router_id: unique on the shared overlay."),
    /** VRRP advertisement interval in seconds. */
    advertInterval: z.number().int().min(1).max(255).default(1).describe("VRRP advertisement interval in seconds."),
  }),
  consul: z
    .strictObject({
      /** Gossip encryption: the key lives on the node in /etc/consul.d/gossip.hcl (`encrypt = "..."`), placed by the operator. */
      gossipEncryption: z.boolean().default(false).describe("Gossip encryption: the key lives on the node in /etc/consul.d/gossip.hcl (`encrypt = \"...\"`), placed by the operator."),
      tls: tlsFiles.optional(),
      /** ACLs: the agent token lives on the node in /etc/consul.d/acl-tokens.hcl, placed by the operator. */
      acl: z.boolean().default(false).describe("ACLs: the agent token lives on the node in /etc/consul.d/acl-tokens.hcl, placed by the operator."),
      /**
       * Serve the HTTP/gRPC API on the overlay address too (default: loopback only; the
       * overlay is shared with other teams in some years, and the local Nomad agent and the
       * scripts need loopback only).
       */
      httpOnOverlay: z.boolean().optional().describe("Serve Consul's HTTP/gRPC API on the overlay address too. Default: loopback only (other teams share the overlay)."),
      /**
       * Upstream DNS servers the client agent forwards names it does not own to. Required
       * where overlay.linkDns is `agent` (the host's lookups of the internal domain reach
       * this agent); the provider's own servers use 1.1.1.1 and 1.0.0.1.
       */
      recursors: z.array(ipv4).default([]).describe("Upstream DNS servers the Consul client forwards non-Consul names to: required with overlay.linkDns: agent, refused with none (they would make the agent an open resolver on the shared overlay; Consul has no per-source control)."),
      /** Escape hatch: HCL merged last (/etc/consul.d/zz-extra.hcl). */
      extraConfig: extraConfig.optional().describe("Escape hatch: HCL merged last (/etc/consul.d/zz-extra.hcl); parsed at synth time; only settings a client may change (an allowlist, keys in any letter case)."),
    })
    .default({ gossipEncryption: false, acl: false, recursors: [] }),
  nomad: z
    .strictObject({
      tls: tlsFiles.optional(),
      /** ACLs: the scripts' token (agent:read, node:write) lives on the node in /etc/nomad.d/operator.token, placed by the operator. */
      acl: z.boolean().default(false).describe("ACLs: the scripts' token (agent:read, node:write) lives on the node in /etc/nomad.d/operator.token, placed by the operator."),
      /** How long a drain (maintenance, removal) may take before allocations are stopped. */
      drainDeadline: boundedDuration("1s", "24h").default("5m").describe("How long a drain (maintenance, removal) may take before allocations are stopped."),
      /** Escape hatch: HCL merged last (/etc/nomad.d/zz-extra.hcl). */
      extraConfig: extraConfig.optional().describe("Escape hatch: HCL merged last (/etc/nomad.d/zz-extra.hcl); parsed at synth time; only settings a client may change (an allowlist, keys in any letter case)."),
    })
    .default({ acl: false, drainDeadline: "5m" }),
  // --- rollout (rolling re-provisioning of the node agents) ---
  /**
   * How many nodes each agent kind (Consul, keepalived, Nomad) re-provisions at once: a
   * node count, or a percentage of the nodes such as "25%" (rounded down, at least 1, like
   * Ansible's `serial`). Default 1: one node at a time. keepalived and Consul never take
   * every floating-IP-eligible node in one batch. See docs/operations.md#rolling-batches.
   */
  rollout: z
    .strictObject({
      batchSize: z
        .union([z.number().int().min(1, "a node count >= 1"), z.string().regex(/^([1-9][0-9]?|100)%$/, 'a percentage "1%" to "100%"')], {
          error: 'a node count >= 1 or a percentage "1%" to "100%"',
        })
        .default(1)
        .describe('Nodes re-provisioned at once per agent kind: a count (>= 1) or a percentage such as "25%" (rounded down, at least 1). Default 1.'),
    })
    .default({ batchSize: 1 })
    .describe("Rolling re-provisioning of the node agents (Consul, keepalived, Nomad), batch by batch in description order."),
  // --- end rollout ---
  /** Shared Terraform state (default: local files on the operator's machine). */
  state: z
    .union(
      [
        z.strictObject({
          /** Consul KV backend (locks during applies). */
          consul: z.strictObject({
            /** host:port of a Consul HTTP API (the token comes from CONSUL_HTTP_TOKEN at init time). */
            address: z
              .string()
              .refine((v) => { const m = /^(.+):([^:]*)$/.exec(v); return m !== null && isHost(m[1]) && isPortText(m[2]); }, "host:port such as consul.example.org:8500 (a host name or IPv4 address, a port 1-65535 without leading zeros)")
              .describe("host:port of a Consul HTTP API (the token comes from CONSUL_HTTP_TOKEN at init time)."),
            scheme: z.enum(["http", "https"]).default("https"),
            /** KV prefix; each stack stores its state at <path>/<stack name>. */
            path: z.string().regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*\/?$/, "a Consul KV path such as terraform/team-example").max(255).refine(noDotDot, "a path without '..'").describe("KV prefix; each stack stores its state at <path>/<stack name>."),
          }),
        }),
        z.strictObject({
          /** HTTP backend configured entirely by TF_HTTP_* variables at init time (e.g. GitLab-managed state). */
          http: z.literal(true).describe("HTTP backend configured entirely by TF_HTTP_* variables at init time (e.g. GitLab-managed state)."),
        }),
      ],
      { error: "either { consul: { address, path } } or { http: true }" },
    )
    .optional(),
  /**
   * Consul and Nomad versions installed on the VMs (the provider's: 2022 1.11.5/1.2.6,
   * 2023 1.15.2/1.5.3, 2024 1.18.1/1.7.7, 2025 1.20.5/1.9.7). Every command, config key
   * and job feature is chosen for them (constructs/versions.ts); the install checks the
   * binaries on the node have at least this major.minor.
   */
  versions: z.strictObject({
    consul: agentVersion("consul"),
    nomad: agentVersion("nomad"),
  }).describe("Consul and Nomad versions on the VMs; the output uses only what they offer."),
  // 1000: far above any team's VMs (the benchmark synthesizes up to 762), far below what floods a plan.
  nodes: z.array(node).min(1, "at least one node").max(1000, "at most 1000 nodes"),
  app: z.strictObject({
    /** Public HTTPS URL of the site (the provider's TLS proxy in front of the floating IP). */
    publicUrl: httpUrl("https://team.example.org", { httpsOnly: true }).describe("Public HTTPS URL of the site (the provider's TLS proxy in front of the floating IP)."),
    images: z.strictObject({
      haproxy: imageRef,
      api: imageRef,
      web: imageRef,
    }),
    /** Registry credentials for private images: the password is the Terraform variable registry_password. */
    registry: z
      .strictObject({
        server: host,
        // `$` is allowed: Harbor robot accounts are named robot$<name>; braces are not.
        username: z.string().regex(/^[A-Za-z0-9._@+$-]{1,255}$/, "a registry user name of letters, digits and . _ @ + $ - (at most 255 characters)"),
      })
      .optional().describe("Registry credentials for private images: the password is the Terraform variable registry_password."),
    web: service(jobsDefaults.web).default(withResources(jobsDefaults.web)),
    api: service(jobsDefaults.api)
      .extend({
        /** gunicorn worker processes per instance (each loads the whole app: memory grows with it). */
        workers: z.number().int().min(1).max(16).default(2).describe("gunicorn worker processes per instance (each loads the whole app: memory grows with it)."),
        /** Threads per gunicorn worker (gthread): requests served at once per worker; a slow upload holds one. */
        threads: z.number().int().min(1).max(64).default(12).describe("Threads per gunicorn worker (gthread): requests served at once per worker; a slow upload holds one."),
      })
      .default({ ...withResources(jobsDefaults.api), workers: 2, threads: 12 }),
    worker: service(jobsDefaults.worker)
      .extend({
        /** Celery worker concurrency (processes per instance). */
        concurrency: z.number().int().min(1).max(64, "at most 64 processes").default(2).describe("Celery worker concurrency (processes per instance)."),
        /** How long a stopping worker may finish its running tasks (Nomad kill_timeout). */
        killTimeout: boundedDuration("1s", "1h").default("120s").describe("How long a stopping worker may finish its running tasks (Nomad kill_timeout)."),
      })
      .default({ ...withResources(jobsDefaults.worker), concurrency: 2, killTimeout: "120s" }),
    haproxy: z
      .strictObject({
        resources: resources.default({ cpu: jobsDefaults.haproxy.cpu, memory: jobsDefaults.haproxy.memory }),
        /** Port of the per-VM tunnel (https://<vm>.<domain>/ → overlay address). */
        nodePort: jobPort.default(8080).describe("Port of the per-VM tunnel (https://<vm>.<domain>/ → overlay address)."),
        /** Port of the floating-IP tunnel (https://<team>.<domain>/ → floating IP). */
        floatingPort: jobPort.default(8081).describe("Port of the floating-IP tunnel (https://<team>.<domain>/ → floating IP)."),
        /** Health and stats port, bound to the overlay address only. */
        statsPort: jobPort.default(8404).describe("Health and stats port, bound to the overlay address only."),
      })
      .default({ resources: { cpu: jobsDefaults.haproxy.cpu, memory: jobsDefaults.haproxy.memory }, nodePort: 8080, floatingPort: 8081, statsPort: 8404 }),
    s3: z.strictObject({
      endpoint: httpUrl("https://s3.example.org"),
      bucket: s3Bucket,
      region: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, "an S3 region such as us-east-1 (lowercase letters, digits, '-')").default("us-east-1"),
      // The key pair is secret: Terraform variables s3_access_key_id / s3_secret_access_key.
    }),
    broker: z.strictObject({
      host,
      port: port.default(5672),
      vhost: z.string().regex(/^[A-Za-z0-9_.\/-]{1,255}$/, "a RabbitMQ vhost of letters, digits and _ . / - (at most 255 characters)"),
      user: z.string().regex(/^[A-Za-z0-9_.@-]{1,255}$/, "a RabbitMQ user name of letters, digits and _ . @ - (at most 255 characters)"),
    }),
  }),
  metrics: metricsSchema,
});

function agentVersion(product: "consul" | "nomad") {
  const min = MINIMUM_VERSIONS[product];
  return z
    .string()
    // Canonical numbers only: the install's version floor compares them in bash arithmetic,
    // where a leading zero makes a number octal (09 is an error, 010 is 8).
    .regex(CANONICAL_VERSION_RE, `a ${product} version such as ${min} (major.minor.patch, numbers without leading zeros)`)
    .superRefine((v, ctx) => {
      if (CANONICAL_VERSION_RE.test(v) && compareVersions(v, min) < 0) {
        ctx.addIssue({ code: "custom", message: `${product} ${min} or newer (the oldest the output is checked against)` });
      }
    })
    .describe(`${product} version on the VMs (at least ${min}).`);
}

function withResources(d: { count: number; cpu: number; memory: number }) {
  return { count: d.count, resources: { cpu: d.cpu, memory: d.memory } };
}

/** The description as written (before defaults). */
export type ClusterInput = z.input<typeof clusterSchema>;
/** The description with every default applied: what renderers and constructs consume. */
export type Cluster = z.output<typeof clusterSchema>;
export type ClusterNode = Cluster["nodes"][number];
