/**
 * The jobs stack as synthesized from the example: its resources, and every jobspec read
 * back by HashiCorp's HCL parser, both from the readable file and from the JSON string
 * Terraform hands to the Nomad provider.
 */
import * as fs from "fs";
import * as path from "path";
import { jobsStackName } from "../constructs/jobs-stack";
import { nodesStackName } from "../constructs/nodes-stack";
import { fromTerraformLiteral, terraformLiteral } from "../constructs/nomad-job";
import { str } from "../constructs/render/hcl";
import { FLOATING_IP_META } from "../constructs/description/schema";
import { APP_CONTRACT_ENV, APP_SECRET_ENV, WORKER_PING } from "../constructs/render/jobs/api";
import { CANARIES, JOB_NAMES, ROLLOUT, peakInstances, useDistinctHosts, variablePath } from "../constructs/render/jobs/common";
import { HEALTH_PATH, nomadHaproxyRuntime, renderHaproxyConfig, renderHaproxyReloadScript, renderHaproxyStartScript } from "../constructs/render/jobs/haproxy-cfg";
import { HAPROXY_RELOAD_SIGNAL } from "../constructs/render/jobs/haproxy";
import { renderJobspecs } from "../constructs/render/jobs";
import type { Cluster } from "../constructs/description/schema";
import { cleanup, edited, exampleCluster, parseHcl, resourcesOf, synthCluster, type SynthOutput } from "./helpers/synth";
import { envNames, groupOf, jobsOf, taskOf, type SynthJob } from "./helpers/jobs";

const SERVICE_JOBS = ["web", "api", "worker"] as const;

