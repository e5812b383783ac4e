#!/usr/bin/env bash
# Apply the saved plans made by scripts/ci/plan.sh, or refuse.
#
#   scripts/ci/apply.sh --plans DIR [STACK...]   (after npm run synth of the same commit)
#
# Refuses, before anything is applied, when the plans were made for another commit, when
# this commit is not the current tip of DEPLOY_BRANCH (exit 3; checked again before each
# stack: only the tip deploys, a rollback is a revert commit: lib.sh require_tip), or when
# a stack's synthesized files differ from those planned (cdk.tf.json, or a rendered file the
# provisioners would upload: they are read from disk at apply time, not from the plan).
# Then `terraform apply DIR/STACK/tfplan` for each STACK (default: all, nodes first):
# Terraform applies exactly the saved plan, and itself refuses a plan whose state changed
# since ("Saved plan is stale"). TF_VAR_* are removed from the environment first: the
# plan's values are the ones applied.
#
# A retry after a partial apply (nodes applied, jobs failed) skips a stack already applied:
# its saved plan is stale by then, and when a plan of the same configuration, with the
# saved plan's own variable values, shows no change, the stack is logged as already applied
# and skipped; any change left refuses as stale. Terraform runs as this script's child with
# INT/TERM passed on (lib.sh run_terraform): the templates `exec` this script, so a
# cancelled job reaches Terraform.
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
[ ${#stacks[@]} -gt 0 ] || die "no synthesized stack in $SYNTH_OUT/stacks (run npm run synth first)"
[ -d "$plans" ] || die "no plan directory $plans"
plans=$(cd "$plans" && pwd)

planned_commit=$(cat "$plans/commit" 2>/dev/null || true)
current_commit=$(git rev-parse HEAD 2>/dev/null || true)
if [ -n "$planned_commit$current_commit" ] && [ "$planned_commit" != "$current_commit" ]; then
  die "the plans were made for commit ${planned_commit:-(unknown)}, this is ${current_commit:-(unknown)}: run the plan job for this commit"
fi
require_tip "apply"

# Whether STACK is already where its saved plan leads: a plan of the same configuration with
# the saved plan's variable values (read from it, written to a private file, removed) shows
# no change. Called only for a stale plan (the state changed since it was made).
already_applied() {
  local stack=$1 dir=$2 vars status=0
  vars=$(mktemp -d)
  chmod 700 "$vars"
  "$TERRAFORM" -chdir="$dir" show -json "$plans/$stack/tfplan" |
    node -e 'const p = JSON.parse(require("fs").readFileSync(0, "utf8")); const v = {}; for (const [k, x] of Object.entries(p.variables || {})) v[k] = x.value; process.stdout.write(JSON.stringify(v));' > "$vars/plan.tfvars.json" ||
    { rm -rf "$vars"; return 1; }
  run_terraform -chdir="$dir" plan -input=false -no-color -detailed-exitcode -lock-timeout="${TF_LOCK_TIMEOUT:-5m}" -var-file="$vars/plan.tfvars.json" > /dev/null 2>&1 || status=$?
  rm -rf "$vars"
  [ "$status" -eq 0 ]
}

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
  require_tip "apply $stack"
  echo "== $stack: apply the saved plan" >&2
  log=$(mktemp)
  if ! terraform_logged "$log" 1 -chdir="$dir" apply -input=false -no-color -lock-timeout="${TF_LOCK_TIMEOUT:-5m}" "$plans/$stack/tfplan"; then
    if grep -q "Saved plan is stale" "$log"; then
      rm -f "$log"
      if already_applied "$stack" "$dir"; then
        echo "== $stack: already applied (a retry: the state changed since the plan, and a plan now shows no change): skipped" >&2
        continue
      fi
      die "$stack: the state changed since this plan was made (another deploy ran, or a partial apply of it): nothing was applied; plan again"
    fi
    explain_lock_error "$stack" "$log"
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
done
