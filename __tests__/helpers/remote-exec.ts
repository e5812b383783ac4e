/**
 * The script an engine runs for a `remote-exec` provisioner of our synth output, for unit
 * tests that run it with a real shell: Terraform and OpenTofu join the `inline` lines with
 * newlines, evaluate the template (here: `filebase64("<path>")` read from the synth output's
 * files, `self.input.<key>` from `self`, `$${`/`%%{` unescaped) and run it with /bin/sh
 * (the shebang they add when the script has none).
 */
import { fromTerraformLiteral } from "../../constructs/escape";

export function remoteExecScript(inline: string[], files: Record<string, string>, self: Record<string, string> = {}): string {
  const evaluated = inline
    .join("\n")
    .replace(/(?<!\$)\$\{filebase64\(("(?:[^"\\]|\\.)*")\)\}/g, (_, quoted: string) => {
      const p: string = JSON.parse(fromTerraformLiteral(quoted));
      if (!(p in files)) throw new Error(`filebase64: ${p} is not in the synth output`);
      return Buffer.from(files[p]).toString("base64");
    })
    .replace(/(?<!\$)\$\{self\.input\.([a-z_]+)\}/g, (_, k: string) => {
      if (!(k in self)) throw new Error(`self.input.${k} not given`);
      return self[k];
    });
  const left = evaluated.match(/(?<!\$)\$\{[^}]*\}/);
  if (left) throw new Error(`unevaluated template expression: ${left[0]}`);
  return `#!/bin/sh\n${fromTerraformLiteral(evaluated)}`;
}
