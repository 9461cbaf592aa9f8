package sfu

// rewriter maps the sequence numbers and timestamps of a sequence of source
// streams (epochs) onto one continuous outgoing stream. It is owned by one
// slot writer goroutine and is not safe for concurrent use.
type rewriter struct {
	clock    uint32 // RTP clock rate
	minDelta uint32 // minimum timestamp step across a switch

	started   bool
	lastSeq   uint16 // highest outgoing sequence number written
	lastTS    uint32 // timestamp of lastSeq
	lastWall  int64  // wall clock (ns) when lastSeq was written
	seqOffset uint16
	tsOffset  uint32
	srcStart  uint16 // first source seq of the epoch (trails to stay within 2^14)
}

func newRewriter(clock uint32, minDelta uint32) rewriter {
	return rewriter{clock: clock, minDelta: minDelta}
}

// startEpoch begins a new source epoch at the given source packet. The first
// packet of the epoch will get lastSeq+1 and a timestamp advanced by the wall
// time elapsed since the last packet (at least minDelta).
func (r *rewriter) startEpoch(srcSeq uint16, srcTS uint32, now int64) {
	r.srcStart = srcSeq
	if !r.started {
		r.started = true
		r.seqOffset = 0
		r.tsOffset = 0
		r.lastSeq = srcSeq - 1
		r.lastTS = srcTS
		r.lastWall = now
		return
	}
	delta := r.minDelta
	if el := now - r.lastWall; el > 0 {
		ticks := uint64(el) * uint64(r.clock) / 1e9
		if ticks > uint64(delta) {
			if ticks > 1<<30 {
				ticks = 1 << 30
			}
			delta = uint32(ticks)
		}
	}
	r.seqOffset = r.lastSeq + 1 - srcSeq
	r.tsOffset = r.lastTS + delta - srcTS
}

// rewrite maps a source packet of the current epoch. ok is false for packets
// that precede the epoch start (they belong to the previous decoder state).
func (r *rewriter) rewrite(srcSeq uint16, srcTS uint32, now int64) (seq uint16, ts uint32, ok bool) {
	if !r.started {
		return 0, 0, false
	}
	d := int16(srcSeq - r.srcStart)
	if d < 0 {
		return 0, 0, false
	}
	if d > 1<<14 { // keep the window start trailing so int16 math stays valid
		r.srcStart = srcSeq - 1<<14
	}
	seq = srcSeq + r.seqOffset
	ts = srcTS + r.tsOffset
	if int16(seq-r.lastSeq) > 0 {
		r.lastSeq = seq
		r.lastTS = ts
		r.lastWall = now
	}
	return seq, ts, true
}

// sourceSeq maps an outgoing sequence number back to the source sequence
// number of the current epoch (for NACKs).
func (r *rewriter) sourceSeq(out uint16) (uint16, bool) {
	if !r.started {
		return 0, false
	}
	start := r.srcStart + r.seqOffset
	if int16(out-start) < 0 || int16(out-r.lastSeq) > 0 {
		return 0, false
	}
	return out - r.seqOffset, true
}

// mapTS maps a source timestamp of the current epoch.
func (r *rewriter) mapTS(srcTS uint32) uint32 { return srcTS + r.tsOffset }
