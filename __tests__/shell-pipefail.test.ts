/**
 * Every shell script we render runs under `set -o pipefail`. There, `producer | grep -q`
 * fails whenever grep exits at its first match before the producer is done writing (the
 * producer dies of SIGPIPE and the pipeline takes its status): the real `consul info` writes
 * more than a pipe holds, and the install's "is the running agent a server?" check read
 * "no" on a real Consul server (found by the real agent in generations.test.ts). So no
 * rendered script may pipe into a grep that quits early; it greps a captured value instead.
 * Checked on the synthesized output of every shipped description, and proven able to fail.
 */
import * as path from "path";
import { cleanup, REPO_ROOT, synthCluster } from "./helpers/synth";
import { loadDescriptionFile } from "../constructs/description/load";

/** Lines of `text` where a pipe feeds a grep that stops at its first match (-q, -m, -l). */
export function earlyExitGreps(text: string): string[] {
  return text.split("\n").filter((l) => /\|\s*grep\s+(-[A-Za-z]*[qlm][A-Za-z]*\b|--quiet|--max-count)/.test(l) && !/^\s*#/.test(l));
}

describe("rendered shell scripts never pipe into an early-exiting grep (pipefail + SIGPIPE)", () => {
  it("the check finds the defect it is for", () => {
    expect(earlyExitGreps('if consul info | grep -Eq "server = true"; then\n# a comment | grep -q x\n')).toEqual(['if consul info | grep -Eq "server = true"; then']);
  });

  it.each(["example", "provider-2022", "provider-2023", "provider-2025"])("%s", (name) => {
    const loaded = loadDescriptionFile(path.join(REPO_ROOT, "clusters", `${name}.yaml`));
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    const out = synthCluster(loaded.cluster);
    try {
      const scripts = Object.entries(out.files).flatMap(([stack, files]) => Object.entries(files).filter(([f]) => f.endsWith(".sh")).map(([f, text]) => [`${stack}/${f}`, text] as const));
      expect(scripts.length).toBeGreaterThan(3);
      const found = scripts.flatMap(([f, text]) => earlyExitGreps(text).map((l) => `${f}: ${l.trim()}`));
      expect(found).toEqual([]);
    } finally {
      cleanup(out);
    }
  });
});
