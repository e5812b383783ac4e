//go:build tools

// Package tools pins the real Consul agent the lab runs (Consul 1.14.11, MPL-2.0: the newest
// release the Go module proxy serves whose module builds without submodules marked not to use).
// scripts/prepare-engines.sh builds github.com/hashicorp/consul from this module.
package consul

import _ "github.com/hashicorp/consul"
