/**
 * Jobspecs of the backend (gunicorn) and the Celery worker: one image, two jobs, the same
 * environment (app-contract.md). Secrets come from each job's Nomad Variable through a
 * template; the non-secret settings are plain env, versioned with the job so that a
 * canary and an auto-revert cover them too.
 */
import type { Cluster } from "../../description/schema";
import { str, tidy } from "../hcl";
import { serviceShutdownDelay } from "./haproxy-cfg";
import {
  REGISTRY_PASSWORD_ENV,
  dockerAuth,
  overlayHttpPort,
  envLines,
  resourcesBlock,
  secretsTemplate,
  serviceProviderLine,
  serviceJobOpening,
  usesRegistryAuth,
} from "./common";

/** Secret env of the backend and the worker, items of their Nomad Variables. */
export const APP_SECRET_ENV = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CELERY_BROKER_URL"] as const;

/** Every variable of the application's contract (backend AND worker read all of them). */
export const APP_CONTRACT_ENV = ["CELERY_BROKER_URL", "S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION_NAME", "S3_BUCKET_NAME"] as const;

/** Non-secret env of the backend and the worker. */
export function appSettingsEnv(c: Cluster): Record<string, string> {
  return {
    S3_ENDPOINT_URL: c.app.s3.endpoint,
    S3_BUCKET_NAME: c.app.s3.bucket,
    AWS_REGION_NAME: c.app.s3.region,
  };
}

/** Items the job's secrets template reads from its Nomad Variable. */
export function secretKeys(c: Cluster, image: string): string[] {
  return [...APP_SECRET_ENV, ...(usesRegistryAuth(c, image) ? [REGISTRY_PASSWORD_ENV] : [])];
}

/** The Celery worker's command, and its script check (the node name is celery@<container hostname>). */
export const WORKER_COMMAND = "celery";
export const WORKER_APP = "image_api.worker.app";
export const WORKER_PING = `celery --app ${WORKER_APP} inspect ping --timeout 10 -d celery@$HOSTNAME`;

/**
 * Least memory of an api instance: every gunicorn process (the master and each worker)
 * loads the whole application; measured ~45 MiB PSS each at rest with the real api code
 * (docs/jobs.md, "The api under load"). A description below this is refused; the default
 * (320 MiB for 2 workers) adds room for uploads in flight.
 */
export const API_MEMORY_PER_PROCESS_MIB = 48;
export function apiMinimumMemoryMiB(workers: number): number {
  return API_MEMORY_PER_PROCESS_MIB * (workers + 1);
}

/** gunicorn settings that are policy, not description (seconds). */
export const GUNICORN = {
  /** gthread: the worker's heartbeat, not a request limit (sync workers: a request limit). */
  timeoutS: 30,
  /** Time running requests get after SIGTERM; below Nomad's kill_timeout. */
  gracefulTimeoutS: 25,
  killTimeoutS: 30,
  /** Above HAProxy's `timeout http-keep-alive` (5 s): the server never closes an idle connection HAProxy is about to reuse. */
  keepAliveS: 10,
} as const;

/** gunicorn's bind in the jobspec: a Nomad runtime value, interpolated by Nomad (not escaped). */
const NOMAD_BIND = "0.0.0.0:${NOMAD_PORT_http}";

/** The api task's gunicorn command line (after `gunicorn`); the load test runs exactly these. */
export function gunicornArgs(c: Cluster, bind = NOMAD_BIND): string[] {
  const a = c.app.api;
  return [
    "--worker-class", "gthread",
    "--workers", String(a.workers),
    "--threads", String(a.threads),
    "--timeout", String(GUNICORN.timeoutS),
    "--graceful-timeout", String(GUNICORN.gracefulTimeoutS),
    "--keep-alive", String(GUNICORN.keepAliveS),
    "--bind", bind,
    "--access-logfile", "-",
    "image_api.web:app",
  ];
}

