#!/usr/bin/env node
// Minimal, dependency-free static file server for the image-hosting frontend (web/dist).
//
// At start it writes `config.json` ({"endpoint": ...}) into the served directory from
// API_ENDPOINT (or PUBLIC_URL), then serves the directory on $PORT. It never switches
// port: if $PORT is taken it exits non-zero so Nomad reschedules/reports the failure.
//
//   PORT          port to listen on (default 8080; 0 = any free port, for tests)
//   HOST          address to bind (default 0.0.0.0)
//   STATIC_DIR    directory to serve (default ./dist next to this script)
//   API_ENDPOINT  public URL of the backend, written to config.json (required,
//                 PUBLIC_URL is accepted as a fallback for the same-origin topology)
//
//   node server.mjs --healthcheck   GET http://127.0.0.1:$PORT/config.json, exit 0 if 200
import { createServer, request } from "node:http";
import { createReadStream, promises as fsp } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".avif": "image/avif",
  ".ico": "image/x-icon",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".wasm": "application/wasm",
  ".webmanifest": "application/manifest+json",
};

function log(message) {
  process.stdout.write(`${new Date().toISOString()} ${message}\n`);
}

function fail(message, code = 1) {
  process.stderr.write(`server.mjs: ${message}\n`);
  process.exit(code);
}

function parsePort(raw) {
  const value = raw === undefined || raw === "" ? "8080" : raw;
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) {
    fail(`PORT must be an integer between 0 and 65535, got ${JSON.stringify(raw)}`, 2);
  }
  return Number(value);
}

function parseEndpoint(env) {
  const raw = env.API_ENDPOINT || env.PUBLIC_URL;
  if (!raw) {
    fail("API_ENDPOINT (or PUBLIC_URL) must be set: it is written to config.json for the browser", 2);
  }
  let url;
  try {
    url = new URL(raw);
  } catch {
    fail(`API_ENDPOINT is not an absolute URL: ${JSON.stringify(raw)}`, 2);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    fail(`API_ENDPOINT must be an http(s) URL, got ${JSON.stringify(raw)}`, 2);
  }
  if (url.protocol === "http:") {
    log(`warning: API_ENDPOINT ${raw} is plain http; the public site is served over https`);
  }
  if (url.pathname !== "/" || url.search || url.hash) {
    // The frontend builds new URL("/image", endpoint): any path is dropped.
    log(`warning: the path of API_ENDPOINT ${raw} is ignored by the frontend (backend must sit at the origin root)`);
  }
  return raw;
}

async function writeConfig(root, body) {
  const target = path.join(root, "config.json");
  const tmp = path.join(root, `.config.json.${process.pid}.tmp`);
  await fsp.writeFile(tmp, body, { mode: 0o644 });
  await fsp.rename(tmp, target);
  return target;
}

function cacheControl(relPath) {
  if (relPath.startsWith(`assets${path.sep}`)) {
    // Vite puts content-hashed files under assets/.
    return "public, max-age=31536000, immutable";
  }
  return "no-cache";
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
    "X-Content-Type-Options": "nosniff",
    ...headers,
  });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

async function statFile(file) {
  try {
    const st = await fsp.stat(file);
    return st;
  } catch {
    return undefined;
  }
}

/** Resolve a request path to a file inside root, or undefined when it must be refused. */
async function resolveInside(root, realRoot, pathname) {
  const candidate = path.resolve(root, `.${pathname}`);
  if (candidate !== root && !candidate.startsWith(root + path.sep)) return undefined;
  let real;
  try {
    real = await fsp.realpath(candidate);
  } catch {
    return { file: candidate, exists: false };
  }
  // A symlink must not lead out of the served directory either.
  if (real !== realRoot && !real.startsWith(realRoot + path.sep)) return undefined;
  return { file: real, exists: true };
}

