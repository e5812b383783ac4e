/**
 * A stand-in cdktf app for testing `npm run diff` itself (scripts/cdktf.ts), not our
 * constructs: one `terraform_data` resource per stack (built into Terraform: no provider to
 * download, so `cdktf diff` plans offline). Stack names: FAKE_STACKS (comma-separated),
 * the resource's input: FAKE_INPUT (a new value is a change), FAKE_FAIL=1: the app fails,
 * FAKE_STATE_DIR: where the local state goes (required: never the repository).
 */
import * as path from "path";
import { App, LocalBackend, TerraformResource, TerraformStack } from "cdktf";

if (process.env.FAKE_FAIL === "1") {
  process.stderr.write("stand-in app failing on purpose (FAKE_FAIL=1)\n");
  process.exit(1);
}
const stateDir = process.env.FAKE_STATE_DIR;
if (!stateDir) throw new Error("FAKE_STATE_DIR is required");
const app = new App();
for (const name of (process.env.FAKE_STACKS ?? "team-example-nodes,team-example-jobs").split(",")) {
  const stack = new TerraformStack(app, name);
  new LocalBackend(stack, { path: path.join(stateDir, `${name}.tfstate`) });
  new TerraformResource(stack, "marker", { terraformResourceType: "terraform_data" }).addOverride("input", process.env.FAKE_INPUT ?? "a");
}
app.synth();
