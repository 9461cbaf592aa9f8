package sfu

import (
	"net"
	"sync"
	"syscall"
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
// The batch buffers, addresses and message headers are owned by the
// batchConn and preallocated. The mutex is per socket, not per subscriber:
// with the server on one core it is uncontended, and the kernel serialises
// writes to one socket anyway. The flush itself is platform code
// (egress_sendmmsg_linux.go: a non-blocking sendmmsg that does not hand the
// goroutine's P to another thread; elsewhere one WriteTo per datagram).
type batchConn struct {
	net.PacketConn
	raw syscall.RawConn // nil: batching unsupported
	v6  bool            // the socket is AF_INET6 (dual stack)

	// mu guards the batch. A leaf: held only for a copy or the flush
	// syscalls; taken under a Slot.wmu (own SRTP output) or inside Pion's
	// write path through the UDP mux.
	mu     sync.Mutex
	active int
	n      int
	bufs   [][batchBufSize]byte
	lens   []int
	addrs  []*net.UDPAddr
	plat   batchPlatform // per-platform message headers
	sent   uint64        // datagrams sent batched
	calls  uint64        // flush syscalls
	errs   uint64        // datagrams that failed
}

const (
	maxBatch     = 128
	batchBufSize = 1500
)

func newBatchConn(c net.PacketConn) *batchConn {
	b := &batchConn{PacketConn: c}
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return b
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return b
	}
	if la, ok := uc.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil {
		b.v6 = true
	}
	b.bufs = make([][batchBufSize]byte, maxBatch)
	b.lens = make([]int, maxBatch)
	b.addrs = make([]*net.UDPAddr, maxBatch)
	if !b.plat.init(b) {
		return &batchConn{PacketConn: c}
	}
	b.raw = raw
	return b
}

// begin marks the start of a fan-out: writes are batched until end.
func (b *batchConn) begin() {
	if b == nil || b.raw == nil {
		return
	}
	b.mu.Lock()
	b.active++
	b.mu.Unlock()
}

// end marks the end of a fan-out and flushes the batch.
func (b *batchConn) end() {
	if b == nil || b.raw == nil {
		return
	}
	b.mu.Lock()
	b.active--
	b.flushLocked()
	b.mu.Unlock()
}

// WriteTo batches during a fan-out, else writes at once.
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if b.raw != nil && len(p) <= batchBufSize {
		if ua, ok := addr.(*net.UDPAddr); ok {
			b.mu.Lock()
			if b.active > 0 {
				if b.n == maxBatch {
					b.flushLocked()
				}
				i := b.n
				b.n++
				b.lens[i] = copy(b.bufs[i][:], p)
				b.addrs[i] = ua
				b.mu.Unlock()
				return len(p), nil
			}
			b.mu.Unlock()
		}
	}
	return b.PacketConn.WriteTo(p, addr)
}

func (b *batchConn) flushLocked() {
	if b.n == 0 {
		return
	}
	b.plat.flush(b, b.n)
	for i := 0; i < b.n; i++ {
		b.addrs[i] = nil
	}
	b.n = 0
}

// writeOne is the fallback for one datagram (socket buffer full, or a
// platform without sendmmsg): a normal WriteTo, which waits for the socket.
func (b *batchConn) writeOne(i int) {
	if _, err := b.PacketConn.WriteTo(b.bufs[i][:b.lens[i]], b.addrs[i]); err != nil {
		b.errs++
	}
}
