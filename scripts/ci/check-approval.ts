/**
 * Two people for every change that reaches the deploy: before planning, the commit must be
 * the merge of a pull/merge request into the deploy branch that someone other than its
 * author approved; else the job stops, saying why. Where the platform enforces reviews
 * (docs/ci.md, "Two people"), this passes by construction; where it does not (GitHub Free
 * private repositories, GitLab Free), it is the check.
 *
 *   npx tsx scripts/ci/check-approval.ts github|gitlab
 *
 * GitHub, with the job's token (GITHUB_TOKEN, `pull-requests: read`): "List pull requests
 * associated with a commit" (GET /repos/{owner}/{repo}/commits/{sha}/pulls) → the merged pull
 * request into DEPLOY_BRANCH whose merge commit is this one; "List reviews for a pull
 * request" (GET /repos/{owner}/{repo}/pulls/{n}/reviews, every page). Counted: a reviewer
 * other than the author whose latest deciding review (APPROVED, CHANGES_REQUESTED or
 * DISMISSED; COMMENTED does not change it) is APPROVED **of the merged head commit**
 * (`commit_id` = the pull request's `head.sha`): an approval of an earlier push does not
 * cover what was pushed after it.
 *
 * GitLab: "List merge requests associated with a commit" (GET /projects/:id/repository/
 * commits/:sha/merge_requests) → the merged merge request into DEPLOY_BRANCH whose merge,
 * squash or (fast-forward) head commit is this one; "Get the approval state of a merge
 * request" (GET /projects/:id/merge_requests/:iid/approvals) → `approved_by[].user` other than
 * `author`. GitLab's job token cannot read merge requests (its allowed endpoints do not
 * include them), so this reads with APPROVAL_CHECK_TOKEN: a project access token, role
 * Reporter, scope read_api. GitLab does not say which commit an approval saw: enable
 * "Remove all approvals when commits are added" (docs/ci.md) so that it is always the last.
 *
 * Exit 0: approved; 1: refused (the reason on stderr). Tokens never appear in the output.
 */

export interface Verdict {
  ok: boolean;
  /** One line: who approved what, or why it is refused. */
  message: string;
}

type Env = NodeJS.ProcessEnv;

class Refusal extends Error {}

function need(env: Env, name: string, why: string): string {
  const v = env[name];
  if (!v) throw new Refusal(`${name} is not set (${why})`);
  return v;
}

async function getJson(url: string, headers: Record<string, string>): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { ...headers, accept: "application/json" } });
  } catch (e) {
    throw new Refusal(`GET ${url}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!res.ok) throw new Refusal(`GET ${url}: HTTP ${res.status}`);
  return res.json();
}

interface GithubPull {
  number: number;
  user: { login: string };
  merged_at: string | null;
  merge_commit_sha: string | null;
  base: { ref: string };
  head: { sha: string };
}
interface GithubReview {
  user: { login: string } | null;
  state: string;
  commit_id: string;
}

async function github(env: Env): Promise<Verdict> {
  const api = need(env, "GITHUB_API_URL", "set by GitHub Actions").replace(/\/$/, "");
  const repo = need(env, "GITHUB_REPOSITORY", "set by GitHub Actions");
  const sha = need(env, "GITHUB_SHA", "set by GitHub Actions");
  const branch = need(env, "DEPLOY_BRANCH", "the default branch");
  const headers = { authorization: `Bearer ${need(env, "GITHUB_TOKEN", "the job's token, with pull-requests: read")}`, "x-github-api-version": "2022-11-28" };
  const pulls = (await getJson(`${api}/repos/${repo}/commits/${sha}/pulls`, headers)) as GithubPull[];
  const pr = pulls.find((p) => p.merged_at && p.base.ref === branch && p.merge_commit_sha === sha);
  if (!pr) {
    const others = pulls.map((p) => `#${p.number}${p.merged_at ? "" : " (not merged)"}${p.base.ref === branch ? "" : ` (into ${p.base.ref})`}`).join(", ");
    return { ok: false, message: `commit ${sha} is not the merge of a pull request into ${branch}${others ? ` (it belongs to ${others})` : " (pushed directly)"}: nobody else reviewed it; refusing to plan. Changes reach the deploy through an approved pull request` };
  }
  const reviews: GithubReview[] = [];
  for (let page = 1; ; page++) {
    const batch = (await getJson(`${api}/repos/${repo}/pulls/${pr.number}/reviews?per_page=100&page=${page}`, headers)) as GithubReview[];
    reviews.push(...batch);
    if (batch.length < 100) break;
  }
  // Reviews come oldest first; a reviewer's latest deciding review counts.
  const latest = new Map<string, GithubReview>();
  for (const r of reviews) {
    if (!r.user || !["APPROVED", "CHANGES_REQUESTED", "DISMISSED"].includes(r.state)) continue;
    latest.set(r.user.login, r);
  }
  const author = pr.user.login;
  const approvals = [...latest.entries()].filter(([login, r]) => login !== author && r.state === "APPROVED");
  const ofHead = approvals.filter(([, r]) => r.commit_id === pr.head.sha);
  if (ofHead.length > 0) {
    return { ok: true, message: `pull request #${pr.number} by ${author} was approved by ${ofHead.map(([l]) => l).join(", ")} (of its merged head ${pr.head.sha})` };
  }
  if (approvals.length > 0) {
    return { ok: false, message: `pull request #${pr.number} by ${author}: ${approvals.map(([l, r]) => `${l} approved ${r.commit_id}`).join(", ")}, but the merged head is ${pr.head.sha}: what was pushed after the approval is unreviewed; refusing to plan (revert, or merge a new pull request approved as it is)` };
  }
  const selfOnly = latest.get(author)?.state === "APPROVED" ? " (only its author approved it)" : "";
  return { ok: false, message: `pull request #${pr.number} by ${author} has no approval from anyone other than its author${selfOnly}: refusing to plan. Revert it, or have it reviewed in a new pull request` };
}

