/**
 * Container images: Dockerfile lint (dockerfile-utils + project rules), the rule checkers
 * themselves, the shell scripts (shellcheck, build.sh dry-run, digest pinning with a stub
 * docker) and the web image's static server (started for real on 127.0.0.1).
 *
 * Nothing here needs Docker or the network: docker is replaced by stubs, git repositories
 * are created in temporary directories, HTTP stays on 127.0.0.1.
 */
import { itIf } from "./helpers/synth";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { DockerfileParser } from "dockerfile-ast";
import {
  checkBuildContext,
  checkDockerfileRules,
  lintDockerfile,
  looksLikeSecretName,
  parseImageRef,
  validatorDiagnostics,
  type Violation,
} from "../scripts/dockerfile-rules";

const ROOT = path.resolve(__dirname, "..");
const IMAGES = path.join(ROOT, "images");
const BUILD_SH = path.join(IMAGES, "build.sh");
const PIN_SH = path.join(IMAGES, "pin-base-images.sh");
const SERVER = path.join(IMAGES, "web", "server.mjs");

const tmpDirs: string[] = [];
function tmpDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  tmpDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true });
});

const dockerfiles = fs
  .readdirSync(IMAGES, { withFileTypes: true })
  .filter((d) => d.isDirectory() && fs.existsSync(path.join(IMAGES, d.name, "Dockerfile")))
  .map((d) => d.name)
  .sort();

function read(rel: string): string {
  return fs.readFileSync(path.join(ROOT, rel), "utf8");
}

function rules(v: Violation[]): string[] {
  return v.map((x) => x.rule);
}

interface Instr {
  keyword: string;
  args: string;
  flags: string[];
}

/** All instructions: keyword, arguments (flags excluded) and flag names. */
function instructionsOf(content: string): Instr[] {
  return DockerfileParser.parse(content)
    .getInstructions()
    .map((i) => ({
      keyword: i.getKeyword(),
      args: i.getArguments().map((a) => a.getValue()).join(" "),
      flags: ((i as unknown as { getFlags?: () => { getName(): string }[] }).getFlags?.() ?? []).map((f) => f.getName()),
    }));
}

/** Instructions of the final stage. */
function finalStage(content: string): Instr[] {
  const instrs = instructionsOf(content);
  const lastFrom = instrs.map((i) => i.keyword).lastIndexOf("FROM");
  return instrs.slice(lastFrom);
}

