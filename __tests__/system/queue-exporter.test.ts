/**
 * System test: the queue exporter the metrics job runs (rendered/jobs/metrics/queue-exporter.py,
 * from the production renderer, unchanged), against a real RabbitMQ (Debian's
 * rabbitmq-server 3.10) in a network namespace of its own, with Debian's python3-kombu
 * standing in for the api image's kombu.
 *
 * The broker is set up as the provider's (shared/docs/infrastructure.md, "Shared
 * services"): a vhost per team, user = vhost = team name, a password, permissions on that
 * vhost only; the exporter gets the URL as Terraform composes it (URL-encoded password).
 * Checks: a queue never declared reads 0/0; N tasks published as Celery publishes them
 * (durable queue "celery", exchange "celery", routing key "celery") read N; a consumer
 * holding unacked deliveries counts as one consumer and its deliveries no longer as ready;
 * the broker stopped: broker_up 0 and NO depth series (the worker's policy then has no
 * data and the autoscaler holds the count); the password never appears in its output.
 */
import * as fs from "fs";
import * as path from "path";
import { itIf, exampleCluster } from "../helpers/synth";
import { renderQueueExporter } from "../../constructs/render/jobs/autoscaler";
import { QUEUE_METRICS } from "../../constructs/render/jobs/scaling";
import { Sandbox, sleep, systemTestPrerequisites, waitFor } from "./sandbox";

const RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl";
const pre = systemTestPrerequisites(["ip", "/usr/bin/python3", RABBITMQ_SERVER, RABBITMQCTL, "/usr/lib/python3/dist-packages/kombu/__init__.py"]);

const TEAM = "team-queue";
const PASSWORD = "p@ss:w/rd #+%x";
const EXPORTER_PORT = 19808;

jest.setTimeout(180000);

/** What the exporter serves, parsed: metric{labels} → value. */
function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const [k, v] = line.split(/ (?=[^ ]+$)/);
    m.set(k, Number(v));
  }
  return m;
}

