/**
 * The Nomad Autoscaler and the Celery queue exporter: two tasks of the `metrics` job's
 * group (metrics.ts, host network, next to Prometheus on 127.0.0.1:9090). Pure: the
 * description in, the autoscaler's agent config, the exporter's script, their task blocks
 * and the exporter's scrape config out.
 *
 * Queue depth, and why this way: the provider's shared RabbitMQ gives a team AMQP on its
 * own vhost only (shared/docs/infrastructure.md, "Shared services"): the management API
 * (15672) and the rabbitmq_prometheus plugin (15692) are the provider's, on its host, not
 * offered to teams, and the plugin's per-queue metrics would show every team's queues.
 * What AMQP itself gives any user with `configure` on its vhost is a PASSIVE queue.declare:
 * the broker answers Declare-Ok with the queue's ready-message count and consumer count
 * (AMQP 0-9-1, queue.declare-ok) without creating or changing anything. The exporter
 * does exactly that for Celery's queue with kombu, which the api image ships (Celery's
 * own transport: no new dependency, the application's image and credentials).
 */
import { commentText } from "../../escape";
import type { Cluster } from "../../description/schema";
import { NOMAD_HTTP_PORT } from "../agents";
import { str } from "../hcl";
import { REGISTRY_PASSWORD_ENV, dockerAuth, heredoc, resourcesBlock, secretsInNomadVariables, secretsTemplate, usesRegistryAuth } from "./common";
import { APM_NAME, CELERY_QUEUE, QUEUE_METRICS, STRATEGY_NAME } from "./scaling";

/** Prometheus of the metrics job (metrics.ts): loopback only, same network namespace (host). */
export const PROMETHEUS_LOCAL_URL = "http://127.0.0.1:9090";

/**
 * Loopback ports of the two tasks (host network mode, 127.0.0.1 only, like Prometheus'
 * 9090: Nomad's port reservations cover node addresses, not loopback).
 */
export const QUEUE_EXPORTER_PORT = 9808;
export const AUTOSCALER_HTTP_PORT = 9809;

/** The exporter's share: one Python process, idle between scrapes (~30 MiB RSS with kombu). */
export const QUEUE_EXPORTER_RESOURCES = { cpu: 50, memory: 64 } as const;

/** Env of the Nomad API client in the autoscaler task (api.DefaultConfig reads NOMAD_TOKEN). */
export const NOMAD_TOKEN_ENV = "NOMAD_TOKEN";
/** Item of the metrics job's Nomad Variable holding the broker URL (as the worker's). */
export const BROKER_URL_ENV = "CELERY_BROKER_URL";

/** Where the two files land in the synth output (relative to rendered/) and in the tasks. */
export const AUTOSCALER_CONFIG_FILE = "metrics/nomad-autoscaler.hcl";
export const QUEUE_EXPORTER_FILE = "metrics/queue-exporter.py";

/** Items the metrics job's Nomad Variable holds for these tasks. */
export function metricsSecretKeys(c: Cluster): { exporter: string[]; autoscaler: string[] } {
  return {
    exporter: [BROKER_URL_ENV, ...(usesRegistryAuth(c, c.app.images.api) ? [REGISTRY_PASSWORD_ENV] : [])],
    autoscaler: [...(c.nomad.acl ? [NOMAD_TOKEN_ENV] : []), ...(usesRegistryAuth(c, c.metrics.images.autoscaler) ? [REGISTRY_PASSWORD_ENV] : [])],
  };
}

/**
 * The autoscaler's agent config (nomad-autoscaler v0.4.5, agent/config/config.go), as a
 * Nomad template: `{{ env "attr.unique.network.ip-address" }}` is the node's overlay
 * address (the client fingerprints the overlay interface, agents.ts), where the local Nomad
 * client serves its HTTP API and forwards to the servers. The token, with nomad.acl, comes
 * from NOMAD_TOKEN (the job's Nomad Variable), never from this file.
 */
