/**
 * Jobspec of the frontend: the static site, whose image writes config.json
 * (`{"endpoint": $API_ENDPOINT}`) at start and listens on $PORT.
 */
import type { Cluster } from "../../description/schema";
import { OMIT, str, tidy } from "../hcl";
import { serviceShutdownDelay } from "./haproxy-cfg";
import {
  REGISTRY_PASSWORD_ENV,
  dockerAuth,
  overlayHttpPort,
  resourcesBlock,
  secretsTemplate,
  serviceProviderLine,
  serviceJobOpening,
  usesRegistryAuth,
} from "./common";

export function renderWebJob(c: Cluster): string {
  const web = c.app.web;
  const image = c.app.images.web;
  return tidy(`
${serviceJobOpening(c, "web", "the frontend (static site).")}

${overlayHttpPort()}

    task "web" {
      driver = "docker"

      config {
        image = ${str(image)}
        ports = ["http"]
${dockerAuth(c, image, "        ")}
      }

      env {
        PORT = "\${NOMAD_PORT_http}"
        # Same-origin topology: HAProxy sends /image… to the api, so the public URL is the
        # backend's endpoint too (the browser builds new URL("/image", endpoint)).
        API_ENDPOINT = ${str(c.app.publicUrl)}
      }
${usesRegistryAuth(c, image) ? secretsTemplate(c, "web", [REGISTRY_PASSWORD_ENV], "noop", "      ") : OMIT}

${resourcesBlock(web.resources, "      ")}

      # Deregistered from Consul first, stopped ${serviceShutdownDelay()} later: longer than HAProxy may still
      # pick an instance gone from Consul DNS (hold valid + resolve tick + hold obsolete), so
      # no new request reaches an instance already stopping.
      shutdown_delay = ${str(serviceShutdownDelay())}

      service {
        name     = "web"
${serviceProviderLine(c, "        ")}
        port     = "http"
        tags     = ["http"]

        check {
          name     = "web config.json"
          type     = "http"
          path     = "/config.json"
          interval = "10s"
          timeout  = "3s"
        }

        check_restart {
          limit = 3
          grace = "30s"
        }
      }
    }
  }
}
`);
}