function makeHandler(realRoot, configBody) {
  const root = realRoot;
  const indexFile = path.join(root, "index.html");
  return async (req, res) => {
    const started = Date.now();
    res.on("finish", () => log(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - started}ms`));
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(res, 405, "method not allowed\n", { Allow: "GET, HEAD" });
      return;
    }
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, "http://localhost").pathname);
    } catch {
      send(res, 400, "bad request\n");
      return;
    }
    // Refuse traversal before any normalisation could hide it: raw `..` segments (also
    // percent-encoded or with backslashes) and NUL bytes never reach the file system.
    const rawPath = (() => {
      try {
        return decodeURIComponent((req.url || "/").split("?")[0]);
      } catch {
        return "";
      }
    })();
    if (pathname.includes("\0") || rawPath.split(/[\\/]/).includes("..")) {
      send(res, 403, "forbidden\n");
      return;
    }
    if (pathname === "/config.json") {
      send(res, 200, configBody, { "Content-Type": CONTENT_TYPES[".json"], "Cache-Control": "no-cache" });
      return;
    }
    const resolved = await resolveInside(root, realRoot, pathname);
    if (resolved === undefined) {
      send(res, 403, "forbidden\n");
      return;
    }
    let file = resolved.file;
    let st = resolved.exists ? await statFile(file) : undefined;
    if (st?.isDirectory()) {
      file = path.join(file, "index.html");
      st = await statFile(file);
    }
    if (!st || !st.isFile()) {
      // Client-side routes (no file extension) get the SPA entry point; a missing asset is a 404.
      if (path.extname(pathname) === "") {
        file = indexFile;
        st = await statFile(file);
      }
      if (!st || !st.isFile()) {
        send(res, 404, "not found\n");
        return;
      }
    }
    const rel = path.relative(realRoot, file);
    res.writeHead(200, {
      "Content-Type": CONTENT_TYPES[path.extname(file).toLowerCase()] || "application/octet-stream",
      "Content-Length": st.size,
      "Last-Modified": st.mtime.toUTCString(),
      "Cache-Control": cacheControl(rel),
      "X-Content-Type-Options": "nosniff",
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    const stream = createReadStream(file);
    stream.on("error", () => res.destroy());
    stream.pipe(res);
  };
}

function healthcheck(port) {
  const req = request(
    { host: "127.0.0.1", port, path: "/config.json", method: "GET", timeout: 3000 },
    (res) => {
      res.resume();
      process.exit(res.statusCode === 200 ? 0 : 1);
    },
  );
  req.on("timeout", () => req.destroy(new Error("timeout")));
  req.on("error", (err) => fail(`healthcheck failed: ${err.message}`, 1));
  req.end();
}

async function main() {
  const port = parsePort(process.env.PORT);
  if (process.argv.includes("--healthcheck")) {
    healthcheck(port);
    return;
  }
  const host = process.env.HOST || "0.0.0.0";
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = path.resolve(process.env.STATIC_DIR || path.join(here, "dist"));
  const st = await statFile(root);
  if (!st?.isDirectory()) fail(`STATIC_DIR ${root} is not a directory`, 2);
  const realRoot = await fsp.realpath(root);
  const endpoint = parseEndpoint(process.env);
  const configBody = `${JSON.stringify({ endpoint })}\n`;

  const server = createServer(makeHandler(realRoot, configBody));
  server.keepAliveTimeout = 65_000;
  server.on("error", (err) => {
    // EADDRINUSE and friends: never fall back to another port.
    fail(`cannot listen on ${host}:${port}: ${err.code || err.message}`, 1);
  });
  // Bind first: a second instance started on a taken port must fail without touching the
  // directory the first one serves. /config.json is answered from memory, so there is no
  // window where the build-time file could be served.
  server.listen(port, host, async () => {
    try {
      const written = await writeConfig(realRoot, configBody);
      log(`wrote ${written} with endpoint ${endpoint}`);
    } catch (err) {
      fail(`cannot write config.json into ${realRoot}: ${err.message}`, 1);
    }
    const addr = server.address();
    log(`listening on http://${addr.address}:${addr.port} serving ${realRoot}`);
  });
  const stop = (signal) => {
    log(`${signal} received, closing`);
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((err) => fail(err.stack || String(err)));
