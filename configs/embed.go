// Package configs holds the default configuration and the dated rosters, embedded in
// the binary so that `opscenter serve` runs with no files beside it.
package configs

import "embed"

// DefaultYAML is the default configuration; a user's file is layered on top of it.
//
//go:embed opscenter.yaml
var DefaultYAML []byte

// Rosters holds the dated roster files, named PROVINCE-YYYY-MM-DD.tsv.
//
//go:embed roster/*.tsv
var Rosters embed.FS

// Turnout holds the registered voters per commune for each dated roster, named like
// the roster (synthetic, from cmd/turnoutgen; the demo and the replay load them).
//
//go:embed turnout/*.tsv
var Turnout embed.FS
