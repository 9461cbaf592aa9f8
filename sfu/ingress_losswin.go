package sfu

import (
	"sync"
	"time"
)

// lossWindowSpan is how far back Publisher.RecentLoss looks.
const lossWindowSpan = 4 * time.Second

// lossSample is a snapshot of a peer's cumulative publisher counters.
type lossSample struct {
	at                       int64 // nanotime
	packets, lost, recovered uint64
}

// lossWindow keeps the last few samples (taken twice a second by the peer's
// allocLoop) so Stats can report the loss of the last few seconds without
// the caller computing deltas.
type lossWindow struct {
	mu      sync.Mutex // a leaf
	samples [12]lossSample
	n, next int
}

func (w *lossWindow) add(s lossSample) {
	w.mu.Lock()
	w.samples[w.next] = s
	w.next = (w.next + 1) % len(w.samples)
	if w.n < len(w.samples) {
		w.n++
	}
	w.mu.Unlock()
}

// recent returns the loss fraction between the oldest sample no older than
// lossWindowSpan and cur: (gaps - repaired) / (received + gaps - repaired).
func (w *lossWindow) recent(cur lossSample) float64 {
	w.mu.Lock()
	var base lossSample
	found := false
	for i := 0; i < w.n; i++ {
		s := w.samples[(w.next-w.n+i+len(w.samples))%len(w.samples)]
		if cur.at-s.at <= int64(lossWindowSpan) {
			base, found = s, true
			break
		}
	}
	w.mu.Unlock()
	if !found {
		return 0
	}
	return lossFraction(cur.packets-base.packets, cur.lost-base.lost, cur.recovered-base.recovered)
}

func lossFraction(packets, lost, recovered uint64) float64 {
	if recovered > lost {
		recovered = lost
	}
	// packets also counts reordered (late) arrivals, whose gaps are in lost:
	// the denominator is slightly high for reordered streams, never low.
	if packets+lost == 0 {
		return 0
	}
	return float64(lost-recovered) / float64(packets+lost)
}

// publisherCounters sums the cumulative counters of the peer's published layers.
func (p *Peer) publisherCounters(now int64) lossSample {
	s := lossSample{at: now}
	p.mu.Lock()
	tracks := p.tracks // copy-on-write: safe to walk after unlocking
	p.mu.Unlock()
	for _, t := range tracks {
		for i := range t.layers {
			if l := t.layers[i].Load(); l != nil {
				s.packets += l.packets.Load()
				s.lost += l.lost.Load()
				s.recovered += l.recovered.Load()
			}
		}
	}
	return s
}
