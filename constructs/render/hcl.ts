/**
 * Minimal helpers to write HCL by hand in readable templates. Values are quoted here so
 * that no description value can break out of a string.
 */

/** An HCL string literal. `${` and `%{` are escaped so HCL never interpolates a value. */
export function str(value: string): string {
  const escaped = value
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\n/g, "\\n")
    // Function replacers: in a replacement string "$$" stands for a single "$".
    .replace(/\$\{/g, () => "$${")
    .replace(/%\{/g, () => "%%{");
  return `"${escaped}"`;
}

/** An HCL list of strings on one line. */
export function strList(values: readonly string[]): string {
  return `[${values.map(str).join(", ")}]`;
}

/** `key = value` lines of a map block, keys quoted, sorted for stable output. */
export function mapLines(map: Record<string, string>, indent: string): string {
  return Object.keys(map)
    .sort()
    .map((k) => `${indent}${str(k)} = ${str(map[k])}`)
    .join("\n");
}

/** Removes the lines a template left empty by an omitted optional part, keeps intentional blank lines single. */
export function tidy(text: string): string {
  return (
    text
      .split("\n")
      .filter((line) => line !== "\u0000")
      .join("\n")
      .replace(/\n{3,}/g, "\n\n")
      .trim() + "\n"
  );
}

/** Marker for a template line that is to disappear (see `tidy`). */
export const OMIT = "\u0000";

/** `text` when `cond`, otherwise a line that `tidy` removes. */
export function when(cond: unknown, text: string | (() => string)): string {
  if (!cond) return OMIT;
  return typeof text === "function" ? text() : text;
}
