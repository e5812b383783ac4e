/**
 * Where each stack keeps its Terraform state. Local files by default
 * (terraform.<stack>.tfstate next to cdktf.json); a team shares state through Consul's KV
 * backend, which locks, so two operators cannot apply at once.
 *
 * State holds secrets (nomad_variable items land there): use a backend with access
 * control (Consul ACLs + TLS, or another encrypted backend) for anything but a lab.
 */
import { ConsulBackend, HttpBackend, LocalBackend, type TerraformStack } from "cdktf";
import type { Cluster } from "./description/schema";
import { terraformLiteral } from "./escape";

export function configureStateBackend(stack: TerraformStack, cluster: Cluster, stackName: string): void {
  const state = cluster.state;
  if (state && "http" in state) {
    // Everything (address, lock addresses, credentials) comes from TF_HTTP_* at init time,
    // one state per stack: CI sets TF_HTTP_ADDRESS per stack (see docs/ci.md).
    new HttpBackend(stack, {} as never);
    return;
  }
  const consul = state?.consul;
  if (!consul) {
    // Terraform runs in cdktf.out/stacks/<stack>/: the state file sits in the project root,
    // where cdktf keeps it by default, outside the directory each synth rewrites. Relative,
    // so the synthesized JSON is the same on every machine.
    new LocalBackend(stack, { path: `../../../terraform.${stackName}.tfstate` });
    return;
  }
  new ConsulBackend(stack, {
    address: terraformLiteral(consul.address),
    scheme: terraformLiteral(consul.scheme),
    path: terraformLiteral(`${consul.path.replace(/\/$/, "")}/${stackName}`),
    lock: true,
    gzip: true,
    // No token here: Terraform reads CONSUL_HTTP_TOKEN from the operator's environment.
    accessToken: undefined as unknown as string,
  });
}
