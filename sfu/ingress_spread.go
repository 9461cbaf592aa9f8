package sfu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Parallel fan-out. A packet's fan-out to many subscribers is split into
// parts run on several cores at once, in the manner of LiveKit's
// DownTrackSpreader, but with a fixed pool started once per Engine instead
// of a goroutine per chunk and packet.
//
// Why: on the direct path nearly all of a fan-out's time is per subscriber
// and serial — about 1.4 µs of rewrite and SRTP in this package, then about
// 5 µs of kernel per datagram in sendmmsg (on loopback the receiver's
// delivery is charged to the sender). At N = 190 the last datagram of a
// packet cannot leave before about 1.2 ms on one core, which is the
// in-server delay's p50 (docs/benchmarks.md, "What is left"). Splitting the
// slot list helps only if the sends are split too, so a worker writes its
// parts into a sendmmsg batch of its own and flushes it itself
// (egress_batchconn.go); the reader's parts go through the socket's shared
// batch as before.
//
// Parts are claimed, not assigned: the reader offers parts 1..k-1 to the
// workers, runs part 0, then takes back (last first) every part no worker
// has claimed yet, and only then waits. On a busy machine, where a woken
// worker may not get a core for a while, the fan-out so degrades to the
// serial one plus a few channel operations instead of waiting for it. A
// worker that receives a part already taken (a stale offer, possibly of an
// earlier packet) skips it.
//
// Order: each slot appears once in a layer's slot list and so in exactly one
// part, and the reader returns only when every part has been run and
// flushed to the kernel, before it reads the next packet of the layer. So
// every subscriber still gets the layer's packets in order, one fan-out
// after another; two layers feeding one slot during a switch are serialised
// by Slot.wmu as on the serial path.
//
// Cost: no allocation per packet (the parts are reused per layer and passed
// by pointer); per split fan-out a channel send per offered part, a
// wake-up of idle workers and one WaitGroup wait. A fan-out too small for
// two parts of Config.FanoutSpread slots runs on the reader as before.

// defaultFanoutSpread is Config.FanoutSpread's default: the least number
// of slots in a part, so a fan-out is split from twice this many slots.
// Smaller parts do not pay back a worker's wake-up: measured on the shared
// 2-core VM, a split costs 3–7 µs of CPU per fan-out, and at N ≤ 50 the
// helper ran fewer than one offered part in ten before the reader had taken
// them all back (BenchmarkFanoutSpread, docs/benchmarks.md).
const defaultFanoutSpread = 32

// spreadPartsPerCore bounds the parts of one fan-out: a few per core, so
// that a worker descheduled mid-fan-out leaves parts the reader can take
// back, but not so many that the extra sendmmsg calls and channel
// operations show.
const spreadPartsPerCore = 3

// spreader is the Engine's pool of fan-out helpers.
type spreader struct {
	threshold int // the least number of slots in a part
	maxParts  int
	batch     *batchConn
	jobs      chan *spreadPart
	quit      chan struct{}
	wg        sync.WaitGroup

	// parts run by a worker and parts the reader took back: how much the
	// helpers really help on this machine (benchmarks report them)
	helped, keptBack atomic.Uint64
}

// spreadPart is one part of one packet's fan-out. The reader writes the
// fields while it holds the claim (claimed = 1), then releases it with
// claimed = 0 and offers the part; whoever sets claimed back to 1 owns the
// fields until it calls done.Done (a worker) or the fan-out returns (the
// reader). The atomic claim orders the reader's writes before the worker's
// reads, and the WaitGroup the worker's direct before the reader's read.
type spreadPart struct {
	claimed atomic.Uint32
	l       *upLayer
	slots   []*Slot
	seq     uint16
	flags   uint8
	at      int64
	payload []byte // the reader's buffer: valid until the fan-out returns
	ts      uint32
	direct  int // slots written directly
	done    *sync.WaitGroup
}

// spreadState is a layer's reusable parts (reader-owned).
type spreadState struct {
	wg    sync.WaitGroup
	parts []spreadPart
}

