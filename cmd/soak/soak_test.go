package main

import (
	"strings"
	"testing"
	"time"
)

const exposition = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 1234
# TYPE go_memstats_heap_alloc_bytes gauge
go_memstats_heap_alloc_bytes 5.24288e+07
go_memstats_heap_alloc_bytes_total 1e+12
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.048576e+08
opscenter_endpoints_presence{state="connected"} 190
`

func TestParseMetrics(t *testing.T) {
	s, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if s.Goroutines != 1234 || s.HeapAlloc != 50*mib || s.RSS != 100*mib {
		t.Fatalf("parsed %+v", s)
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines 3\n")); err == nil {
		t.Fatal("missing figures accepted")
	}
}

func TestSummarizeAndCheck(t *testing.T) {
	w := []Sample{{Goroutines: 1000, HeapAlloc: 80 * mib, RSS: 200 * mib}, {Goroutines: 1010, HeapAlloc: 50 * mib, RSS: 201 * mib},
		{Goroutines: 990, HeapAlloc: 70 * mib, RSS: 199 * mib}}
	s := summarize(w)
	if s.Goroutines != 1000 || s.HeapAlloc != 50*mib || s.RSS != 200*mib {
		t.Fatalf("summary %+v", s)
	}
	start := Sample{Goroutines: 1000, HeapAlloc: 50 * mib, RSS: 200 * mib}
	for _, c := range []struct {
		name string
		end  Sample
		dur  time.Duration
		fail int
	}{
		{"steady", Sample{Goroutines: 1015, HeapAlloc: 58 * mib, RSS: 215 * mib}, 30 * time.Minute, 0},
		{"goroutine leak", Sample{Goroutines: 1030, HeapAlloc: 50 * mib, RSS: 200 * mib}, 30 * time.Minute, 1},
		{"heap growth", Sample{Goroutines: 1000, HeapAlloc: 61 * mib, RSS: 200 * mib}, 30 * time.Minute, 1},
		{"rss growth", Sample{Goroutines: 1000, HeapAlloc: 50 * mib, RSS: 221 * mib}, 30 * time.Minute, 1},
		{"rss over 2 h", Sample{Goroutines: 1000, HeapAlloc: 50 * mib, RSS: 260 * mib}, 4 * time.Hour, 0},
		{"short run gets 20 MiB", Sample{Goroutines: 1000, HeapAlloc: 50 * mib, RSS: 215 * mib}, 3 * time.Minute, 0},
		{"all three", Sample{Goroutines: 900, HeapAlloc: 30 * mib, RSS: 300 * mib}, 30 * time.Minute, 3},
	} {
		if f := check(start, c.end, c.dur, DefaultLimits); len(f) != c.fail {
			t.Errorf("%s: failures %q, want %d", c.name, f, c.fail)
		}
	}
}
