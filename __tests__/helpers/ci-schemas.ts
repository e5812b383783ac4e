/**
 * The official CI configuration schemas and validators, from npm packages only (nothing
 * fetched at test time):
 * - GitHub Actions: GitHub's own workflow schema (workflow-v1.0.json) and parser,
 *   `@actions/workflow-parser` (the parser of GitHub's Actions language services: schema,
 *   expressions, job and step structure), run by github-workflow-check.mjs (ES module only).
 * - GitLab CI, with ajv: GitLab's own ci.json (gitlab-org/gitlab, app/assets/javascripts/editor/schema,
 *   the schema of GitLab's pipeline editor), as bundled by `gitlab-ci-local`, which validates
 *   pipelines with it. The package ships it inside its bundle as an object literal: we cut
 *   that literal out and evaluate it alone (pure data: a literal fails to evaluate if it
 *   refers to anything). gitlab-ci-local's own relaxations are applied after the literal,
 *   in code we do not run, so this is GitLab's schema unchanged.
 * Formats (uri, …) are not checked: ajv needs a plugin for them, and none matters here.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from "ajv";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

function packageDir(name: string): string {
  return path.dirname(require.resolve(`${name}/package.json`));
}

/** GitHub's parser's errors for a workflow file (empty when valid). */
export function githubWorkflowErrors(file: string): string[] {
  const res = spawnSync(process.execPath, ["--import", "tsx", path.join(__dirname, "github-workflow-check.mjs"), file], { encoding: "utf8", cwd: path.join(__dirname, "..", "..") });
  if (res.status !== 0) throw new Error(`github-workflow-check.mjs failed: ${res.stderr}`);
  return JSON.parse(res.stdout)[file];
}

const GITLAB_SCHEMA_START = '{$schema:"http://json-schema.org/draft-07/schema#",$id:"https://gitlab.com/.gitlab-ci.yml"';

/** Cut the object literal starting at `start` out of JavaScript source: braces outside strings. */
export function objectLiteralAt(source: string, start: number): string {
  let depth = 0;
  let quote: string | undefined;
  for (let i = start; i < source.length; i++) {
    const c = source[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'" || c === "`") quote = c;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return source.slice(start, i + 1);
  }
  throw new Error("unterminated object literal");
}

export function gitlabCiSchema(): Record<string, unknown> {
  const bundle = fs.readFileSync(path.join(packageDir("gitlab-ci-local"), "dist", "index.js"), "utf8");
  const start = bundle.indexOf(GITLAB_SCHEMA_START);
  if (start < 0) throw new Error("GitLab's CI schema not found in gitlab-ci-local's bundle (package version changed?)");
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function(`"use strict"; return (${objectLiteralAt(bundle, start)});`)() as Record<string, unknown>;
}

function compile(schema: Record<string, unknown>): ValidateFunction {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  return ajv.compile(schema);
}

let gitlab: ValidateFunction | undefined;

/** Errors of a parsed .gitlab-ci.yml against GitLab's schema, as "path: message" lines (empty when valid). */
export function gitlabCiErrors(doc: unknown): string[] {
  const validate = (gitlab ??= compile(gitlabCiSchema()));
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e: ErrorObject) => `${e.instancePath || "/"}: ${e.message} ${JSON.stringify(e.params)}`);
}
