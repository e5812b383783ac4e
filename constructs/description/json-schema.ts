/** JSON Schema of the description as an operator writes it (defaults optional). */
import { z } from "zod";
import { clusterSchema } from "./schema";

export function clusterJsonSchema(): string {
  const schema = z.toJSONSchema(clusterSchema, { io: "input", unrepresentable: "any" });
  return `${JSON.stringify({ ...schema, title: "Cluster description" }, null, 2)}\n`;
}
