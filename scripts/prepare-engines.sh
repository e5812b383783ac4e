#!/usr/bin/env bash
# `npm run engines`: prepares, once per contributor (and in CI), what the system tests need
# to run the real Terraform and OpenTofu on synthesized stacks without any registry:
#
#   .engines/bin/tofu            OpenTofu, built from the Go module pinned in engines/opentofu
#   .engines/mirror/...          a filesystem provider mirror with hashicorp/null 3.2.4, our
#                                stand-in built from engines/null-provider (the Go module proxy
#                                refuses the real provider's v3 modules: see its main.go)
#   .engines/bin/prometheus,     Prometheus v2.53.3 and promtool, built from the Go module pinned
#   .engines/bin/promtool        in engines/prometheus (metrics tests)
#   .engines/bin/consul          Consul 1.14.11 (MPL-2.0), built from the Go module pinned in
#                                engines/consul: the real agent (servers, clients, DNS) of the
#                                system tests' lab
#   .engines/bin/nomad-autoscaler
#                                the Nomad Autoscaler 0.4.5, built from engines/nomad-autoscaler
#                                by scripts/prepare-autoscaler.sh (its policies' system test)
#   .engines/terraform.rc        the CLI config: providers from that mirror only, no registry
#
# Use it with TF_CLI_CONFIG_FILE=.engines/terraform.rc (both engines read it). Needs Go
# (>= 1.25) and the Go module proxy on the first run only; afterwards it is offline and
# idempotent: a binary is rebuilt only when its go.mod, go.sum or source changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
out=$root/.engines
NULL_VERSION=3.2.4  # the version @cdktf/provider-null 11.0.1 pins (constraint ~> 3.0 in its JSON)

go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[[ -x $go ]] || { echo "prepare-engines: Go not found (install Go >= 1.25 or set GO=/path/to/go)" >&2; exit 1; }
export GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local

mkdir -p "$out/bin"
# Builds package $2 of module dir $1 into $3 unless the stamp (inputs + Go version) is unchanged.
build() {
  local dir=$1 pkg=$2 target=$3 ldflags=${4:-}
  local stamp
  stamp=$(cd "$dir" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-64)-$("$go" env GOVERSION)
  if [[ -x $target && -f $target.stamp && $(cat "$target.stamp") == "$stamp" ]]; then
    echo "prepare-engines: $(basename "$target") up to date"
    return
  fi
  local start=$SECONDS
  (cd "$dir" && nice "$go" build -ldflags "$ldflags" -o "$target.tmp" "$pkg")
  mv "$target.tmp" "$target"
  echo "$stamp" >"$target.stamp"
  echo "prepare-engines: built $(basename "$target") in $((SECONDS - start)) s"
}

build engines/opentofu github.com/opentofu/opentofu/cmd/tofu "$out/bin/tofu" "-s -w -X github.com/opentofu/opentofu/version.dev=no"
build engines/null-provider . "$out/bin/terraform-provider-null" "-s -w"
# Prometheus v2.53.3 (the metrics job's image version) and its promtool, for the metrics
# tests: Debian 12's prometheus is built without consul_sd_configs (engines/prometheus/tools.go).
PROMETHEUS_LDFLAGS="-s -w -X github.com/prometheus/common/version.Version=2.53.3 -X github.com/prometheus/common/version.Branch=engines"
build engines/prometheus github.com/prometheus/prometheus/cmd/prometheus "$out/bin/prometheus" "$PROMETHEUS_LDFLAGS"
build engines/prometheus github.com/prometheus/prometheus/cmd/promtool "$out/bin/promtool" "$PROMETHEUS_LDFLAGS"
GO="$go" bash scripts/prepare-autoscaler.sh

# The golang.org/x/crypto source of the Terraform on PATH (the version it was built with,
# `go version -m`): the preflight's test reads its SSH host-key order from it.
if terraform_bin=$(command -v terraform); then
  crypto=$("$go" version -m "$terraform_bin" 2>/dev/null | awk '$2 == "golang.org/x/crypto" { print $3; exit }') || true
  if [[ -n ${crypto:-} ]]; then
    (cd "$(mktemp -d)" && GOFLAGS='' "$go" mod download "golang.org/x/crypto@$crypto" && rmdir "$PWD")
    echo "prepare-engines: golang.org/x/crypto $crypto (Terraform's) in the module cache"
  fi
fi
# Consul 1.14.11, the newest MPL-2.0 release whose module builds from what the Go module proxy
# serves here (1.15 and 1.16 need submodules marked not to use; 1.17+ is BUSL). The lab runs
# it for the provider's servers and for our rendered client configs (docs/lab.md).
CONSUL_LDFLAGS="-s -w -X github.com/hashicorp/consul/version.GitCommit=engines -X github.com/hashicorp/consul/version.VersionPrerelease="
build engines/consul github.com/hashicorp/consul "$out/bin/consul" "$CONSUL_LDFLAGS"

# Unpacked filesystem-mirror layout, under both hostnames: Terraform resolves "hashicorp/null"
# to registry.terraform.io, OpenTofu to registry.opentofu.org.
for host in registry.terraform.io registry.opentofu.org; do
  dir=$out/mirror/$host/hashicorp/null/$NULL_VERSION/linux_amd64
  mkdir -p "$dir"
  target=$dir/terraform-provider-null_v${NULL_VERSION}_x5
  # copy then rename: a running engine may be executing the previous binary
  cmp -s "$out/bin/terraform-provider-null" "$target" || { cp "$out/bin/terraform-provider-null" "$target.tmp" && mv "$target.tmp" "$target"; }
done

cat >"$out/terraform.rc.tmp" <<RC
# Written by scripts/prepare-engines.sh. Providers come from the local mirror only; no
# registry is ever contacted (there is no "direct" block).
provider_installation {
  filesystem_mirror {
    path    = "$out/mirror"
    include = ["registry.terraform.io/hashicorp/null", "registry.opentofu.org/hashicorp/null"]
  }
}
disable_checkpoint = true
RC
mv "$out/terraform.rc.tmp" "$out/terraform.rc"
# sed reads all of it: `head -1` exits first, and under pipefail tofu's SIGPIPE (exit 141)
# failed this script on a fresh machine.
CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE="$out/terraform.rc" "$out/bin/tofu" version | sed -n 1p
echo "prepare-engines: CLI config $out/terraform.rc (export TF_CLI_CONFIG_FILE=$out/terraform.rc)"
