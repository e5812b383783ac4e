#!/usr/bin/env bash
# Carry saved plans from the plan job to the deploy job. A saved plan holds secrets (variable
# values, the state), and CI artifacts are readable by more people than the deploy secrets,
# so the plans travel encrypted with PLAN_ENCRYPTION_KEY (a secret of the plan and deploy
# environments only), and the deploy job checks the archive against the SHA-256 the plan
# job printed.
#
#   scripts/ci/plan-bundle.sh seal DIR FILE     encrypts DIR into FILE, prints FILE's sha256
#   scripts/ci/plan-bundle.sh open FILE SHA256 DIR
set -euo pipefail
die() { echo "error: $*" >&2; exit 1; }
[ -n "${PLAN_ENCRYPTION_KEY:-}" ] || die "PLAN_ENCRYPTION_KEY is not set (docs/ci.md): saved plans hold secrets and never travel in clear"
cipher=(openssl enc -aes-256-cbc -pbkdf2 -iter 200000 -md sha256 -pass env:PLAN_ENCRYPTION_KEY)
case ${1:-} in
  seal)
    [ $# -eq 3 ] && [ -d "$2" ] || die "usage: plan-bundle.sh seal DIR FILE"
    tar -C "$2" -cf - . | "${cipher[@]}" -salt -out "$3"
    sha256sum "$3" | cut -d' ' -f1
    ;;
  open)
    [ $# -eq 4 ] && [ -f "$2" ] || die "usage: plan-bundle.sh open FILE SHA256 DIR"
    actual=$(sha256sum "$2" | cut -d' ' -f1)
    [ "$actual" = "$3" ] || die "$2 has sha256 $actual, the plan job recorded $3: not the reviewed plan, refusing"
    mkdir -p "$4"
    "${cipher[@]}" -d -in "$2" | tar -C "$4" -xf -
    ;;
  *) die "usage: plan-bundle.sh seal DIR FILE | open FILE SHA256 DIR" ;;
esac
