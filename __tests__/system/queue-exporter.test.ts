/**
 * System test: the queue exporter the metrics job runs (rendered/metrics/queue-exporter.py,
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
import { RABBITMQ_PREREQUISITES, holdingConsumer, publishTasks, startRabbitmq } from "./rabbitmq";
import { Sandbox, sleep, systemTestPrerequisites, waitFor } from "./sandbox";

const pre = systemTestPrerequisites(["ip", ...RABBITMQ_PREREQUISITES]);

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
    const mq = await startRabbitmq(s, ns, TEAM, PASSWORD);
    // eslint-disable-next-line no-console
    console.log(`RabbitMQ started in ${mq.startSeconds.toFixed(1)} s`);
    const { url } = mq;
    const broker = mq.proc;
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
    publishTasks(mq, 37);
    expect(Object.fromEntries(scrape())).toEqual({ [QUEUE_METRICS.up]: 1, [depth]: 37, [consumers]: 0 });

    // 3. A worker-like consumer holding 5 unacked deliveries (prefetch 5): one consumer, 32 ready.
    const consumer = holdingConsumer(s, ns, mq, "consumer", 5);
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
