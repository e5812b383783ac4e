/**
 * Writes cluster.schema.json (JSON Schema of the cluster description) for editor help:
 * YAML files start with `# yaml-language-server: $schema=../cluster.schema.json`.
 * Run: npm run schema. A test fails when the committed file is stale.
 */
import * as fs from "fs";
import * as path from "path";
import { clusterJsonSchema } from "../constructs/description/json-schema";

const target = path.join(__dirname, "..", "cluster.schema.json");
fs.writeFileSync(target, clusterJsonSchema());
process.stdout.write(`wrote ${path.relative(process.cwd(), target)}\n`);
