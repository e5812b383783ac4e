# shellcheck shell=bash
# Shared by scripts/ci/plan.sh and scripts/ci/apply.sh (sourced, not run). See docs/ci.md.

# Terraform binary: TERRAFORM=tofu for OpenTofu.
TERRAFORM=${TERRAFORM:-terraform}
# Synth output and the committed provider lock files (one per kind of stack).
SYNTH_OUT=${SYNTH_OUT:-cdktf.out}
LOCK_DIR=${LOCK_DIR:-terraform-locks}

die() { echo "error: $*" >&2; exit 1; }

stack_dir() {
  local dir="$SYNTH_OUT/stacks/$1"
  [ -f "$dir/cdk.tf.json" ] || die "no synthesized stack $1 in $SYNTH_OUT/stacks (run npm run synth first)"
  printf '%s\n' "$dir"
}

# The committed lock file for a stack: <name>-nodes uses nodes.terraform.lock.hcl, <name>-jobs
# jobs.terraform.lock.hcl (the providers depend on the kind of stack, not on the team).
# Copied into the stack so that `init -lockfile=readonly` checks every provider against it.
install_lock_file() {
  local stack=$1 dir=$2 lock="$LOCK_DIR/${1##*-}.terraform.lock.hcl"
  [ -f "$lock" ] || die "$lock is missing: commit the provider lock file for stack $stack (docs/ci.md, \"Provider lock files\")"
  cp "$lock" "$dir/.terraform.lock.hcl"
}

# HTTP state backend (state: { http: true }): one state per stack under TF_STATE_HTTP_BASE,
# e.g. https://gitlab.example.org/api/v4/projects/42/terraform/state. Other backends ignore it.
http_state_env() {
  local stack=$1
  [ -n "${TF_STATE_HTTP_BASE:-}" ] || return 0
  export TF_HTTP_ADDRESS="${TF_STATE_HTTP_BASE%/}/${TF_STATE_PREFIX:-production}-$stack"
  export TF_HTTP_LOCK_ADDRESS="$TF_HTTP_ADDRESS/lock" TF_HTTP_UNLOCK_ADDRESS="$TF_HTTP_ADDRESS/lock"
}

# What Terraform will read for a stack: every synthesized file (cdk.tf.json, the rendered
# files the provisioners upload at apply time) and the lock file, one "sha256  path" line each.
# The saved plan covers the resources; the uploaded files are read from disk at apply time,
# so apply.sh compares this list with the one recorded at plan time.
config_digest() {
  (cd "$1" && find . -type f ! -path './.terraform/*' ! -name '*.tfplan' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

# The stacks of the synthesized description, machines first: the jobs stack depends on them.
all_stacks() {
  local dir
  for dir in "$SYNTH_OUT"/stacks/*-nodes "$SYNTH_OUT"/stacks/*-jobs; do
    [ -f "$dir/cdk.tf.json" ] && basename "$dir"
  done
  return 0
}

terraform_init() {
  "$TERRAFORM" -chdir="$1" init -input=false -no-color -lockfile=readonly >&2
}
