//go:build tools

// Pins the OpenTofu release the system tests run (scripts/prepare-engines.sh builds
// github.com/opentofu/opentofu/cmd/tofu from this module's go.mod/go.sum).
package opentofu

import _ "github.com/opentofu/opentofu/cmd/tofu"
