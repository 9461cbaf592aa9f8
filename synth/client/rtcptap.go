package client

import (
	"errors"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// The client reads incoming RTCP through this interceptor instead of
// RTPSender.ReadSimulcastRTCP: Pion v3 reads its per-encoding table there
// without a lock while PeerConnection.Close rewrites it (a data race that
// go test -race reports). As in loadgen: the tap is the last interceptor;
// for each RTCP stream Pion binds it drains the fully wrapped reader on its
// own goroutine (the other interceptors still see everything) and hands
// PLI/FIR to the client.

var errTapped = errors.New("client: RTCP is read by the tap")

type tapFactory struct{ onPLI func(mediaSSRC uint32) }

func (f *tapFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &tap{onPLI: f.onPLI, done: make(chan struct{})}, nil
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
