/**
 * Jobspecs of the backend (gunicorn) and the Celery worker: one image, two jobs, the same
 * environment (app-contract.md). Secrets come from each job's Nomad Variable through a
 * template; the non-secret settings are plain env, versioned with the job so that a
 * canary and an auto-revert cover them too.
 */
import type { Cluster } from "../../description/schema";
import { str, tidy } from "../hcl";
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

export function renderApiJob(c: Cluster): string {
  const api = c.app.api;
  const image = c.app.images.api;
  return tidy(`
${serviceJobOpening(c, "api", "the backend (gunicorn, Flask).")}

${overlayHttpPort()}

    task "api" {
      driver = "docker"

      config {
        # Default command of the image: gunicorn --bind 0.0.0.0:$PORT image_api.web:app
        image = ${str(image)}
        ports = ["http"]
${dockerAuth(c, image, "        ")}
      }

      env {
        # Nomad runtime value (interpolated by Nomad, not escaped).
        PORT = "\${NOMAD_PORT_http}"
${envLines(appSettingsEnv(c), "        ")}
      }

${secretsTemplate(c, "api", secretKeys(c, image), "restart", "      ")}

${resourcesBlock(api.resources, "      ")}

      # Deregistered from Consul first, stopped 5 s later: HAProxy keeps a DNS answer up to
      # its "hold valid" (5 s), so no request is sent to an instance already stopping.
      shutdown_delay = "5s"
      # gunicorn stops gracefully on SIGTERM (finishes in-flight requests).
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

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
