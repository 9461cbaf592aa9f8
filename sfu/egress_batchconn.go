package sfu

import (
	"net"
	"sync"
	"sync/atomic"
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
// The batch buffers, addresses and message headers are preallocated. The
// shared batch and its mutex are per socket, not per subscriber. A large
// fan-out split across cores (ingress_spread.go) does not go through the
// shared batch for its helpers' parts: each spreader worker fills and
// flushes a batch of its own (newBatch, writeBatched), because the kernel's
// loopback or NIC send is most of a datagram's cost and two sendmmsg calls
// on one UDP socket run in parallel. The flush itself is platform code
// (egress_sendmmsg_linux.go: a non-blocking sendmmsg that does not hand the
// goroutine's P to another thread; elsewhere one WriteTo per datagram).
type batchConn struct {
	net.PacketConn
	raw syscall.RawConn // nil: batching unsupported
	v6  bool            // the socket is AF_INET6 (dual stack)

	// mu guards active and shared. A leaf: held only for a copy or the
	// flush syscalls; taken under a Slot.wmu (own SRTP output) or inside
	// Pion's write path through the UDP mux.
	mu     sync.Mutex
	active int
	shared *sendBatch

	// counters over every batch of this socket (the shared one and the
	// spreader workers' own, which flush concurrently)
	sent  atomic.Uint64 // datagrams sent batched
	calls atomic.Uint64 // flush syscalls
	errs  atomic.Uint64 // datagrams that failed
}

// sendBatch is one batch of datagrams with its preallocated buffers and
// message headers. The shared batch is guarded by batchConn.mu; a spreader
// worker owns one of its own (ingress_spread.go) and needs no lock for it,
// so two cores can fill and flush two batches on the one socket at once.
type sendBatch struct {
	n     int
	bufs  [][batchBufSize]byte
	lens  []int
	addrs []*net.UDPAddr
	plat  batchPlatform // per-platform message headers
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
	if b.shared = b.allocBatch(); b.shared == nil {
		return &batchConn{PacketConn: c}
	}
	b.raw = raw
	return b
}

func (b *batchConn) allocBatch() *sendBatch {
	sb := &sendBatch{
		bufs:  make([][batchBufSize]byte, maxBatch),
		lens:  make([]int, maxBatch),
		addrs: make([]*net.UDPAddr, maxBatch),
	}
	if !sb.plat.init(sb) {
		return nil
	}
	return sb
}

// newBatch returns a batch of its own for one goroutine (a spreader
// worker), or nil when this socket does not batch.
func (b *batchConn) newBatch() *sendBatch {
	if b == nil || b.raw == nil {
		return nil
	}
	return b.allocBatch()
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
				b.add(b.shared, p, ua)
				b.mu.Unlock()
				return len(p), nil
			}
			b.mu.Unlock()
		}
	}
	return b.PacketConn.WriteTo(p, addr)
}

// writeBatched puts one datagram into sb, a batch the caller owns (from
// newBatch), flushing it first if full. A datagram too large for a batch
// buffer is written at once.
func (b *batchConn) writeBatched(sb *sendBatch, p []byte, addr *net.UDPAddr) error {
	if len(p) > batchBufSize {
		_, err := b.PacketConn.WriteTo(p, addr)
		return err
	}
	b.add(sb, p, addr)
	return nil
}

func (b *batchConn) add(sb *sendBatch, p []byte, addr *net.UDPAddr) {
	if sb.n == maxBatch {
		b.flush(sb)
	}
	i := sb.n
	sb.n++
	sb.lens[i] = copy(sb.bufs[i][:], p)
	sb.addrs[i] = addr
}

func (b *batchConn) flushLocked() { b.flush(b.shared) }

// flush sends what sb holds. For the shared batch call it with mu held;
// a worker's own batch needs no lock.
func (b *batchConn) flush(sb *sendBatch) {
	if sb == nil || sb.n == 0 {
		return
	}
	sb.plat.flush(b, sb, sb.n)
	for i := 0; i < sb.n; i++ {
		sb.addrs[i] = nil
	}
	sb.n = 0
}

// writeOne is the fallback for one datagram (socket buffer full, or a
// platform without sendmmsg): a normal WriteTo, which waits for the socket.
func (b *batchConn) writeOne(sb *sendBatch, i int) {
	if _, err := b.PacketConn.WriteTo(sb.bufs[i][:sb.lens[i]], sb.addrs[i]); err != nil {
		b.errs.Add(1)
	}
}