export function renderAutoscalerConfig(c: Cluster): string {
  const a = c.metrics.autoscaling;
  return `# Nomad Autoscaler agent of cluster ${commentText(c.name)} (task "autoscaler" of job "metrics").
# Rendered by the jobs stack; a Nomad template: the address below is filled in on the node.

log_level = "INFO"

# Health (/v1/health) and its own metrics (/v1/metrics?format=prometheus), loopback only.
http {
  bind_address = "127.0.0.1"
  bind_port    = ${AUTOSCALER_HTTP_PORT}
}

# The Nomad client of this node (overlay address), which forwards to the servers.${c.nomad.acl ? `\n# Token: ${NOMAD_TOKEN_ENV} in the task's environment (${secretsInNomadVariables(c) ? "the job's Nomad Variable" : `Consul KV: Nomad ${commentText(c.versions.nomad)} has no Variables`}).` : ""}
nomad {
  address = "http://{{ env "attr.unique.network.ip-address" }}:${NOMAD_HTTP_PORT}"
  region  = ${str(c.region)}
}

# The policies are the scaling blocks of the jobs (source "nomad"), nothing from files.
policy {
  default_cooldown            = ${str(a.cooldown)}
  default_evaluation_interval = ${str(a.evaluationInterval)}

  source "file" {
    enabled = false
  }
  source "nomad" {
    enabled = true
  }
}

# The policies' checks query the Prometheus of this same group (host network, loopback).
apm ${str(APM_NAME)} {
  driver = "prometheus"
  config = {
    address = ${str(PROMETHEUS_LOCAL_URL)}
  }
}

strategy ${str(STRATEGY_NAME)} {
  driver = "target-value"
}

telemetry {
  prometheus_metrics = true
  disable_hostname   = true
}
`;
}

/**
 * The queue exporter: Prometheus text on 127.0.0.1:${QUEUE_EXPORTER_PORT}/metrics with the
 * ready messages and consumers of Celery's queue, from a passive queue.declare (see above).
 * - the broker unreachable: `celery_queue_broker_up 0` and NO depth series, so the
 *   worker's policy query has no data and the autoscaler holds the count (fail static);
 * - the queue not declared yet (no worker ever started): 0 messages, 0 consumers (true);
 * - errors are logged without the URL (the password is masked in every message).
 * Python 3 and kombu only (the api image has both). No `{{` in it: it travels through a
 * Nomad template.
 */
export function renderQueueExporter(c: Cluster): string {
  // Single blank lines only: the jobspec's tidy() would fold double ones inside the template.
  return queueExporterText(c).replace(/\n{3,}/g, "\n\n");
}

function queueExporterText(c: Cluster): string {
  return `#!/usr/bin/env python3
# Celery queue depth exporter of cluster ${commentText(c.name)} (task "queue-exporter" of job "metrics").
# A passive queue.declare on the team's vhost: AMQP is all the shared broker gives a team.
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import unquote, urlsplit

from kombu import Connection

QUEUE = ${JSON.stringify(CELERY_QUEUE)}
LISTEN = (os.environ.get("EXPORTER_ADDRESS", "127.0.0.1"), int(os.environ.get("EXPORTER_PORT", "${QUEUE_EXPORTER_PORT}")))
URL = os.environ["${BROKER_URL_ENV}"]
SECRET = unquote(urlsplit(URL).password or "")


def masked(text):
    text = str(text)
    return text.replace(SECRET, "***") if SECRET else text


class Broker:
    def __init__(self, url):
        self.url = url
        self.conn = None
        self.lock = threading.Lock()

    def _close(self):
        if self.conn is not None:
            try:
                self.conn.release()
            except Exception:
                pass
        self.conn = None

    def depth(self):
        """(ready messages, consumers) of QUEUE; raises when the broker cannot be asked."""
        with self.lock:
            for attempt in (1, 2):
                try:
                    if self.conn is None:
                        # Read and write timeouts too: a half-open connection (a broker or a
                        # network path gone silent) must fail this scrape, not hang it and
                        # every scrape after it (py-amqp socket timeouts, kombu pyamqp transport).
                        self.conn = Connection(self.url, connect_timeout=5, transport_options={"read_timeout": 5, "write_timeout": 5})
                        self.conn.connect()
                    channel = self.conn.channel()
                    try:
                        ok = channel.queue_declare(queue=QUEUE, passive=True)
                        return ok.message_count, ok.consumer_count
                    except Exception as e:
                        if getattr(e, "code", None) == 404:
                            return 0, 0  # not declared yet: nothing waits, nobody consumes
                        raise
                    finally:
                        try:
                            channel.close()
                        except Exception:
                            pass
                except Exception:
                    self._close()
                    if attempt == 2:
                        raise


BROKER = Broker(URL)
HELP = """# HELP ${QUEUE_METRICS.up} 1 when the broker answered this scrape's passive queue.declare.
# TYPE ${QUEUE_METRICS.up} gauge
"""
DEPTH = """${QUEUE_METRICS.up} 1
# HELP ${QUEUE_METRICS.messages} Tasks ready in the queue, not yet delivered to a worker.
# TYPE ${QUEUE_METRICS.messages} gauge
${QUEUE_METRICS.messages}{queue="%s"} %d
# HELP ${QUEUE_METRICS.consumers} Consumers of the queue (one per Celery worker instance).
# TYPE ${QUEUE_METRICS.consumers} gauge
${QUEUE_METRICS.consumers}{queue="%s"} %d
"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        try:
            messages, consumers = BROKER.depth()
            body = HELP + DEPTH % (QUEUE, messages, QUEUE, consumers)
        except Exception as e:
            print("queue-exporter: broker not answering: %s: %s" % (type(e).__name__, masked(e)), file=sys.stderr, flush=True)
            body = HELP + "${QUEUE_METRICS.up} 0\\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass  # one line per scrape would flood the task's log


if __name__ == "__main__":
    print("queue-exporter: serving http://%s:%d/metrics for queue %s" % (LISTEN[0], LISTEN[1], QUEUE), flush=True)
    HTTPServer(LISTEN, Handler).serve_forever()
`;
}

/** The exporter's and the autoscaler's scrape configs for Prometheus (metrics.ts's prometheus.yml). */
export function autoscalingScrapeConfigs(): { job_name: string; metrics_path: string; params?: Record<string, string[]>; static_configs: { targets: string[] }[] }[] {
  return [
    { job_name: "celery-queue", metrics_path: "/metrics", static_configs: [{ targets: [`127.0.0.1:${QUEUE_EXPORTER_PORT}`] }] },
    { job_name: "nomad-autoscaler", metrics_path: "/v1/metrics", params: { format: ["prometheus"] }, static_configs: [{ targets: [`127.0.0.1:${AUTOSCALER_HTTP_PORT}`] }] },
  ];
}

/** Files written readable under rendered/ (the tasks' templates carry the same text). */
export function autoscalingRenderedFiles(c: Cluster): Record<string, string> {
  return { [AUTOSCALER_CONFIG_FILE]: renderAutoscalerConfig(c), [QUEUE_EXPORTER_FILE]: renderQueueExporter(c) };
}

/** The two task blocks, for the metrics group (host network; Prometheus at 127.0.0.1:9090). */
export function autoscalingTasks(c: Cluster, indent: string): string {
  const i = indent;
  const a = c.metrics.autoscaling;
  const keys = metricsSecretKeys(c);
  const apiImage = c.app.images.api;
  const autoscalerImage = c.metrics.images.autoscaler;
  return `${i}# The Nomad Autoscaler: evaluates the scaling policies of web, api and worker against
${i}# Prometheus and scales them through the local Nomad client. Config: rendered/${AUTOSCALER_CONFIG_FILE}.
${i}task "autoscaler" {
${i}  driver = "docker"

${i}  config {
${i}    image        = ${str(autoscalerImage)}
${i}    network_mode = "host"
${i}    # The image's entrypoint runs nomad-autoscaler with these arguments.
${i}    args         = ["agent", "-config", "/local/nomad-autoscaler.hcl"]
${dockerAuth(c, autoscalerImage, `${i}    `)}
${i}  }

${i}  template {
${i}    data        = ${heredoc(renderAutoscalerConfig(c), `${i}    `)}
${i}    destination = "local/nomad-autoscaler.hcl"
${i}    change_mode = "restart"
${i}  }
${keys.autoscaler.length ? secretsTemplate(c, "metrics", keys.autoscaler, "restart", `${i}  `) : ""}

${resourcesBlock(a.resources, `${i}  `)}
${i}}

${i}# Celery's queue depth for the worker's policy (passive queue.declare on the team's vhost),
${i}# run with the application's api image (Python and kombu). Script: rendered/${QUEUE_EXPORTER_FILE}.
${i}task "queue-exporter" {
${i}  driver = "docker"

${i}  config {
${i}    image        = ${str(apiImage)}
${i}    network_mode = "host"
${i}    command      = "python"
${i}    args         = ["/local/queue-exporter.py"]
${dockerAuth(c, apiImage, `${i}    `)}
${i}  }

${i}  template {
${i}    data        = ${heredoc(renderQueueExporter(c), `${i}    `)}
${i}    destination = "local/queue-exporter.py"
${i}    change_mode = "restart"
${i}  }
${secretsTemplate(c, "metrics", keys.exporter, "restart", `${i}  `)}

${resourcesBlock(QUEUE_EXPORTER_RESOURCES, `${i}  `)}
${i}}`;
}
