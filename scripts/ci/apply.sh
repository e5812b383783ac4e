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
# Counts kept for the Nomad Autoscaler (constructs/kept-count.ts): a plan registers each
# autoscaled job with the count running at PLAN time (nomad_job hcl2.vars <job>_count). If the
# autoscaler changed it since, applying would undo the scale; "Saved plan is stale" covers the
# Terraform state only, and the Nomad provider (2.5.2) registers without EnforceIndex. So the
# counts in each plan are compared with Nomad's (GET /v1/job/<job>) before anything is
# applied, and again just before each stack's apply: any difference, or Nomad unreachable,
# refuses. APPLY_SKIP_COUNT_CHECK=1 skips the comparison (the operator accepts the risk).
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

# The counts a stack's plan registers (nomad_job hcl2.vars "<job>_count", the job and its
# group both named <job> as KeptCount reads them) on a job the plan creates or updates, one
# line each: job, group, count, namespace, address, region, separated by \x1f (not a tab:
# `read` would merge the tabs around an empty field). Read from plan.json, the
# `terraform show -json` of this very tfplan written by plan.sh (sealed with it by
# plan-bundle.sh); made again from the tfplan when absent.
planned_counts() {
  local stack=$1 dir json
  dir=$(stack_dir "$stack")
  json="$plans/$stack/plan.json"
  if [ ! -f "$json" ]; then
    json=$(mktemp)
    http_state_env "$stack"
    terraform_init "$dir"
    "$TERRAFORM" -chdir="$dir" show -json "$plans/$stack/tfplan" > "$json"
  fi
  node - "$json" <<'JS'
const plan = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
const providers = (plan.configuration && plan.configuration.provider_config) || {};
const configured = {};
for (const r of ((plan.configuration || {}).root_module || {}).resources || []) configured[r.address] = r.provider_config_key;
const constant = (p, key) => (((p || {}).expressions || {})[key] || {}).constant_value;
for (const rc of plan.resource_changes || []) {
  if (rc.type !== "nomad_job" || rc.mode !== "managed") continue;
  const actions = rc.change.actions;
  if (!actions.includes("create") && !actions.includes("update")) continue;
  const after = rc.change.after || {};
  const vars = ((after.hcl2 || [])[0] || {}).vars || {};
  const provider = providers[configured[rc.address] || "nomad"];
  // The provider's own defaults: NOMAD_ADDR / NOMAD_REGION when its configuration sets none.
  const address = constant(provider, "address") || process.env.NOMAD_ADDR || "http://127.0.0.1:4646";
  const region = constant(provider, "region") || process.env.NOMAD_REGION || "";
  const namespace = typeof after.namespace === "string" ? after.namespace : "";
  for (const [name, value] of Object.entries(vars)) {
    // An unknown value (after_unknown) is absent from `after`: read at apply time, nothing to keep.
    if (!name.endsWith("_count") || value === null || value === undefined) continue;
    const job = name.slice(0, -"_count".length);
    console.log([job, job, String(value), namespace, address.replace(/\/+$/, ""), region].join("\x1f"));
  }
}
JS
}

# Compare the counts a stack's plan registers with the counts running in Nomad now.
check_kept_counts() {
  local stack=$1 job group count namespace address region body code live query args planned
  if [ "${APPLY_SKIP_COUNT_CHECK:-}" = 1 ]; then
    echo "warning: $stack: APPLY_SKIP_COUNT_CHECK=1: the counts the Nomad Autoscaler set are not compared with the plan's; applying may undo a scale" >&2
    return 0
  fi
  planned=$(planned_counts "$stack") || die "$stack: cannot read the counts the plan registers from $plans/$stack/plan.json"
  [ -n "$planned" ] || return 0
  body=$(mktemp)
  while IFS=$'\x1f' read -r job group count namespace address region; do
    query=""
    [ -z "$namespace" ] || query="namespace=$namespace"
    [ -z "$region" ] || query="${query:+$query&}region=$region"
    # TLS as the Nomad CLI reads it (what curl can do: no NOMAD_TLS_SERVER_NAME).
    args=(--silent --show-error --max-time 15 --output "$body" --write-out '%{http_code}' --config -)
    [ -z "${NOMAD_CACERT:-}" ] || args+=(--cacert "$NOMAD_CACERT")
    [ -z "${NOMAD_CAPATH:-}" ] || args+=(--capath "$NOMAD_CAPATH")
    [ -z "${NOMAD_CLIENT_CERT:-}" ] || args+=(--cert "$NOMAD_CLIENT_CERT")
    [ -z "${NOMAD_CLIENT_KEY:-}" ] || args+=(--key "$NOMAD_CLIENT_KEY")
    case ${NOMAD_SKIP_VERIFY:-} in 1|true) args+=(--insecure) ;; esac
    # The token goes through curl's stdin config, never on a command line (ps) or in a log.
    if ! code=$(printf 'header = "X-Nomad-Token: %s"\n' "${NOMAD_TOKEN:-}" | curl "${args[@]}" "$address/v1/job/$job${query:+?$query}" 2>"$body.err"); then
      rm -f "$body"
      die "$stack: cannot read job $job from Nomad at $address ($(tr -d '\n' < "$body.err"; rm -f "$body.err")) to check that the Nomad Autoscaler did not change its count since the plan: refusing to apply (APPLY_SKIP_COUNT_CHECK=1 to apply anyway, accepting that a scale may be undone)"
    fi
    rm -f "$body.err"
    case $code in
      404) continue ;; # no such job in Nomad: nothing to undo
      200) ;;
      *) rm -f "$body"; die "$stack: Nomad at $address answered HTTP $code for job $job: cannot check its count against the plan's; refusing to apply (APPLY_SKIP_COUNT_CHECK=1 to apply anyway)" ;;
    esac
    live=$(node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const g = (j.TaskGroups || []).find((t) => t.Name === process.argv[2]); console.log(g ? g.Count : "")' "$body" "$group" 2>/dev/null) ||
      { rm -f "$body"; die "$stack: Nomad at $address answered job $job with something that is not a job (JSON): cannot check its count; refusing to apply (APPLY_SKIP_COUNT_CHECK=1 to apply anyway)"; }
    if [ -n "$live" ] && [ "$live" != "$count" ]; then
      rm -f "$body"
      die "$stack: job $job: the plan registers group $group with count $count (running at plan time), Nomad runs $live now: the autoscaler changed it since the plan: applying would undo it; plan again"
    fi
  done <<< "$planned"
  rm -f "$body"
}

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
  check_kept_counts "$stack"
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
  check_kept_counts "$stack"
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
