/**
 * System test: the Nomad < 1.4 secrets path (2022: Nomad 1.2.6 has no Variables) against the
 * real Consul KV. The jobs stack writes each job's items with Terraform's consul_keys (the
 * Consul provider PUTs /v1/kv/<path> with the value as the body); the jobspecs read them
 * with consul-template's `key` function. This proves, on clusters/provider-2022.yaml as
 * shipped: every path a jobspec reads is a path the stack writes (and none is written that
 * nothing reads), and each of those paths, written through the real KV API with values
 * shaped like the real ones (a multi-line haproxy.cfg, a URL with an encoded password),
 * reads back byte for byte, as consul-template's `key` reads it (GET ?raw).
 *
 * A real Consul 1.14.11 server alone in a namespace, on its loopback.
 */
import * as path from "path";
import { REPO_ROOT, cleanup, itIf, synthCluster } from "../helpers/synth";
import { loadDescriptionFile } from "../../constructs/description/load";
import { jobsStackName } from "../../constructs/jobs-stack";
import { Sandbox, systemTestPrerequisites } from "./sandbox";
import { CONSUL_MISSING, haveConsul, startProviderServer, type ConsulAgent } from "./consul";

const system = systemTestPrerequisites(["ip", "curl"]);
const pre = !system.ok || haveConsul() ? system : { ok: false, reason: CONSUL_MISSING };

jest.setTimeout(120000);

describe("2022 secrets in the real Consul KV (Nomad 1.2 path)", () => {
  let sb: Sandbox | undefined;
  afterAll(() => {
    if (!sb) return;
    sb.cleanup();
    expect(sb.leftoverNamespaces()).toEqual([]);
  });

  itIf(pre.ok, pre.reason)("what consul_keys writes is exactly what the jobspecs' key templates read, and it round-trips through the real KV", async () => {
    const loaded = loadDescriptionFile(path.join(REPO_ROOT, "clusters", "provider-2022.yaml"));
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    const out = synthCluster(loaded.cluster);
    const stack = out.stacks[jobsStackName(loaded.cluster)];
    const written: string[] = Object.values(stack.resource?.consul_keys ?? {}).flatMap((r: any) => r.key.map((k: any) => k.path as string));
    const read = new Set<string>();
    for (const [file, text] of Object.entries(out.files[jobsStackName(loaded.cluster)])) {
      if (!file.endsWith(".hcl")) continue;
      for (const m of text.matchAll(/\{\{ key "([^"]+)"/g)) read.add(m[1]);
    }
    cleanup(out);
    expect(written.length).toBeGreaterThan(0);
    expect([...read].sort()).toEqual([...new Set(written)].sort());

    const s = (sb = new Sandbox("kv"));
    const ns = s.netns("kv");
    const server: ConsulAgent = await startProviderServer(s, ns, "2022", "127.0.0.1");
    const sample = (p: string) =>
      p.endsWith("haproxy_cfg") ? "global\n  master-worker\nfrontend www\n  bind :8080\n  # a \"quoted\" comment, a $ and a {{ brace }}\n" : `amqp://team:p%40ss%2Fw0rd@broker:5672/team?x=${p}`;
    for (const p of written) {
      const put = s.inNs(ns, ["curl", "-fsS", "--max-time", "5", "-X", "PUT", "--data-binary", "@-", `${server.http}/v1/kv/${p}`], { input: sample(p) });
      expect({ p, status: put.status, body: put.stdout.trim() }).toEqual({ p, status: 0, body: "true" });
      const get = s.inNs(ns, ["curl", "-fsS", "--max-time", "5", `${server.http}/v1/kv/${p}?raw`]);
      expect({ p, value: get.stdout }).toEqual({ p, value: sample(p) });
    }
  });
});