describe("jobs stack (example cluster)", () => {
  const c = exampleCluster();
  const STACK = jobsStackName(c);
  let out: SynthOutput;
  let stack: any;
  let jobs: Record<(typeof JOB_NAMES)[number], SynthJob>;

  beforeAll(async () => {
    out = synthCluster(c);
    stack = out.stacks[STACK];
    jobs = await jobsOf(out, c);
  });
  afterAll(() => cleanup(out));

  it("is a stack of its own, named <cluster>-jobs, deployed after the nodes stack", () => {
    expect(STACK).toBe("team-example-jobs");
    expect(Object.keys(out.stacks).sort()).toEqual([nodesStackName(c), STACK].sort());
    const manifest = JSON.parse(fs.readFileSync(path.join(out.outdir, "manifest.json"), "utf8"));
    expect(manifest.stacks[STACK].dependencies).toEqual([nodesStackName(c)]);
    // No provisioning in the jobs stack, no job in the nodes stack.
    expect(stack.resource.null_resource).toBeUndefined();
    expect(out.stacks[nodesStackName(c)].resource.nomad_job).toBeUndefined();
  });

  it("configures the Nomad and Consul providers from the servers' HTTP APIs", () => {
    expect(stack.provider.nomad).toEqual([{ address: "https://nomad-team-example.example.org", region: "global" }]);
    expect(stack.provider.consul).toEqual([{ address: "consul-team-example.example.org:443", scheme: "https", datacenter: "dc1" }]);
  });

  it("registers the four jobs and the metrics job at readable addresses, waiting for their deployments", () => {
    const res = resourcesOf(stack, "nomad_job");
    expect(Object.keys(res).sort()).toEqual(["api", "haproxy", "metrics", "web", "worker"]);
    for (const job of JOB_NAMES) {
      expect(res[job].detach).toBe(false);
      expect(res[job].purge_on_destroy).toBe(true);
      expect(res[job].deregister_on_id_change).toBe(true);
      // The JSON points at the readable file, which is the one in the output.
      expect(res[job]["//"].jobspec_file).toBe(`rendered/jobs/${job}.nomad.hcl`);
      expect(out.files[STACK][res[job]["//"].jobspec_file]).toBeDefined();
    }
    // Secrets first: a template blocks until its Nomad Variable exists.
    expect(res.api.depends_on).toEqual(["nomad_variable.api"]);
    expect(res.worker.depends_on).toEqual(["nomad_variable.worker"]);
  });

  it("sends Nomad exactly the readable jobspec (JSON string with ${ and %{ escaped for Terraform)", async () => {
    for (const job of JOB_NAMES) {
      const { file, fromJson } = jobs[job];
      expect(fromJson).toBe(file);
      expect(await parseHcl(`${job}-from-json.hcl`, fromJson)).toEqual(await parseHcl(`${job}.hcl`, file));
    }
    // Nomad runtime interpolation survives Terraform: escaped in the JSON, plain in the file.
    const raw = resourcesOf(stack, "nomad_job").api.jobspec as string;
    expect(raw).toContain('PORT = "$${NOMAD_PORT_http}"');
    expect(raw).not.toMatch(/(^|[^$])\$\{/);
    expect(jobs.api.file).toContain('PORT = "${NOMAD_PORT_http}"');
  });

  it("declares the secrets as sensitive variables without defaults (synth needs none)", () => {
    expect(Object.keys(stack.variable).sort()).toEqual(["grafana_admin_password", "rabbitmq_password", "s3_access_key_id", "s3_secret_access_key"]);
    for (const v of Object.values<any>(stack.variable)) {
      expect(v).toMatchObject({ type: "string", sensitive: true, nullable: false });
      expect(v).not.toHaveProperty("default");
    }
  });

  it("writes the secrets into the backend's and the worker's own Nomad Variables", () => {
    const vars = resourcesOf(stack, "nomad_variable");
    // (haproxy's holds its config, see below; metrics' Grafana's admin password and the queue
    // exporter's broker URL, autoscaler.test.ts)
    expect(Object.keys(vars).sort()).toEqual(["api", "haproxy", "metrics", "worker"]);
    expect(vars.metrics.items.GF_SECURITY_ADMIN_PASSWORD).toBe("${var.grafana_admin_password}");
    for (const job of ["api", "worker"] as const) {
      expect(vars[job].path).toBe(variablePath(job));
      expect(Object.keys(vars[job].items).sort()).toEqual([...APP_SECRET_ENV].sort());
      expect(vars[job].items.AWS_ACCESS_KEY_ID).toBe("${var.s3_access_key_id}");
      expect(vars[job].items.AWS_SECRET_ACCESS_KEY).toBe("${var.s3_secret_access_key}");
      // Composed by Terraform, password URL-encoded (space as %20 for kombu's unquote).
      expect(vars[job].items.CELERY_BROKER_URL).toBe(
        'amqp://team-example:${replace(urlencode(var.rabbitmq_password), "+", "%20")}@rabbitmq.example.org:5672/team-example',
      );
    }
  });

  it("registers RabbitMQ and S3 as external Consul services, http defaults, and the settings in KV", () => {
    expect(resourcesOf(stack, "consul_node").rabbitmq).toMatchObject({ name: "external-rabbitmq", address: "rabbitmq.example.org", meta: { "external-node": "true" } });
    expect(resourcesOf(stack, "consul_node").s3).toMatchObject({ name: "external-s3", address: "s3.example.org" });
    expect(resourcesOf(stack, "consul_service").rabbitmq).toMatchObject({ name: "rabbitmq", node: "${consul_node.rabbitmq.name}", port: 5672 });
    expect(resourcesOf(stack, "consul_service").s3).toMatchObject({ name: "s3", node: "${consul_node.s3.name}", port: 443 });
    const entries = resourcesOf(stack, "consul_config_entry");
    for (const svc of ["web", "api"]) {
      expect(entries[`${svc}_defaults`]).toMatchObject({ kind: "service-defaults", name: svc });
      expect(JSON.parse(entries[`${svc}_defaults`].config_json)).toEqual({ Protocol: "http" });
    }
    const kv = resourcesOf(stack, "consul_key_prefix").app_settings;
    expect(kv.path_prefix).toBe("team-example/app/");
    expect(kv.subkeys).toMatchObject({ "s3/bucket": "team-example", "s3/endpoint": "https://s3.example.org", "broker/user": "team-example", public_url: "https://team-example.example.org" });
    expect(JSON.stringify(kv)).not.toMatch(/password|secret/i);
  });

  it("outputs the job names and the public URL", () => {
    expect(stack.output.job_names.value).toEqual(["haproxy", "web", "api", "worker", "metrics"]);
    expect(stack.output.public_url.value).toBe("https://team-example.example.org");
  });

  describe("service jobs (web, api, worker)", () => {
    it.each(SERVICE_JOBS)("%s: type, placement, canary rollout with auto-promote and auto-revert", (name) => {
      const job = jobs[name].job;
      expect(job.type).toBe("service");
      expect(job.datacenters).toEqual(["dc1"]);
      expect(job.region).toBe("global");
      expect(job.update[0]).toEqual({
        max_parallel: 1,
        canary: CANARIES,
        auto_promote: true,
        auto_revert: true,
        health_check: "checks",
        min_healthy_time: ROLLOUT.minHealthyTime,
        healthy_deadline: ROLLOUT.healthyDeadline,
        progress_deadline: ROLLOUT.progressDeadline,
      });
    });

    it.each(SERVICE_JOBS)("%s: count, spread across nodes, no distinct_hosts on 2 nodes, scaling, restart/reschedule/migrate", (name) => {
      const g = groupOf(jobs[name].job, name);
      // The description's count (a new job's): with the autoscaler (on by default) Nomad keeps
      // the running count at each release (preserve_counts, kept-count.test.ts).
      expect(g.count).toBe(c.app[name].count);
      expect(jobs[name].file).not.toMatch(/variable "/);
      expect(g.spread).toEqual([{ attribute: "${node.unique.id}", weight: 100 }]);
      // 2 nodes, count 2 + canary: a hard distinct_hosts would block the canary.
      expect(g.constraint).toBeUndefined();
      // min 0: the autoscaler's pre-query min check never fires; the floor is in the query (scaling-policies.test.ts).
      expect(g.scaling[0]).toMatchObject({ enabled: true, min: 0, max: 2 * c.app[name].count });
      expect(g.restart[0]).toMatchObject({ attempts: 3, mode: "fail" });
      expect(g.reschedule[0]).toMatchObject({ unlimited: true, delay_function: "exponential" });
      expect(g.migrate[0]).toMatchObject({ max_parallel: 1, health_check: "checks" });
      const t = taskOf(jobs[name].job, name);
      expect(t.resources[0]).toEqual({ cpu: c.app[name].resources.cpu, memory: c.app[name].resources.memory });
    });

    it.each(["web", "api"] as const)("%s: a dynamic port on host_network overlay, PORT from Nomad, Consul service with an HTTP check", (name) => {
      const g = groupOf(jobs[name].job, name);
      expect(g.network[0].port.http[0]).toEqual({ host_network: "overlay" });
      const t = taskOf(jobs[name].job, name);
      expect(t.driver).toBe("docker");
      expect(t.config[0].image).toBe(c.app.images[name]);
      expect(t.config[0].ports).toEqual(["http"]);
      expect(t.env[0].PORT).toBe("${NOMAD_PORT_http}");
      const svc = t.service[0];
      expect(svc).toMatchObject({ name, port: "http", provider: "consul" });
      expect(svc.check[0]).toMatchObject({ type: "http", path: name === "api" ? "/health" : "/config.json" });
    });

    it("web: writes config.json from API_ENDPOINT = the public URL", () => {
      expect(taskOf(jobs.web.job, "web").env[0].API_ENDPOINT).toBe(c.app.publicUrl);
    });

    it.each(["api", "worker"] as const)("%s: every variable of the app contract, secrets only through the job's Nomad Variable", (name) => {
      const t = taskOf(jobs[name].job, name);
      const names = envNames(t);
      for (const v of APP_CONTRACT_ENV) expect(names).toContain(v);
      expect(t.env[0]).toMatchObject({ S3_ENDPOINT_URL: "https://s3.example.org", S3_BUCKET_NAME: "team-example", AWS_REGION_NAME: "us-east-1" });
      for (const v of APP_SECRET_ENV) expect(t.env[0]).not.toHaveProperty(v);
      const tpl = t.template.find((x: any) => x.env === true);
      expect(tpl).toMatchObject({ destination: "secrets/app.env", change_mode: "restart" });
      expect(tpl.data).toContain(`{{ with nomadVar "${variablePath(name)}" -}}`);
      for (const v of APP_SECRET_ENV) expect(tpl.data).toContain(`${v}={{ .${v} | toJSON }}`);
    });

    it("worker: Celery with the described concurrency, warm shutdown with the described kill_timeout, a script check, no port", () => {
      const g = groupOf(jobs.worker.job, "worker");
      expect(g.network).toBeUndefined();
      const t = taskOf(jobs.worker.job, "worker");
      expect(t.config[0].command).toBe("celery");
      expect(t.config[0].args).toEqual(["--app", "image_api.worker.app", "worker", "--loglevel", "INFO", "--concurrency", String(c.app.worker.concurrency)]);
      expect(t.kill_timeout).toBe(c.app.worker.killTimeout);
      expect(t.kill_timeout).toBe("120s");
      expect(t.kill_signal).toBe("SIGTERM");
      const svc = t.service[0];
      expect(svc.name).toBe("worker");
      expect(svc.port).toBeUndefined();
      expect(svc.check[0]).toMatchObject({ type: "script", command: "/bin/sh", args: ["-c", WORKER_PING] });
      expect(WORKER_PING).toContain("inspect ping");
      expect(WORKER_PING).toContain("-d celery@$HOSTNAME");
      // a broker outage fails every ping: it must not restart workers (and kill their tasks)
      expect(svc.check_restart).toBeUndefined();
    });

    it("web and api leave Consul longer before they stop than HAProxy may still pick an instance gone from Consul DNS", () => {
      // From the rendered haproxy.cfg: an answer up to `hold valid` old, the next resolution
      // up to one `timeout resolve` tick later, then `hold obsolete` for the vanished record.
      const cfg = renderHaproxyConfig(c, nomadHaproxyRuntime(c));
      const seconds = (re: RegExp) => Number(cfg.match(re)![1]);
      const hold = seconds(/^\s*hold valid (\d+)s$/m) + seconds(/^\s*timeout resolve (\d+)s$/m) + seconds(/^\s*hold obsolete (\d+)s$/m);
      expect(hold).toBeGreaterThan(5);
      for (const name of ["web", "api"] as const) {
        const delay = Number(/^(\d+)s$/.exec(taskOf(jobs[name].job, name).shutdown_delay)![1]);
        expect(delay).toBeGreaterThan(hold);
      }
    });

    it("api: threaded gunicorn workers from the description, graceful stop within kill_timeout, no more requests per instance than threads", async () => {
      const t = taskOf(jobs.api.job, "api");
      expect(t.config[0].command).toBe("gunicorn");
      const args: string[] = t.config[0].args;
      const opt = (name: string) => args[args.indexOf(name) + 1];
      expect(opt("--worker-class")).toBe("gthread");
      expect(opt("--workers")).toBe(String(c.app.api.workers));
      expect(opt("--threads")).toBe(String(c.app.api.threads));
      expect(opt("--bind")).toBe("0.0.0.0:${NOMAD_PORT_http}");
      expect(args[args.length - 1]).toBe("image_api.web:app");
      expect(Number(opt("--graceful-timeout"))).toBeLessThan(Number(/^(\d+)s$/.exec(t.kill_timeout)![1]));
      // Each HAProxy sends an instance fewer requests than the threads it has, so that
      // health checks always find a free one (every eligible node's HAProxy, together).
      const other = edited(c, (x) => (x.app.api = { ...x.app.api, workers: 3, threads: 4 }));
      const otherApi = (await parseHcl("api.nomad.hcl", renderJobspecs(other).api)).job.api[0];
      expect(taskOf(otherApi, "api").config[0].args).toEqual(expect.arrayContaining(["--workers", "3", "--threads", "4"]));
      for (const cl of [c, other]) {
        // Both api backends (reads, uploads) of every HAProxy together stay below the threads.
        const cfg = renderHaproxyConfig(cl, nomadHaproxyRuntime(cl));
        const limits = [...cfg.matchAll(/^\s*server-template api \d+ .* maxconn (\d+)$/gm)].map((m) => Number(m[1]));
        expect(limits).toHaveLength(2);
        for (const l of limits) expect(l).toBeGreaterThan(0);
        const haproxies = cl.nodes.filter((n) => n.floatingIp.eligible).length;
        expect((limits[0] + limits[1]) * haproxies).toBeLessThan(cl.app.api.workers * cl.app.api.threads - haproxies);
      }
      expect(renderHaproxyConfig(c, nomadHaproxyRuntime(c))).toMatch(/use_backend api_uploads if is_api METH_POST\n\s*use_backend api if is_api/);
    });
  });

  describe("haproxy", () => {
    it("is a system job on floating-IP-eligible nodes, without canaries, one node at a time", () => {
      const job = jobs.haproxy.job;
      expect(job.type).toBe("system");
      expect(job.constraint).toEqual([{ attribute: `\${meta.${FLOATING_IP_META}}`, value: "true" }]);
      expect(job.update[0]).toMatchObject({ max_parallel: 1, stagger: ROLLOUT.stagger, health_check: "checks", min_healthy_time: ROLLOUT.minHealthyTime });
      expect(job.update[0].canary).toBeUndefined();
      const g = groupOf(job, "haproxy");
      // Nomad refuses these on system jobs.
      for (const k of ["spread", "scaling", "reschedule", "migrate", "count"]) expect(g[k]).toBeUndefined();
      expect(g.network[0].port.node[0]).toEqual({ static: c.app.haproxy.nodePort, host_network: "overlay" });
      expect(g.network[0].port.stats[0]).toEqual({ static: c.app.haproxy.statsPort, host_network: "overlay" });
    });

    it("runs the described image in host network mode, config from its Nomad Variable, reloaded in place by SIGUSR2 after a check", () => {
      const t = taskOf(jobs.haproxy.job, "haproxy");
      expect(t.config[0]).toMatchObject({ image: "haproxy:3.0.5", network_mode: "host", command: "/bin/sh", args: ["/local/start.sh"] });
      const [start, script, cfg] = t.template;
      expect(start).toMatchObject({ destination: "local/start.sh", perms: "0755", change_mode: "noop" });
      expect(start.data).toBe(renderHaproxyStartScript(nomadHaproxyRuntime(c)));
      expect(start.data).toContain("exec haproxy -W -db -f \"$cfg\"");
      expect(script).toMatchObject({ destination: "local/reload.sh", perms: "0755", change_mode: "noop" });
      expect(script.data).toBe(renderHaproxyReloadScript(nomadHaproxyRuntime(c)));
      expect(script.data).toContain(`kill -${HAPROXY_RELOAD_SIGNAL.replace(/^SIG/, "")} 1`);
      expect(script.data).not.toMatch(/exec kill/); // the image has no /bin/kill: the shell's own
      expect(script.data.indexOf('haproxy -c -q -f "$next"')).toBeLessThan(script.data.indexOf("kill -USR2"));
      expect(HAPROXY_RELOAD_SIGNAL).toBe("SIGUSR2");
      // Nomad writes a candidate; only the scripts install it, after haproxy -c.
      expect(cfg).toMatchObject({ destination: "local/haproxy.cfg.next", change_mode: "script" });
      expect(cfg.change_script[0]).toMatchObject({ command: "/local/reload.sh", fail_on_error: false });
      // The template only prints the variable's item: a config change re-renders it in place
      // (a change of the jobspec's template would replace the allocations instead).
      expect(cfg.data).toBe('{{ with nomadVar "nomad/jobs/haproxy" }}{{ .haproxy_cfg }}{{ end }}\n');
      expect(t.env[0]).toEqual({ NODE_ADDRESS: "${attr.unique.network.ip-address}" });
      expect(t.kill_signal).toBe("SIGUSR1");
    });

    it("delivers haproxy.cfg, the same for every node, in nomad_variable.haproxy (readable in rendered/jobs/haproxy.cfg)", () => {
      const v = resourcesOf(stack, "nomad_variable").haproxy;
      expect(v.path).toBe("nomad/jobs/haproxy");
      const file = out.files[STACK]["rendered/jobs/haproxy.cfg"];
      expect(file).toBe(renderHaproxyConfig(c, nomadHaproxyRuntime(c)));
      expect(v["//"].haproxy_cfg_file).toBe("rendered/jobs/haproxy.cfg");
      // Terraform hands Nomad exactly the file: ${NODE_ADDRESS} (HAProxy's) escaped from Terraform.
      expect(fromTerraformLiteral(v.items.haproxy_cfg)).toBe(file);
      expect(v.items.haproxy_cfg).toContain('"$${NODE_ADDRESS}:8080"');
      expect(v.items.haproxy_cfg).not.toMatch(/(^|[^$])\$\{/);
      expect(resourcesOf(stack, "nomad_job").haproxy.depends_on).toEqual(["nomad_variable.haproxy"]);
      // no consul-template action in it: the file is static, the node's address comes from the env
      expect(file).not.toContain("{{");
    });

    it("routes /image to api, the rest to web, discovers both through Consul DNS SRV on the node", () => {
      const cfg = renderHaproxyConfig(c, nomadHaproxyRuntime(c));
      expect(cfg).toMatch(/acl is_api path_beg \/image\n(\s+#.*\n)*\s+use_backend api_uploads if is_api METH_POST\n\s+use_backend api if is_api\n\s+default_backend web/);
      expect(cfg).toContain('nameserver consul "${NODE_ADDRESS}:53"');
      expect(cfg).toContain("accepted_payload_size 8192");
      expect(cfg).toContain("hold valid 5s");
      for (const b of ["api", "web"] as const) {
        expect(cfg).toContain(
          `server-template ${b} ${peakInstances(c, b)} _${b}._tcp.service.consul resolvers consul resolve-opts allow-dup-ip resolve-prefer ipv4 init-addr last,none check`,
        );
      }
      // Slots: scaling.max (2 × count by default) + a canary.
      expect(peakInstances(c, "api")).toBe(5);
      expect(cfg).toContain('bind "${NODE_ADDRESS}:8080" name node');
      expect(cfg).toContain(`bind 172.16.3.100:8081 name floating`);
      expect(cfg).toContain('bind "${NODE_ADDRESS}:8404" name stats');
      expect(cfg).toContain(`monitor-uri ${HEALTH_PATH}`);
      expect(cfg).toContain("stats uri /stats");
      // stats from the node itself only (the overlay is shared between teams); metrics also
      // from the cluster's own nodes (the collector), see metrics.test.ts
      expect(cfg).toContain('acl this_node src 127.0.0.0/8 "${NODE_ADDRESS}"\n');
      expect(cfg).toContain("http-request deny deny_status 403 unless this_node || cluster_node metrics_path");
    });

    it("registers a Consul service whose HTTP check is the health endpoint keepalived tracks", () => {
      const svc = taskOf(jobs.haproxy.job, "haproxy").service[0];
      expect(svc).toMatchObject({ name: "haproxy", port: "stats" });
      expect(svc.check[0]).toMatchObject({ type: "http", path: "/healthz" });
    });
  });
});

/** n nodes on the example's overlay, all eligible for the floating IP. */
function withNodes(c: Cluster, n: number): Cluster {
  return edited(c, (x) => {
    x.nodes = Array.from({ length: n }, (_, i) => ({
      ...structuredClone(c.nodes[0]),
      name: `node-${i + 1}`,
      address: `192.0.2.${11 + i}`,
      overlayAddress: `172.16.1.${11 + i}`,
      floatingIp: { eligible: true, priority: 150 - i },
    }));
  });
}

describe("jobspec variants", () => {
  it("adds distinct_hosts only when every instance (scaling.max + canary) fits on the nodes minus one", async () => {
    const big = edited(withNodes(exampleCluster(), 5), (x) => (x.app.api.scaling = { min: 2, max: 3 }));
    expect(useDistinctHosts(big, "api")).toBe(true); // 3 + 1 <= 5 - 1
    expect(useDistinctHosts(big, "web")).toBe(false); // 2 × 2 + 1 > 5 - 1
    const api = (await parseHcl("api", renderJobspecs(big).api)).job.api[0];
    expect(groupOf(api, "api").constraint).toEqual([{ operator: "distinct_hosts", value: "true" }]);
    expect(groupOf(api, "api").spread).toHaveLength(1);
    const web = (await parseHcl("web", renderJobspecs(big).web)).job.web[0];
    expect(groupOf(web, "web").constraint).toBeUndefined();
    // "nodes minus one" already leaves room for a node in maintenance: the flag itself must
    // not rewrite the jobs (that would redeploy every job during a drain).
    expect(useDistinctHosts(withNodes(exampleCluster(), 6), "web")).toBe(true);
    const six = withNodes(exampleCluster(), 6);
    const maint = edited(six, (x) => (x.nodes[0].maintenance = true));
    expect(useDistinctHosts(maint, "web")).toBe(true);
    expect(renderJobspecs(maint)).toEqual(renderJobspecs(six));
  });

  it("sizes the server-template slots from scaling.max", () => {
    const c = edited(exampleCluster(), (x) => (x.app.web.scaling = { min: 2, max: 9 }));
    expect(renderHaproxyConfig(c, nomadHaproxyRuntime(c))).toContain("server-template web 10 _web._tcp.service.consul");
  });

  it("memory_max reaches the jobspec when described", async () => {
    const c = edited(exampleCluster(), (x) => (x.app.api.resources.memoryMax = 1024));
    const api = (await parseHcl("api", renderJobspecs(c).api)).job.api[0];
    expect(taskOf(api, "api").resources[0]).toEqual({ cpu: c.app.api.resources.cpu, memory: c.app.api.resources.memory, memory_max: 1024 });
  });

  describe("with a private registry (app.registry)", () => {
    const c = edited(exampleCluster(), (x) => (x.app.registry = { server: "ghcr.io", username: "example-bot" }));
    let out: SynthOutput;
    let jobs: Record<(typeof JOB_NAMES)[number], SynthJob>;
    beforeAll(async () => {
      out = synthCluster(c);
      jobs = await jobsOf(out, c);
    });
    afterAll(() => cleanup(out));

    it("declares registry_password, sensitive, and stores it only for jobs whose image is on that registry", () => {
      const stack = out.stacks[jobsStackName(c)];
      expect(stack.variable.registry_password).toMatchObject({ sensitive: true, type: "string" });
      expect(stack.variable.registry_password).not.toHaveProperty("default");
      // values written verbatim into an env file refuse what the env-file parser cannot read
      for (const v of ["registry_password", "s3_access_key_id", "s3_secret_access_key"]) {
        expect(stack.variable[v].validation[0].condition).toBe(`\${can(regex("^[^&<>[:cntrl:]]+$", var.${v}))}`);
      }
      expect(stack.variable.rabbitmq_password.validation).toBeUndefined(); // URL-encoded first
      const vars = resourcesOf(stack, "nomad_variable");
      // haproxy:3.0.5 comes from Docker Hub: ghcr.io credentials would break its pull.
      expect(Object.keys(vars).sort()).toEqual(["api", "haproxy", "metrics", "web", "worker"]);
      expect(vars.haproxy.items).not.toHaveProperty("REGISTRY_PASSWORD");
      // the queue exporter runs the api image: it pulls with the same credentials
      expect(vars.metrics.items.REGISTRY_PASSWORD).toBe("${var.registry_password}");
      expect(vars.web.items).toEqual({ REGISTRY_PASSWORD: "${var.registry_password}" });
      expect(vars.api.items.REGISTRY_PASSWORD).toBe("${var.registry_password}");
      expect(resourcesOf(stack, "nomad_job").web.depends_on).toEqual(["nomad_variable.web"]);
    });

    it("gives the docker driver auth from the template's env, never the password itself", () => {
      for (const name of ["web", "api", "worker"] as const) {
        const t = taskOf(jobs[name].job, name);
        expect(t.config[0].auth[0]).toEqual({ server_address: "ghcr.io", username: "example-bot", password: "${REGISTRY_PASSWORD}" });
        expect(t.template.some((x: any) => x.env === true && x.data.includes("REGISTRY_PASSWORD={{ .REGISTRY_PASSWORD | toJSON }}"))).toBe(true);
        expect(jobs[name].fromJson).toBe(jobs[name].file);
      }
      expect(taskOf(jobs.haproxy.job, "haproxy").config[0].auth).toBeUndefined();
    });
  });
});

describe("escaping for Nomad and Terraform", () => {
  it("str() keeps ${ and %{ literal for Nomad's HCL2 (a replacement string's $$ is one $)", async () => {
    expect(str("a${b}%{c}")).toBe('"a$${b}%%{c}"');
    expect((await parseHcl("x.hcl", `x = ${str("a${b}%{c}")}\n`)).x).toBe("a$${b}%%{c}");
  });

  it("terraformLiteral() doubles ${ and %{ once, and round-trips", () => {
    const text = 'PORT = "${NOMAD_PORT_http}" %{ x } $${kept}';
    expect(terraformLiteral(text)).toBe('PORT = "$${NOMAD_PORT_http}" %%{ x } $$${kept}');
    expect(fromTerraformLiteral(terraformLiteral(text))).toBe(text);
  });
});