describe("Dockerfiles under images/", () => {
  test("the api and web images both exist", () => {
    expect(dockerfiles).toEqual(expect.arrayContaining(["api", "web"]));
  });

  describe.each(dockerfiles)("images/%s/Dockerfile", (name) => {
    const rel = `images/${name}/Dockerfile`;
    const content = read(rel);

    test("dockerfile-utils reports no error", () => {
      expect(validatorDiagnostics(content).errors).toEqual([]);
    });

    test("project rules pass (non-root, pinned images, checksummed ADD, healthcheck, no secret names, .dockerignore)", () => {
      expect(lintDockerfile(path.join(ROOT, rel))).toEqual([]);
    });

    test("is multi-stage and builds from the upstream repository at a build-arg ref", () => {
      const froms = DockerfileParser.parse(content).getFROMs();
      expect(froms.length).toBeGreaterThanOrEqual(3);
      expect(content).toMatch(/ARG UPSTREAM_REF=/);
      expect(content).toContain("https://github.com/sandhose/projet-cloud-virt");
      // The fetched source is the ref, verified against UPSTREAM_COMMIT when given.
      expect(content).toMatch(/git fetch[^\n]*"\$UPSTREAM_REF"/);
      expect(content).toMatch(/"\$commit" != "\$UPSTREAM_COMMIT"/);
    });

    test("final stage carries the OCI labels", () => {
      const labels = finalStage(content)
        .filter((i) => i.keyword === "LABEL")
        .map((i) => i.args)
        .join("\n");
      for (const key of ["source", "revision", "version", "created", "title"]) {
        expect(labels).toContain(`org.opencontainers.image.${key}=`);
      }
    });

    test("every file COPY'd from the build context exists and is let through by .dockerignore", () => {
      const copies = instructionsOf(content).filter((i) => i.keyword === "COPY" && !i.flags.includes("from"));
      // web copies its server; api copies nothing from the context (its source comes from upstream).
      expect(copies.length).toBe(name === "web" ? 1 : 0);
      const ignore = read(`images/${name}/.dockerignore`).split("\n").map((l) => l.trim());
      expect(ignore).toContain("*");
      for (const copy of copies) {
        const source = copy.args.split(/\s+/).filter((a) => !a.startsWith("--"))[0];
        expect(fs.existsSync(path.join(IMAGES, name, source))).toBe(true);
        // The context ignores everything ("*") and re-includes what the image needs.
        expect(ignore).toContain("*");
        expect(ignore).toContain(`!${source}`);
      }
    });
  });

  test("api image: uv with a cached, locked dependency layer; gunicorn added; workdir api/; CMD honours $PORT", () => {
    const content = read("images/api/Dockerfile");
    const depsLayer = content.match(/RUN --mount=type=cache,target=\/root\/\.cache\/uv[\s\S]*?--no-install-project/);
    expect(depsLayer).not.toBeNull();
    expect(depsLayer![0]).toContain("uv sync --no-dev --locked");
    expect(content).toMatch(/FROM python:3\.1[1-9][.\d]*-slim/);
    expect(content).toMatch(/gunicorn==\$\{GUNICORN_VERSION\}/);
    expect(content).toMatch(/ARG GUNICORN_VERSION=\d+\.\d+\.\d+/);
    const final = finalStage(content);
    const workdirs = final.filter((i) => i.keyword === "WORKDIR");
    expect(workdirs[workdirs.length - 1].args).toBe("/app/api");
    const cmd = final.filter((i) => i.keyword === "CMD");
    expect(cmd).toHaveLength(1);
    // Shell form so that $PORT is expanded at run time; exec keeps gunicorn as PID 1.
    expect(cmd[0].args).toMatch(/^exec gunicorn /);
    expect(cmd[0].args).toContain('--bind "0.0.0.0:${PORT}"');
    expect(cmd[0].args).toContain("image_api.web:app");
    const env = final.filter((i) => i.keyword === "ENV").map((i) => i.args).join(" ");
    expect(env).toMatch(/PORT=8080/);
    // No ENTRYPOINT: the worker is the same image with the command replaced.
    expect(final.some((i) => i.keyword === "ENTRYPOINT")).toBe(false);
  });

  test("web image: Node >= 20 build with npm ci && npm run build, served by server.mjs on $PORT", () => {
    const content = read("images/web/Dockerfile");
    const nodeMajors = [...content.matchAll(/FROM node:(\d+)\./g)].map((m) => Number(m[1]));
    expect(nodeMajors.length).toBeGreaterThanOrEqual(2);
    for (const major of nodeMajors) expect(major).toBeGreaterThanOrEqual(20);
    expect(content).toMatch(/npm ci/);
    expect(content).toMatch(/npm run build/);
    const final = finalStage(content);
    expect(final.find((i) => i.keyword === "CMD")?.args).toContain("/app/server.mjs");
    expect(final.find((i) => i.keyword === "HEALTHCHECK")?.args).toContain("--healthcheck");
  });
});

