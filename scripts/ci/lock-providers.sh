#!/usr/bin/env bash
# (Re)writes the committed provider lock files terraform-locks/<kind>.terraform.lock.hcl from
# the synthesized stacks, with the hashes of every platform the team uses. Needs a machine
# that reaches the Terraform registry. Run after a provider version changes, review, commit.
#
#   npm run synth && scripts/ci/lock-providers.sh [-platform=linux_amd64 ...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/ci/lib.sh
. scripts/ci/lib.sh
platforms=("$@")
[ ${#platforms[@]} -gt 0 ] || platforms=(-platform=linux_amd64 -platform=linux_arm64 -platform=darwin_amd64 -platform=darwin_arm64 -platform=windows_amd64)
mkdir -p "$LOCK_DIR"
while read -r stack; do
  dir=$(stack_dir "$stack")
  lock="$LOCK_DIR/${stack##*-}.terraform.lock.hcl"
  rm -f "$dir/.terraform.lock.hcl"
  [ ! -f "$lock" ] || cp "$lock" "$dir/.terraform.lock.hcl"
  "$TERRAFORM" -chdir="$dir" providers lock "${platforms[@]}"
  cp "$dir/.terraform.lock.hcl" "$lock"
  echo "wrote $lock"
done < <(all_stacks)
