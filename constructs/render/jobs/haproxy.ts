/**
 * Jobspec of HAProxy: a system job on every node that may hold the floating IP.
 */
import { commentText } from "../../escape";
import { FLOATING_IP_META, type Cluster } from "../../description/schema";
import { OMIT, str, tidy } from "../hcl";
import { supports } from "../../versions";
import { OVERLAY_HOST_NETWORK, REGISTRY_PASSWORD_ENV, ROLLOUT, consulSecretsPrefix, secretsInNomadVariables, dockerAuth, heredoc, jobHeader, jobPlacement, resourcesBlock, secretsTemplate, serviceProviderLine, usesRegistryAuth, variablePath } from "./common";
import { HAPROXY_CFG, HAPROXY_CFG_CANDIDATE, HEALTH_PATH, NODE_ADDRESS_ENV, nomadHaproxyRuntime, renderHaproxyReloadScript, renderHaproxyStartScript } from "./haproxy-cfg";

/**
 * The signal that reloads the official haproxy image gracefully: its entrypoint runs
 * `haproxy -W -db` (master-worker), whose master re-reads the config on SIGUSR2.
 */
export const HAPROXY_RELOAD_SIGNAL = "SIGUSR2";
/** Where the rendered config lives inside the container (the task's local/ directory). */
export const HAPROXY_CONFIG_PATH = `/local/${HAPROXY_CFG}`;
/**
 * Where Nomad's template writes the delivered config when the reload script can install it
 * (change_script, Nomad >= 1.4): a candidate, installed only after `haproxy -c`.
 */
export const HAPROXY_CANDIDATE_PATH = `/local/${HAPROXY_CFG_CANDIDATE}`;
/** The task's command (with a candidate): installs the checked candidate, then execs haproxy -W -db. */
export const HAPROXY_START_SCRIPT = "/local/start.sh";
/** The reload script Nomad runs in the task when the config changes. */
export const HAPROXY_RELOAD_SCRIPT = "/local/reload.sh";
/** Item of the job's Nomad Variable (nomad/jobs/haproxy) that holds haproxy.cfg. */
export const HAPROXY_CONFIG_ITEM = "haproxy_cfg";

