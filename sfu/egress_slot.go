package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"
)

// Slot is a stable outgoing track of a subscriber (one transceiver, one
// SSRC) whose source can be switched at runtime without renegotiation.
//
// Switching source or layer takes effect at the next keyframe of the new
// source layer (a PLI is requested); audio switches at once. Sequence
// numbers and timestamps are rewritten so the subscriber sees one continuous
// stream.
//
// # Lock order
//
// A Slot has three mutexes. A lock may be taken while holding the ones above
// it on its branch, never the other way round:
//
//	wmu                      the writer goroutine, a publisher reader writing directly, or
//	                         the RTCP reader answering a NACK on UDP (answerNACK)
//	├── mu                   writeMedia → syncAttachments when the forwarded layer changes
//	│   └── upLayer.slotsMu
//	├── packetCache.mu       copying a payload out of the layer's cache
//	└── the leg's output     Pion's RTP writer or SRTP endpoint, or batchConn.mu
//	startMu                  a leaf: starting and stopping the writer goroutine, starting the RTCP reader
//
// mu is also taken on the control path, under the subscriber's
// Peer.allocMu (see Peer), where it is never held together with Peer.mu or
// UpTrack.mu. batchConn.mu is a leaf. The publisher reader that calls
// enqueue, or the spreader worker running a part of its fan-out
// (ingress_spread.go), holds no other lock of this package (fanout takes
// batchConn.mu only inside begin and end; a worker's own batch has no lock).
type Slot struct {
	peer *Peer
	name string
	kind webrtc.RTPCodecType
	dt   *downTrack

	sender *webrtc.RTPSender
	// queue feeds the writer goroutine. It is made with the first writer
	// (startWriter) and kept: a slot on UDP never needs one, and 256 entries
	// per slot were the largest item of the heap at N = 190.
	queue atomic.Pointer[chan qentry]
	// wmu guards ws. The writer goroutine holds it per queued entry; a
	// publisher reader holds it while it writes to this slot directly (see
	// enqueue). It is per slot and only contended during a layer switch,
	// when two layer readers feed one slot.
	wmu sync.Mutex
	ws  writerState
	// The writer goroutine starts on the first queued entry: slots whose
	// subscriber is on UDP are written directly and never need it.
	startMu  sync.Mutex
	writerUp atomic.Bool
	rtcpUp   bool // the RTCP reader runs (startRTCP); guarded by startMu

	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu        sync.Mutex // control path: source, request, attachments (→ upLayer.slotsMu)
	source    *UpTrack
	requested int
	muted     bool
	attached  []*upLayer

	target     atomic.Int32            // allocation target layer, -1 = none (drives demand)
	desired    atomic.Pointer[upLayer] // layer to forward, nil = gated
	current    atomic.Pointer[upLayer] // layer being forwarded (set by the writer)
	needResync atomic.Bool             // dropping until the next keyframe

	packets, bytes, dropped, nacked, switches atomic.Uint64
	lastTS                                    atomic.Uint32 // last RTP timestamp sent (sender reports)
	lastAt                                    atomic.Int64  // when, nanotime
	meter                                     rateMeter     // writer-owned
	rrLoss, rrJitter                          atomic.Uint64
	rrRTT                                     atomic.Int64
	rrTime                                    atomic.Int64
}

// queue entry operations
const (
	opMedia = iota
	opNACK
)

type qentry struct {
	layer *upLayer
	at    int64 // nanotime when the reader got the packet (media only)
	seq   uint16
	blp   uint16
	flags uint8
	op    uint8
}

func (s *Slot) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// setAllocation applies the allocator's decision (called with the peer's
// allocation lock held, never from a reader goroutine).
func (s *Slot) setAllocation(target int, l *upLayer) {
	changedTarget := s.target.Swap(int32(target)) != int32(target)
	prev := s.desired.Swap(l)
	if prev != l {
		s.syncAttachments()
		if l != nil && l != s.current.Load() {
			l.requestPLI(false)
		}
	}
	if changedTarget || prev != l {
		s.mu.Lock()
		src := s.source
		s.mu.Unlock()
		if src != nil {
			src.updateDemand()
		}
		if prev != nil && prev.track != src {
			prev.track.updateDemand()
		}
	}
}

// syncAttachments makes the slot attached exactly to the current and the
// desired layer (the desired one so its keyframe can be caught).
func (s *Slot) syncAttachments() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var want [2]*upLayer
	if !s.isClosed() {
		want = [2]*upLayer{s.current.Load(), s.desired.Load()}
	}
	keep := s.attached[:0]
	for _, l := range s.attached {
		if l == want[0] || l == want[1] {
			keep = append(keep, l)
		} else {
			l.detach(s)
		}
	}
	s.attached = keep
	for _, w := range want {
		if w == nil {
			continue
		}
		found := false
		for _, l := range s.attached {
			if l == w {
				found = true
				break
			}
		}
		if !found {
			w.attach(s)
			s.attached = append(s.attached, w)
		}
	}
}

