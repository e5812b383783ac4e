/**
 * The api under load (issue: slow uploads starved the health checks). Runs
 * scripts/api-load.ts: the real gunicorn with the api job's exact command line
 * (gunicornArgs: gthread, workers and threads from the description) behind the real HAProxy
 * with the rendered haproxy.cfg, 12 concurrent slow uploads (512 KiB sent over 3 s each,
 * restarting when done) for 10 s, while HAProxy's own check, a Nomad-like /health probe
 * (3 s timeout) and short reads through HAProxy are watched.
 *
 * The application is the stand-in in scripts/api-load/standin (Flask, same module path and
 * routes as the api, multipart parsed by werkzeug): the real api code comes from GitHub,
 * which CI cannot reach. The same script runs the real code locally (`--app-dir`), and
 * `--write` puts the figures of its cases into docs/generated/api-load.md, which
 * docs/jobs.md ("The api under load") cites.
 *
 * The previous settings (4 sync workers, checks inter 1s fall 2 without timeout check, no
 * per-instance maxconn) run too, and must show the failure: the test proves it can fail.
 */
import * as path from "path";
import { exampleCluster, hasCommand, itIf } from "./helpers/synth";
import { formatFigures, runApiLoad, type Design } from "../scripts/api-load";
import { spawnSync } from "child_process";

const flask = spawnSync("/usr/bin/python3", ["-c", "import flask"]).status === 0;
const ready = hasCommand("gunicorn") && hasCommand("haproxy") && hasCommand("dnsmasq") && flask;
const reason = "needs gunicorn, haproxy, dnsmasq and python3-flask (apt-get install gunicorn haproxy dnsmasq python3-flask)";

jest.setTimeout(120000);

describe("the api under slow uploads, behind HAProxy (real gunicorn + haproxy + dnsmasq, loopback)", () => {
  const cluster = exampleCluster();
  const run = (design: Design) => runApiLoad({ cluster, design, uploads: 12, uploadKiB: 512, uploadSeconds: 3, seconds: 10 });

  itIf(ready, reason)("with the rendered settings: checks stay green, every upload and read is served", async () => {
    const f = await run("current");
    // eslint-disable-next-line no-console
    console.log(`${new Date().toISOString()}\n${formatFigures(f)}`);
    expect(f.gunicorn).toContain(`--worker-class gthread --workers ${cluster.app.api.workers} --threads ${cluster.app.api.threads}`);
    expect(f.uploads.ok).toBeGreaterThanOrEqual(12);
    expect(f.uploads.failed).toBe(0);
    expect(f.haproxyCheck.samples).toBeGreaterThan(10);
    expect(f.haproxyCheck.notUp).toBe(0);
    expect(f.haproxyCheck.failedChecks).toBe(0);
    expect(f.directHealth.failed).toBe(0);
    expect(f.reads.status503).toBe(0);
    expect(f.reads.otherErrors).toBe(0);
    expect(f.reads.served).toBeGreaterThan(10);
  });

  itIf(ready, reason)("with the previous settings (4 sync workers, inter 1s, no timeout check, no maxconn) the checks fail", async () => {
    const f = await run("previous");
    // eslint-disable-next-line no-console
    console.log(`${new Date().toISOString()}\n${formatFigures(f)}`);
    expect(f.haproxyCheck.failedChecks + f.haproxyCheck.notUp).toBeGreaterThan(0);
  });
});

describe("scripts/api-load.ts refuses bad options before it starts anything", () => {
  const run = (...args: string[]) => spawnSync(path.join(__dirname, "..", "node_modules", ".bin", "tsx"), [path.join(__dirname, "..", "scripts", "api-load.ts"), ...args], { encoding: "utf8", timeout: 60000 });
  it.each([
    [["--uploads", "x"], '--uploads: expected a positive number, got "x"'],
    [["--seconds"], "--seconds: expected a value after it"],
    [["--design", "bogus"], '--design: expected current or previous, got "bogus"'],
    [["--write", "--upload-kib", "64"], "--upload-kib: not with --write, which runs every design and upload size itself"],
  ])("%j", (args, message) => {
    const r = run(...args);
    expect({ status: r.status, stderr: r.stderr.trim() }).toEqual({ status: 1, stderr: message });
  });
});
