#!/usr/bin/env bash
# Builds the Nomad Autoscaler v0.4.5 (the metrics job's autoscaler image version) into
# .engines/bin/nomad-autoscaler from the Go module pinned in engines/nomad-autoscaler, for the
# autoscaling system tests (__tests__/system/autoscaling.test.ts): the policies are evaluated
# by the real autoscaler against the real Prometheus, not by a re-implementation of its formula.
#
# Called by scripts/prepare-engines.sh (`npm run engines`); runs on its own too. Same rules as
# there: needs Go (>= 1.25) and the Go module proxy on the first run only; afterwards it is
# offline and idempotent: the binary is rebuilt only when go.mod, go.sum, tools.go or the Go
# version changed (the stamp beside it). Measured: 29 minutes on 2 cores shared with
# six other builds (load ~28), a 47 MB binary (-s -w).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=$PWD/.engines/bin
dir=engines/nomad-autoscaler
target=$out/nomad-autoscaler

go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[[ -x $go ]] || { echo "prepare-autoscaler: Go not found (install Go >= 1.25 or set GO=/path/to/go)" >&2; exit 1; }
export GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local

mkdir -p "$out"
stamp=$(cd "$dir" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-64)-$("$go" env GOVERSION)
if [[ -x $target && -f $target.stamp && $(cat "$target.stamp") == "$stamp" ]]; then
  echo "prepare-autoscaler: nomad-autoscaler up to date"
  exit 0
fi
start=$SECONDS
# The wrapper module's only package is tools.go (build tag "tools"): build the autoscaler's main.
# GitDescribe: `nomad-autoscaler version` says v0.4.5, not the source tree's v0.4.5-dev.
(cd "$dir" && nice "$go" build -ldflags "-s -w -X github.com/hashicorp/nomad-autoscaler/version.GitDescribe=v0.4.5" -o "$target.tmp" github.com/hashicorp/nomad-autoscaler)
# rename: a running test may be executing the previous binary
mv "$target.tmp" "$target"
echo "$stamp" >"$target.stamp"
echo "prepare-autoscaler: built nomad-autoscaler in $((SECONDS - start)) s"
