/**
 * The Terraform engine the real-engine tests run: `TEST_ENGINE` (a path), else OpenTofu
 * built by `npm run engines` (.engines/bin/tofu), else `terraform` on PATH.
 */
import * as fs from "fs";
import * as path from "path";
import { hasCommand, REPO_ROOT } from "./synth";

export interface Engine {
  readonly name: string;
  readonly path: string;
}

export function findEngine(): Engine | undefined {
  const fromEnv = process.env.TEST_ENGINE;
  if (fromEnv) return { name: path.basename(fromEnv), path: fromEnv };
  const tofu = path.join(REPO_ROOT, ".engines", "bin", "tofu");
  if (fs.existsSync(tofu)) return { name: "tofu", path: tofu };
  if (hasCommand("terraform")) return { name: "terraform", path: "terraform" };
  return undefined;
}
