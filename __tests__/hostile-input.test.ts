/**
 * Hostile input, field by field: a Terraform interpolation, a Terraform directive and shell
 * payloads are planted in EVERY free-text field of the description (enumerated from the
 * JSON Schema, so a new field is covered without editing this file). For each, the
 * description is either refused with that field's path, or synthesized, and then nothing
 * evaluates:
 * - every string of cdk.tf.json that carries the payload goes through the real engine
 *   (Terraform or OpenTofu, helpers/engine.ts: `apply` of a config made of outputs with the exact JSON strings; no
 *   provider needed) and comes back verbatim;
 * - every jobspec carrying it parses with HashiCorp's HCL parser and keeps the payload in
 *   an escaped (literal) template sequence;
 * - every script carrying it passes `bash -n` and is executed unprivileged with stub
 *   commands: the payload's `touch` never runs.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse, stringify } from "yaml";
import { clusterJsonSchema } from "../constructs/description/json-schema";
import { loadDescriptionText } from "../constructs/description/load";
import { commentText, fromTerraformLiteral, hcl2String, terraformLiteral } from "../constructs/escape";
import { findEngine } from "./helpers/engine";
import { cleanup, exampleText, itIf, parseHcl, synthCluster } from "./helpers/synth";

/** Terraform, or OpenTofu from `npm run engines` (helpers/engine.ts). */
const ENGINE = findEngine();

type Raw = any;
type PathKey = string | number | { key: true };

/** A leaf of the schema that holds text: its path, with record keys marked. */
interface TextField {
  path: PathKey[];
  /** The union branch the field belongs to (set as a whole before planting). */
  branch?: { at: (string | number)[]; value: Raw };
}

/** Every string-typed leaf of the JSON Schema (properties, array items, record keys and values, union branches). */
export function textFields(schema: Raw): TextField[] {
  const out: TextField[] = [];
  const walk = (s: Raw, at: PathKey[], branch?: TextField["branch"]) => {
    if (!s || typeof s !== "object") return;
    if (s.anyOf) {
      s.anyOf.forEach((alt: Raw) => {
        // a branch object is planted whole: its other required keys get a valid value
        const base = alt.type === "object" ? branchSkeleton(alt) : undefined;
        walk(alt, at, base ? { at: at as (string | number)[], value: base } : branch);
      });
      return;
    }
    if (s.type === "string") out.push({ path: at, branch });
    if (s.type === "array" && s.items) walk(s.items, [...at, 0], branch);
    if (s.type === "object") {
      for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, [...at, k], branch);
      if (s.propertyNames) out.push({ path: [...at, { key: true }], branch });
      if (s.additionalProperties && typeof s.additionalProperties === "object") walk(s.additionalProperties, [...at, "planted-key"], branch);
    }
  };
  walk(schema, []);
  return out;
}

/** A valid value for each required key of a union branch (only the shapes our schema has). */
function branchSkeleton(alt: Raw): Raw {
  const o: Raw = {};
  // defaults too: the escaping test plants into an already-defaulted description
  for (const [k, p] of Object.entries<Raw>(alt.properties ?? {})) if (p.default !== undefined) o[k] = p.default;
  for (const k of alt.required ?? []) {
    const p = alt.properties[k];
    if (p.const !== undefined) o[k] = p.const;
    else if (p.type === "object") o[k] = branchSkeleton(p);
    else if (k === "file") o[k] = "~/.ssh/id_ed25519";
    else if (k === "address") o[k] = "consul.example.org:8501";
    else if (k === "path") o[k] = "terraform/team-example";
  }
  return o;
}

/** The example with every optional section present, so that every field exists somewhere. */
function fullDescription(): Raw {
  const d = parse(exampleText());
  const tls = { caFile: "/etc/pki/ca.pem", certFile: "/etc/pki/cert.pem", keyFile: "/etc/pki/key.pem" };
  d.bastion.hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
  d.nodes[0].hostKey = d.bastion.hostKey;
  d.nodes[0].nodeClass = "web";
  d.nodes[0].meta = { rack: "r1" };
  d.consul = { gossipEncryption: true, acl: true, tls, extraConfig: 'log_level = "INFO"\n' };
  d.nomad = { acl: true, tls, extraConfig: 'log_level = "INFO"\n' };
  // The Nomad Autoscaler cannot reach a TLS Nomad yet (rules.ts): off with nomad.tls.
  d.metrics = {
    autoscaling: { enabled: false },
    alerting: { webhook: {}, email: { to: ["ops@example.org"], from: "alerts@example.org", smarthost: "smtp.example.org", username: "alerts" } },
  };
  d.app.registry = { server: "ghcr.io", username: "team" };
  return d;
}

