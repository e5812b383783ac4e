#!/usr/bin/env bash
# Apply the saved plans made by scripts/ci/plan.sh, or refuse.
#
#   scripts/ci/apply.sh --plans DIR [STACK...]   (after npx cdktf synth of the same commit)
#
# Refuses, before anything is applied, when the plans were made for another commit, or when
# a stack's synthesized files differ from those planned (cdk.tf.json, or a rendered file the
# provisioners would upload: they are read from disk at apply time, not from the plan).
# Then `terraform apply DIR/STACK/tfplan` for each STACK (default: all, nodes first):
# Terraform applies exactly the saved plan, and itself refuses a plan whose state changed
# since ("Saved plan is stale"). TF_VAR_* are removed from the environment first: the
# plan's values are the ones applied.
#
# No count is compared here: the autoscaled jobs register with preserve_counts (Nomad keeps
# the count it runs at the moment it registers; constructs/kept-count.ts), so a scale made
# between plan and apply is not undone.
set -euo pipefail
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

plans=""
stacks=()
while [ $# -gt 0 ]; do
  case $1 in
    --plans) plans=${2:?--plans needs a directory}; shift 2 ;;
    -*) die "unknown option $1 (usage: apply.sh --plans DIR [STACK...])" ;;
    *) stacks+=("$1"); shift ;;
  esac
done
[ -n "$plans" ] || die "usage: apply.sh --plans DIR [STACK...]"
[ ${#stacks[@]} -gt 0 ] || mapfile -t stacks < <(all_stacks)
[ ${#stacks[@]} -gt 0 ] || die "no synthesized stack in $SYNTH_OUT/stacks (run npx cdktf synth first)"
[ -d "$plans" ] || die "no plan directory $plans"
plans=$(cd "$plans" && pwd)

planned_commit=$(cat "$plans/commit" 2>/dev/null || true)
current_commit=$(git rev-parse HEAD 2>/dev/null || true)
if [ -n "$planned_commit$current_commit" ] && [ "$planned_commit" != "$current_commit" ]; then
  die "the plans were made for commit ${planned_commit:-(unknown)}, this is ${current_commit:-(unknown)}: run the plan job for this commit"
fi

# Check every stack before applying any.
for stack in "${stacks[@]}"; do
  dir=$(stack_dir "$stack")
  [ -f "$plans/$stack/tfplan" ] && [ -f "$plans/$stack/config.sha256" ] || die "no saved plan for $stack in $plans"
  install_lock_file "$stack" "$dir"
  if ! changed=$(diff <(config_digest "$dir") "$plans/$stack/config.sha256"); then
    echo "$changed" | sed -n 's/^[<>] [0-9a-f]*  \.\//  /p' | sort -u >&2
    die "$stack: the synthesized configuration differs from the planned one (files above): refusing to apply; plan again"
  fi
done

# The saved plan carries the variable values it was made with. Terraform ignores TF_VAR_* at
# apply time, but a value that differs is reported in a warning that prints BOTH values,
# sensitive or not (Terraform 1.11): none may reach the apply.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^TF_VAR_' || true)

for stack in "${stacks[@]}"; do
  dir=$(stack_dir "$stack")
  http_state_env "$stack"
  echo "== $stack: init" >&2
  terraform_init "$dir"
  echo "== $stack: apply the saved plan" >&2
  log=$(mktemp)
  if ! "$TERRAFORM" -chdir="$dir" apply -input=false -no-color -lock-timeout=5m "$plans/$stack/tfplan" 2>&1 | tee "$log"; then
    if grep -q "Saved plan is stale" "$log"; then
      echo "error: $stack: the state changed since this plan was made (another deploy ran): nothing was applied; plan again" >&2
    fi
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
done
