/**
 * scripts/ci/post-comment.ts against stand-ins of the two APIs on loopback, reproducing the
 * documented endpoints: GitHub "List pull requests associated with a commit"
 * (GET /repos/{owner}/{repo}/commits/{sha}/pulls) and "Create an issue comment"
 * (POST /repos/{owner}/{repo}/issues/{number}/comments, bearer token); GitLab "List merge
 * requests associated with a commit" (GET /projects/:id/repository/commits/:sha/merge_requests)
 * and "Create new merge request note" (POST /projects/:id/merge_requests/:iid/notes,
 * PRIVATE-TOKEN header).
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { MAX_BODY, commentBody, postComment } from "../scripts/ci/post-comment";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

async function withServer(answers: Record<string, unknown>, fn: (base: string, seen: Seen[]) => Promise<void>): Promise<void> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      const key = `${req.method} ${req.url}`;
      if (!(key in answers)) {
        res.writeHead(404).end("{}");
        return;
      }
      res.writeHead(key.startsWith("POST") ? 201 : 200, { "content-type": "application/json" }).end(JSON.stringify(answers[key]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe("post-comment.ts", () => {
  test("GitHub: finds the merged pull request of the commit and comments on it with the token", async () => {
    await withServer(
      { "GET /repos/team/infra/commits/abc123/pulls": [{ number: 42 }], "POST /repos/team/infra/issues/42/comments": { id: 1 } },
      async (base, seen) => {
        const env = { GITHUB_API_URL: base, GITHUB_REPOSITORY: "team/infra", GITHUB_SHA: "abc123", GITHUB_TOKEN: "tok-gh" };
        expect(await postComment({ platform: "github", env }, "## plan")).toBe("pull request #42");
        expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(["GET /repos/team/infra/commits/abc123/pulls", "POST /repos/team/infra/issues/42/comments"]);
        expect(seen[1].headers.authorization).toBe("Bearer tok-gh");
        expect(JSON.parse(seen[1].body)).toEqual({ body: "## plan" });
      },
    );
  });

  test("GitHub: a known pull request number is used directly", async () => {
    await withServer({ "POST /repos/team/infra/issues/7/comments": { id: 1 } }, async (base, seen) => {
      const env = { GITHUB_API_URL: base, GITHUB_REPOSITORY: "team/infra", GITHUB_SHA: "abc", GITHUB_TOKEN: "t", PR_NUMBER: "7" };
      expect(await postComment({ platform: "github", env }, "x")).toBe("pull request #7");
      expect(seen).toHaveLength(1);
    });
  });

  test("GitLab: finds the merge request of the commit and posts a note with PRIVATE-TOKEN", async () => {
    await withServer(
      { "GET /projects/12/repository/commits/def456/merge_requests": [{ iid: 3 }], "POST /projects/12/merge_requests/3/notes": { id: 9 } },
      async (base, seen) => {
        const env = { CI_API_V4_URL: base, CI_PROJECT_ID: "12", CI_COMMIT_SHA: "def456", PLAN_NOTE_TOKEN: "tok-gl" };
        expect(await postComment({ platform: "gitlab", env }, "## plan")).toBe("merge request !3");
        expect(seen[1].headers["private-token"]).toBe("tok-gl");
        expect(JSON.parse(seen[1].body)).toEqual({ body: "## plan" });
      },
    );
  });

  test("a commit without a pull/merge request posts nothing; an API error names the call, never the token", async () => {
    await withServer({ "GET /projects/12/repository/commits/d/merge_requests": [] }, async (base, seen) => {
      const env = { CI_API_V4_URL: base, CI_PROJECT_ID: "12", CI_COMMIT_SHA: "d", PLAN_NOTE_TOKEN: "tok-secret" };
      expect(await postComment({ platform: "gitlab", env }, "x")).toBeUndefined();
      expect(seen).toHaveLength(1);
      const err = await postComment({ platform: "gitlab", env: { ...env, CI_MERGE_REQUEST_IID: "5" } }, "x").catch((e: Error) => e.message);
      expect(err).toBe(`POST ${base}/projects/12/merge_requests/5/notes: HTTP 404`);
      expect(String(err)).not.toContain("tok-secret");
    });
  });

  test("the body joins the files and stays within GitHub's comment limit", () => {
    expect(commentBody(["a\n\n", "b\n"])).toBe("a\n\nb");
    const long = commentBody(["x".repeat(MAX_BODY + 10)]);
    expect(long.length).toBeLessThan(65_536);
    expect(long).toMatch(/cut: the full text is in the job's artifact\)$/);
  });
});
