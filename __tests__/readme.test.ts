/**
 * The README as a new operator reads it: every Terraform variable the synthesized stacks
 * declare is in its variable table, and every npm command is documented.
 */
import * as fs from "fs";
import * as path from "path";
import { cleanup, exampleCluster, REPO_ROOT, synthCluster } from "./helpers/synth";

const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");

describe("README", () => {
  it("lists every variable of the synthesized stacks as TF_VAR_<name> in the variable table", () => {
    const out = synthCluster(exampleCluster());
    try {
      const variables = Object.values(out.stacks).flatMap((s: any) => Object.keys(s.variable ?? {}));
      expect(variables).toContain("vrrp_password_rotation");
      const table = readme.split("\n").filter((l) => l.startsWith("| `TF_VAR_"));
      for (const v of variables) expect({ v, listed: table.some((l) => l.includes(`\`TF_VAR_${v}\``)) }).toEqual({ v, listed: true });
    } finally {
      cleanup(out);
    }
  });

  it("documents every npm command", () => {
    const scripts = Object.keys(JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")).scripts).filter((s) => s !== "test" && s !== "typecheck");
    for (const s of scripts) expect({ s, documented: readme.includes(`npm run ${s}`) }).toEqual({ s, documented: true });
  });
});