export function renderApiJob(c: Cluster): string {
  const api = c.app.api;
  const image = c.app.images.api;
  return tidy(`
${serviceJobOpening(c, "api", "the backend (gunicorn, Flask).")}

${overlayHttpPort()}

    task "api" {
      driver = "docker"

      config {
        image   = ${str(image)}
        ports   = ["http"]
        # Threaded workers (gthread): a slow upload holds one thread, not a whole worker, and
        # the worker's main thread keeps answering the arbiter's heartbeat (a sync worker busy
        # with an upload longer than --timeout is killed). HAProxy sends each instance fewer
        # requests than it has threads (backend api, maxconn), so /health always finds one.
        command = "gunicorn"
        args    = [${gunicornArgs(c).map((a) => (a === NOMAD_BIND ? `"${a}"` : str(a))).join(", ")}]
${dockerAuth(c, image, "        ")}
      }

      env {
        # Nomad runtime value (interpolated by Nomad, not escaped).
        PORT = "\${NOMAD_PORT_http}"
${envLines(appSettingsEnv(c), "        ")}
      }

${secretsTemplate(c, "api", secretKeys(c, image), "restart", "      ")}

${resourcesBlock(api.resources, "      ")}

      # Deregistered from Consul first, stopped ${serviceShutdownDelay()} later: longer than HAProxy may still
      # pick an instance gone from Consul DNS (hold valid + resolve tick + hold obsolete), so
      # no new request reaches an instance already stopping.
      shutdown_delay = ${str(serviceShutdownDelay())}
      # gunicorn stops gracefully on SIGTERM: running requests (uploads) get
      # --graceful-timeout ${GUNICORN.gracefulTimeoutS} s, under kill_timeout.
      kill_signal  = "SIGTERM"
      kill_timeout = ${str(`${GUNICORN.killTimeoutS}s`)}

      service {
        name     = "api"
${serviceProviderLine(c, "        ")}
        port     = "http"
        tags     = ["http"]

        # Liveness only: /health touches neither S3 nor the broker.
        check {
          name     = "api health"
          type     = "http"
          path     = "/health"
          interval = "10s"
          timeout  = "3s"
        }

        # The app lists the bucket at import: a slow S3 delays the first answer.
        check_restart {
          limit = 3
          grace = "60s"
        }
      }
    }
  }
}
`);
}

export function renderWorkerJob(c: Cluster): string {
  const worker = c.app.worker;
  const image = c.app.images.api;
  return tidy(`
${serviceJobOpening(c, "worker", "the Celery worker (thumbnails).")}

    # No network block: the worker only makes outgoing connections (broker, S3).

    task "worker" {
      driver = "docker"

      config {
        image   = ${str(image)}
        command = ${str(WORKER_COMMAND)}
        args    = ["--app", ${str(WORKER_APP)}, "worker", "--loglevel", "INFO", "--concurrency", ${str(String(worker.concurrency))}]
${dockerAuth(c, image, "        ")}
      }

      env {
${envLines(appSettingsEnv(c), "        ")}
      }

${secretsTemplate(c, "worker", secretKeys(c, image), "restart", "      ")}

${resourcesBlock(worker.resources, "      ")}

      # SIGTERM is Celery's warm shutdown: stop taking tasks, finish the running ones.
      # A task cut short is lost for good (no result backend), so the worker gets
      # kill_timeout before SIGKILL.
      kill_signal  = "SIGTERM"
      kill_timeout = ${str(worker.killTimeout)}

      # No port: the service exists only to carry the script check (a Nomad script check
      # needs a service). Consul shows the worker's health next to the others.
      service {
        name     = "worker"
${serviceProviderLine(c, "        ")}
        tags     = ["celery"]

        check {
          name     = "celery ping"
          type     = "script"
          command  = "/bin/sh"
          args     = ["-c", ${str(WORKER_PING)}]
          interval = "30s"
          timeout  = "25s"
        }
        # No check_restart: the ping goes through the shared broker, so a broker outage
        # fails every worker's check; restarting them would kill running tasks and, after
        # the restart budget, leave them backing off for minutes, while Celery reconnects
        # by itself. The check still gates deployments (health_check = "checks").
      }
    }
  }
}
`);
}
