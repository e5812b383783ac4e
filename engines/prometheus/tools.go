//go:build tools

// Pins the Prometheus release the system tests run: v2.53.3 (Go module version v0.53.3),
// the version of the metrics job's image (METRICS_IMAGES.prometheus). Debian 12's
// prometheus package (2.42+ds) is built without the consul and nomad service discoveries
// (its promtool refuses `consul_sd_configs`), so scripts/prepare-engines.sh builds
// prometheus and promtool from this module's go.mod/go.sum instead.
package prometheus

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