describe("rule checkers fail on broken Dockerfiles", () => {
  const good = [
    "FROM alpine:3.21.3 AS build",
    "RUN echo hi > /x",
    "FROM alpine:3.21.3",
    "COPY --from=build /x /x",
    "USER 10001",
    'HEALTHCHECK CMD ["true"]',
    'CMD ["true"]',
  ].join("\n");

  test("a correct snippet passes", () => {
    expect(checkDockerfileRules(good)).toEqual([]);
    expect(validatorDiagnostics(good).errors).toEqual([]);
  });

  test.each([
    ["no USER in the final stage", good.replace("USER 10001\n", ""), "final-user"],
    ["USER root", good.replace("USER 10001", "USER root"), "final-user"],
    ["USER 0:0", good.replace("USER 10001", "USER 0:0"), "final-user"],
    ["USER only in an earlier stage", good.replace("USER 10001\n", "").replace("RUN echo", "USER 10001\nRUN echo"), "final-user"],
    ["untagged FROM", good.replace("FROM alpine:3.21.3 AS build", "FROM alpine AS build"), "pinned-image"],
    ["FROM latest", good.replace("FROM alpine:3.21.3\n", "FROM alpine:latest\n"), "pinned-image"],
    ["FROM with a registry port but no tag", good.replace("FROM alpine:3.21.3\n", "FROM registry.local:5000/alpine\n"), "pinned-image"],
    ["FROM from a variable", `ARG BASE=alpine:3.21.3\n${good.replace("FROM alpine:3.21.3\n", "FROM ${BASE}\n")}`, "pinned-image"],
    ["COPY --from an untagged image", good.replace("COPY --from=build", "COPY --from=ghcr.io/astral-sh/uv"), "pinned-image"],
    ["COPY --from a latest image", good.replace("COPY --from=build", "COPY --from=ghcr.io/astral-sh/uv:latest"), "pinned-image"],
    ["remote ADD without checksum", good.replace("USER 10001", "ADD https://example.org/a.tgz /a.tgz\nUSER 10001"), "remote-add"],
    ["git ADD without checksum", good.replace("USER 10001", "ADD https://github.com/o/r.git#v1 /src\nUSER 10001"), "remote-add"],
    ["no HEALTHCHECK", good.replace('HEALTHCHECK CMD ["true"]\n', ""), "healthcheck"],
    ["HEALTHCHECK NONE", good.replace('HEALTHCHECK CMD ["true"]', "HEALTHCHECK NONE"), "healthcheck"],
    ["an empty no-healthcheck reason", `# no-healthcheck:\n${good.replace('HEALTHCHECK CMD ["true"]\n', "")}`, "healthcheck"],
    ["ENV with a password", good.replace("USER 10001", "ENV DB_PASSWORD=hunter2\nUSER 10001"), "secret-name"],
    ["ARG with a token", good.replace("USER 10001", "ARG GITHUB_TOKEN\nUSER 10001"), "secret-name"],
    ["ENV with an access key in the multi-variable form", good.replace("USER 10001", "ENV A=1 AWS_SECRET_ACCESS_KEY=x\nUSER 10001"), "secret-name"],
  ])("%s", (_label, snippet, rule) => {
    expect(rules(checkDockerfileRules(snippet))).toContain(rule);
  });

  test("a remote ADD with --checksum and a documented missing healthcheck are accepted", () => {
    const snippet = good
      .replace('HEALTHCHECK CMD ["true"]\n', "")
      .replace(
        "USER 10001",
        `ADD --checksum=sha256:${"a".repeat(64)} https://example.org/a.tgz /a.tgz\nUSER 10001`,
      );
    expect(rules(checkDockerfileRules(snippet))).toEqual(["healthcheck"]);
    const documented = `# no-healthcheck: batch job without a port, Nomad checks it\n${snippet}`;
    expect(checkDockerfileRules(documented)).toEqual([]);
  });

  test("digests are accepted, malformed digests are not", () => {
    const pinned = good.replace("FROM alpine:3.21.3\n", `FROM alpine:3.21.3@sha256:${"0".repeat(64)}\n`);
    expect(checkDockerfileRules(pinned)).toEqual([]);
    const digestOnly = good.replace("FROM alpine:3.21.3\n", `FROM alpine@sha256:${"0".repeat(64)}\n`);
    expect(checkDockerfileRules(digestOnly)).toEqual([]);
    const bad = good.replace("FROM alpine:3.21.3\n", "FROM alpine:3.21.3@sha256:abc\n");
    expect(rules(checkDockerfileRules(bad))).toContain("pinned-image");
  });

  test("dockerfile-utils reports errors on an invalid Dockerfile", () => {
    expect(validatorDiagnostics("FROM alpine:3.21.3\nFROMX nothing\n").errors.length).toBeGreaterThan(0);
    expect(validatorDiagnostics("RUN echo no FROM\n").errors.length).toBeGreaterThan(0);
  });

  test("secret-looking names", () => {
    for (const name of ["PASSWORD", "rabbitmq_password", "AWS_SECRET_ACCESS_KEY", "API_KEY", "NPM_TOKEN", "SSH_PRIVATE_KEY", "DB_PASS"]) {
      expect([name, looksLikeSecretName(name)]).toEqual([name, true]);
    }
    for (const name of ["PORT", "MONKEY", "KEYBOARD_LAYOUT_FILE_X", "UV_LINK_MODE", "PASSAGE", "UPSTREAM_REF", "GUNICORN_VERSION"]) {
      expect([name, looksLikeSecretName(name)]).toEqual([name, false]);
    }
  });

  test("image references split on the tag colon, not on a registry port", () => {
    expect(parseImageRef("registry.local:5000/team/app")).toEqual({ name: "registry.local:5000/team/app", digest: undefined });
    expect(parseImageRef("registry.local:5000/team/app:1.2")).toEqual({ name: "registry.local:5000/team/app", tag: "1.2", digest: undefined });
  });

  test("a build context without .dockerignore is reported", () => {
    const dir = tmpDir("ctx");
    expect(rules(checkBuildContext(dir))).toEqual(["dockerignore"]);
    fs.writeFileSync(path.join(dir, ".dockerignore"), "*\n");
    expect(checkBuildContext(dir)).toEqual([]);
  });
});

// ---- shell scripts -----------------------------------------------------------------

const shellScripts = [IMAGES, path.join(ROOT, "scripts")]
  .filter((d) => fs.existsSync(d))
  .flatMap((d) => fs.readdirSync(d).filter((f) => f.endsWith(".sh")).map((f) => path.join(d, f)));

