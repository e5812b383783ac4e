/**
 * A real RabbitMQ (Debian's rabbitmq-server 3.10) inside a namespace of a Sandbox, set up
 * as the provider's shared broker is for a team (shared/docs/infrastructure.md, "Shared
 * services"): a vhost per team, user = vhost = team name, a password, permissions on that
 * vhost only. Loopback of the namespace only (listener 127.0.0.1:5672, epmd on 127.0.0.1).
 * Stopped by PID with the sandbox (cleanup also stops epmd, left inside the namespace).
 *
 * Debian's package starts a broker in the root namespace at install time unless told not
 * to: .ci/run installs it with a policy-rc.d that refuses service starts.
 */
import * as fs from "fs";
import * as path from "path";
import { Sandbox, waitFor } from "./sandbox";

export const RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server";
export const RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl";
export const KOMBU = "/usr/lib/python3/dist-packages/kombu/__init__.py";
/** What the broker tests need installed (paths, for systemTestPrerequisites). */
export const RABBITMQ_PREREQUISITES = ["/usr/bin/python3", RABBITMQ_SERVER, RABBITMQCTL, KOMBU];

export interface RunningRabbitmq {
  /** AMQP URL of the team, as Terraform composes CELERY_BROKER_URL (URL-encoded password). */
  url: string;
  password: string;
  proc: ReturnType<Sandbox["start"]>;
  startSeconds: number;
  /** Runs python3 code in the namespace with URL in its environment; its stdout. */
  kombu(code: string, timeoutMs?: number): string;
}

/** Celery's default queue as Celery declares it (durable queue "celery", direct exchange "celery"). */
export const CELERY_QUEUE_PY = `import os, kombu
ex = kombu.Exchange("celery", type="direct", durable=True)
q = kombu.Queue("celery", ex, routing_key="celery", durable=True)
`;

export async function startRabbitmq(s: Sandbox, ns: string, team: string, password: string): Promise<RunningRabbitmq> {
  const base = path.join(s.dir, "rabbitmq");
  fs.mkdirSync(base, { recursive: true });
  fs.writeFileSync(path.join(base, "enabled_plugins"), "[].\n");
  fs.writeFileSync(path.join(base, "rabbitmq.conf"), "listeners.tcp.default = 127.0.0.1:5672\nloopback_users = none\n");
  const env: Record<string, string> = {
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
  const proc = s.start("rabbitmq", ns, [RABBITMQ_SERVER], { env: { ...process.env, ...env } });
  const run = (...args: string[]) => s.run(["ip", "netns", "exec", ns, "env", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), RABBITMQCTL, ...args], { timeoutMs: 100000 });
  const ctl = (...args: string[]) => {
    const r = run(...args);
    if (r.status !== 0) throw new Error(`rabbitmqctl ${args.join(" ")}: ${r.stdout}${r.stderr}\n${s.log(proc).slice(-3000)}`);
    return r.stdout;
  };
  // The pid file appears once the node runs; `wait` then blocks until the broker has booted.
  await waitFor("RabbitMQ's pid file", () => fs.existsSync(env.RABBITMQ_PID_FILE), 90000, () => s.log(proc).slice(-3000), 250);
  ctl("wait", env.RABBITMQ_PID_FILE, "--timeout", "90");
  const startSeconds = (Date.now() - started) / 1000;
  ctl("add_vhost", team);
  ctl("add_user", team, password);
  ctl("set_permissions", "-p", team, team, ".*", ".*", ".*");
  const url = `amqp://${encodeURIComponent(team)}:${encodeURIComponent(password)}@127.0.0.1:5672/${encodeURIComponent(team)}`;
  const kombu = (code: string, timeoutMs = 30000) => {
    const r = s.inNs(ns, ["env", `URL=${url}`, "/usr/bin/python3", "-c", code], { timeoutMs });
    if (r.status !== 0) throw new Error(`kombu: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  return { url, password, proc, startSeconds, kombu };
}

/** Publishes `n` tasks to Celery's queue as Celery does (persistent messages). */
export function publishTasks(mq: RunningRabbitmq, n: number): void {
  mq.kombu(`${CELERY_QUEUE_PY}with kombu.Connection(os.environ["URL"]) as c:
    p = c.Producer()
    for i in range(${n}):
        p.publish({"task": "resize_image", "n": i}, exchange=ex, routing_key="celery", declare=[q], delivery_mode=2)
`);
}

/** A worker-like consumer holding `prefetch` unacked deliveries (started in the namespace). */
export function holdingConsumer(s: Sandbox, ns: string, mq: RunningRabbitmq, name: string, prefetch: number) {
  return s.start(name, ns, ["env", `URL=${mq.url}`, "/usr/bin/python3", "-c", `${CELERY_QUEUE_PY}import time
c = kombu.Connection(os.environ["URL"])
ch = c.channel()
ch.basic_qos(0, ${prefetch}, False)
got = []
cons = kombu.Consumer(ch, queues=[q], callbacks=[lambda body, m: got.append(m)])
cons.consume()
print("consuming", flush=True)
end = time.time() + 600
while time.time() < end:
    try:
        c.drain_events(timeout=1)
    except Exception:
        pass
`]);
}
