/**
 * The trust model (issue 20): what a cluster without ACLs gives away is said once at synth
 * time and in docs/trust-model.md, no document claims a protection the provider's setup
 * removes, and the agents expose no more than they must: `disable_update_check` in both
 * agents, `disable_remote_exec` in the Nomad client, recursors only where the link needs
 * them. Rendered configs are read back with HashiCorp's HCL parser and, where it has been
 * built (.engines/bin/consul, Consul 1.14.11), accepted by the real `consul validate`.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { withoutAclsWarning, TRUST_MODEL_DOC } from "../constructs/description/exposure";
import { loadDescriptionFile } from "../constructs/description/load";
import type { Cluster } from "../constructs/description/schema";
import { renderConsulConfig, renderNomadConfig } from "../constructs/render/agents";
import { consulSecretsPrefix } from "../constructs/render/jobs/common";
import { HAPROXY_CONFIG_ITEM } from "../constructs/render/jobs/haproxy";
import { edited, itIf, parseHcl, REPO_ROOT } from "./helpers/synth";

const YEARS = ["2022", "2023", "2024", "2025"] as const;
const load = (file: string): Cluster => {
  const r = loadDescriptionFile(path.join(REPO_ROOT, "clusters", file));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.cluster;
};
const year = (y: (typeof YEARS)[number]) => load(`provider-${y}.yaml`);
const doc = fs.readFileSync(path.join(REPO_ROOT, TRUST_MODEL_DOC), "utf8");
const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");

describe("the synth warning without ACLs (constructs/description/exposure.ts)", () => {
  it("2022 (Nomad 1.2: secrets in Consul KV): names the KV secrets, HAProxy's config there, jobs and the catalog; one line", () => {
    const w = withoutAclsWarning(year("2022"))!;
    expect(w.split("\n")).toEqual([expect.any(String), ""]);
    expect(w).toContain("consul.acl and nomad.acl off");
    expect(w).toContain("read the jobs' secrets (S3 keys, the broker URL with its password and Grafana's admin password) in Consul KV nomad-secrets/");
    expect(w).toContain("rewrite HAProxy's config there");
    expect(w).toContain("run jobs on your nodes");
    expect(w).toContain("register services that HAProxy sends your traffic to");
    expect(w).toContain(`See ${TRUST_MODEL_DOC}.`);
  });

  it.each(["2023", "2024", "2025"] as const)("%s (Nomad Variables): names the Variables' secrets, never a KV config", (y) => {
    const w = withoutAclsWarning(year(y))!;
    expect(w).toContain("in Nomad Variables");
    expect(w).not.toContain("Consul KV");
    expect(w).not.toContain("HAProxy's config");
  });

  it("names only the secrets the description has (registry password with app.registry; no Grafana without metrics)", () => {
    const c = edited(year("2025"), (x) => {
      x.app.registry = { server: "ghcr.io", username: "team" };
      x.metrics.enabled = false;
    });
    expect(withoutAclsWarning(c)).toContain("(S3 keys, the broker URL with its password and the registry password)");
  });

  it("with both ACLs on: no warning; with one on, only what stays open", () => {
    expect(withoutAclsWarning(edited(year("2025"), (x) => ((x.consul.acl = true), (x.nomad.acl = true))))).toBeUndefined();
    expect(withoutAclsWarning(edited(year("2022"), (x) => ((x.consul.acl = true), (x.nomad.acl = true))))).toBeUndefined();
    // Nomad ACLs on 2025: the Variables are closed; Consul's catalog is not
    const consulOpen = withoutAclsWarning(edited(year("2025"), (x) => (x.nomad.acl = true)))!;
    expect(consulOpen).toContain("(consul.acl off");
    expect(consulOpen).not.toContain("secrets");
    expect(consulOpen).not.toContain("run jobs");
    expect(consulOpen).toContain("register services");
    // Nomad ACLs on 2022: the secrets are in Consul KV, still open
    expect(withoutAclsWarning(edited(year("2022"), (x) => (x.nomad.acl = true)))).toContain("in Consul KV nomad-secrets/");
    // Consul ACLs on 2025: the Variables and jobs stay open
    const nomadOpen = withoutAclsWarning(edited(year("2025"), (x) => (x.consul.acl = true)))!;
    expect(nomadOpen).toContain("(nomad.acl off");
    expect(nomadOpen).toContain("in Nomad Variables");
    expect(nomadOpen).not.toContain("register services");
  });
});

describe("docs/trust-model.md", () => {
  it("is linked from the README's Security section", () => {
    const security = readme.slice(readme.indexOf("\n## Security"));
    expect(security).toContain("(docs/trust-model.md)");
  });

  it("covers every provider year and gives the neighbour's exact commands for what our output puts in their reach", () => {
    expect(doc).toContain(`| | ${YEARS.join(" | ")} |`);
    // the 2022 KV write of HAProxy's config, at the key our jobs stack writes
    expect(doc).toContain(`consul kv put -http-addr=https://consul-<team>.<domain> ${consulSecretsPrefix("haproxy")}${HAPROXY_CONFIG_ITEM} @their.cfg`);
    expect(doc).toContain(`consul kv get -http-addr=https://consul-<team>.<domain> -recurse ${consulSecretsPrefix("api").split("/")[0]}/`);
    expect(doc).toContain("nomad var get -address=https://nomad-<team>.<domain> nomad/jobs/api");
    expect(doc).toContain("nomad job run -address=https://nomad-<team>.<domain>");
    expect(doc).toContain("consul services register -http-addr=");
    // what the team can do: scoped credentials, the KV index, ACLs where it controls the servers
    for (const s of ["bucket-only", "vhost", "ModifyIndex", "consul watch", "`consul.acl`, `nomad.acl`", "read-only pull token"]) expect({ s, found: doc.includes(s) }).toEqual({ s, found: true });
    expect(doc).toMatch(/defence in depth, not a closure/);
  });

  it("its neighbour job (host networking, reaching our loopback) is a valid jobspec for HashiCorp's parser", async () => {
    const block = /```hcl\n([\s\S]*?)```/.exec(doc);
    expect(block).not.toBeNull();
    const job = await parseHcl("probe.nomad.hcl", block![1]);
    const task = job.job.probe[0].group.probe[0].task.probe[0];
    expect(task.driver).toBe("docker");
    expect(task.config[0].network_mode).toBe("host");
    expect(task.config[0].args.join(" ")).toContain("http://127.0.0.1:8500/");
  });

  it("no document claims a protection the provider's setup removes", () => {
    const docs = ["README.md", ...fs.readdirSync(path.join(REPO_ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
    const offending: string[] = [];
    for (const f of docs) {
      const text = fs.readFileSync(path.join(REPO_ROOT, f), "utf8").replace(/\n\s*/g, " ");
      // "a Variable is readable only by its job" is true only with Nomad ACLs: every such sentence must say so
      for (const sentence of text.split(/(?<=[.;:])\s/)) {
        if (/readable only by/i.test(sentence) && !/ACL/.test(sentence)) offending.push(`${f}: ${sentence.trim()}`);
        if (/which only the nodes reach|only the nodes reach/i.test(sentence)) offending.push(`${f}: ${sentence.trim()}`);
      }
    }
    expect(offending).toEqual([]);
  });
});

