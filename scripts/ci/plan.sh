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
# and DIR/plan.md, the readable plans of all stacks as Markdown, and DIR/commit.
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
mkdir -p "$out"
out=$(cd "$out" && pwd)
git rev-parse HEAD > "$out/commit" 2>/dev/null || : > "$out/commit"

{
  echo "## Terraform plan"
  echo
  echo "Commit \`$(cat "$out/commit")\`; the deploy job applies these saved plans and nothing else."
} > "$out/plan.md"

for stack in "${stacks[@]}"; do
  dir=$(stack_dir "$stack")
  mkdir -p "$out/$stack"
  install_lock_file "$stack" "$dir"
  http_state_env "$stack"
  echo "== $stack: init" >&2
  terraform_init "$dir"
  echo "== $stack: plan" >&2
  "$TERRAFORM" -chdir="$dir" plan -input=false -no-color -lock-timeout=5m -out="$out/$stack/tfplan" >&2
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
echo "plans saved in $out" >&2
