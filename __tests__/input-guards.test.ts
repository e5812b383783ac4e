/**
 * Input guards of issue 20: versions in canonical form, static ports unique across every
 * job, one host-key recommendation everywhere and a key's label equal to its body's type.
 * Each through the real loader (path, line, message) and, where output is involved, against
 * what the renderers really produce.
 */
import * as fs from "fs";
import * as path from "path";
import { spawnSync } from "child_process";
import { parse, stringify } from "yaml";
import { loadDescriptionText } from "../constructs/description/load";
import { staticJobPorts } from "../constructs/description/rules";
import { BASTION_KEY_DEFECT_ENGINES, HOST_KEY_ADVICE, RECOMMENDED_HOST_KEY, embeddedKeyType, keyscanCommand } from "../constructs/description/host-keys";
import { renderJobspecs } from "../constructs/render/jobs";
import { clusterFromText, exampleText, parseHcl, REPO_ROOT } from "./helpers/synth";

const editedExample = (edit: (d: any) => void): string => {
  const d = parse(exampleText());
  edit(d);
  return stringify(d);
};
const problemsOf = (text: string) => {
  const r = loadDescriptionText(text);
  return r.ok ? [] : r.problems;
};

describe("versions: canonical major.minor.patch only", () => {
  it.each(["1.09.7", "01.9.7", "1.9.07", "1.9", "v1.9.7", "1.9.7-rc1"])("versions.nomad %s is refused naming the field and its line", (v) => {
    const problems = problemsOf(editedExample((d) => (d.versions.nomad = v)));
    expect(problems).toEqual([expect.objectContaining({ path: "versions.nomad", line: expect.any(Number), message: expect.stringMatching(/major\.minor\.patch, numbers without leading zeros/) })]);
  });

  it("1.10.0 and 1.9.7 are accepted", () => {
    expect(problemsOf(editedExample((d) => (d.versions = { consul: "1.20.0", nomad: "1.10.0" })))).toEqual([]);
    expect(problemsOf(editedExample((d) => (d.versions.nomad = "1.9.7")))).toEqual([]);
  });

  it("why: bash arithmetic (the install's version floor) refuses 09 as an octal number", () => {
    const r = spawnSync("bash", ["-c", 'IFS=. read -r a b _ <<<"1.09.7"; (( b < 10 )) && echo below'], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/value too great for base/);
  });
});

describe("static ports: no two jobs bind the same one", () => {
  it("metrics.grafana.port equal to a HAProxy port is refused at the later field, naming the other", () => {
    const problems = problemsOf(editedExample((d) => {
      d.app.haproxy = { ...(d.app.haproxy ?? {}), statsPort: 8404 };
      d.metrics = { ...(d.metrics ?? {}), grafana: { port: 8404 } };
    }));
    expect(problems).toEqual([expect.objectContaining({ path: "metrics.grafana.port", line: expect.any(Number), message: expect.stringMatching(/different from app\.haproxy\.statsPort \(8404\).*never be placed/) })]);
  });

  it("every problem at once: two collisions, two messages", () => {
    const problems = problemsOf(editedExample((d) => {
      d.app.haproxy = { nodePort: 9000, floatingPort: 9000, statsPort: 8404 };
      d.metrics = { grafana: { port: 8404 } };
    }));
    expect(problems.map((p) => p.path).sort()).toEqual(["app.haproxy.floatingPort", "metrics.grafana.port"]);
  });

  it("without the metrics stack Grafana's port is free to reuse", () => {
    expect(problemsOf(editedExample((d) => (d.metrics = { enabled: false, grafana: { port: 8404 } })))).toEqual([]);
  });

  it("the list the rule checks is every static port the rendered jobspecs hold (parsed with HashiCorp's parser)", async () => {
    for (const metrics of [true, false]) {
      const c = clusterFromText(editedExample((d) => (d.metrics = { enabled: metrics })));
      const rendered: number[] = [];
      const walk = (x: unknown): void => {
        if (Array.isArray(x)) x.forEach(walk);
        else if (x && typeof x === "object") {
          for (const [k, v] of Object.entries(x)) (k === "static" ? rendered.push(Number(v)) : walk(v));
        }
      };
      for (const [name, text] of Object.entries(renderJobspecs(c))) if (text) walk(await parseHcl(`${name}.nomad.hcl`, text));
      expect(rendered.length).toBeGreaterThanOrEqual(3);
      expect(staticJobPorts(c).map((p) => p.port).sort()).toEqual([...rendered].sort());
    }
  });
});

