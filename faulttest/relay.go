// Package faulttest injects network faults into opscenter's tests without tc netem
// (this kernel has none): a UDP relay that the test controls (loss, delay, jitter,
// blackhole) between one synthetic endpoint and the server's ICE port, a TCP proxy
// for that endpoint's WebSocket (blackhole without FIN or RST, like a cut cable), and
// iptables rules (as root) that keep the endpoint from reaching the server's media port
// directly, so its media can only take the relay.
//
// Everything listens on loopback only and is torn down by Close.
package faulttest

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Impairment is what the relay does to packets, in each direction.
type Impairment struct {
	Loss   float64       // probability of dropping a packet, 0..1
	Delay  time.Duration // one-way delay added to every packet
	Jitter time.Duration // ± uniform variation of the delay (packets may reorder, as with netem)
	Down   bool          // drop everything (a cut path)
}

// RelayStats counts packets through the relay.
type RelayStats struct {
	Up, Down           int64 // forwarded client→server, server→client
	DroppedUp, DropDwn int64 // dropped by Loss or Down
	Flows              int   // distinct client sockets seen
}

// maxFlows bounds the client sockets one relay serves (two PeerConnections per
// connection, a few reconnects).
const maxFlows = 256

// UDPRelay forwards UDP between clients and one server address. Each client socket
// gets its own upstream socket, so the server sees one distinct (peer-reflexive)
// address per client socket, as behind a NAT.
type UDPRelay struct {
	down   *net.UDPConn
	target *net.UDPAddr

	mu    sync.Mutex
	imp   Impairment
	rng   *rand.Rand
	flows map[string]*flow

	up, dn, dropUp, dropDn atomic.Int64
	closed                 atomic.Bool
	wg                     sync.WaitGroup
}

type flow struct {
	client *net.UDPAddr
	up     *net.UDPConn
}

// NewUDPRelay listens on 127.0.0.1 (a free port) and forwards to target.
func NewUDPRelay(target string) (*UDPRelay, error) {
	ta, err := net.ResolveUDPAddr("udp4", target)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	r := &UDPRelay{down: ln, target: ta, flows: map[string]*flow{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x6f7073))}
	r.wg.Add(1)
	go r.downLoop()
	return r, nil
}

// Addr is the address clients send to.
func (r *UDPRelay) Addr() *net.UDPAddr { return r.down.LocalAddr().(*net.UDPAddr) }

// Set changes the impairment (takes effect for the next packet).
func (r *UDPRelay) Set(imp Impairment) {
	r.mu.Lock()
	r.imp = imp
	r.mu.Unlock()
}

// Impairment returns the current impairment.
func (r *UDPRelay) Impairment() Impairment {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.imp
}

// Stats returns the packet counters.
func (r *UDPRelay) Stats() RelayStats {
	r.mu.Lock()
	n := len(r.flows)
	r.mu.Unlock()
	return RelayStats{Up: r.up.Load(), Down: r.dn.Load(), DroppedUp: r.dropUp.Load(), DropDwn: r.dropDn.Load(), Flows: n}
}

// ClientPorts lists the client-side ports seen so far.
func (r *UDPRelay) ClientPorts() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, f := range r.flows {
		out = append(out, f.client.Port)
	}
	return out
}

// Close stops the relay; pending delayed packets are dropped.
func (r *UDPRelay) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	err := r.down.Close()
	r.mu.Lock()
	for _, f := range r.flows {
		_ = f.up.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *UDPRelay) downLoop() {
	defer r.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, src, err := r.down.ReadFromUDP(buf)
		if err != nil {
			if r.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f := r.flow(src)
		if f == nil {
			continue
		}
		r.forward(buf[:n], &r.up, &r.dropUp, func(b []byte) { _, _ = f.up.WriteToUDP(b, r.target) })
	}
}

// flow returns (creating) the upstream socket for a client address.
func (r *UDPRelay) flow(src *net.UDPAddr) *flow {
	key := src.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.flows[key]; f != nil {
		return f
	}
	if len(r.flows) >= maxFlows || r.closed.Load() {
		return nil
	}
	up, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil
	}
	f := &flow{client: src, up: up}
	r.flows[key] = f
	r.wg.Add(1)
	go r.upLoop(f)
	return f
}

func (r *UDPRelay) upLoop(f *flow) {
	defer r.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, _, err := f.up.ReadFromUDP(buf)
		if err != nil {
			if r.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		r.forward(buf[:n], &r.dn, &r.dropDn, func(b []byte) { _, _ = r.down.WriteToUDP(b, f.client) })
	}
}

// forward applies the impairment to one packet and sends it (now or later).
func (r *UDPRelay) forward(b []byte, sent, dropped *atomic.Int64, send func([]byte)) {
	r.mu.Lock()
	imp := r.imp
	drop := imp.Down || (imp.Loss > 0 && r.rng.Float64() < imp.Loss)
	d := imp.Delay
	if imp.Jitter > 0 {
		d += time.Duration((r.rng.Float64()*2 - 1) * float64(imp.Jitter))
	}
	r.mu.Unlock()
	if drop {
		dropped.Add(1)
		return
	}
	sent.Add(1)
	if d <= 0 {
		send(b)
		return
	}
	cp := append([]byte(nil), b...)
	time.AfterFunc(d, func() {
		if !r.closed.Load() {
			send(cp)
		}
	})
}