function setIn(d: Raw, field: TextField, payload: string): { yamlPath: (string | number)[] } {
  if (field.branch) setPath(d, field.branch.at, structuredClone(field.branch.value));
  const keyAt = field.path.findIndex((p) => typeof p === "object");
  if (keyAt >= 0) {
    const parentPath = field.path.slice(0, keyAt) as (string | number)[];
    const parent = getOrCreate(d, parentPath);
    parent[payload] = "x";
    return { yamlPath: [...parentPath, payload] };
  }
  setPath(d, field.path as (string | number)[], payload);
  return { yamlPath: field.path as (string | number)[] };
}

function getOrCreate(d: Raw, p: (string | number)[]): Raw {
  let cur = d;
  for (const k of p) {
    if (cur[k] === undefined || cur[k] === null || typeof cur[k] !== "object") cur[k] = {};
    cur = cur[k];
  }
  return cur;
}

function setPath(d: Raw, p: (string | number)[], value: Raw): void {
  const parent = getOrCreate(d, p.slice(0, -1));
  parent[p[p.length - 1]] = value;
}

const formatPath = (p: (string | number)[]) => p.map((k, i) => (typeof k === "number" ? `[${k}]` : i === 0 ? k : `.${k}`)).join("");

const SANDBOX = fs.mkdtempSync(path.join(os.tmpdir(), "hostile-"));
fs.chmodSync(SANDBOX, 0o1777);
afterAll(() => fs.rmSync(SANDBOX, { recursive: true, force: true }));
const PWNED = path.join(SANDBOX, "pwned");

/** Payloads: each must reach its target as plain text, or be refused. */
const MARK = "PLNT";
const PAYLOADS: { name: string; text: string }[] = [
  { name: "Terraform interpolation (secret exfiltration)", text: `${MARK}\${nonsensitive(var.s3_secret_access_key)}` },
  { name: "Terraform interpolation (operator's key)", text: `${MARK}\${file("~/.ssh/id_ed25519")}` },
  { name: "Terraform directive", text: `${MARK}%{ if true }x%{ endif }` },
  { name: "shell command substitution", text: `${MARK}$(touch ${PWNED})` },
  { name: "shell quote break-out", text: `${MARK}'; touch ${PWNED}; '` },
  { name: "newline", text: `${MARK}\ntouch ${PWNED}` },
  { name: "HCL quote break-out", text: `${MARK}" bind_addr = "0.0.0.0` },
];
/** Everything at once, for the escaping layer (with and without `${`, which HCL1 refuses outright). */
const COMBINED = [
  `${MARK}\${nonsensitive(var.s3_secret_access_key)}%{ if true }x%{ endif }$(touch ${PWNED})'; touch ${PWNED}; '"\\\ntouch ${PWNED}\n`,
  `${MARK}%{ if true }x%{ endif }$(touch ${PWNED})\`touch ${PWNED}\`'; touch ${PWNED}; '" x = "`,
];

const fields = textFields(JSON.parse(clusterJsonSchema()));

/**
 * Strings of a synthesized stack that carry `needle`: values, and keys where Terraform
 * reads them as templates (object keys inside attribute values). Names of resources,
 * outputs and variables, and depends_on references, are identifiers, never templates
 * (Terraform refuses an invalid one); cdktf's "//" comments are ignored by Terraform.
 */
function stringsWith(value: Raw, needle: string, out: string[] = [], at: string[] = []): string[] {
  if (typeof value === "string") {
    if (value.includes(needle)) out.push(value);
  } else if (Array.isArray(value)) value.forEach((v) => stringsWith(v, needle, out, [...at, "[]"]));
  else if (value && typeof value === "object") {
    const names = (at.length === 2 && (at[0] === "resource" || at[0] === "data")) || (at.length === 1 && ["output", "variable", "provider", "locals"].includes(at[0]));
    for (const [k, v] of Object.entries(value)) {
      // depends_on holds references (traversals), not templates: an invalid name is refused.
      if (k === "//" || k === "depends_on") continue;
      if (k.includes(needle) && !names) out.push(k);
      stringsWith(v, needle, out, [...at, k]);
    }
  }
  return out;
}

