package record

// slot is one RTP packet (or sender report) copied off the caller's goroutine.
// Slots come from a fixed pool so the write path does not allocate.
type slot struct {
	kind   Kind
	sr     bool
	marker bool
	seq    uint16
	ts     uint32
	ntp    uint64 // sender reports only
	at     int64  // arrival, Unix nanoseconds
	buf    []byte // payload; its capacity is reused
}

// jitter reorders one track's packets by sequence number within a window.
// A missing packet is waited for until maxLate newer ones have arrived or the
// packets after it span maxSpan of RTP time, then declared lost; pop reports
// how many were skipped before the packet it returns.
type jitter struct {
	ring    []*slot
	mask    uint16
	maxLate uint16
	maxSpan uint32 // RTP ticks
	started bool
	next    uint16 // next sequence number to hand out
	highest uint16
	held    int
	lost    int // skipped before the next packet handed out
}

func newJitter(maxLate int, maxSpan uint32) *jitter {
	if maxLate < 1 {
		maxLate = 1
	}
	if maxLate > 16384 {
		maxLate = 16384
	}
	size := 1
	for size < 2*maxLate {
		size <<= 1
	}
	return &jitter{ring: make([]*slot, size), mask: uint16(size - 1), maxLate: uint16(maxLate), maxSpan: maxSpan}
}

// push result
const (
	pushOK = iota
	pushLate
	pushJump
)

// push stores s. pushLate: a duplicate or a packet whose turn has passed (the
// caller frees it). pushJump: s is too far ahead to hold; the caller should
// drain, reset and push again.
func (j *jitter) push(s *slot) int {
	if !j.started {
		j.started, j.next, j.highest = true, s.seq, s.seq
	}
	d := int16(s.seq - j.next)
	if d < 0 {
		return pushLate
	}
	if int(d) >= len(j.ring) {
		return pushJump
	}
	i := s.seq & j.mask
	if j.ring[i] != nil {
		return pushLate
	}
	j.ring[i] = s
	j.held++
	if int16(s.seq-j.highest) > 0 {
		j.highest = s.seq
	}
	return pushOK
}

// pop returns the next packet in order, or nil. With force it skips any hole
// instead of waiting (used when draining).
func (j *jitter) pop(force bool) (*slot, int) {
	for j.held > 0 {
		i := j.next & j.mask
		if s := j.ring[i]; s != nil {
			j.ring[i] = nil
			j.held--
			j.next++
			lost := j.lost
			j.lost = 0
			return s, lost
		}
		if !force && j.highest-j.next < j.maxLate && !j.spanExceeded() {
			return nil, 0
		}
		j.next++
		j.lost++
	}
	return nil, 0
}

// reset forgets the sequence state; the buffer must be empty.
func (j *jitter) reset() {
	j.started = false
	j.lost = 0
}

// spanExceeded reports whether the packets held after the hole at next cover
// more than maxSpan: at low packet rates, a count alone would wait seconds.
func (j *jitter) spanExceeded() bool {
	if j.maxSpan == 0 {
		return false
	}
	top := j.ring[j.highest&j.mask]
	for s := j.next + 1; s != j.highest; s++ {
		if p := j.ring[s&j.mask]; p != nil {
			return int32(top.ts-p.ts) > int32(j.maxSpan)
		}
	}
	return false
}