const hasShellcheck = spawnSync("shellcheck", ["--version"]).status === 0;

describe("shell scripts", () => {
  test("build.sh and pin-base-images.sh are there", () => {
    expect(shellScripts).toEqual(expect.arrayContaining([BUILD_SH, PIN_SH]));
  });

  test.each(shellScripts.map((s) => [path.relative(ROOT, s), s]))("%s uses strict mode and is executable", (_rel, file) => {
    const text = fs.readFileSync(file, "utf8");
    expect(text.startsWith("#!/usr/bin/env bash\n")).toBe(true);
    expect(text).toMatch(/^set -euo pipefail$/m);
    expect(fs.statSync(file).mode & 0o111).not.toBe(0);
  });

  itIf(hasShellcheck, "shellcheck is not installed (apt-get install shellcheck)")("shellcheck -S warning is clean", () => {
    const res = spawnSync("shellcheck", ["-S", "warning", ...shellScripts], { encoding: "utf8" });
    expect(res.stdout + res.stderr).toBe("");
    expect(res.status).toBe(0);
  });
});

// ---- build.sh ------------------------------------------------------------------------

function git(cwd: string, ...args: string[]): string {
  const res = spawnSync("git", args, {
    cwd,
    encoding: "utf8",
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@example.org",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@example.org",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_CONFIG_NOSYSTEM: "1",
    },
  });
  if (res.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${res.stderr}`);
  return res.stdout.trim();
}

function randomSha(): string {
  return randomBytes(20).toString("hex");
}

/** A throw-away checkout shaped like this repository, with images/UPSTREAM_REF = pinned. */
function fakeRepo(pinned: string): string {
  const dir = tmpDir("repo");
  git(dir, "init", "-q", "-b", "main");
  fs.mkdirSync(path.join(dir, "images", "api"), { recursive: true });
  fs.mkdirSync(path.join(dir, "images", "web"), { recursive: true });
  fs.writeFileSync(path.join(dir, "images", "UPSTREAM_REF"), `# pinned upstream\n${pinned}\n`);
  fs.writeFileSync(path.join(dir, "images", "api", "Dockerfile"), "FROM scratch\n");
  fs.writeFileSync(path.join(dir, "images", "web", "Dockerfile"), "FROM scratch\n");
  git(dir, "add", "-A");
  git(dir, "commit", "-q", "-m", "init");
  return dir;
}

/** A docker stand-in that records any call: dry-run must never invoke it. */
function recordingDocker(): { bin: string; log: string } {
  const dir = tmpDir("docker");
  const log = path.join(dir, "calls.log");
  const bin = path.join(dir, "docker");
  fs.writeFileSync(bin, `#!/usr/bin/env bash\necho "$*" >> '${log}'\nexit 0\n`, { mode: 0o755 });
  return { bin, log };
}

function buildSh(args: string[], env: Record<string, string> = {}): SpawnSyncReturns<string> {
  const cleanEnv = { ...process.env };
  for (const k of ["IMAGE_REGISTRY", "IMAGE_TAG", "UPSTREAM_REF", "UPSTREAM_REPO", "DRY_RUN", "REPO_DIR", "SOURCE_DATE_EPOCH"]) {
    delete cleanEnv[k];
  }
  return spawnSync("bash", [BUILD_SH, ...args], {
    encoding: "utf8",
    env: { ...cleanEnv, GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1", ...env },
  });
}

function pastedLines(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of stdout.matchAll(/^ {4}(api|web): (\S+)$/gm)) out[m[1]] = m[2];
  return out;
}