interface GitlabMergeRequest {
  iid: number;
  state: string;
  target_branch: string;
  author: { id: number; username: string };
  sha: string;
  merge_commit_sha: string | null;
  squash_commit_sha: string | null;
}
interface GitlabApprovals {
  approved_by: { user: { id: number; username: string } }[];
}

async function gitlab(env: Env): Promise<Verdict> {
  const api = need(env, "CI_API_V4_URL", "set by GitLab CI").replace(/\/$/, "");
  const project = encodeURIComponent(need(env, "CI_PROJECT_ID", "set by GitLab CI"));
  const sha = need(env, "CI_COMMIT_SHA", "set by GitLab CI");
  const branch = need(env, "DEPLOY_BRANCH", "the default branch");
  const headers = { "private-token": need(env, "APPROVAL_CHECK_TOKEN", "a project access token, role Reporter, scope read_api: docs/ci.md") };
  const mrs = (await getJson(`${api}/projects/${project}/repository/commits/${sha}/merge_requests`, headers)) as GitlabMergeRequest[];
  const mr = mrs.find((m) => m.state === "merged" && m.target_branch === branch && [m.merge_commit_sha, m.squash_commit_sha, m.sha].includes(sha));
  if (!mr) {
    const others = mrs.map((m) => `!${m.iid} (${m.state}, into ${m.target_branch})`).join(", ");
    return { ok: false, message: `commit ${sha} is not the merge of a merge request into ${branch}${others ? ` (it belongs to ${others})` : " (pushed directly)"}: nobody else reviewed it; refusing to plan. Changes reach the deploy through an approved merge request` };
  }
  const approvals = (await getJson(`${api}/projects/${project}/merge_requests/${mr.iid}/approvals`, headers)) as GitlabApprovals;
  const others = (approvals.approved_by ?? []).map((a) => a.user).filter((u) => u.id !== mr.author.id);
  if (others.length > 0) {
    return { ok: true, message: `merge request !${mr.iid} by ${mr.author.username} was approved by ${others.map((u) => u.username).join(", ")}` };
  }
  const selfOnly = (approvals.approved_by ?? []).some((a) => a.user.id === mr.author.id) ? " (only its author approved it)" : "";
  return { ok: false, message: `merge request !${mr.iid} by ${mr.author.username} has no approval from anyone other than its author${selfOnly}: refusing to plan. Revert it, or have it reviewed in a new merge request` };
}

export async function checkApproval(platform: "github" | "gitlab", env: Env): Promise<Verdict> {
  try {
    return platform === "github" ? await github(env) : await gitlab(env);
  } catch (e) {
    if (e instanceof Refusal) return { ok: false, message: `cannot check who approved this change: ${e.message}; refusing to plan` };
    throw e;
  }
}

async function main(argv: string[]): Promise<void> {
  const [platform] = argv;
  if (platform !== "github" && platform !== "gitlab") {
    console.error("usage: check-approval.ts github|gitlab");
    process.exitCode = 2;
    return;
  }
  const verdict = await checkApproval(platform, process.env);
  if (verdict.ok) console.log(`two people: ${verdict.message}`);
  else console.error(`error: ${verdict.message}`);
  process.exitCode = verdict.ok ? 0 : 1;
}

if (require.main === module) void main(process.argv.slice(2));
