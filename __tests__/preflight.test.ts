/**
 * `npm run preflight` without a lab (the lab test is __tests__/system/preflight.test.ts):
 * the host-key algorithm order it offers is the one in the source of golang.org/x/crypto/ssh
 * as the engines pin it (OpenTofu: engines/opentofu/go.sum; Terraform: the version its
 * binary was built with, `go version -m`), read from the Go module cache; and the judging
 * of the facts a node reports, for what the lab cannot show (link DNS routing, interface
 * addressing).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { edited, exampleCluster, hasCommand, itIf, REPO_ROOT } from "./helpers/synth";
import { GO_HOST_KEY_ALGORITHMS, judge, parseFacts } from "../scripts/preflight";

const goModCache = (): string | undefined => {
  if (!hasCommand("go")) return undefined;
  const r = spawnSync("go", ["env", "GOMODCACHE"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
};

/** supportedHostKeyAlgos of x/crypto/ssh at `version`, certificate types left out; undefined when not in the cache. */
function goHostKeyOrder(version: string): string[] | undefined {
  const cache = goModCache();
  const dir = cache && path.join(cache, "golang.org", "x", `crypto@${version}`, "ssh");
  if (!dir || !fs.existsSync(dir)) return undefined;
  const src = fs.readdirSync(dir).filter((f) => f.endsWith(".go") && !f.endsWith("_test.go")).map((f) => fs.readFileSync(path.join(dir, f), "utf8")).join("\n");
  const consts = Object.fromEntries([...src.matchAll(/^\s*(\w+)\s*=\s*"([^"]+)"/gm)].map((m) => [m[1], m[2]]));
  const list = /var supportedHostKeyAlgos = \[\]string\{([^}]*)\}/.exec(src)?.[1];
  if (!list) throw new Error(`no supportedHostKeyAlgos in ${dir}`);
  return list.split(/[\s,]+/).filter(Boolean).map((n) => consts[n] ?? n).filter((a) => !a.includes("-cert-"));
}

const tofuCrypto = /^golang\.org\/x\/crypto (v[\d.]+) h1:/m.exec(fs.readFileSync(path.join(REPO_ROOT, "engines", "opentofu", "go.sum"), "utf8"))?.[1];
const tofuOrder = tofuCrypto ? goHostKeyOrder(tofuCrypto) : undefined;

describe("preflight: the engines' host-key algorithm order", () => {
  itIf(tofuOrder !== undefined, `golang.org/x/crypto ${tofuCrypto} (engines/opentofu/go.sum) not in the Go module cache`)("is x/crypto's, at the version OpenTofu is built with", () => {
    expect(GO_HOST_KEY_ALGORITHMS).toEqual(tofuOrder);
  });

  const tf = hasCommand("terraform") ? spawnSync("go", ["version", "-m", spawnSync("bash", ["-c", "command -v terraform"], { encoding: "utf8" }).stdout.trim()], { encoding: "utf8" }) : undefined;
  const tfCrypto = tf && /golang\.org\/x\/crypto\s+(v[\d.]+)/.exec(tf.stdout ?? "")?.[1];
  const tfOrder = tfCrypto ? goHostKeyOrder(tfCrypto) : undefined;
  itIf(tfOrder !== undefined, `Terraform's golang.org/x/crypto ${tfCrypto ?? "(unknown)"} not in the Go module cache (or no terraform/go here)`)("is x/crypto's, at the version Terraform on PATH is built with", () => {
    expect(GO_HOST_KEY_ALGORITHMS).toEqual(tfOrder);
  });
});

describe("preflight: judging a node's facts", () => {
  const facts = (extra: Record<string, string>) => parseFacts(Object.entries({ sudo: "ok", ...extra }).map(([k, v]) => `${k}\t${v}`).join("\n"));

  it("link DNS with overlay.linkDns agent: routed to the node's own overlay address, or a failure naming what the link routes to", () => {
    const c = edited(exampleCluster(), (x) => {
      x.overlay.linkDns = "agent";
      x.consul.recursors = ["1.1.1.1"];
    });
    const n = c.nodes[0];
    const ok = judge(c, n, facts({ "dns.resolvectl": `Link 5 (${c.overlay.interface}): ${n.overlayAddress}` })).find((r) => r.check === "link DNS");
    expect(ok).toMatchObject({ status: "ok" });
    const wrong = judge(c, n, facts({ "dns.resolvectl": `Link 5 (${c.overlay.interface}): 10.0.0.53` })).find((r) => r.check === "link DNS");
    expect(wrong).toMatchObject({ status: "fail", detail: expect.stringContaining("10.0.0.53"), remedy: expect.stringContaining(`route DNS to ${n.overlayAddress}`) });
    const none = judge(c, n, facts({})).find((r) => r.check === "link DNS");
    expect(none).toMatchObject({ status: "error", detail: "resolvectl is not available: cannot read the link's DNS routing" });
  });

  it("overlay with interface addressing: any address inside overlay.prefix, none outside", () => {
    const c = edited(exampleCluster(), (x) => (x.overlay.addressing = "interface"));
    const n = c.nodes[0];
    const at = (addr: string) => judge(c, n, facts({ "overlay.link": `7: ${c.overlay.interface}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450`, "overlay.addr": addr })).find((r) => r.check === "overlay");
    expect(at("172.16.9.9/16")!.status).toBe("ok");
    expect(at("10.1.2.3/24")).toMatchObject({ status: "fail", remedy: expect.stringContaining("an address in 172.16.0.0/16") });
    const down = judge(c, n, facts({ "overlay.link": `7: ${c.overlay.interface}: <BROADCAST,MULTICAST> mtu 1450`, "overlay.addr": "172.16.9.9/16" })).find((r) => r.check === "overlay");
    expect(down).toMatchObject({ status: "fail", detail: expect.stringContaining("DOWN") });
  });
});
