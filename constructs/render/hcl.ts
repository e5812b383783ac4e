/**
 * Minimal helpers to write HCL by hand in readable templates. Values are quoted here so
 * that no description value can break out of a string.
 */

import { hcl1String, hcl2String } from "../escape";

/** An HCL2 string literal (jobspecs). `${` and `%{` are escaped so HCL never interpolates a value. */
export function str(value: string): string {
  return hcl2String(value);
}

/** An HCL list of strings on one line. */
export function strList(values: readonly string[], quote: (v: string) => string = str): string {
  return `[${values.map(quote).join(", ")}]`;
}

/** `key = value` lines of a map block, keys quoted, sorted for stable output. */
export function mapLines(map: Record<string, string>, indent: string, quote: (v: string) => string = str): string {
  return Object.keys(map)
    .sort()
    .map((k) => `${indent}${quote(k)} = ${quote(map[k])}`)
    .join("\n");
}

/**
 * The same helpers for the Consul and Nomad agent configs, which HCL1 reads: there `${`
 * cannot be escaped and is refused (see `hcl1String`).
 */
export const hcl1Str = hcl1String;
export const hcl1StrList = (values: readonly string[]): string => strList(values, hcl1String);
export const hcl1MapLines = (map: Record<string, string>, indent: string): string => mapLines(map, indent, hcl1String);

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
