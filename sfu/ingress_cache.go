package sfu

import (
	"sync"
	"sync/atomic"
)

// maxCachedPayload is the largest payload kept in the cache. Larger packets
// are still forwarded, but cannot be retransmitted.
const maxCachedPayload = 1400

// Cache entry flags.
const (
	flagStart    = 1 << iota // first packet of a frame
	flagKeyframe             // first packet of a keyframe
	flagMarker               // RTP marker bit
	flagRTX                  // came from the publisher's RTX stream (queue only)
	flagResync               // first packet after a drop-to-keyframe (queue only)
)

type cacheEntry struct {
	valid  bool
	flags  uint8
	seq    uint16
	length uint16
	ts     uint32
	buf    [maxCachedPayload]byte
}

// packetCache is a fixed ring of RTP payloads of one publisher layer, indexed
// directly by sequence number (seq & mask). It is shared by every subscriber
// of the layer: the reader inserts, subscriber writers and NACK handling copy
// out. Buffers are allocated once, at the first insert.
type packetCache struct {
	mu      sync.Mutex // a leaf; taken under Slot.wmu (writers) or Tap.mu (Refill)
	size    int
	mask    uint16
	entries []cacheEntry
	newest  uint16
	started bool
	// allocated mirrors entries != nil for a lock-free check by the reader.
	allocated atomic.Bool
}

func newPacketCache(size int) *packetCache {
	n := 16
	for n < size && n < 32768 {
		n <<= 1
	}
	return &packetCache{size: n, mask: uint16(n - 1)}
}

// insert stores a packet. It reports false if the packet is too old (it would
// overwrite a newer entry), too large, or a duplicate.
func (c *packetCache) insert(seq uint16, ts uint32, flags uint8, payload []byte) bool {
	if len(payload) > maxCachedPayload {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make([]cacheEntry, c.size)
		c.allocated.Store(true)
	}
	if !c.started {
		c.started = true
		c.newest = seq
	} else {
		d := int16(seq - c.newest)
		if d > 0 {
			c.newest = seq
		} else if int(-d) >= c.size {
			return false // too old: slot now belongs to a newer packet
		}
	}
	e := &c.entries[seq&c.mask]
	if e.valid && e.seq == seq {
		return false
	}
	e.valid = true
	e.seq = seq
	e.ts = ts
	e.flags = flags
	e.length = uint16(copy(e.buf[:], payload))
	return true
}

// get copies the payload of packet seq into dst. It reports the payload
// length, timestamp and flags, or ok=false if the packet is not cached.
func (c *packetCache) get(seq uint16, dst []byte) (n int, ts uint32, flags uint8, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		return 0, 0, 0, false
	}
	e := &c.entries[seq&c.mask]
	if !e.valid || e.seq != seq {
		return 0, 0, 0, false
	}
	n = copy(dst, e.buf[:e.length])
	return n, e.ts, e.flags, true
}

// has reports whether seq is cached.
func (c *packetCache) has(seq uint16) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		return false
	}
	e := &c.entries[seq&c.mask]
	return e.valid && e.seq == seq
}

// release drops the buffers (a layer nobody is attached to needs no cache:
// nobody can NACK it). The next insert allocates them again.
func (c *packetCache) release() {
	c.mu.Lock()
	c.entries = nil
	c.started = false
	c.allocated.Store(false)
	c.mu.Unlock()
}
