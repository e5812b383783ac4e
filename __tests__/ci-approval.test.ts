/**
 * scripts/ci/check-approval.ts: the deploy goes on only for the merge of a pull/merge request
 * that someone other than its author approved. Against recorded API answers
 * (fixtures/approval/, in the documented shapes) served from a loopback HTTP server that
 * also checks the token is sent as each platform expects: GitHub `Authorization: Bearer`,
 * GitLab `PRIVATE-TOKEN`.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { checkApproval } from "../scripts/ci/check-approval";

const ROOT = path.resolve(__dirname, "..");
const FIXTURES = path.join(__dirname, "fixtures", "approval");
const MERGE = "c0ffee00d15ea5e0000000000000000000000042";
const GH_TOKEN = "ghs_jobtoken000000000000000000000000";
const GL_TOKEN = "glpat-approvalcheck00000000";

/** Serves `routes` (path with query → fixture file) when the platform's token is sent; 401 otherwise, 404 for anything else. */
async function withApi(routes: Record<string, string>, fn: (base: string, seen: string[]) => Promise<void>): Promise<void> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? "");
    const authorized = req.headers.authorization === `Bearer ${GH_TOKEN}` || req.headers["private-token"] === GL_TOKEN;
    if (!authorized) return void res.writeHead(401, { "content-type": "application/json" }).end('{"message":"Bad credentials"}');
    const fixture = routes[req.url ?? ""];
    if (!fixture) return void res.writeHead(404, { "content-type": "application/json" }).end('{"message":"Not Found"}');
    res.writeHead(200, { "content-type": "application/json" }).end(fs.readFileSync(path.join(FIXTURES, fixture)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const ghEnv = (base: string, token = GH_TOKEN) => ({ GITHUB_API_URL: base, GITHUB_REPOSITORY: "team/infra", GITHUB_SHA: MERGE, GITHUB_TOKEN: token, DEPLOY_BRANCH: "main" });
const glEnv = (base: string) => ({ CI_API_V4_URL: `${base}/api/v4`, CI_PROJECT_ID: "42", CI_COMMIT_SHA: MERGE, APPROVAL_CHECK_TOKEN: GL_TOKEN, DEPLOY_BRANCH: "main" });
const PULLS = `/repos/team/infra/commits/${MERGE}/pulls`;
const REVIEWS = "/repos/team/infra/pulls/42/reviews?per_page=100&page=1";
const REVIEWS_2 = "/repos/team/infra/pulls/42/reviews?per_page=100&page=2";
const MRS = `/api/v4/projects/42/repository/commits/${MERGE}/merge_requests`;
const APPROVALS = "/api/v4/projects/42/merge_requests/7/approvals";

describe("check-approval.ts, GitHub", () => {
  test("approved by another reviewer, of the merged head: passes, naming them", async () => {
    await withApi({ [PULLS]: "github-pulls-merged.json", [REVIEWS]: "github-reviews-approved.json" }, async (base) => {
      expect(await checkApproval("github", ghEnv(base))).toEqual({
        ok: true,
        message: "pull request #42 by alice was approved by bob (of its merged head 9f2c4e1b7a3d5f60818293a4b5c6d7e8f9012345)",
      });
    });
  });

  test("nobody but the author approved (comments only): refused", async () => {
    await withApi({ [PULLS]: "github-pulls-merged.json", [REVIEWS]: "github-reviews-author-only.json" }, async (base) => {
      const v = await checkApproval("github", ghEnv(base));
      expect(v.ok).toBe(false);
      expect(v.message).toBe("pull request #42 by alice has no approval from anyone other than its author: refusing to plan. Revert it, or have it reviewed in a new pull request");
    });
  });

  test("an approval of an earlier push, then more commits: refused (what came after is unreviewed)", async () => {
    await withApi({ [PULLS]: "github-pulls-merged.json", [REVIEWS]: "github-reviews-stale-approval.json" }, async (base) => {
      const v = await checkApproval("github", ghEnv(base));
      expect(v.ok).toBe(false);
      expect(v.message).toContain("bob approved 1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d, but the merged head is 9f2c4e1b7a3d5f60818293a4b5c6d7e8f9012345");
    });
  });

  test("an approval withdrawn by a later 'changes requested' (a later comment does not restore it): refused", async () => {
    await withApi({ [PULLS]: "github-pulls-merged.json", [REVIEWS]: "github-reviews-approval-withdrawn.json" }, async (base) => {
      expect((await checkApproval("github", ghEnv(base))).ok).toBe(false);
    });
  });

  test("reviews on a second page are read (per_page=100)", async () => {
    const routes = { [PULLS]: "github-pulls-merged.json", [REVIEWS]: "github-reviews-page-1.json", [REVIEWS_2]: "github-reviews-page-2.json" };
    await withApi(routes, async (base, seen) => {
      expect((await checkApproval("github", ghEnv(base))).ok).toBe(true);
      expect(seen).toEqual([PULLS, REVIEWS, REVIEWS_2]);
    });
  });

  test("a commit pushed directly, or one belonging only to an open or other-branch pull request: refused", async () => {
    await withApi({ [PULLS]: "github-pulls-none.json" }, async (base) => {
      expect((await checkApproval("github", ghEnv(base))).message).toContain(`commit ${MERGE} is not the merge of a pull request into main (pushed directly)`);
    });
    await withApi({ [PULLS]: "github-pulls-open-other-base.json" }, async (base) => {
      expect((await checkApproval("github", ghEnv(base))).message).toContain("(it belongs to #43 (not merged), #44 (into release))");
    });
  });

  test("a refused token or a missing one: refused, naming the call, never the token", async () => {
    await withApi({}, async (base) => {
      const v = await checkApproval("github", ghEnv(base, "ghs_wrong"));
      expect(v).toEqual({ ok: false, message: `cannot check who approved this change: GET ${base}${PULLS}: HTTP 401; refusing to plan` });
      const none = await checkApproval("github", { ...ghEnv(base), GITHUB_TOKEN: "" });
      expect(none.message).toContain("GITHUB_TOKEN is not set");
    });
  });
});

describe("check-approval.ts, GitLab", () => {
  test("merged and approved by someone else (the author's own approval aside): passes", async () => {
    await withApi({ [MRS]: "gitlab-mrs-merged.json", [APPROVALS]: "gitlab-approvals-other.json" }, async (base) => {
      expect(await checkApproval("gitlab", glEnv(base))).toEqual({ ok: true, message: "merge request !7 by alice was approved by bob" });
    });
  });

  test("a squash merge is found by its squash commit", async () => {
    await withApi({ [MRS]: "gitlab-mrs-squashed.json", ["/api/v4/projects/42/merge_requests/8/approvals"]: "gitlab-approvals-other.json" }, async (base) => {
      expect((await checkApproval("gitlab", glEnv(base))).ok).toBe(true);
    });
  });

  test("approved only by its author, or by nobody: refused", async () => {
    await withApi({ [MRS]: "gitlab-mrs-merged.json", [APPROVALS]: "gitlab-approvals-author-only.json" }, async (base) => {
      expect((await checkApproval("gitlab", glEnv(base))).message).toBe(
        "merge request !7 by alice has no approval from anyone other than its author (only its author approved it): refusing to plan. Revert it, or have it reviewed in a new merge request",
      );
    });
    await withApi({ [MRS]: "gitlab-mrs-merged.json", [APPROVALS]: "gitlab-approvals-none.json" }, async (base) => {
      expect((await checkApproval("gitlab", glEnv(base))).ok).toBe(false);
    });
  });

  test("pushed directly, or only in an open merge request: refused", async () => {
    await withApi({ [MRS]: "gitlab-mrs-none.json" }, async (base) => {
      expect((await checkApproval("gitlab", glEnv(base))).message).toContain("(pushed directly)");
    });
    await withApi({ [MRS]: "gitlab-mrs-open.json" }, async (base) => {
      expect((await checkApproval("gitlab", glEnv(base))).message).toContain("(it belongs to !9 (opened, into main))");
    });
  });
});

test("the command: exit 1 with the reason on stderr when refused, exit 0 when approved; the token is never printed", async () => {
  const run = (env: Record<string, string>) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(path.join(ROOT, "node_modules", ".bin", "tsx"), [path.join(ROOT, "scripts", "ci", "check-approval.ts"), "github"], { env: { ...process.env, ...env } });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      child.on("exit", (code) => resolve({ code, out }));
    });
  await withApi({ [PULLS]: "github-pulls-merged.json", [REVIEWS]: "github-reviews-author-only.json" }, async (base) => {
    const refused = await run(ghEnv(base));
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/^error: pull request #42 by alice has no approval from anyone other than its author/);
    expect(refused.out).not.toContain(GH_TOKEN);
  });
  await withApi({ [PULLS]: "github-pulls-merged.json", [REVIEWS]: "github-reviews-approved.json" }, async (base) => {
    const ok = await run(ghEnv(base));
    expect(ok).toEqual({ code: 0, out: "two people: pull request #42 by alice was approved by bob (of its merged head 9f2c4e1b7a3d5f60818293a4b5c6d7e8f9012345)\n" });
  });
}, 60_000);
