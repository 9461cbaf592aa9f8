// Command turnoutgen writes the synthetic registered-voter figures that the demo and
// the replay load: one row per commune of a dated roster, deterministic from a seed,
// summing exactly to the province's published total.
//
//	go run ./cmd/turnoutgen -roster configs/roster/22-2021-05-23.tsv \
//	    -total 959021 -out configs/turnout/22-2021-05-23.tsv
//
// The figures are plausible, not official: urban wards are larger than rural
// communes, towns in between, and island communes small.
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"

	"github.com/opscenter/opscenter/store"
)

func main() {
	roster := flag.String("roster", "configs/roster/22-2021-05-23.tsv", "roster file (TSV)")
	out := flag.String("out", "configs/turnout/22-2021-05-23.tsv", "file to write")
	total := flag.Int64("total", 959021, "registered voters of the province (published)")
	seed := flag.Uint64("seed", 20210523, "random seed")
	flag.Parse()
	if err := run(*roster, *out, *total, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "turnoutgen:", err)
		os.Exit(1)
	}
}

func run(rosterPath, outPath string, total int64, seed uint64) error {
	f, err := os.Open(rosterPath)
	if err != nil {
		return fmt.Errorf("open roster: %w", err)
	}
	defer f.Close()
	entries, err := store.ParseRoster(f)
	if err != nil {
		return err
	}
	o, err := os.Create(outPath)
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	if err := write(o, entries, total, seed); err != nil {
		o.Close()
		return err
	}
	if err := o.Close(); err != nil {
		return fmt.Errorf("close output: %w", err)
	}
	return nil
}

// islandDistricts are the districts of small island communes (Cô Tô).
var islandDistricts = map[string]bool{"207": true}

// figures gives every commune of entries a share of total: a random weight by unit
// type, scaled to the total and rounded by largest remainder so the sum is exact.
func figures(entries []store.RosterEntry, total int64, seed uint64) ([]store.RosterEntry, []int64) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var communes []store.RosterEntry
	var weights []float64
	var sum float64
	for _, e := range entries {
		if e.Kind != store.KindCommune {
			continue
		}
		lo, hi := 1800.0, 6500.0 // a rural commune (Xã)
		switch e.UnitType {
		case "Phường":
			lo, hi = 5000, 14000
		case "Thị trấn":
			lo, hi = 3500, 9000
		}
		if islandDistricts[e.ParentCode] {
			lo, hi = lo*0.45, hi*0.45
		}
		w := lo + rng.Float64()*(hi-lo)
		communes = append(communes, e)
		weights = append(weights, w)
		sum += w
	}
	counts := make([]int64, len(communes))
	type rem struct {
		i    int
		frac float64
	}
	rems := make([]rem, len(communes))
	var given int64
	for i, w := range weights {
		exact := w / sum * float64(total)
		counts[i] = int64(exact)
		given += counts[i]
		rems[i] = rem{i, exact - float64(counts[i])}
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].frac > rems[b].frac })
	for k := 0; given < total; k++ {
		counts[rems[k%len(rems)].i]++
		given++
	}
	return communes, counts
}

func write(w io.Writer, entries []store.RosterEntry, total int64, seed uint64) error {
	communes, counts := figures(entries, total, seed)
	cw := csv.NewWriter(w)
	cw.Comma = '\t'
	if err := cw.Write([]string{"code", "registered", "name"}); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	for i, e := range communes {
		if err := cw.Write([]string{e.Code, strconv.FormatInt(counts[i], 10), e.Name}); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}