describe("host keys: one recommendation, and a label that matches the key", () => {
  const ed25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

  it("reads the type inside a key body (RFC 4253 length-prefixed string)", () => {
    expect(embeddedKeyType(ed25519.split(" ")[1])).toBe("ssh-ed25519");
    const exampleKey = parse(exampleText()).bastion.hostKey as string;
    expect(embeddedKeyType(exampleKey.split(" ")[1])).toBe(exampleKey.split(" ")[0]);
    expect(embeddedKeyType("AAAA")).toBeUndefined();
  });

  it("an Ed25519 body labelled ecdsa-sha2-nistp256 is refused with both types named", () => {
    const body = ed25519.split(" ")[1];
    const problems = problemsOf(editedExample((d) => {
      d.bastion.hostKey = `ecdsa-sha2-nistp256 ${body}`;
      d.nodes[1].hostKey = `ssh-rsa ${body}`;
    }));
    expect(problems).toEqual([
      expect.objectContaining({ path: "bastion.hostKey", line: expect.any(Number), message: expect.stringMatching(/says ecdsa-sha2-nistp256 but the key inside is ssh-ed25519/) }),
      expect.objectContaining({ path: "nodes[1].hostKey", line: expect.any(Number), message: expect.stringMatching(/says ssh-rsa but the key inside is ssh-ed25519/) }),
    ]);
  });

  it("a body that is no key at all is refused", () => {
    const problems = problemsOf(editedExample((d) => (d.bastion.hostKey = "ecdsa-sha2-nistp256 AAAAAAAA")));
    expect(problems).toEqual([expect.objectContaining({ path: "bastion.hostKey", message: expect.stringMatching(/does not start with a key type/) })]);
  });

  it("a genuine key of each accepted type passes (keys made by ssh-keygen)", () => {
    const dir = fs.mkdtempSync(path.join(require("os").tmpdir(), "hostkeys-"));
    try {
      for (const [t, bits] of [["ecdsa", "256"], ["ecdsa", "384"], ["ecdsa", "521"], ["ed25519", ""], ["rsa", "2048"]]) {
        const f = path.join(dir, `${t}${bits}`);
        const r = spawnSync("ssh-keygen", ["-q", "-t", t, ...(bits ? ["-b", bits] : []), "-N", "", "-C", "x", "-f", f]);
        expect(r.status).toBe(0);
        const line = fs.readFileSync(`${f}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
        expect([line.split(" ")[0], problemsOf(editedExample((d) => (d.bastion.hostKey = line)))]).toEqual([line.split(" ")[0], []]);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the schema hints, the examples, the messages and the README say the same", () => {
    const schema = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "cluster.schema.json"), "utf8"));
    const descriptions = JSON.stringify(schema).match(/Pinned SSH host key of the [^"]*/g) ?? [];
    expect(descriptions).toHaveLength(2);
    for (const d of descriptions) {
      expect(d).toContain(`ssh-keyscan -t ${RECOMMENDED_HOST_KEY.keyscanType} `);
      expect(d).not.toMatch(/-t ed25519/);
    }
    for (const file of fs.readdirSync(path.join(REPO_ROOT, "clusters")).filter((f) => f.endsWith(".yaml"))) {
      const text = fs.readFileSync(path.join(REPO_ROOT, "clusters", file), "utf8");
      const keys = text.match(/hostKey: "([^"]+)"/g) ?? [];
      for (const k of keys) expect([file, k.split('"')[1].split(" ")[0]]).toEqual([file, RECOMMENDED_HOST_KEY.label]);
    }
    const unpinned = problemsOf(editedExample((d) => delete d.nodes[0].hostKey));
    expect(unpinned[0].message).toContain(keyscanCommand("192.0.2.11"));
    expect(unpinned[0].message).toContain(HOST_KEY_ADVICE);
    const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Host keys"), readme.indexOf("### State"));
    expect(section).toContain(`\`${keyscanCommand("HOST")}\``);
    expect(section).toMatch(/prefers[^.]*ECDSA host key over RSA over Ed25519/);
    expect(section).toContain("constructs/description/host-keys.ts");
    // the engines with the bastion-key defect: one fact, the same words in the code and the README
    expect(BASTION_KEY_DEFECT_ENGINES).toMatch(/up to 1\.15.*1\.16 pre-releases/);
    expect(section.replace(/\s+/g, " ")).toContain("Terraform up to 1.15 (the fix, hashicorp/terraform#38318, is in the 1.16 pre-releases only) and OpenTofu");
  });
});
