/**
 * Project rules for the Dockerfiles under images/ (on top of dockerfile-utils' own validator).
 *
 *   final-user        the final stage runs as a non-root USER
 *   pinned-image      every FROM / COPY --from image has an explicit tag or digest, never `latest`,
 *                     and no variable (a reference built from ARGs cannot be reviewed or pinned)
 *   remote-add        ADD of a remote URL (http(s), git) carries --checksum
 *   healthcheck       the final stage has a HEALTHCHECK, or the file documents why not with a
 *                     `# no-healthcheck: <reason>` comment
 *   secret-name       no ENV/ARG whose name looks like a secret (PASSWORD, SECRET, TOKEN, KEY…):
 *                     secrets must reach containers at run time, never through image layers
 *   dockerignore      the build context has a .dockerignore (checkBuildContext)
 *
 * Usage from a shell: npx tsx scripts/dockerfile-rules.ts images/api/Dockerfile images/web/Dockerfile
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { validate } from "dockerfile-utils";

export interface Violation {
  rule: "validator" | "final-user" | "pinned-image" | "remote-add" | "healthcheck" | "secret-name" | "dockerignore";
  /** 1-based line number, 0 when the rule is about the whole file. */
  line: number;
  message: string;
}

const SECRET_NAME = /(^|_)(PASSWORD|PASSWD|PASS|PWD|SECRET|SECRETS|TOKEN|KEY|APIKEY|PRIVATE|CREDENTIALS?|AUTH)(_|$)/i;

/** True when an ENV/ARG name looks like it would carry a secret. */
export function looksLikeSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

function lineOf(instr: Instruction): number {
  return instr.getRange().start.line + 1;
}

/** Split an image reference into name, tag and digest (registry ports are not tags). */
export function parseImageRef(ref: string): { name: string; tag?: string; digest?: string } {
  const [withoutDigest, digest] = ref.split("@", 2);
  const lastSlash = withoutDigest.lastIndexOf("/");
  const colon = withoutDigest.indexOf(":", lastSlash + 1);
  if (colon === -1) return { name: withoutDigest, digest };
  return { name: withoutDigest.slice(0, colon), tag: withoutDigest.slice(colon + 1), digest };
}

function checkImageRef(ref: string, line: number, what: string): Violation[] {
  if (ref.includes("$")) {
    return [{ rule: "pinned-image", line, message: `${what} ${ref} uses a variable: write the pinned reference literally` }];
  }
  const { tag, digest } = parseImageRef(ref);
  if (digest !== undefined && !/^sha256:[a-f0-9]{64}$/.test(digest)) {
    return [{ rule: "pinned-image", line, message: `${what} ${ref} has a malformed digest` }];
  }
  if (tag === undefined && digest === undefined) {
    return [{ rule: "pinned-image", line, message: `${what} ${ref} has no tag: pin an exact version` }];
  }
  if (tag !== undefined && tag.toLowerCase() === "latest") {
    return [{ rule: "pinned-image", line, message: `${what} ${ref} uses 'latest': pin an exact version` }];
  }
  return [];
}

function flagValue(instr: Instruction, name: string): string | null | undefined {
  const withFlags = instr as unknown as { getFlags?: () => { getName(): string; getValue(): string | null }[] };
  const flag = withFlags.getFlags?.().find((f) => f.getName() === name);
  return flag === undefined ? undefined : flag.getValue();
}

const REMOTE_SOURCE = /^(https?:\/\/|git@|ssh:\/\/|git:\/\/)/i;

