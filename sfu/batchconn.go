package sfu

import (
	"net"
	"sync"

	"golang.org/x/net/ipv4"
)

// batchConn wraps the engine's single ICE UDP socket (the one behind the
// UDP mux) so that the datagrams written during a fan-out leave in one
// sendmmsg(2) instead of one sendto(2) each.
//
// A publisher reader brackets the fan-out of one packet with begin and end.
// While at least one fan-out is in progress, WriteTo (called by Pion after
// SRTP encryption, deep inside RTPSender.WriteRTP → ICE → UDP mux) copies
// the datagram into the batch; end flushes it. So a batch is flushed at the
// end of each packet's fan-out, never on a timer, and writes made outside a
// fan-out (STUN, DTLS, RTCP) go straight to the socket, except that one that
// happens to run during another goroutine's fan-out rides along in its batch
// (delayed by at most that fan-out).
//
// The batch buffers are owned by the batchConn and preallocated. The mutex
// is per socket, not per subscriber: with the server on one core it is
// uncontended, and the kernel serialises writes to one socket anyway.
type batchConn struct {
	net.PacketConn
	pc *ipv4.PacketConn // nil: batching unsupported (not a *net.UDPConn)

	mu     sync.Mutex
	active int
	n      int
	msgs   []ipv4.Message
	bufs   [][batchBufSize]byte
	sent   uint64 // datagrams sent by sendmmsg
	calls  uint64 // sendmmsg calls
	errs   uint64
}

const (
	maxBatch     = 128
	batchBufSize = 1500
)

func newBatchConn(c net.PacketConn) *batchConn {
	b := &batchConn{PacketConn: c}
	if uc, ok := c.(*net.UDPConn); ok {
		b.pc = ipv4.NewPacketConn(uc)
		b.msgs = make([]ipv4.Message, maxBatch)
		b.bufs = make([][batchBufSize]byte, maxBatch)
		for i := range b.msgs {
			b.msgs[i].Buffers = [][]byte{nil}
		}
	}
	return b
}

// begin marks the start of a fan-out: writes are batched until end.
func (b *batchConn) begin() {
	if b == nil || b.pc == nil {
		return
	}
	b.mu.Lock()
	b.active++
	b.mu.Unlock()
}

// end marks the end of a fan-out and flushes the batch.
func (b *batchConn) end() {
	if b == nil || b.pc == nil {
		return
	}
	b.mu.Lock()
	b.active--
	b.flushLocked()
	b.mu.Unlock()
}

// WriteTo batches during a fan-out, else writes at once.
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if b.pc != nil && len(p) <= batchBufSize {
		b.mu.Lock()
		if b.active > 0 {
			if b.n == maxBatch {
				b.flushLocked()
			}
			i := b.n
			b.n++
			b.msgs[i].Buffers[0] = b.bufs[i][:copy(b.bufs[i][:], p)]
			b.msgs[i].Addr = addr
			b.mu.Unlock()
			return len(p), nil
		}
		b.mu.Unlock()
	}
	return b.PacketConn.WriteTo(p, addr)
}

func (b *batchConn) flushLocked() {
	msgs := b.msgs[:b.n]
	for len(msgs) > 0 {
		k, err := b.pc.WriteBatch(msgs, 0)
		b.calls++
		if k > 0 {
			b.sent += uint64(k)
			msgs = msgs[k:]
		}
		if err != nil {
			// One bad destination (e.g. a vanished peer) must not drop the
			// rest: skip the datagram that failed and go on.
			b.errs++
			if len(msgs) > 0 {
				msgs = msgs[1:]
			}
			continue
		}
		if k == 0 {
			break
		}
	}
	for i := 0; i < b.n; i++ {
		b.msgs[i].Addr = nil
	}
	b.n = 0
}
