// Validates GitHub Actions workflow files with GitHub's own workflow parser and schema
// (@actions/workflow-parser: workflow-v1.0.json, the parser of GitHub's Actions language
// services). ES module only, so the tests run it as a child process:
//   node --import tsx __tests__/helpers/github-workflow-check.mjs FILE...   (tsx: the package imports its JSON schema without an import attribute)
// Prints {"<file>": ["error", ...]} as JSON; exit 0 (the caller judges).
import { readFileSync } from "node:fs";
import { NoOperationTraceWriter, parseWorkflow, convertWorkflowTemplate } from "@actions/workflow-parser";

const result = {};
for (const file of process.argv.slice(2)) {
  const parsed = parseWorkflow({ name: file, content: readFileSync(file, "utf8") }, new NoOperationTraceWriter());
  // The conversion checks the model (needs, job names, …) and adds to the same error list.
  if (parsed.value !== undefined) await convertWorkflowTemplate(parsed.context, parsed.value);
  result[file] = parsed.context.errors.getErrors().map((e) => e.message);
}
process.stdout.write(JSON.stringify(result));
