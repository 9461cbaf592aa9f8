package loadgen

import (
	"context"
	"fmt"
)

// The nation scenario models the root of the node tree (docs/scale.md): a
// national node whose children are province nodes, each joined to the
// national session as one endpoint by its uplink.
//
//   - the national console (the roster's root code) publishes the program
//     (ProgramLayers, ~1.5 Mbit/s over 3 layers, plus audio);
//   - N synthetic endpoints (default 63, the provinces of 2021; 34 as of
//     July 2025) behave like province uplinks: each publishes its province's
//     program as its tile (ProgramLayers plus audio) and receives what an
//     uplink receives, the national program and, when given, the floor;
//   - a leader's console watches every child (Tiles = N) at the low layer;
//   - the floor moves between the children every FloorEvery.
//
// It runs on the harness's default roster (Quảng Ninh: 13 districts, 177
// communes), taking its first N non-root units as the children: routing does
// not depend on a unit's kind, so a district or commune code stands in for a
// province's uplink exactly. Beyond the roster's 190 units the harness writes
// a synthetic roster.
const nationDefaultN = 63

// nationDefaults fills the nation scenario's defaults before Run's generic
// ones: N, one console tile per child, a roster large enough for N.
func nationDefaults(cfg *Config) {
	if cfg.N == 0 {
		cfg.N = nationDefaultN
	}
	if cfg.Tiles == 0 {
		cfg.Tiles = cfg.N
	}
	if cfg.N > 190 && cfg.Server.Communes < cfg.N {
		cfg.Server.Communes = cfg.N
	}
}

func (r *run) nation(ctx context.Context, res *Result) error {
	if got := len(r.nonCommand(r.cfg.N)); got < r.cfg.N {
		return fmt.Errorf("nation: roster has %d units besides the root, need %d", got, r.cfg.N)
	}
	return r.publishing(ctx, res, "nation", ProgramLayers)
}
