package rtc

import (
	"errors"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
)

// Go clients (synth/client, which the load generator drives) read incoming RTCP through this
// interceptor instead of RTPSender.ReadSimulcastRTCP / RTPReceiver.Read: Pion v3
// reads its per-encoding tables there without a lock while PeerConnection.Close
// rewrites them (a data race that go test -race reports). The tap is the last
// interceptor: for each RTCP stream Pion binds it drains the fully wrapped reader
// on its own goroutine (the other interceptors still see everything) and hands
// PLI/FIR to the owner of the PeerConnection.

var errTapped = errors.New("rtc: RTCP is read by the tap")

// KeyframeTap is the interceptor factory. Add it last to the registry.
type KeyframeTap struct {
	mu   sync.Mutex
	next func(mediaSSRC uint32) // keyframe request handler of the PeerConnection being built
}

// NewKeyframeTap makes a tap whose PeerConnections hand PLI/FIR to onPLI (nil:
// until Build says otherwise).
func NewKeyframeTap(onPLI func(mediaSSRC uint32)) *KeyframeTap {
	return &KeyframeTap{next: onPLI}
}

// Build creates one PeerConnection with build, its PLI/FIR going to onPLI: one
// API (and tap) can serve many endpoints.
func (f *KeyframeTap) Build(onPLI func(uint32), build func() (*webrtc.PeerConnection, error)) (*webrtc.PeerConnection, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.next
	f.next = onPLI
	defer func() { f.next = prev }()
	return build()
}

// NewInterceptor is called while a PeerConnection is built (under Build's lock
// when Build is used).
func (f *KeyframeTap) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &tap{onPLI: f.next, done: make(chan struct{})}, nil
}

type tap struct {
	interceptor.NoOp
	onPLI func(uint32)
	once  sync.Once
	done  chan struct{}
}

func (t *tap) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	go t.drain(r)
	return interceptor.RTCPReaderFunc(func([]byte, interceptor.Attributes) (int, interceptor.Attributes, error) {
		<-t.done
		return 0, nil, errTapped
	})
}

// drain reads one RTCP stream until it closes (the PeerConnection closed).
func (t *tap) drain(r interceptor.RTCPReader) {
	buf := make([]byte, 1500)
	for {
		n, _, err := r.Read(buf, nil)
		if err != nil {
			return
		}
		if t.onPLI == nil {
			continue
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch x := p.(type) {
			case *rtcp.PictureLossIndication:
				t.onPLI(x.MediaSSRC)
			case *rtcp.FullIntraRequest:
				t.onPLI(x.MediaSSRC)
			}
		}
	}
}

func (t *tap) Close() error {
	t.once.Do(func() { close(t.done) })
	return nil
}
