/**
 * ci-templates/CODEOWNERS: every path that reaches the deploy (the workflows, the GitLab CI
 * files, scripts/ci/, the templates, the npm lock file, the provider lock files, the deployed
 * description, CODEOWNERS itself) is owned by the deployers, under GitHub's and GitLab's rule
 * that the last matching pattern wins. The matching below implements the subset of the
 * gitignore-style syntax the file uses (leading `/` anchors, a trailing `/` owns a directory's
 * contents, `*` alone owns everything), and is itself checked on a file that misses a path.
 */
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.resolve(__dirname, "..");
const TEAM = "@your-org/deployers";

function rules(text: string): { pattern: string; owners: string[] }[] {
  return text
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter(Boolean)
    .map((l) => {
      const [pattern, ...owners] = l.split(/\s+/);
      return { pattern, owners };
    });
}

function matches(pattern: string, file: string): boolean {
  if (pattern === "*") return true;
  if (!pattern.startsWith("/")) throw new Error(`pattern ${pattern}: only anchored patterns are used here`);
  const p = pattern.slice(1);
  return p.endsWith("/") ? file.startsWith(p) : file === p;
}

/** The owners of a file: the last matching rule's (GitHub and GitLab alike). */
function ownersOf(text: string, file: string): string[] {
  let owners: string[] = [];
  for (const r of rules(text)) if (matches(r.pattern, file)) owners = r.owners;
  return owners;
}

/** The paths of an operator's copy that decide what the deploy runs. */
const DEPLOY_PATHS = [
  ".github/workflows/deploy.yml",
  ".github/workflows/ci.yml",
  ".github/CODEOWNERS",
  ".gitlab-ci.yml",
  ".gitlab/terraform.gitlab-ci.yml",
  ".gitlab/deploy.gitlab-ci.yml",
  ".gitlab/CODEOWNERS",
  "CODEOWNERS",
  "package.json",
  "package-lock.json",
  "clusters/deployed",
  ...fs.readdirSync(path.join(ROOT, "scripts", "ci")).map((f) => `scripts/ci/${f}`),
  ...fs.readdirSync(path.join(ROOT, "terraform-locks")).map((f) => `terraform-locks/${f}`),
  ...fs.readdirSync(path.join(ROOT, "ci-templates"), { recursive: true, encoding: "utf8" }).map((f) => `ci-templates/${f}`),
];

describe("ci-templates/CODEOWNERS", () => {
  const text = fs.readFileSync(path.join(ROOT, "ci-templates", "CODEOWNERS"), "utf8");

  test("every path that reaches the deploy is owned by the deployers", () => {
    for (const file of DEPLOY_PATHS) expect([file, ownersOf(text, file)]).toEqual([file, [TEAM]]);
    // …and so is any other file (it runs in the plan job through npx cdktf synth).
    expect(ownersOf(text, "constructs/render/haproxy.ts")).toEqual([TEAM]);
  });

  test("the check catches a file whose later rule leaves a path unowned", () => {
    const bad = `${text}\n/scripts/ci/apply.sh\n`;
    expect(ownersOf(bad, "scripts/ci/apply.sh")).toEqual([]);
    expect(ownersOf("/docs/ @someone\n", ".github/workflows/deploy.yml")).toEqual([]);
  });
});
