/**
 * Jobspec of the frontend: the static site, whose image writes config.json
 * (`{"endpoint": $API_ENDPOINT}`) at start and listens on $PORT.
 */
import type { Cluster } from "../../description/schema";
import { OMIT, str, tidy } from "../hcl";
import {
  OVERLAY_HOST_NETWORK,
  REGISTRY_PASSWORD_ENV,
  dockerAuth,
  jobHeader,
  jobPlacement,
  resourcesBlock,
  secretsTemplate,
  serviceGroupPolicies,
  serviceUpdateBlock,
  usesRegistryAuth,
} from "./common";

export function renderWebJob(c: Cluster): string {
  const web = c.app.web;
  const image = c.app.images.web;
  return tidy(`
${jobHeader(c, "web", "the frontend (static site).")}

job "web" {
${jobPlacement(c)}
  type        = "service"

${serviceUpdateBlock("  ")}

  group "web" {
    count = ${web.count}

${serviceGroupPolicies(c, "web", "    ")}

    # A dynamic port on the overlay address: HAProxy reaches it through Consul DNS (SRV).
    network {
      port "http" {
        host_network = ${str(OVERLAY_HOST_NETWORK)}
      }
    }

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
${usesRegistryAuth(c, image) ? secretsTemplate("web", [REGISTRY_PASSWORD_ENV], "noop", "      ") : OMIT}

${resourcesBlock(web.resources, "      ")}

      service {
        name     = "web"
        provider = "consul"
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