/**
 * Puts each JSON string through the real Terraform engine as an output value and returns
 * what Terraform made of it. No provider is involved, so `init` needs no network.
 */
function terraformEvaluates(strings: string[]): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tf-literal-"));
  try {
    // Our own expressions around description text: the variables they read get a value,
    // and file(...) of the key path, filebase64(...) of a rendered file, are evaluated up to
    // the path (the file does not exist here).
    const values = strings.map((s) => s.split("${file(pathexpand(").join("${(pathexpand(").split("${filebase64(").join("${("));
    const vars = new Set(values.flatMap((s) => [...s.matchAll(/\bvar\.([a-z0-9_]+)/g)].map((m) => m[1])));
    const variable = Object.fromEntries([...vars].map((v) => [v, { type: "string", default: `VAR_${v}` }]));
    const outputs = Object.fromEntries(values.map((s, i) => [`s${i}`, { value: s }]));
    fs.writeFileSync(path.join(dir, "main.tf.json"), JSON.stringify({ ...(vars.size ? { variable } : {}), output: outputs }));
    const env = { ...process.env, TF_IN_AUTOMATION: "1", CHECKPOINT_DISABLE: "1", TF_CLI_ARGS: "-no-color" };
    for (const args of [["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]]) {
      // (apply prints every output: more than spawnSync's default 1 MiB buffer)
      const r = spawnSync(ENGINE!.path, args, { cwd: dir, env, encoding: "utf8", maxBuffer: 512 * 1024 * 1024 });
      if (r.status !== 0) {
        // Name the offending strings (short), not the whole config.
        const bad = [...new Set([...r.stderr.matchAll(/in output\.s(\d+)/g)].map((m) => Number(m[1])))];
        const errors = r.stderr.split("\n").filter((l) => /Error:|^\s*│?\s*\S.*(function|argument|reference|variable)/i.test(l)).slice(0, 10).join("\n");
        throw new Error(`terraform ${args[0]} failed:\n${errors}\n${bad.map((i) => `s${i}: ${JSON.stringify(strings[i]).slice(0, 300)}`).join("\n")}`);
      }
    }
    const r = spawnSync(ENGINE!.path, ["output", "-json"], { cwd: dir, env, encoding: "utf8", maxBuffer: 512 * 1024 * 1024 });
    const out = JSON.parse(r.stdout);
    return strings.map((_, i) => out[`s${i}`].value);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Stub commands for an unprivileged run of a provisioning script: each logs and succeeds. */
function stubBin(): string {
  const bin = fs.mkdtempSync(path.join(SANDBOX, "bin-"));
  fs.chmodSync(bin, 0o755);
  for (const cmd of ["ip", "consul", "nomad", "systemctl", "keepalived", "sysctl", "useradd", "getent", "install", "chown", "curl", "haproxy"]) {
    fs.writeFileSync(path.join(bin, cmd), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  }
  for (const cmd of ["bash", "sh", "awk", "sed", "head", "tr", "cat", "cmp", "cp", "mv", "rm", "mkdir", "mktemp", "dirname", "basename", "stat", "touch", "sleep", "sha256sum", "grep", "printf", "id"]) {
    const real = ["/usr/bin", "/bin"].map((d) => path.join(d, cmd)).find((p) => fs.existsSync(p));
    if (real) fs.symlinkSync(real, path.join(bin, cmd));
  }
  return bin;
}

const isRoot = process.getuid?.() === 0;

/** Runs a script with stub agents, as an unprivileged user (nobody when we are root). */
function runUnprivileged(script: string, args: string[] = []): void {
  const dir = fs.mkdtempSync(path.join(SANDBOX, "run-"));
  fs.chmodSync(dir, 0o777);
  const file = path.join(dir, "script.sh");
  fs.writeFileSync(file, script, { mode: 0o755 });
  const env = { PATH: stubBin(), HOME: dir, JOIN_TIMEOUT_SECONDS: "0" };
  const bash = ["/usr/bin/bash", "/bin/bash"].find((p) => fs.existsSync(p))!;
  const cmd = isRoot ? ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", bash, file, ...args] : [bash, file, ...args];
  const r = spawnSync(cmd[0], cmd.slice(1), { cwd: dir, env, encoding: "utf8", timeout: 20000 });
  if (r.error) throw r.error;
}

/**
 * Checks one synth output for a planted payload: scripts parse and do not run it, jobspecs
 * keep it literal; JSON strings carrying it are collected for the real engine.
 */
async function checkOutput(out: ReturnType<typeof synthCluster>, payload: string, tfStrings: Map<string, string>): Promise<void> {
  for (const [stack, json] of Object.entries(out.stacks)) {
    for (const s of stringsWith(json, MARK)) tfStrings.set(s, payload);
    for (const [file, text] of Object.entries(out.files[stack])) {
      if (!text.includes(MARK)) continue;
      if (file.endsWith(".sh")) {
        const syntax = spawnSync("bash", ["-n"], { input: text, encoding: "utf8" });
        if (syntax.status !== 0) throw new Error(`${file} does not parse with the payload ${JSON.stringify(payload)}: ${syntax.stderr}`);
        runUnprivileged(text, ["node-1", "172.16.1.11", "5m"]);
        if (fs.existsSync(PWNED)) throw new Error(`${file} ran the payload ${JSON.stringify(payload)}`);
      }
      if (file.endsWith(".nomad.hcl")) {
        const parsed = JSON.stringify(await parseHcl(file, text));
        // HashiCorp's parser hands templates back in source form: the payload's markers
        // must be there escaped ($${, %%{), i.e. literal text.
        expect(parsed).not.toMatch(/PLNT[^"]*(?<!\$)\$\{nonsensitive/);
        expect(parsed).not.toMatch(/PLNT[^"]*(?<!%)%\{ if/);
      }
    }
  }
}

/** The real engine: each carrying JSON string evaluates to itself minus the escapes, payload verbatim. */
function expectTerraformLiterals(tfStrings: Map<string, string>): void {
  const strings = [...tfStrings.keys()];
  const evaluated = terraformEvaluates(strings);
  strings.forEach((s, i) => {
    const payload = tfStrings.get(s)!;
    const ownExpression = /\$\{/.test(s.replace(/\$\$\{/g, ""));
    // Plain description text: Terraform hands the provider exactly the text, minus our escapes.
    if (!ownExpression) expect({ json: s, evaluated: evaluated[i] }).toEqual({ json: s, evaluated: fromTerraformLiteral(s) });
    // The payload comes out verbatim, or in its target's own quoting: URL-encoded in the
    // broker URL, an HCL2 string in a jobspec (whose parse is checked above)
    // (in a jobspec also an HCL2 heredoc, whose template escapes are the same doubled markers,
    // or a comment, whose control characters commentText shows as \uNNNN)
    const forms = [payload, encodeURIComponent(payload), hcl2String(payload).slice(1, -1), terraformLiteral(payload), commentText(payload)];
    const verbatim = forms.some((form) => evaluated[i].includes(form));
    expect({ json: s.slice(0, 200), verbatim }).toEqual({ json: s.slice(0, 200), verbatim: true });
  });
}

const fieldName = (f: TextField) => formatPath(f.path.map((k) => (typeof k === "object" ? "<key>" : k)));

describe("hostile input in every free-text field", () => {
  it("enumerates the free-text fields from the schema (a new field is covered automatically)", () => {
    const names = fields.map(fieldName);
    // a few the issue names, to show the walk reaches unions, arrays and records
    for (const n of ["nomad.tls.caFile", "app.broker.user", "app.s3.region", "bastion.user", "ssh.privateKey.file", "nodes[0].meta.<key>", "nodes[0].meta.planted-key", "state.consul.path", "consul.extraConfig"]) {
      expect(names).toContain(n);
    }
    expect(fields.length).toBeGreaterThan(40);
  });

  it("the script sandbox does notice a payload that runs (the checks below can fail)", () => {
    runUnprivileged(`#!/usr/bin/env bash\nreadonly X=${PAYLOADS[3].text}\n`);
    expect(fs.existsSync(PWNED)).toBe(true);
    fs.rmSync(PWNED);
  });

  itIf(ENGINE !== undefined, "needs terraform on PATH or OpenTofu from `npm run engines`")(
    "types: each payload in each field is refused naming that field and its line, or reaches every target as plain text",
    async () => {
      const accepted: string[] = [];
      const tfStrings = new Map<string, string>();
      for (const field of fields) {
        for (const { text: payload } of PAYLOADS) {
          const d = fullDescription();
          const { yamlPath } = setIn(d, field, payload);
          const r = loadDescriptionText(stringify(d));
          if (!r.ok) {
            const at = formatPath(yamlPath);
            const hit = r.problems.find((p) => p.path === at || at.startsWith(`${p.path}.`) || at.startsWith(`${p.path}[`));
            if (!hit) throw new Error(`${fieldName(field)}: refused, but no problem names ${at}:\n${r.problems.map((p) => `${p.path}: ${p.message}`).join("\n")}`);
            expect(hit.line).toBeGreaterThan(0);
            continue;
          }
          accepted.push(`${fieldName(field)}: ${JSON.stringify(payload)}`);
          const out = synthCluster(r.cluster);
          try {
            await checkOutput(out, payload, tfStrings);
          } finally {
            cleanup(out);
          }
        }
      }
      if (tfStrings.size > 0) expectTerraformLiterals(tfStrings);
      // eslint-disable-next-line no-console
      console.log(`${fields.length} fields x ${PAYLOADS.length} payloads; accepted and proven inert: ${accepted.length ? `\n${accepted.join("\n")}` : "none"}`);
    },
    600_000,
  );

  itIf(ENGINE !== undefined, "needs terraform on PATH or OpenTofu from `npm run engines`")(
    "escaping by construction: with the types bypassed, a payload in any field synthesizes inert (or is refused by the escaping helper)",
    async () => {
      const tfStrings = new Map<string, string>();
      const refused: string[] = [];
      const base = loadDescriptionText(stringify(fullDescription()));
      if (!base.ok) throw new Error(JSON.stringify(base.problems));
      for (const field of fields) {
        for (const payload of COMBINED) {
          const cluster = structuredClone(base.cluster) as Raw;
          setIn(cluster, field, payload);
          let out: ReturnType<typeof synthCluster>;
          try {
            out = synthCluster(cluster);
          } catch (e) {
            // Refusing to synthesize is safe (nothing reaches Terraform or a node): our
            // escaping helpers refuse what a target cannot carry (HCL1 and `${`), and
            // structural fields (names, addresses, URLs) stop cdktf or a parser.
            refused.push(`${fieldName(field)}: ${String(e).split("\n")[0].slice(0, 100)}`);
            continue;
          }
          try {
            await checkOutput(out, payload, tfStrings);
          } catch (e) {
            throw new Error(`${fieldName(field)}: ${String(e)}`);
          } finally {
            cleanup(out);
          }
        }
      }
      // The free-text fields the issue's attacks went through do synthesize, and are inert.
      // (our HCL1 helper refusing `${` for an agent config is the designed outcome)
      const refusedFields = new Set(refused.filter((r) => !/HCL1 agent config/.test(r)).map((r) => r.split(":")[0]));
      for (const f of ["app.broker.user", "app.broker.vhost", "app.s3.region", "app.s3.bucket", "bastion.user", "ssh.user", "app.registry.username", "nodes[0].meta.<key>", "nodes[0].meta.planted-key", "nodes[0].hostKey", "bastion.hostKey", "ssh.privateKey.file", "state.consul.path", "consul.extraConfig", "nomad.extraConfig", "app.publicUrl", "servers.nomadHttpAddress"]) {
        expect([f, refusedFields.has(f) ? refused.filter((r) => r.startsWith(`${f}:`)) : []]).toEqual([f, []]);
      }
      expect(tfStrings.size).toBeGreaterThan(0);
      expectTerraformLiterals(tfStrings);
      // eslint-disable-next-line no-console
      console.log(`${tfStrings.size} Terraform strings proven literal; synthesis refused (nothing written):\n${refused.join("\n")}`);
    },
    900_000,
  );
});
