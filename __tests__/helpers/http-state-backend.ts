/**
 * A stand-in for GitLab's Terraform state API (the HTTP backend the templates use), on
 * loopback, in its own process (the tests run Terraform synchronously). It answers as
 * GitLab's code does (lib/api/terraform/state.rb and app/services/terraform/
 * remote_state_handler.rb), with basic auth:
 * - `GET /state/:name`: 200 with the latest state, 204 when there is none;
 * - `POST /state/:name?ID=<lock id>`: stores a new version; 409 unless the lock matches
 *   (unlocked and no ID, or locked by that ID);
 * - `GET /state/:name/versions/:serial`: that version (GitLab keeps every version);
 * - `POST /state/:name/lock` with Terraform's lock info (JSON): 200 when free; when held,
 *   the holder's ID, Who and Created in the body with status 409 (GitLab) or, with
 *   `lockedStatus: 423`, 423 Locked as other HTTP state services answer (Terraform's HTTP
 *   client reads both alike);
 * - `DELETE /state/:name/lock`: with an `ID` in the JSON body, unlocks only when it is the
 *   holder's (else 409, nothing released); **without an ID it unlocks whatever lock is held**
 *   ("force-unlock does not pass ID, so we ignore it if it is missing").
 * Every request is logged (method, path, status, the ID sent; never the credentials).
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const SERVER = String.raw`
const http = require("http");
const fs = require("fs");
const path = require("path");
const [dir, user, pass, lockedStatus] = process.argv.slice(1);
const file = (name, what) => path.join(dir, encodeURIComponent(name) + "." + what);
const read = (f) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8") : undefined);
const log = (entry) => fs.appendFileSync(path.join(dir, "requests.log"), JSON.stringify(entry) + "\n");
const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const url = new URL(req.url, "http://state");
    const send = (code, text, type = "application/json") => {
      log({ method: req.method, path: url.pathname, status: code, id: url.searchParams.get("ID") || bodyId() });
      res.writeHead(code, { "content-type": type });
      res.end(text);
    };
    const bodyId = () => { try { return JSON.parse(body).ID; } catch { return undefined; } };
    const auth = "Basic " + Buffer.from(user + ":" + pass).toString("base64");
    if (req.headers.authorization !== auth) return send(401, JSON.stringify({ message: "401 Unauthorized" }));
    const m = /^\/state\/([^/]+)(\/lock|\/versions\/(\d+))?$/.exec(url.pathname);
    if (!m) return send(404, JSON.stringify({ message: "404 Not Found" }));
    const name = decodeURIComponent(m[1]);
    const lock = read(file(name, "lock"));
    const holder = lock ? JSON.parse(lock) : undefined;
    if (m[3] !== undefined) {
      const v = read(file(name, "v" + m[3]));
      return v === undefined ? send(404, JSON.stringify({ message: "404 Not Found" })) : send(200, v);
    }
    if (m[2] === "/lock") {
      if (req.method === "POST") {
        const info = JSON.parse(body);
        if (holder) {
          // GitLab: the requester's Operation/Info/Version/Path, the holder's ID/Who/Created.
          return send(Number(lockedStatus), JSON.stringify({ Operation: info.Operation, Info: info.Info, Version: info.Version, Path: info.Path, ID: holder.ID, Who: holder.Who, Created: holder.Created }));
        }
        fs.writeFileSync(file(name, "lock"), JSON.stringify({ ID: info.ID, Who: info.Who || user, Created: info.Created || new Date().toISOString() }));
        return send(200, JSON.stringify({ ...info, Who: info.Who || user }));
      }
      if (req.method === "DELETE") {
        const id = bodyId();
        if (holder && id !== undefined && id !== holder.ID) return send(409, JSON.stringify({ message: "409 Conflict" }));
        fs.rmSync(file(name, "lock"), { force: true });
        return send(200, "");
      }
      return send(405, "");
    }
    if (req.method === "GET") {
      const latest = read(file(name, "latest"));
      return latest === undefined ? send(204, "") : send(200, latest);
    }
    if (req.method === "POST") {
      const id = url.searchParams.get("ID");
      const matches = holder ? id === holder.ID : !id;
      if (!matches) return send(409, JSON.stringify({ message: "409 Conflict" }));
      const serial = JSON.parse(body).serial;
      fs.writeFileSync(file(name, "latest"), body);
      fs.writeFileSync(file(name, "v" + serial), body);
      return send(200, "");
    }
    if (req.method === "DELETE") {
      for (const f of fs.readdirSync(dir)) if (f.startsWith(encodeURIComponent(name) + ".")) fs.rmSync(path.join(dir, f));
      return send(200, "");
    }
    send(405, "");
  });
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`;

export interface StateRequest {
  method: string;
  path: string;
  status: number;
  id?: string;
}

export interface StateBackend {
  /** e.g. http://127.0.0.1:PORT/state: TF_STATE_HTTP_BASE */
  base: string;
  username: string;
  password: string;
  /** The Terraform environment for one state (what scripts/ci/lib.sh http_state_env sets). */
  env(name: string): Record<string, string>;
  /** The lock held on a state, as stored: undefined when free. */
  lock(name: string): { ID: string; Who: string; Created: string } | undefined;
  /** Takes the lock as a run that then dies would (POST /lock). Returns the HTTP status. */
  hold(name: string, id: string, who?: string): Promise<number>;
  latest(name: string): { serial: number; lineage: string; resources: { type: string; name: string; instances: { status?: string }[] }[] } | undefined;
  requests(): StateRequest[];
  stop(): Promise<void>;
}

