#!/usr/bin/env bash
# Plan each stack against its real state and save the plan for the deploy job to apply.
#
#   scripts/ci/plan.sh --out DIR [STACK...]      (after npm run synth, from the repository root)
#
# For each STACK (default: every synthesized stack, nodes first): installs the committed
# provider lock file, runs `terraform init -lockfile=readonly` (a provider whose hash is not
# in the lock file stops here) and `terraform plan -out`, then writes under DIR/STACK/:
#   tfplan         the saved plan: the deploy job applies exactly this (it holds secrets:
#                  variable values, state; keep DIR out of anything public, see docs/ci.md)
#   plan.json      `terraform show -json` of it (for tools; ALSO holds secrets)
#   plan.txt       `terraform show` of it: the readable plan, sensitive values redacted by
#                  Terraform, posted for review
#   config.sha256  a digest of every file Terraform reads for the stack (scripts/ci/lib.sh)
#   changes        "true" when the plan changes something, "false" for "No changes."
# and DIR/plan.md, the readable plans of all stacks as Markdown, DIR/commit, and DIR/changes:
# "true" when any stack's plan changes something (the deploy is then offered), else "false"
# (the pipeline ends green without asking anyone: nothing to approve).
#
# Refuses (exit 3) unless this commit is the current tip of DEPLOY_BRANCH (lib.sh
# require_tip): only the tip is planned; a rollback is a revert commit, logged as such here.
set -euo pipefail
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out=""
stacks=()
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    -*) die "unknown option $1 (usage: plan.sh --out DIR [STACK...])" ;;
    *) stacks+=("$1"); shift ;;
  esac
done
[ -n "$out" ] || die "usage: plan.sh --out DIR [STACK...]"
[ ${#stacks[@]} -gt 0 ] || mapfile -t stacks < <(all_stacks)
[ ${#stacks[@]} -gt 0 ] || die "no synthesized stack in $SYNTH_OUT/stacks (run npm run synth first)"
require_tip "plan"
mkdir -p "$out"
out=$(cd "$out" && pwd)
git rev-parse HEAD > "$out/commit" 2>/dev/null || : > "$out/commit"
# A rollback is a revert commit (never a re-run of an old pipeline): said in the log and the plan.
reverts=$(git log -1 --format=%B 2>/dev/null | sed -n 's/^This reverts commit \([0-9a-f]\{7,40\}\).*/\1/p' | tr '\n' ' ')
[ -z "$reverts" ] || echo "rollback: commit $(cat "$out/commit") reverts ${reverts% }" >&2

{
  echo "## Terraform plan"
  echo
  echo "Commit \`$(cat "$out/commit")\`; the deploy job applies these saved plans and nothing else."
  [ -z "$reverts" ] || { echo; echo "**Rollback**: this commit reverts \`${reverts% }\`."; }
} > "$out/plan.md"
any_change=false

for stack in "${stacks[@]}"; do
  dir=$(stack_dir "$stack")
  mkdir -p "$out/$stack"
  install_lock_file "$stack" "$dir"
  http_state_env "$stack"
  echo "== $stack: init" >&2
  terraform_init "$dir"
  echo "== $stack: plan" >&2
  # -detailed-exitcode: 0 no changes, 2 changes, 1 an error.
  log=$(mktemp)
  status=0
  terraform_logged "$log" 2 -chdir="$dir" plan -input=false -no-color -detailed-exitcode -lock-timeout="${TF_LOCK_TIMEOUT:-5m}" -out="$out/$stack/tfplan" || status=$?
  case $status in
    0) echo false > "$out/$stack/changes" ;;
    2) echo true > "$out/$stack/changes"; any_change=true ;;
    *) explain_lock_error "$stack" "$log"; rm -f "$log"; die "$stack: terraform plan failed (above)" ;;
  esac
  rm -f "$log"
  "$TERRAFORM" -chdir="$dir" show -no-color "$out/$stack/tfplan" > "$out/$stack/plan.txt"
  "$TERRAFORM" -chdir="$dir" show -json "$out/$stack/tfplan" > "$out/$stack/plan.json"
  config_digest "$dir" > "$out/$stack/config.sha256"
  {
    echo
    echo "### \`$stack\`"
    echo
    echo '```'
    # Keep a comment within the platforms' size limits; the whole text is in the artifact.
    head -c 20000 "$out/$stack/plan.txt"
    [ "$(wc -c < "$out/$stack/plan.txt")" -le 20000 ] || printf '\n… (cut: the full plan is plan.txt in the plan artifact)'
    echo '```'
  } >> "$out/plan.md"
done
echo "$any_change" > "$out/changes"
if [ "$any_change" = true ]; then
  echo "plans saved in $out" >&2
else
  echo "plans saved in $out: no stack changes anything, nothing to deploy" >&2
fi