/** Run the project rules (not the dockerfile-utils validator) on Dockerfile text. */
export function checkDockerfileRules(content: string): Violation[] {
  const dockerfile = DockerfileParser.parse(content);
  const instructions = dockerfile.getInstructions();
  const violations: Violation[] = [];
  const stageNames = new Set<string>();

  // Stages, in order: the final stage is what the image runs as.
  const stages: Instruction[][] = [];
  for (const instr of instructions) {
    if (instr.getKeyword() === "FROM") stages.push([]);
    if (stages.length > 0) stages[stages.length - 1].push(instr);
  }
  if (stages.length === 0) {
    return [{ rule: "pinned-image", line: 0, message: "no FROM instruction" }];
  }

  for (const from of dockerfile.getFROMs()) {
    const image = from.getImage();
    const line = lineOf(from);
    if (image === null) {
      violations.push({ rule: "pinned-image", line, message: "FROM without an image" });
    } else if (!stageNames.has(image) && image !== "scratch") {
      violations.push(...checkImageRef(image, line, "FROM"));
    }
    const stage = from.getBuildStage();
    if (stage) stageNames.add(stage);
  }

  for (const instr of instructions) {
    const keyword = instr.getKeyword();
    const line = lineOf(instr);
    if (keyword === "COPY") {
      const from = flagValue(instr, "from");
      if (from && !stageNames.has(from) && !/^\d+$/.test(from)) {
        violations.push(...checkImageRef(from, line, "COPY --from"));
      }
    }
    if (keyword === "ADD") {
      const sources = instr.getArguments().map((a) => a.getValue()).slice(0, -1);
      const remote = sources.filter((s) => REMOTE_SOURCE.test(s) || /\.git(#|$)/.test(s));
      const checksum = flagValue(instr, "checksum");
      if (remote.length > 0 && !checksum) {
        violations.push({ rule: "remote-add", line, message: `ADD of ${remote.join(", ")} without --checksum` });
      }
    }
    if (keyword === "ENV" || keyword === "ARG") {
      const props = (instr as unknown as { getProperties(): { getName(): string }[] }).getProperties();
      for (const p of props) {
        if (looksLikeSecretName(p.getName())) {
          violations.push({
            rule: "secret-name",
            line,
            message: `${keyword} ${p.getName()} looks like a secret: pass secrets at run time, not through the image`,
          });
        }
      }
    }
  }

  const finalStage = stages[stages.length - 1];
  const users = finalStage.filter((i) => i.getKeyword() === "USER");
  const finalFromLine = lineOf(finalStage[0]);
  if (users.length === 0) {
    violations.push({ rule: "final-user", line: finalFromLine, message: "final stage has no USER: it would run as root" });
  } else {
    const last = users[users.length - 1];
    const user = (last.getArgumentsContent() ?? "").trim().split(":")[0];
    if (user === "" || user === "root" || /^0+$/.test(user) || user.includes("$")) {
      violations.push({ rule: "final-user", line: lineOf(last), message: `final USER '${user}' is root or not literal` });
    }
  }

  const healthchecks = finalStage.filter((i) => i.getKeyword() === "HEALTHCHECK");
  const lastHc = healthchecks[healthchecks.length - 1];
  const hcDisabled = lastHc !== undefined && /^NONE$/i.test((lastHc.getArgumentsContent() ?? "").trim());
  const documented = dockerfile
    .getComments()
    .some((c) => /^no-healthcheck:\s*\S.{9,}/.test(c.getContent().trim()));
  if ((lastHc === undefined || hcDisabled) && !documented) {
    violations.push({
      rule: "healthcheck",
      line: finalFromLine,
      message: "final stage has no HEALTHCHECK and no '# no-healthcheck: <reason>' comment",
    });
  }
  return violations;
}

/** LSP DiagnosticSeverity.Error: validate() reports LSP severities, not its ValidationSeverity enum. */
const LSP_SEVERITY_ERROR = 1;

/** dockerfile-utils' validator: errors (and warnings) as violations. */
export function validatorDiagnostics(content: string): { errors: Violation[]; warnings: Violation[] } {
  const diagnostics = validate(content);
  const toViolation = (d: (typeof diagnostics)[number]): Violation => ({
    rule: "validator",
    line: d.range.start.line + 1,
    message: typeof d.message === "string" ? d.message : d.message.value,
  });
  return {
    errors: diagnostics.filter((d) => d.severity === LSP_SEVERITY_ERROR).map(toViolation),
    warnings: diagnostics.filter((d) => d.severity !== LSP_SEVERITY_ERROR).map(toViolation),
  };
}

/** Rules about the build context directory that holds a Dockerfile. */
export function checkBuildContext(dir: string): Violation[] {
  const ignore = path.join(dir, ".dockerignore");
  if (!fs.existsSync(ignore)) {
    return [{ rule: "dockerignore", line: 0, message: `${dir} has no .dockerignore` }];
  }
  if (fs.readFileSync(ignore, "utf8").trim() === "") {
    return [{ rule: "dockerignore", line: 0, message: `${ignore} is empty` }];
  }
  return [];
}

/** Every violation for one Dockerfile path (validator errors, project rules, context rules). */
export function lintDockerfile(file: string): Violation[] {
  const content = fs.readFileSync(file, "utf8");
  return [
    ...validatorDiagnostics(content).errors,
    ...checkDockerfileRules(content),
    ...checkBuildContext(path.dirname(file)),
  ];
}

if (require.main === module) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: tsx scripts/dockerfile-rules.ts <Dockerfile>...");
    process.exit(2);
  }
  let failed = 0;
  for (const file of files) {
    const violations = lintDockerfile(file);
    for (const v of violations) console.error(`${file}:${v.line}: [${v.rule}] ${v.message}`);
    if (violations.length === 0) console.log(`${file}: ok`);
    failed += violations.length;
  }
  process.exit(failed === 0 ? 0 : 1);
}