describe("agents expose no more than they must (rendered configs, HashiCorp's HCL parser)", () => {
  it.each(YEARS)("%s: no update check in either agent, no remote exec in the Nomad client; recursors with their comment only where the link sends host lookups", async (y) => {
    const c = year(y);
    for (const n of c.nodes) {
      const consulText = renderConsulConfig(c, n);
      const consul = await parseHcl("consul.hcl", consulText);
      expect(consul.disable_update_check).toBe(true);
      const nomad = await parseHcl("nomad.hcl", renderNomadConfig(c, n));
      expect(nomad.disable_update_check).toBe(true);
      expect(nomad.client[0].disable_remote_exec).toBe(true);
      if (c.overlay.linkDns === "agent") {
        expect(consul.recursors).toEqual(c.consul.recursors);
        expect(consulText).toContain("anyone on the overlay may use it as a resolver");
      } else {
        expect(consul).not.toHaveProperty("recursors");
        expect(consulText).not.toContain("as a resolver");
      }
    }
  });

  const consulBin = path.join(REPO_ROOT, ".engines", "bin", "consul");
  itIf(fs.existsSync(consulBin), `the real Consul is not built yet (${consulBin}; the lead's real-Consul lab builds it)`)(
    "the real `consul validate` accepts every year's rendered client config",
    () => {
      for (const y of YEARS) {
        const c = year(y);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), `consul-validate-${y}-`));
        try {
          fs.writeFileSync(path.join(dir, "consul.hcl"), renderConsulConfig(c, c.nodes[0]));
          const r = spawnSync(consulBin, ["validate", dir], { encoding: "utf8", env: { ...process.env, CHECKPOINT_DISABLE: "1" } });
          expect({ y, status: r.status, out: `${r.stdout}${r.stderr}` }).toMatchObject({ y, status: 0 });
          // the check can fail: the same file with the key misspelt is refused
          fs.writeFileSync(path.join(dir, "consul.hcl"), renderConsulConfig(c, c.nodes[0]).replace("disable_update_check", "disable_update_chek"));
          const bad = spawnSync(consulBin, ["validate", dir], { encoding: "utf8", env: { ...process.env, CHECKPOINT_DISABLE: "1" } });
          expect({ y, status: bad.status, out: `${bad.stdout}${bad.stderr}` }).toMatchObject({ y, out: expect.stringContaining("disable_update_chek") });
          expect(bad.status).not.toBe(0);
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }
    },
  );
});