describe("queue exporter against a real RabbitMQ", () => {
  let sb: Sandbox | undefined;
  afterAll(() => {
    if (!sb) return;
    sb.cleanup();
    expect(sb.leftoverNamespaces()).toEqual([]);
  });

  itIf(pre.ok, pre.reason)("exports the ready tasks and consumers of Celery's queue; nothing but broker_up 0 when the broker is gone", async () => {
    const s = (sb = new Sandbox("mq"));
    const ns = s.netns("mq");
    const base = path.join(s.dir, "rabbitmq");
    fs.mkdirSync(base, { recursive: true });
    fs.writeFileSync(path.join(base, "enabled_plugins"), "[].\n");
    fs.writeFileSync(path.join(base, "rabbitmq.conf"), "listeners.tcp.default = 127.0.0.1:5672\nloopback_users = none\n");
    const env = {
      ...process.env,
      HOME: base,
      RABBITMQ_NODENAME: "rabbit@localhost",
      RABBITMQ_CONFIG_FILE: path.join(base, "rabbitmq"),
      RABBITMQ_ENABLED_PLUGINS_FILE: path.join(base, "enabled_plugins"),
      RABBITMQ_MNESIA_BASE: path.join(base, "mnesia"),
      RABBITMQ_LOG_BASE: path.join(base, "log"),
      RABBITMQ_PID_FILE: path.join(base, "rabbit.pid"),
      RABBITMQ_LOGS: "-",
      ERL_EPMD_ADDRESS: "127.0.0.1",
    };
    const started = Date.now();
    const broker = s.start("rabbitmq", ns, [RABBITMQ_SERVER], { env });
    const ctl = (...args: string[]) => {
      const r = s.run(["ip", "netns", "exec", ns, "env", ...Object.entries(env).filter(([k]) => k.startsWith("RABBITMQ_") || k === "HOME").map(([k, v]) => `${k}=${v}`), RABBITMQCTL, ...args], { timeoutMs: 60000 });
      if (r.status !== 0) throw new Error(`rabbitmqctl ${args.join(" ")}: ${r.stdout}${r.stderr}\n${s.log(broker)}`);
      return r.stdout;
    };
    ctl("await_startup", "--timeout", "90");
    // eslint-disable-next-line no-console
    console.log(`RabbitMQ started in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    ctl("add_vhost", TEAM);
    ctl("add_user", TEAM, PASSWORD);
    ctl("set_permissions", "-p", TEAM, TEAM, ".*", ".*", ".*");

    // As Terraform composes CELERY_BROKER_URL (app-secrets.ts brokerUrl): the password URL-encoded.
    const url = `amqp://${encodeURIComponent(TEAM)}:${encodeURIComponent(PASSWORD)}@127.0.0.1:5672/${encodeURIComponent(TEAM)}`;
    const script = path.join(s.dir, "queue-exporter.py");
    fs.writeFileSync(script, renderQueueExporter(exampleCluster()));
    const exporter = s.start("exporter", ns, ["env", `CELERY_BROKER_URL=${url}`, `EXPORTER_PORT=${EXPORTER_PORT}`, "/usr/bin/python3", script]);
    const scrape = (): Map<string, number> => {
      const r = s.inNs(ns, ["/usr/bin/python3", "-c", `import urllib.request;print(urllib.request.urlopen("http://127.0.0.1:${EXPORTER_PORT}/metrics", timeout=20).read().decode())`], { timeoutMs: 30000 });
      if (r.status !== 0) throw new Error(`scrape failed: ${r.stderr}\n${s.log(exporter)}`);
      return parseMetrics(r.stdout);
    };
    await waitFor("the exporter listening", () => s.inNs(ns, ["/usr/bin/python3", "-c", `import socket;socket.create_connection(("127.0.0.1", ${EXPORTER_PORT}), 1)`]).status === 0, 20000, () => s.log(exporter));

    const depth = `${QUEUE_METRICS.messages}{queue="celery"}`;
    const consumers = `${QUEUE_METRICS.consumers}{queue="celery"}`;
    // 1. Never declared (no worker started yet): nothing waits, nobody consumes.
    expect(Object.fromEntries(scrape())).toEqual({ [QUEUE_METRICS.up]: 1, [depth]: 0, [consumers]: 0 });

    // 2. 37 tasks published the way Celery's default queue is declared.
    const kombu = (code: string, timeoutMs = 30000) => {
      const r = s.inNs(ns, ["env", `URL=${url}`, "/usr/bin/python3", "-c", code], { timeoutMs });
      if (r.status !== 0) throw new Error(`kombu: ${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    const PREAMBLE = `import os, kombu
ex = kombu.Exchange("celery", type="direct", durable=True)
q = kombu.Queue("celery", ex, routing_key="celery", durable=True)
`;
    kombu(`${PREAMBLE}with kombu.Connection(os.environ["URL"]) as c:
    p = c.Producer()
    for i in range(37):
        p.publish({"task": "resize_image", "n": i}, exchange=ex, routing_key="celery", declare=[q], delivery_mode=2)
`);
    expect(Object.fromEntries(scrape())).toEqual({ [QUEUE_METRICS.up]: 1, [depth]: 37, [consumers]: 0 });

    // 3. A worker-like consumer holding 5 unacked deliveries (prefetch 5): one consumer, 32 ready.
    const consumer = s.start("consumer", ns, ["env", `URL=${url}`, "/usr/bin/python3", "-c", `${PREAMBLE}import time
c = kombu.Connection(os.environ["URL"])
ch = c.channel()
ch.basic_qos(0, 5, False)
got = []
cons = kombu.Consumer(ch, queues=[q], callbacks=[lambda body, m: got.append(m)], auto_declare=False)
cons.consume()
print("consuming", flush=True)
end = time.time() + 120
while time.time() < end:
    try:
        c.drain_events(timeout=1)
    except Exception:
        pass
`]);
    await waitFor("5 deliveries held by one consumer", () => {
      const m = scrape();
      return m.get(consumers) === 1 && m.get(depth) === 32;
    }, 30000, () => `${JSON.stringify(Object.fromEntries(scrape()))}\n${s.log(consumer)}`, 500);
    await s.stop(consumer, "SIGKILL");

    // 4. Broker gone: broker_up 0, no depth series (fail static), no password in any output.
    await s.stop(broker, "SIGTERM", 30000);
    await sleep(500);
    const down = scrape();
    expect(Object.fromEntries(down)).toEqual({ [QUEUE_METRICS.up]: 0 });
    const log = s.log(exporter);
    expect(log).toMatch(/broker not answering/);
    for (const secret of [PASSWORD, encodeURIComponent(PASSWORD)]) expect(log).not.toContain(secret);
  });
});