describe("images/build.sh --dry-run", () => {
  const registry = "ghcr.io/example-team";

  test("untagged commit: the tag is the short commit SHA; commands carry upstream and recipe revisions", () => {
    const upstream = randomSha();
    const repo = fakeRepo(upstream);
    const head = git(repo, "rev-parse", "HEAD");
    const docker = recordingDocker();
    const res = buildSh(["--registry", registry, "--dry-run"], { REPO_DIR: repo, DOCKER: docker.bin });
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
    const tag = head.slice(0, 7);
    expect(pastedLines(res.stdout)).toEqual({
      api: `${registry}/image-api:${tag}`,
      web: `${registry}/image-web:${tag}`,
    });
    const builds = res.stdout.split("\n").filter((l) => l.includes(" buildx build "));
    expect(builds).toHaveLength(2);
    for (const [i, img] of [["api", "image-api"], ["web", "image-web"]].entries()) {
      const line = builds[i];
      expect(line).toContain(`--build-arg UPSTREAM_REF=${upstream}`);
      expect(line).toContain(`--build-arg UPSTREAM_COMMIT=${upstream}`);
      expect(line).toContain(`--build-arg RECIPE_REVISION=${head}`);
      expect(line).toContain(`--build-arg VERSION=${tag}`);
      expect(line).toContain(`--tag ${registry}/${img[1]}:${tag}`);
      expect(line).toContain(`--file ${path.join(repo, "images", img[0], "Dockerfile")}`);
      expect(line).toContain("--push");
    }
    // Dry run: docker itself is never invoked.
    expect(fs.existsSync(docker.log)).toBe(false);
  });

  test("a git tag on HEAD becomes the image tag", () => {
    const repo = fakeRepo(randomSha());
    const version = `v${1 + (randomBytes(1)[0] % 9)}.${randomBytes(1)[0]}.0`;
    git(repo, "tag", "-a", version, "-m", "release");
    const res = buildSh(["-r", registry, "-n"], { REPO_DIR: repo });
    expect(res.status).toBe(0);
    expect(pastedLines(res.stdout)).toEqual({
      api: `${registry}/image-api:${version}`,
      web: `${registry}/image-web:${version}`,
    });
    expect(buildSh(["--print-tag"], { REPO_DIR: repo }).stdout.trim()).toBe(version);
  });

  test("an upstream ref other than images/UPSTREAM_REF is appended to the tag", () => {
    const repo = fakeRepo(randomSha());
    const head = git(repo, "rev-parse", "HEAD");
    const other = randomSha();
    const res = buildSh(["-r", registry, "-n", "--upstream-ref", other], { REPO_DIR: repo });
    expect(res.status).toBe(0);
    expect(pastedLines(res.stdout).api).toBe(`${registry}/image-api:${head.slice(0, 7)}-${other.slice(0, 7)}`);
  });

  test("a branch name is resolved to its commit with git ls-remote (local upstream, no network)", () => {
    const upstream = tmpDir("upstream");
    git(upstream, "init", "-q", "-b", "trunk");
    fs.writeFileSync(path.join(upstream, "README"), randomSha());
    git(upstream, "add", "-A");
    git(upstream, "commit", "-q", "-m", "u");
    const upstreamHead = git(upstream, "rev-parse", "HEAD");
    const repo = fakeRepo(randomSha());
    const res = buildSh(["-r", registry, "-n", "--upstream-ref", "trunk", "--upstream-repo", upstream], { REPO_DIR: repo });
    expect(res.stderr).toBe("");
    expect(res.stdout).toContain(`--build-arg UPSTREAM_COMMIT=${upstreamHead}`);
    expect(res.stdout).toContain(`--build-arg UPSTREAM_REF=${upstreamHead}`);
    const missing = buildSh(["-r", registry, "-n", "--upstream-ref", "no-such-branch", "--upstream-repo", upstream], {
      REPO_DIR: repo,
    });
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain("no-such-branch");
  });

  test.each([["latest"], ["LATEST"], ["Latest"]])("refuses --tag %s", (latest) => {
    const repo = fakeRepo(randomSha());
    const res = buildSh(["-r", registry, "-n", "--tag", latest], { REPO_DIR: repo });
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(/latest/);
    expect(res.stdout).not.toContain("buildx build");
  });

  test("refuses a git tag named latest and an invalid tag", () => {
    const repo = fakeRepo(randomSha());
    git(repo, "tag", "latest");
    const res = buildSh(["-r", registry, "-n"], { REPO_DIR: repo });
    expect(res.status).not.toBe(0);
    expect(res.stdout).not.toContain("buildx build");
    const invalid = buildSh(["-r", registry, "-n", "--tag", "a/b"], { REPO_DIR: fakeRepo(randomSha()) });
    expect(invalid.status).not.toBe(0);
  });

  test("needs a valid registry", () => {
    const repo = fakeRepo(randomSha());
    expect(buildSh(["-n"], { REPO_DIR: repo }).status).not.toBe(0);
    expect(buildSh(["-n", "-r", "GHCR.io/Team"], { REPO_DIR: repo }).status).not.toBe(0);
    const viaEnv = buildSh(["-n"], { REPO_DIR: repo, IMAGE_REGISTRY: "registry.example.org:5000/team" });
    expect(viaEnv.status).toBe(0);
    expect(pastedLines(viaEnv.stdout).web).toMatch(/^registry\.example\.org:5000\/team\/image-web:/);
  });

  test("uncommitted changes under images/ are refused unless --allow-dirty (tag marked -dirty)", () => {
    const repo = fakeRepo(randomSha());
    const head = git(repo, "rev-parse", "HEAD");
    fs.appendFileSync(path.join(repo, "images", "api", "Dockerfile"), "USER 1\n");
    const refused = buildSh(["-r", registry, "-n"], { REPO_DIR: repo });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/uncommitted/);
    const allowed = buildSh(["-r", registry, "-n", "--allow-dirty"], { REPO_DIR: repo });
    expect(allowed.status).toBe(0);
    expect(pastedLines(allowed.stdout).api).toBe(`${registry}/image-api:${head.slice(0, 7)}-dirty`);
  });

  test("--no-push loads locally and skips the registry existence check; --only builds one image", () => {
    const repo = fakeRepo(randomSha());
    const res = buildSh(["-r", registry, "-n", "--no-push", "--only", "web"], { REPO_DIR: repo });
    expect(res.status).toBe(0);
    expect(res.stdout).toContain("--load");
    expect(res.stdout).not.toContain("--push");
    expect(res.stdout).not.toContain("imagetools inspect");
    expect(Object.keys(pastedLines(res.stdout))).toEqual(["web"]);
  });

  test("--cache-registry reads the build cache always and writes it only when pushing", () => {
    const repo = fakeRepo(randomSha());
    const pushed = buildSh(["-r", registry, "-n", "--cache-registry", "--only", "api"], { REPO_DIR: repo });
    expect(pushed.status).toBe(0);
    expect(pushed.stdout).toContain(`--cache-from type=registry,ref=${registry}/image-api:buildcache`);
    expect(pushed.stdout).toContain(`--cache-to type=registry,ref=${registry}/image-api:buildcache,mode=max`);
    const local = buildSh(["-r", registry, "-n", "--cache-registry", "--no-push", "--only", "api"], { REPO_DIR: repo });
    expect(local.status).toBe(0);
    expect(local.stdout).toContain("--cache-from");
    expect(local.stdout).not.toContain("--cache-to");
  });

  test("pushing checks first that the tag does not exist yet", () => {
    const repo = fakeRepo(randomSha());
    const res = buildSh(["-r", registry, "-n"], { REPO_DIR: repo });
    const lines = res.stdout.split("\n");
    const inspect = lines.findIndex((l) => l.includes(`imagetools inspect ${registry}/image-api:`));
    const build = lines.findIndex((l) => l.includes("buildx build") && l.includes("image-api"));
    expect(inspect).toBeGreaterThanOrEqual(0);
    expect(inspect).toBeLessThan(build);
  });
});

