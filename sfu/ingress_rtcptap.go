package sfu

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
)

// Publisher-leg RTCP is drained by an interceptor rather than through
// RTPReceiver.Read/ReadSimulcast. Pion v3's ReadSimulcast walks (copies) the
// receiver's per-rid stream table without a lock while Pion binds late
// simulcast and RTX streams into it (receiveForRid, receiveForRtx), which is
// a data race no caller-side ordering can avoid, since RTX streams are bound
// whenever the first retransmission arrives. The tap is the last interceptor
// of the publisher API: for every incoming RTCP stream Pion builds
// (streamsForSSRC), BindRTCPReader hands it the fully wrapped reader (the
// report interceptors underneath still see every sender report), and the tap
// reads it on its own goroutine until the stream closes. Nothing else reads
// publisher RTCP, so no reader ever touches the receiver's tables.

// errRTCPTapped is returned if anything reads a tapped RTCP stream through
// the receiver: the tap owns it.
var errRTCPTapped = errors.New("sfu: publisher RTCP is read by the engine")

// rtcpSink receives the publisher leg's RTCP arrival times (one per Peer).
type rtcpSink struct {
	last    atomic.Int64 // nanotime of the last RTCP packet from the publisher
	packets atomic.Uint64
	// peer and taps: sender reports go to the peer's taps (ingress_tap.go) while it has any.
	peer *Peer
	taps atomic.Int32
}

// rtcpTapFactory builds one tap per publisher PeerConnection. The sink for
// the next PeerConnection is handed over under mu (see Engine.newPublisherPC).
type rtcpTapFactory struct {
	e    *Engine
	mu   sync.Mutex // held only while Pion builds a publisher leg, under that Peer.negMu
	next *rtcpSink
}

func (f *rtcpTapFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	t := &rtcpTap{e: f.e, sink: f.next, done: make(chan struct{})}
	if t.sink == nil {
		t.sink = &rtcpSink{} // a PeerConnection built outside newPublisherPC
	}
	return t, nil
}

type rtcpTap struct {
	interceptor.NoOp
	e    *Engine
	sink *rtcpSink
	once sync.Once
	done chan struct{}
}

func (t *rtcpTap) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	t.e.goReader(func() { t.drain(r) })
	return interceptor.RTCPReaderFunc(func([]byte, interceptor.Attributes) (int, interceptor.Attributes, error) {
		<-t.done
		return 0, nil, errRTCPTapped
	})
}

// drain reads one RTCP stream until it is closed (receiver stopped or the
// PeerConnection closed). RTCP is a few packets per second per stream, so
// one small goroutine per stream is cheap; the buffer is reused.
func (t *rtcpTap) drain(r interceptor.RTCPReader) {
	buf := make([]byte, 1500)
	for {
		n, _, err := r.Read(buf, nil)
		if err != nil {
			return
		}
		t.sink.last.Store(nanotime())
		t.sink.packets.Add(1)
		if t.sink.taps.Load() > 0 && t.sink.peer != nil {
			t.sink.peer.senderReports(buf[:n])
		}
	}
}

func (t *rtcpTap) Close() error {
	t.once.Do(func() { close(t.done) })
	return nil
}
