package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sample is the server's resource figures from one /metrics scrape (or a summary of
// several).
type Sample struct {
	At         time.Time `json:"at"`
	Goroutines float64   `json:"goroutines"`
	HeapAlloc  float64   `json:"heap_alloc_bytes"`
	RSS        float64   `json:"rss_bytes"`
}

func (s Sample) String() string {
	return fmt.Sprintf("goroutines %.0f, heap %.1f MiB, RSS %.1f MiB", s.Goroutines, s.HeapAlloc/mib, s.RSS/mib)
}

const mib = 1 << 20

// parseMetrics reads the three figures from Prometheus text exposition.
func parseMetrics(r io.Reader) (Sample, error) {
	var s Sample
	found := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "go_goroutines":
			dst = &s.Goroutines
		case "go_memstats_heap_alloc_bytes":
			dst = &s.HeapAlloc
		case "process_resident_memory_bytes":
			dst = &s.RSS
		default:
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(val)[0], 64)
		if err != nil {
			return s, fmt.Errorf("%s: %w", name, err)
		}
		*dst = f
		found++
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if found < 3 {
		return s, fmt.Errorf("want go_goroutines, go_memstats_heap_alloc_bytes and process_resident_memory_bytes; found %d of them", found)
	}
	return s, nil
}

// scrape fetches and parses url (the server's /metrics).
func scrape(ctx context.Context, url string) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return Sample{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return Sample{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	s, err := parseMetrics(resp.Body)
	s.At = time.Now()
	return s, err
}

// summarize turns a window of scrapes into one figure each: the median goroutine
// count, the lowest heap (the scrape closest to a finished GC, i.e. the live heap,
// since heap_alloc swings with the GC cycle), and the median RSS.
func summarize(l []Sample) Sample {
	if len(l) == 0 {
		return Sample{}
	}
	med := func(get func(Sample) float64) float64 {
		v := make([]float64, len(l))
		for i, s := range l {
			v[i] = get(s)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	out := Sample{At: l[len(l)-1].At}
	out.Goroutines = med(func(s Sample) float64 { return s.Goroutines })
	out.RSS = med(func(s Sample) float64 { return s.RSS })
	out.HeapAlloc = l[0].HeapAlloc
	for _, s := range l {
		out.HeapAlloc = min(out.HeapAlloc, s.HeapAlloc)
	}
	return out
}

// Limits are the soak's pass criteria (issue 6).
type Limits struct {
	Goroutines float64 // relative, 0.02: within 2% of the start
	Heap       float64 // relative, 0.20: within 20% of the start
	RSSPer30m  float64 // bytes of RSS growth allowed per 30 minutes: 20 MiB
}

// DefaultLimits are issue 6's figures.
var DefaultLimits = Limits{Goroutines: 0.02, Heap: 0.20, RSSPer30m: 20 * mib}

// check compares the end with the start of a run that lasted dur and returns the
// failures (none: pass). RSS may grow by RSSPer30m per 30 minutes of the run, and
// never less than RSSPer30m (a shorter run gets the 30-minute allowance: start-up
// growth is not a leak rate).
func check(start, end Sample, dur time.Duration, lim Limits) []string {
	var fail []string
	rel := func(a, b float64) float64 {
		if a == 0 {
			return 0
		}
		return (b - a) / a
	}
	if d := rel(start.Goroutines, end.Goroutines); d > lim.Goroutines || d < -lim.Goroutines {
		fail = append(fail, fmt.Sprintf("goroutines %.0f → %.0f (%+.1f%%, limit ±%.0f%%)", start.Goroutines, end.Goroutines, 100*d, 100*lim.Goroutines))
	}
	if d := rel(start.HeapAlloc, end.HeapAlloc); d > lim.Heap || d < -lim.Heap {
		fail = append(fail, fmt.Sprintf("heap %.1f → %.1f MiB (%+.1f%%, limit ±%.0f%%)", start.HeapAlloc/mib, end.HeapAlloc/mib, 100*d, 100*lim.Heap))
	}
	allow := lim.RSSPer30m * max(1, dur.Minutes()/30)
	if g := end.RSS - start.RSS; g >= allow {
		fail = append(fail, fmt.Sprintf("RSS grew %.1f MiB in %v (limit %.1f MiB)", g/mib, dur.Round(time.Second), allow/mib))
	}
	return fail
}
