#!/usr/bin/env bash
# Prints the cluster description that every CI job synthesizes, plans and deploys: the path
# written in the committed file clusters/deployed (one source of truth, reviewed like code).
# A CLUSTER_FILE set elsewhere (a CI/CD, repository or environment variable) that names
# another file is refused, so the reviewed description is the deployed one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
pointer=clusters/deployed
[ -f "$pointer" ] || { echo "error: $pointer is missing: write the path of the deployed description in it" >&2; exit 1; }
file=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$pointer" | head -n 1)
[ -n "$file" ] || { echo "error: $pointer names no description" >&2; exit 1; }
[ -f "$file" ] || { echo "error: $pointer names $file, which does not exist" >&2; exit 1; }
if [ -n "${CLUSTER_FILE:-}" ] && [ "$CLUSTER_FILE" != "$file" ]; then
  echo "error: CLUSTER_FILE=$CLUSTER_FILE is set outside the repository, but $pointer names $file; remove the variable (the committed file decides)" >&2
  exit 1
fi
printf '%s\n' "$file"
