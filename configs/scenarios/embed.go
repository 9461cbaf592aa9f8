// Package scenarios holds the replay scenarios (docs/replay.md), embedded so that
// `opscenter replay` runs the reference day with no file beside it.
package scenarios

import "embed"

// Default is the scenario `opscenter replay` runs without --scenario.
const Default = "quang-ninh-2021-05-23.yaml"

// Files holds every embedded scenario, by file name.
//
//go:embed *.yaml
var Files embed.FS