export function renderHaproxyJob(c: Cluster): string {
  // With change_script (Nomad >= 1.4) the template writes a candidate that only start.sh and
  // reload.sh install, after haproxy -c; before that, straight to the running file.
  const candidate = supports(c.versions, "templateChangeScript");
  const hp = c.app.haproxy;
  const image = c.app.images.haproxy;
  return tidy(`
${jobHeader(c, "haproxy", "the load balancer behind the per-VM and floating-IP tunnels.")}

job "haproxy" {
${jobPlacement(c)}
  # One instance on every node that may hold the floating IP (client meta set by agents.ts).
  type = "system"

  constraint {
    attribute = "\${meta.${FLOATING_IP_META}}"
    value     = "true"
  }

  # System jobs cannot use canaries (nor spread, reschedule, migrate or scaling: one
  # instance per eligible node is the whole placement). Nodes are updated one at a time,
  # ${ROLLOUT.stagger} apart. Nomad 1.5-1.9 enforce only max_parallel and stagger for system
  # jobs; the health fields take effect on versions with system deployments.
  update {
    max_parallel      = 1
    stagger           = ${str(ROLLOUT.stagger)}
    health_check      = "checks"
    min_healthy_time  = ${str(ROLLOUT.minHealthyTime)}
    healthy_deadline  = ${str(ROLLOUT.healthyDeadline)}
    progress_deadline = ${str(ROLLOUT.progressDeadline)}
    auto_revert       = true
  }

  group "haproxy" {
    # Static ports on the overlay: reserved so that Nomad never hands them to another task.
    # HAProxy itself binds the addresses of its config (host network mode).
    network {
      port "node" {
        static       = ${hp.nodePort}
        host_network = ${str(OVERLAY_HOST_NETWORK)}
      }
      port "stats" {
        static       = ${hp.statsPort}
        host_network = ${str(OVERLAY_HOST_NETWORK)}
      }
      port "floating" {
        static = ${hp.floatingPort}
      }
    }

    # A system job is never rescheduled elsewhere: keep restarting in place.
    restart {
      attempts = 5
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    task "haproxy" {
      driver = "docker"

      config {
        image        = ${str(image)}
        network_mode = "host"
${
  candidate
    ? `        # start.sh installs the delivered config only if haproxy -c accepts it (else keeps the
        # last accepted one), then execs "haproxy -W -db -f ${HAPROXY_CONFIG_PATH}" as the image's
        # entrypoint would (master-worker; the master stays PID 1).
        command = "/bin/sh"
        args    = [${str(HAPROXY_START_SCRIPT)}]`
    : `        # The entrypoint turns "-f FILE" into "haproxy -W -db -f FILE" (master-worker).
        args = ["-f", ${str(HAPROXY_CONFIG_PATH)}]`
}
${dockerAuth(c, image, "        ")}
      }

      # SIGUSR1 is the image's STOPSIGNAL: a graceful stop that lets open connections finish.
      kill_signal  = "SIGUSR1"
      kill_timeout = "30s"

${
  candidate
    ? `      # Rendered first: the task's command and the config template's change script.
      template {
        data        = ${heredoc(renderHaproxyStartScript(nomadHaproxyRuntime(c)), "        ")}
        destination = "local/start.sh"
        perms       = "0755"
        change_mode = "noop"
      }`
    : OMIT
}
${
  candidate
    ? `      template {
        data        = ${heredoc(renderHaproxyReloadScript(nomadHaproxyRuntime(c)), "        ")}
        destination = "local/reload.sh"
        perms       = "0755"
        change_mode = "noop"
      }`
    : OMIT
}

      # The node's overlay address, for haproxy.cfg ("\${${NODE_ADDRESS_ENV}}").
      env {
        ${NODE_ADDRESS_ENV} = "\${attr.unique.network.ip-address}"
      }

      # haproxy.cfg is the same on every node and lives in ${
        secretsInNomadVariables(c) ? "this job's Nomad Variable" : `Consul KV (Nomad ${commentText(c.versions.nomad)} has no Variables)`
      }
      # (written by Terraform, readable in the synth output as rendered/jobs/haproxy.cfg):
      # a change re-renders this template on the running allocations and reloads HAProxy
      # in place. In the jobspec itself it would be a template change, which Nomad applies
      # by replacing the allocations (a stop and start of HAProxy on every node).
      template {
        data        = ${heredoc(
          secretsInNomadVariables(c)
            ? `{{ with nomadVar "${variablePath("haproxy")}" }}{{ .${HAPROXY_CONFIG_ITEM} }}{{ end }}\n`
            : `{{ key "${consulSecretsPrefix("haproxy")}${HAPROXY_CONFIG_ITEM}" }}\n`,
          "        ",
        )}
${
  candidate
    ? `        # A candidate, never the running file: a config haproxy -c rejects is not installed,
        # so it cannot break the next restart either.
        destination = ${str(HAPROXY_CANDIDATE_PATH.slice(1))}
        # Graceful reload: the script checks the candidate with haproxy -c, saves the servers'
        # state, installs it, then sends ${HAPROXY_RELOAD_SIGNAL} to the master, which starts new workers
        # on the new config while old workers finish their connections. Backend changes come
        # from DNS and need no reload.`
    : `        destination = ${str(HAPROXY_CONFIG_PATH.slice(1))}`
}
${
  supports(c.versions, "templateChangeScript")
    ? `        change_mode = "script"
        change_script {
          command       = ${str(HAPROXY_RELOAD_SCRIPT)}
          timeout       = "20s"
          fail_on_error = false
        }`
    : `        # Nomad ${commentText(c.versions.nomad)} has no change_script (1.4): the signal goes straight to the
        # master, without the haproxy -c check first. A config the master cannot load leaves
        # the old workers serving (master-worker keeps them), and the reload fails in the logs.
        change_mode   = "signal"
        change_signal = ${str(HAPROXY_RELOAD_SIGNAL)}`
}
        splay = "5s"
      }
${usesRegistryAuth(c, image) ? secretsTemplate(c, "haproxy", [REGISTRY_PASSWORD_ENV], "noop", "      ") : OMIT}

${resourcesBlock(hp.resources, "      ")}

      # The health endpoint keepalived tracks: http://<overlay address>:${hp.statsPort}${HEALTH_PATH}.
      service {
        name     = "haproxy"
${serviceProviderLine(c, "        ")}
        port     = "stats"
        tags     = ["lb"]

        check {
          name     = "haproxy health"
          type     = "http"
          path     = ${str(HEALTH_PATH)}
          interval = "5s"
          timeout  = "2s"
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
