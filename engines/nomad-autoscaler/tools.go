//go:build tools

// Pins the Nomad Autoscaler release the autoscaling system tests run: v0.4.5, the version of
// the metrics job's autoscaler image (METRICS_IMAGES). It is MPL-2.0 and depends on
// github.com/hashicorp/nomad/api only, not on the Nomad module (which is not to be used), so
// scripts/prepare-autoscaler.sh builds it from this module's go.mod/go.sum.
package nomadautoscaler

import (
	_ "github.com/hashicorp/nomad-autoscaler"
)