// ---- pin-base-images.sh ---------------------------------------------------------------

describe("images/pin-base-images.sh (with a stub docker)", () => {
  /** Stub: the "digest" of a reference is sha256(reference), so the test can predict it. */
  function stubDocker(): string {
    const dir = tmpDir("stub");
    const bin = path.join(dir, "docker");
    fs.writeFileSync(
      bin,
      [
        "#!/usr/bin/env bash",
        "set -euo pipefail",
        '[[ "$1 $2 $3" == "buildx imagetools inspect" ]] || exit 3',
        'd="$(printf %s "$4" | sha256sum | cut -c1-64)"',
        'printf \'{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":1}\\n\' "$d"',
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    return bin;
  }
  const digestOf = (ref: string) => `sha256:${createHash("sha256").update(ref).digest("hex")}`;

  test.each(["api", "web"])("pins every base image of images/%s/Dockerfile and --check verifies it", (name) => {
    const dir = tmpDir("pin");
    const file = path.join(dir, "Dockerfile");
    fs.copyFileSync(path.join(IMAGES, name, "Dockerfile"), file);
    fs.writeFileSync(path.join(dir, ".dockerignore"), "*\n");
    const env = { ...process.env, DOCKER: stubDocker() };

    const before = spawnSync("bash", [PIN_SH, "--check", file], { encoding: "utf8", env });
    expect(before.status).toBe(1);
    expect(before.stdout).toMatch(/is not pinned/);

    const pin = spawnSync("bash", [PIN_SH, file], { encoding: "utf8", env });
    expect(pin.stderr).toBe("");
    expect(pin.status).toBe(0);
    const pinned = fs.readFileSync(file, "utf8");
    const refs = DockerfileParser.parse(pinned)
      .getFROMs()
      .map((f) => f.getImage()!)
      .filter((img) => img.includes(":"));
    expect(refs.length).toBeGreaterThanOrEqual(2);
    for (const ref of refs) {
      const [base, digest] = ref.split("@");
      expect(digest).toBe(digestOf(base));
    }
    expect(pinned).toMatch(new RegExp(`^# syntax=docker/dockerfile:[\\d.]+@${digestOf("docker/dockerfile:1.7")}$`, "m"));
    // Nothing else changed, and the pinned file still passes every rule.
    const original = fs.readFileSync(path.join(IMAGES, name, "Dockerfile"), "utf8");
    expect(pinned.replace(/@sha256:[0-9a-f]{64}/g, "")).toBe(original);
    expect(lintDockerfile(file)).toEqual([]);

    const after = spawnSync("bash", [PIN_SH, "--check", file], { encoding: "utf8", env });
    expect(after.status).toBe(0);
    // Re-pinning is idempotent.
    spawnSync("bash", [PIN_SH, file], { encoding: "utf8", env });
    expect(fs.readFileSync(file, "utf8")).toBe(pinned);
  });

  test("--check reports a base image whose tag moved to another digest", () => {
    const dir = tmpDir("drift");
    const file = path.join(dir, "Dockerfile");
    fs.writeFileSync(file, `FROM alpine:3.21.3@sha256:${"0".repeat(64)}\nUSER 1\n`);
    const res = spawnSync("bash", [PIN_SH, "--check", file], { encoding: "utf8", env: { ...process.env, DOCKER: stubDocker() } });
    expect(res.status).toBe(1);
    expect(res.stdout).toContain(`now resolves to ${digestOf("alpine:3.21.3")}`);
  });
});

// ---- the web image's static server -----------------------------------------------------

interface Running {
  port: number;
  proc: ReturnType<typeof spawn>;
  stdout: () => string;
}

function startServer(env: Record<string, string>): Promise<Running> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [SERVER], {
      env: { PATH: process.env.PATH ?? "", HOST: "127.0.0.1", PORT: "0", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`server did not start: ${out}${err}`));
    }, 5000);
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ port: Number(m[1]), proc, stdout: () => out });
      }
    });
    proc.stderr!.on("data", (d) => (err += d));
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${err}`));
    });
  });
}

function runToExit(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [SERVER, ...args], {
      env: { PATH: process.env.PATH ?? "", HOST: "127.0.0.1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    proc.stdout!.on("data", (d) => (stdout += d));
    proc.stderr!.on("data", (d) => (stderr += d));
    proc.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

function get(port: number, rawPath: string, method = "GET"): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    // http.request sends the path as given: `..` segments reach the server un-normalised.
    const req = http.request({ host: "127.0.0.1", port, path: rawPath, method }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function stop(r: Running): Promise<number | null> {
  return new Promise((resolve) => {
    r.proc.once("exit", (code) => resolve(code));
    r.proc.kill("SIGTERM");
  });
}

describe("images/web/server.mjs", () => {
  let root: string;
  let dist: string;
  let secret: string;
  let indexHtml: string;
  let appJs: string;
  let server: Running;
  const endpoint = `https://api-${randomBytes(4).toString("hex")}.example.org`;

  beforeAll(async () => {
    root = tmpDir("web");
    dist = path.join(root, "dist");
    fs.mkdirSync(path.join(dist, "assets"), { recursive: true });
    indexHtml = `<!doctype html><title>${randomBytes(6).toString("hex")}</title>`;
    appJs = `console.log(${JSON.stringify(randomBytes(6).toString("hex"))});`;
    secret = `secret-${randomBytes(8).toString("hex")}`;
    fs.writeFileSync(path.join(dist, "index.html"), indexHtml);
    fs.writeFileSync(path.join(dist, "assets", "app-1234.js"), appJs);
    fs.writeFileSync(path.join(dist, "assets", "style.css"), "body{}");
    fs.writeFileSync(path.join(dist, "logo.svg"), "<svg/>");
    fs.writeFileSync(path.join(dist, "config.json"), '{"endpoint":"http://localhost:8080"}');
    fs.writeFileSync(path.join(root, "secret.txt"), secret);
    fs.symlinkSync(path.join(root, "secret.txt"), path.join(dist, "link.txt"));
    server = await startServer({ STATIC_DIR: dist, API_ENDPOINT: endpoint });
  });
  afterAll(async () => {
    if (server) await stop(server);
  });

  test("writes config.json from API_ENDPOINT into the served directory and serves it", async () => {
    expect(JSON.parse(fs.readFileSync(path.join(dist, "config.json"), "utf8"))).toEqual({ endpoint });
    const res = await get(server.port, "/config.json");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    expect(res.headers["cache-control"]).toBe("no-cache");
    expect(JSON.parse(res.body)).toEqual({ endpoint });
  });

  test("serves / and falls back to index.html for client-side routes", async () => {
    for (const p of ["/", "/index.html", "/gallery/abc123", "/?x=1"]) {
      const res = await get(server.port, p);
      expect([p, res.status]).toEqual([p, 200]);
      expect(res.headers["content-type"]).toMatch(/^text\/html/);
      expect(res.body).toBe(indexHtml);
    }
  });

  test("content types and caching of assets", async () => {
    const js = await get(server.port, "/assets/app-1234.js");
    expect(js.status).toBe(200);
    expect(js.body).toBe(appJs);
    expect(js.headers["content-type"]).toMatch(/^text\/javascript/);
    expect(js.headers["cache-control"]).toContain("immutable");
    expect((await get(server.port, "/assets/style.css")).headers["content-type"]).toMatch(/^text\/css/);
    expect((await get(server.port, "/logo.svg")).headers["content-type"]).toBe("image/svg+xml");
    expect(js.headers["x-content-type-options"]).toBe("nosniff");
  });

  test("a missing file with an extension is a 404, not index.html", async () => {
    const res = await get(server.port, "/assets/missing-999.js");
    expect(res.status).toBe(404);
    expect(res.body).not.toContain(indexHtml);
  });

  test.each([
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/assets/..%2f..%2fsecret.txt",
    "/assets/../../secret.txt",
    "/..%5csecret.txt",
    "/link.txt",
    "/%00",
  ])("refuses path traversal: %s", async (p) => {
    const res = await get(server.port, p);
    expect([403, 404, 400]).toContain(res.status);
    expect(res.body).not.toContain(secret);
  });

  test("HEAD has no body; other methods are 405", async () => {
    const head = await get(server.port, "/", "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
    expect(Number(head.headers["content-length"])).toBe(Buffer.byteLength(indexHtml));
    const post = await get(server.port, "/", "POST");
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD");
  });

  test("--healthcheck succeeds against the running server and fails on a closed port", async () => {
    const ok = await runToExit(["--healthcheck"], { PORT: String(server.port) });
    expect(ok.code).toBe(0);
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const ko = await runToExit(["--healthcheck"], { PORT: String(closed) });
    expect(ko.code).not.toBe(0);
  });

  test("exits non-zero on a taken port, without switching port or touching config.json", async () => {
    const dir = tmpDir("taken");
    fs.writeFileSync(path.join(dir, "index.html"), "x");
    const before = '{"endpoint":"https://before.example.org"}';
    fs.writeFileSync(path.join(dir, "config.json"), before);
    const blocker = net.createServer();
    const port = await new Promise<number>((resolve) =>
      blocker.listen(0, "127.0.0.1", () => resolve((blocker.address() as net.AddressInfo).port)),
    );
    try {
      const res = await runToExit([], { PORT: String(port), STATIC_DIR: dir, API_ENDPOINT: endpoint });
      expect(res.code).not.toBe(0);
      expect(res.code).not.toBeNull();
      expect(res.stderr).toContain("EADDRINUSE");
      expect(res.stdout).not.toMatch(/listening on/);
      expect(fs.readFileSync(path.join(dir, "config.json"), "utf8")).toBe(before);
    } finally {
      blocker.close();
    }
  });

  test("refuses to start without an endpoint, with a bad endpoint, or with a bad PORT", async () => {
    const dir = tmpDir("cfg");
    fs.writeFileSync(path.join(dir, "index.html"), "x");
    const none = await runToExit([], { PORT: "0", STATIC_DIR: dir });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("API_ENDPOINT");
    expect((await runToExit([], { PORT: "0", STATIC_DIR: dir, API_ENDPOINT: "not a url" })).code).toBe(2);
    expect((await runToExit([], { PORT: "0", STATIC_DIR: dir, API_ENDPOINT: "ftp://x.example.org" })).code).toBe(2);
    expect((await runToExit([], { PORT: "80a", STATIC_DIR: dir, API_ENDPOINT: endpoint })).code).toBe(2);
    expect((await runToExit([], { PORT: "70000", STATIC_DIR: dir, API_ENDPOINT: endpoint })).code).toBe(2);
    expect((await runToExit([], { PORT: "0", STATIC_DIR: path.join(dir, "nope"), API_ENDPOINT: endpoint })).code).toBe(2);
    expect(fs.existsSync(path.join(dir, "config.json"))).toBe(false);
  });

  test("PUBLIC_URL is accepted when API_ENDPOINT is not set (same-origin topology)", async () => {
    const dir = tmpDir("public");
    fs.writeFileSync(path.join(dir, "index.html"), "x");
    const publicUrl = `https://team-${randomBytes(3).toString("hex")}.example.org`;
    const s = await startServer({ STATIC_DIR: dir, PUBLIC_URL: publicUrl });
    try {
      expect(JSON.parse((await get(s.port, "/config.json")).body)).toEqual({ endpoint: publicUrl });
      expect(JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"))).toEqual({ endpoint: publicUrl });
    } finally {
      expect(await stop(s)).toBe(0);
    }
  });
});
