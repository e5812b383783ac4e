/**
 * Every file that lands on a machine or in Nomad is also written, readable, next to the
 * stack's Terraform JSON (`cdktf.out/stacks/<stack>/rendered/...`), so that a plan
 * reviewer reads and diffs the real files. Terraform runs in that directory, so the JSON
 * references them by the same relative path (file provisioner `source`).
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Construct } from "constructs";
import { TerraformStack } from "cdktf";
import type { ISynthesisSession } from "cdktf";

export const RENDERED_DIR = "rendered";

export function sha256(text: string): string {
  return crypto.createHash("sha256").update(text).digest("hex");
}

export class RenderedFiles extends Construct {
  private readonly files = new Map<string, string>();

  /** The stack's registry of rendered files (created on first use). */
  static of(scope: Construct): RenderedFiles {
    const stack = TerraformStack.of(scope);
    const existing = stack.node.tryFindChild("RenderedFiles");
    return existing ? (existing as RenderedFiles) : new RenderedFiles(stack);
  }

  private constructor(stack: TerraformStack) {
    super(stack, "RenderedFiles");
    const base = stack.synthesizer;
    stack.synthesizer = {
      synthesize: (session: ISynthesisSession) => {
        base.synthesize(session);
        const stackDir = path.join(session.outdir, session.manifest.forStack(stack).workingDirectory);
        this.writeTo(stackDir);
      },
    };
  }

  /**
   * Registers a file; returns its path relative to the stack directory (what Terraform
   * reads). Registering the same path twice with different text is a programming error.
   */
  add(relativePath: string, text: string): string {
    const rel = path.posix.join(RENDERED_DIR, relativePath);
    const previous = this.files.get(rel);
    if (previous !== undefined && previous !== text) throw new Error(`rendered file ${rel} registered twice with different content`);
    this.files.set(rel, text);
    return rel;
  }

  /** Path → content of every registered file (for tests and summaries). */
  all(): ReadonlyMap<string, string> {
    return this.files;
  }

  private writeTo(stackDir: string): void {
    fs.rmSync(path.join(stackDir, RENDERED_DIR), { recursive: true, force: true });
    const files = [...this.files].sort(([a], [b]) => a.localeCompare(b));
    // Each directory once (a large cluster has thousands of files in hundreds of directories).
    for (const dir of new Set(files.map(([rel]) => path.dirname(path.join(stackDir, rel))))) {
      fs.mkdirSync(dir, { recursive: true });
    }
    for (const [rel, text] of files) {
      fs.writeFileSync(path.join(stackDir, rel), text, { mode: rel.endsWith(".sh") ? 0o755 : 0o644 });
    }
  }
}
