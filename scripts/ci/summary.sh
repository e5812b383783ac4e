#!/usr/bin/env bash
# Our per-node, per-job change table (npm run summary, docs/plan-review.md) of this commit
# against BASE, written as Markdown to OUT. BASE is the commit the change lands on: on a
# pull/merge request, the first parent of the merge commit CI tests; on the default branch,
# the commit before this one. Never fails the job (a review aid): if the base cannot be
# synthesized, OUT says so in one line. With PLANS (the directory of scripts/ci/plan.sh), the
# rows of each planned stack come from Terraform's real plan (npm run summary -- --plan).
# The base is installed with `npm ci --ignore-scripts`: the plan job holds every secret, and
# no package install script of any commit runs beside them.
#
#   scripts/ci/summary.sh BASE OUT [PLANS]       (after npm run synth of this commit)
set -euo pipefail
base=${1:?usage: summary.sh BASE OUT [PLANS]}
out=${2:?usage: summary.sh BASE OUT [PLANS]}
plans=()
if [ -n "${3:-}" ]; then
  for json in "$3"/*/plan.json; do
    [ -f "$json" ] && plans+=(--plan "$(basename "$(dirname "$json")")=$json")
  done
fi
tmp=$(mktemp -d)
worktree=$tmp/plan-base
note() { printf '%s\n' "$*" > "$out"; }
if ! git rev-parse --verify --quiet "$base^{commit}" > /dev/null; then
  git fetch --quiet --no-tags --depth 1 origin "$base" || true
fi
if ! git worktree add --quiet --detach "$worktree" "$base" 2> /dev/null; then
  note "Base commit \`$base\` is not available here: no comparison (the synthesized files are in the artifact)."
elif ! (cd "$worktree" && npm ci --ignore-scripts --no-audit --no-fund > /dev/null 2>&1 && npm run --silent synth > /dev/null 2>&1); then
  note "Base commit \`$base\` does not synthesize: no comparison (the synthesized files are in the artifact)."
elif ! npm run --silent summary -- --base "$worktree/cdktf.out" --out cdktf.out "${plans[@]}" --title "Plan review against $base" > "$out"; then
  note "The summary against \`$base\` failed: see the job log."
fi
git worktree remove --force "$worktree" 2> /dev/null || true
rm -rf "$tmp"
cat "$out"