export async function startStateBackend(dir: string, opts: { lockedStatus?: 409 | 423 } = {}): Promise<StateBackend> {
  const data = path.join(dir, "state-backend");
  fs.mkdirSync(data, { recursive: true });
  fs.writeFileSync(path.join(data, "requests.log"), "");
  const username = "state-bot";
  const password = "state-password-5d1c";
  const child: ChildProcess = spawn(process.execPath, ["-e", SERVER, data, username, password, String(opts.lockedStatus ?? 409)], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once("exit", (code) => reject(new Error(`state backend stand-in exited (${code})`)));
  });
  const base = `http://127.0.0.1:${port}/state`;
  const file = (name: string, what: string) => path.join(data, `${encodeURIComponent(name)}.${what}`);
  const authHeader = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
  return {
    base,
    username,
    password,
    env: (name) => ({
      TF_HTTP_ADDRESS: `${base}/${name}`,
      TF_HTTP_LOCK_ADDRESS: `${base}/${name}/lock`,
      TF_HTTP_UNLOCK_ADDRESS: `${base}/${name}/lock`,
      TF_HTTP_LOCK_METHOD: "POST",
      TF_HTTP_UNLOCK_METHOD: "DELETE",
      TF_HTTP_USERNAME: username,
      TF_HTTP_PASSWORD: password,
    }),
    lock: (name) => (fs.existsSync(file(name, "lock")) ? JSON.parse(fs.readFileSync(file(name, "lock"), "utf8")) : undefined),
    hold: async (name, id, who = "ci-job-4711") => {
      const res = await fetch(`${base}/${name}/lock`, {
        method: "POST",
        headers: { authorization: authHeader, "content-type": "application/json" },
        body: JSON.stringify({ ID: id, Operation: "OperationTypeApply", Info: "", Who: who, Version: "1.11.4", Created: new Date().toISOString(), Path: "" }),
      });
      await res.text();
      return res.status;
    },
    latest: (name) => (fs.existsSync(file(name, "latest")) ? JSON.parse(fs.readFileSync(file(name, "latest"), "utf8")) : undefined),
    requests: () => fs.readFileSync(path.join(data, "requests.log"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        process.kill(child.pid as number, "SIGTERM");
      }),
  };
}