// enqueue is called by publisher reader goroutines. It never blocks on the
// network for a slow subscriber:
//   - direct path: when the subscriber's media path is UDP (a datagram send
//     that cannot stall on one peer) and nothing is queued for the slot, the
//     reader rewrites and writes the packet itself (payload and ts are the
//     packet as read; no copy, no goroutine hop). It reports true.
//   - queued path (ICE-TCP, or while the queue drains): the packet goes to the
//     slot's writer goroutine; when the queue is full the packet is dropped,
//     and video then drops until the next keyframe (the writer re-syncs there,
//     so the output stays continuous).
//
// out is the calling spreader worker's own batch (ingress_spread.go), nil
// for the reader itself, whose datagrams go to the socket's shared batch.
func (s *Slot) enqueue(l *upLayer, out *sendBatch, seq uint16, flags uint8, at int64, payload []byte, ts uint32) bool {
	if s.current.Load() == nil && !s.peer.subReady.Load() {
		// The leg has not connected yet and the slot has sent nothing: its
		// first packet can only go out once the leg is up (writeMedia). Drop
		// here rather than start a writer and its queue for every slot of
		// every joining subscriber (its selected pair is not known yet).
		return false
	}
	video := s.kind == webrtc.RTPCodecTypeVideo
	resync := false
	if video && s.needResync.Load() {
		if flags&flagKeyframe == 0 {
			s.dropped.Add(1)
			s.peer.e.fwdDropped.Add(1)
			return false
		}
		resync = true
		flags |= flagResync
	}
	if payload != nil && s.peer.subDirect.Load() && len(s.q()) == 0 {
		s.wmu.Lock()
		st := s.writer()
		st.batch = out
		s.writeMedia(st, qentry{layer: l, seq: seq, flags: flags, at: at}, payload, ts, at)
		st.batch = nil
		s.wmu.Unlock()
		if resync {
			s.needResync.Store(false)
		}
		return true
	}
	s.startWriter()
	select {
	case s.q() <- qentry{layer: l, seq: seq, flags: flags, at: at}: // nil (drop) only once closed
		if resync {
			s.needResync.Store(false)
		}
	default:
		s.dropped.Add(1)
		s.peer.e.fwdDropped.Add(1)
		if video && flags&flagRTX == 0 && !s.needResync.Swap(true) {
			if c := s.current.Load(); c != nil {
				c.requestPLI(false)
			}
		}
	}
	return false
}

// q returns the writer's queue, nil before the first writer started.
func (s *Slot) q() chan qentry {
	if p := s.queue.Load(); p != nil {
		return *p
	}
	return nil
}

// startWriter starts the writer goroutine once (not after close), making
// its queue first.
func (s *Slot) startWriter() {
	if s.writerUp.Load() {
		return
	}
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.writerUp.Load() || s.isClosed() {
		return
	}
	if s.queue.Load() == nil {
		ch := make(chan qentry, s.peer.e.cfg.WriterQueue)
		s.queue.Store(&ch)
	}
	s.wg.Add(1)
	go s.writeLoop()
	s.writerUp.Store(true)
}

// startRTCP starts the RTCP reader once (not after close). Slots without a
// source (a commune's floor slots, most of the day) keep no reader goroutine.
func (s *Slot) startRTCP() {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.rtcpUp || s.isClosed() {
		return
	}
	s.rtcpUp = true
	s.wg.Add(1)
	go s.rtcpLoop()
}

// writeLoop drains the slot's queue. It exits after Config.WriterIdle without work:
// on UDP the fan-out writes directly and the queue only carries the odd NACK answer,
// so a writer that stayed would leave an idle goroutine behind every slot that ever
// saw a NACK (a slow climb that looks like a leak over a 12-hour day).
func (s *Slot) writeLoop() {
	defer s.wg.Done()
	writerIdle := s.peer.e.cfg.WriterIdle
	queue := s.q()
	idle := time.NewTimer(writerIdle)
	defer idle.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-idle.C:
			if s.stopIdleWriter() {
				return
			}
			idle.Reset(writerIdle)
		case e := <-queue:
			idle.Reset(writerIdle)
			s.wmu.Lock()
			st := s.writer()
			switch e.op {
			case opMedia:
				if s.writeMedia(st, e, nil, 0, nanotime()) {
					s.peer.e.fwdDelay.record(nanotime() - e.at)
				}
			case opNACK:
				s.writeNACK(st, e)
			}
			s.wmu.Unlock()
		}
	}
}

// stopIdleWriter lets the writer exit when its queue is empty; the next enqueue
// starts a new one. It reports whether the caller must exit.
func (s *Slot) stopIdleWriter() bool {
	s.startMu.Lock()
	if len(s.q()) > 0 {
		s.startMu.Unlock()
		return false
	}
	s.writerUp.Store(false)
	s.startMu.Unlock()
	// An enqueue that saw writerUp still true just before it was cleared skipped
	// starting a writer: pick its entry up with a new one.
	if len(s.q()) > 0 {
		s.startWriter()
	}
	return true
}

func (s *Slot) close() {
	s.once.Do(func() {
		s.startMu.Lock() // no writer starts after this
		close(s.closed)
		s.startMu.Unlock()
		s.desired.Store(nil)
		s.target.Store(-1)
		s.syncAttachments()
		s.mu.Lock()
		src := s.source
		s.source = nil
		s.mu.Unlock()
		if src != nil {
			src.removeWatcher(s)
		}
	})
}
