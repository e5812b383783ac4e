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

# Only the tip deploys: the checked-out commit must be the current tip of DEPLOY_BRANCH (the
# default branch) on the remote, read now (git ls-remote), not when the pipeline started.
# Without this, re-running an old pipeline plans and applies an old commit: a silent
# rollback that is neither stale (the plan is fresh) nor another commit (it is its own).
# Rolling back is a revert commit merged to the branch: it becomes the tip and deploys.
require_tip() {
  local what=$1 branch=${DEPLOY_BRANCH:-} remote=${DEPLOY_REMOTE:-origin} head tip
  [ -n "$branch" ] || die "DEPLOY_BRANCH is not set (the templates set it to the default branch): cannot check that this commit is its tip; refusing to $what"
  head=$(git rev-parse HEAD 2>/dev/null) || die "not a git checkout: cannot check that this commit is the tip of $branch; refusing to $what"
  tip=$(git ls-remote --exit-code "$remote" "refs/heads/$branch" 2>/dev/null | cut -f1) ||
    die "cannot read the tip of $branch from $remote: refusing to $what (only the tip deploys)"
  if [ "$tip" != "$head" ]; then
    echo "error: commit $head is not the tip of $branch ($tip): refusing to $what." >&2
    echo "error: only the tip deploys: re-running an old pipeline never rolls back. To roll back, revert the change (git revert <commit>) in a pull/merge request; once merged, its pipeline deploys it." >&2
    exit 3
  fi
  echo "commit $head is the tip of $branch" >&2
}

# Terraform as a child that a cancelled job still reaches. The runners signal only the
# step's main process (the templates `exec` plan.sh/apply.sh, so that is this shell), so
# INT and TERM are passed on to Terraform, which then stops as for Ctrl-C: it ends the
# running operations, writes its state and releases the lock, if the platform gives it
# the time (docs/operations.md, "A deploy cancelled or timed out"). Exit status: Terraform's.
run_terraform() {
  local pid status=0
  "$TERRAFORM" "$@" &
  pid=$!
  # shellcheck disable=SC2064 # the pid is fixed now
  trap "kill -INT $pid 2>/dev/null || true" INT TERM
  wait "$pid" || status=$?
  # A trapped signal ends `wait` early while Terraform still runs: wait for its real end.
  while kill -0 "$pid" 2>/dev/null; do
    status=0
    wait "$pid" || status=$?
  done
  trap - INT TERM
  return "$status"
}

# "Error acquiring the state lock" in a Terraform log: who holds it, said plainly.
explain_lock_error() {
  local stack=$1 log=$2
  grep -q "Error acquiring the state lock" "$log" || return 0
  echo "error: $stack: the state is locked by another run (the lock information is above). A plan or deploy of this pipeline waits for the others (concurrency group / resource_group); a lock that outlives every job is stuck: docs/operations.md, \"Terraform state locked\"." >&2
}

# run_terraform with its output shown (on file descriptor OUT: 1 or 2) and kept in LOG, for
# the messages that explain a failure. Not a pipe: Terraform stays this shell's child.
terraform_logged() {
  local log=$1 out=$2 status=0 tee_pid
  shift 2
  exec 4> >(tee "$log" >&"$out")
  tee_pid=$!
  run_terraform "$@" >&4 2>&4 || status=$?
  exec 4>&-
  wait "$tee_pid" 2>/dev/null || true
  return "$status"
}
