/**
 * Posts the plan review (Markdown files, concatenated) as a comment on the pull request
 * (GitHub) or merge request (GitLab) a commit belongs to: the one being tested, or, on the
 * default branch, the one that was merged into it.
 *
 *   npx tsx scripts/ci/post-comment.ts github|gitlab FILE...
 *
 * GitHub: GITHUB_TOKEN (pull-requests: write), GITHUB_API_URL, GITHUB_REPOSITORY, GITHUB_SHA,
 * PR_NUMBER when known. GitLab: PLAN_NOTE_TOKEN (a project access token, api scope: the job
 * token cannot write notes), CI_API_V4_URL, CI_PROJECT_ID, CI_COMMIT_SHA, CI_MERGE_REQUEST_IID
 * when known. A failure to comment is a warning, never a failed job: the same text is in
 * the job's log and artifact. The token never appears in the output.
 */
import * as fs from "node:fs";

/** Platform comment limits: GitHub refuses bodies over 65,536 characters. */
export const MAX_BODY = 60_000;

export interface CommentTarget {
  platform: "github" | "gitlab";
  env: NodeJS.ProcessEnv;
}

export function commentBody(texts: string[]): string {
  const body = texts.map((t) => t.trimEnd()).join("\n\n");
  return body.length <= MAX_BODY ? body : `${body.slice(0, MAX_BODY)}\n\n… (cut: the full text is in the job's artifact)`;
}

function need(env: NodeJS.ProcessEnv, name: string): string {
  const v = env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

async function call(url: string, headers: Record<string, string>, body?: unknown): Promise<unknown> {
  const res = await fetch(url, {
    method: body === undefined ? "GET" : "POST",
    headers: { ...headers, "content-type": "application/json", accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${body === undefined ? "GET" : "POST"} ${url}: HTTP ${res.status}`);
  return res.json();
}

/** Posts the comment; returns where, or undefined when the commit belongs to no request. */
export async function postComment({ platform, env }: CommentTarget, body: string): Promise<string | undefined> {
  if (platform === "github") {
    const api = need(env, "GITHUB_API_URL").replace(/\/$/, "");
    const repo = need(env, "GITHUB_REPOSITORY");
    const headers = { authorization: `Bearer ${need(env, "GITHUB_TOKEN")}`, "x-github-api-version": "2022-11-28" };
    let pr = env.PR_NUMBER;
    if (!pr) {
      const pulls = (await call(`${api}/repos/${repo}/commits/${need(env, "GITHUB_SHA")}/pulls`, headers)) as { number: number }[];
      pr = pulls[0]?.number?.toString();
    }
    if (!pr) return undefined;
    await call(`${api}/repos/${repo}/issues/${pr}/comments`, headers, { body });
    return `pull request #${pr}`;
  }
  const api = need(env, "CI_API_V4_URL").replace(/\/$/, "");
  const project = encodeURIComponent(need(env, "CI_PROJECT_ID"));
  const headers = { "private-token": need(env, "PLAN_NOTE_TOKEN") };
  let iid = env.CI_MERGE_REQUEST_IID;
  if (!iid) {
    const mrs = (await call(`${api}/projects/${project}/repository/commits/${need(env, "CI_COMMIT_SHA")}/merge_requests`, headers)) as { iid: number }[];
    iid = mrs[0]?.iid?.toString();
  }
  if (!iid) return undefined;
  await call(`${api}/projects/${project}/merge_requests/${iid}/notes`, headers, { body });
  return `merge request !${iid}`;
}

async function main(argv: string[]): Promise<void> {
  const [platform, ...files] = argv;
  if ((platform !== "github" && platform !== "gitlab") || files.length === 0) {
    console.error("usage: post-comment.ts github|gitlab FILE...");
    process.exitCode = 2;
    return;
  }
  const body = commentBody(files.filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f, "utf8")));
  try {
    const where = await postComment({ platform, env: process.env }, body);
    console.log(where ? `plan review posted on ${where}` : "no pull/merge request for this commit: nothing posted");
  } catch (e) {
    console.log(`warning: the plan review was not posted (${e instanceof Error ? e.message : String(e)}); it is in the job log and artifact`);
  }
}

if (require.main === module) void main(process.argv.slice(2));
