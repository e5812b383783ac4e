/**
 * Which cluster description a command works on, and the line it prints about it.
 *
 * Every command (main.ts under `cdktf synth`, `npm run synth/diff/deploy/summary/topology/
 * drift`) takes the description from CLUSTER_FILE, and falls back to the example. Forgetting
 * CLUSTER_FILE used to synthesize the example silently; each command now says which file it
 * loaded and which stacks that gives, and says loudly when it is the example.
 */
import * as path from "path";
import { formatProblems, loadDescriptionFile } from "./load";
import type { Cluster } from "./schema";
import { stackNames } from "../stack-names";
import { withoutAclsWarning } from "./exposure";

export const DEFAULT_CLUSTER_FILE = "clusters/example.yaml";
/** Set by the npm command wrappers once they have printed the notice (main.ts then stays quiet). */
export const ANNOUNCED_ENV = "CLUSTER_DESCRIPTION_ANNOUNCED";

export interface SelectedDescription {
  /** The file as the operator named it (or the default). */
  readonly file: string;
  readonly absolutePath: string;
  /** false: CLUSTER_FILE was not set and the example was taken. */
  readonly fromEnv: boolean;
}

export function selectedDescription(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): SelectedDescription {
  const fromEnv = env.CLUSTER_FILE !== undefined && env.CLUSTER_FILE !== "";
  const file = fromEnv ? env.CLUSTER_FILE! : DEFAULT_CLUSTER_FILE;
  return { file, absolutePath: path.resolve(cwd, file), fromEnv };
}

/**
 * The notice, e.g.
 * `cluster description: clusters/team-blue.yaml (CLUSTER_FILE) -> stacks team-blue-nodes, team-blue-jobs`
 * or, without CLUSTER_FILE, a second line saying that this is the example and how to pick another.
 */
export function selectionNotice(sel: SelectedDescription, cluster: Pick<Cluster, "name">): string {
  const stacks = stackNames(cluster).join(", ");
  if (sel.fromEnv) return `cluster description: ${sel.file} (CLUSTER_FILE) -> stacks ${stacks}\n`;
  return (
    `cluster description: ${sel.file} -> stacks ${stacks}\n` +
    `NOTE: CLUSTER_FILE is not set, so this is THE EXAMPLE cluster, not yours. ` +
    `Pick yours with e.g. CLUSTER_FILE=clusters/<team>.yaml npm run <command>\n`
  );
}

export type LoadedSelection =
  | {
      ok: true;
      selection: SelectedDescription;
      cluster: Cluster;
      stacks: string[];
      notice: string;
      /** One line when the cluster runs without ACLs (what others can read; docs/trust-model.md), else "". Printed by synth/diff/deploy. */
      warning: string;
    }
  | { ok: false; selection: SelectedDescription; message: string };

/** Loads and validates the selected description; `message` lists every problem once. */
export function loadSelectedDescription(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): LoadedSelection {
  const selection = selectedDescription(env, cwd);
  const loaded = loadDescriptionFile(selection.absolutePath);
  if (!loaded.ok) {
    const hint = selection.fromEnv ? "" : `\n(CLUSTER_FILE is not set: this is the example ${DEFAULT_CLUSTER_FILE})`;
    return { ok: false, selection, message: `${formatProblems(selection.file, loaded.problems)}${hint}\n` };
  }
  return {
    ok: true,
    selection,
    cluster: loaded.cluster,
    stacks: stackNames(loaded.cluster),
    notice: selectionNotice(selection, loaded.cluster),
    warning: withoutAclsWarning(loaded.cluster) ?? "",
  };
}

/**
 * What every command does first: loads the selected description and says so on stderr
 * (the notice), or prints its problems there. The caller picks its exit code on failure.
 */
export function announceSelectedDescription(stderr: { write(text: string): unknown } = process.stderr): LoadedSelection {
  const loaded = loadSelectedDescription();
  stderr.write(loaded.ok ? loaded.notice : loaded.message);
  return loaded;
}