// newSpreader starts workers helpers; the caller stops them with stop. It
// returns nil (serial fan-out everywhere) when there is nothing to gain:
// no helper or a negative threshold.
func newSpreader(b *batchConn, workers, threshold int) *spreader {
	if workers <= 0 || threshold < 0 {
		return nil
	}
	if threshold == 0 {
		threshold = defaultFanoutSpread
	}
	maxParts := spreadPartsPerCore * (workers + 1)
	sp := &spreader{
		threshold: threshold,
		maxParts:  maxParts,
		batch:     b,
		// Room for the offers of several concurrent fan-outs; a reader
		// that finds it full keeps the part (and takes it back later).
		jobs: make(chan *spreadPart, 4*maxParts),
		quit: make(chan struct{}),
	}
	for i := 0; i < workers; i++ {
		sp.wg.Add(1)
		go sp.work(b.newBatch())
	}
	return sp
}

// spreadWorkers is how many helpers an Engine starts: one per core the
// runtime may use, less the reader's own.
func spreadWorkers() int {
	return runtime.GOMAXPROCS(0) - 1
}

func (sp *spreader) stop() {
	if sp == nil {
		return
	}
	close(sp.quit)
	sp.wg.Wait()
}

// work runs claimed parts until stop. out is this worker's own batch (nil
// when the socket does not batch: then writes go out one by one).
func (sp *spreader) work(out *sendBatch) {
	defer sp.wg.Done()
	for {
		select {
		case <-sp.quit:
			return
		case p := <-sp.jobs:
			if !p.claimed.CompareAndSwap(0, 1) {
				continue // the reader took it back
			}
			p.direct = p.run(out)
			sp.batch.flush(out) // this part's datagrams leave now, before done
			sp.helped.Add(1)
			p.done.Done()
		}
	}
}

// run hands the packet to the part's slots; it reports how many were
// written directly.
func (p *spreadPart) run(out *sendBatch) int {
	direct := 0
	for _, s := range p.slots {
		if s.enqueue(p.l, out, p.seq, p.flags, p.at, p.payload, p.ts) {
			direct++
		}
	}
	return direct
}

// split reports whether a fan-out to n slots is worth splitting: whether
// it makes two parts of at least threshold slots.
func (sp *spreader) split(n int) bool {
	return sp != nil && n >= 2*sp.threshold
}

// fanout runs one packet's fan-out over slots split into parts (see the
// top of this file). It returns when every part is done and reports how
// many slots were written directly.
func (sp *spreader) fanout(st *spreadState, l *upLayer, slots []*Slot, seq uint16, flags uint8, at int64, payload []byte, ts uint32) int {
	n := len(slots)
	k := min(sp.maxParts, n/sp.threshold)
	if cap(st.parts) < k {
		// Once per layer, as its audience grows. Stale offers still point
		// into the old array, whose parts all stay claimed.
		st.parts = make([]spreadPart, k)
		for i := range st.parts {
			st.parts[i].claimed.Store(1)
		}
	}
	parts := st.parts[:k]
	sp.batch.begin()
	st.wg.Add(k - 1)
	for i := range parts {
		p := &parts[i]
		lo, hi := n*i/k, n*(i+1)/k
		p.l, p.slots, p.seq, p.flags, p.at, p.payload, p.ts = l, slots[lo:hi], seq, flags, at, payload, ts
		p.direct, p.done = 0, &st.wg
		if i == 0 {
			continue // the reader's own
		}
		p.claimed.Store(0)
		select {
		case sp.jobs <- p:
		default: // full: the reader takes it back below
		}
	}
	direct := parts[0].run(nil)
	for i := k - 1; i > 0; i-- {
		if p := &parts[i]; p.claimed.CompareAndSwap(0, 1) {
			direct += p.run(nil)
			sp.keptBack.Add(1)
			st.wg.Done()
		}
	}
	sp.batch.end() // the reader's parts leave while the workers may still send
	st.wg.Wait()
	for i := range parts {
		p := &parts[i]
		if i > 0 {
			direct += p.direct
		}
		// Still claimed: drop the slots and the payload until the next packet.
		p.l, p.slots, p.payload, p.direct = nil, nil, nil, 0
	}
	return direct
}
