package faulttest

import (
	"errors"
	"net"
	"sync"
	"time"
)

// gate is open (traffic flows) or shut (traffic waits, as on a cut cable).
type gate struct {
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) set(down bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open: // currently open
		if down {
			g.open = make(chan struct{})
		}
	default: // currently shut
		if !down {
			close(g.open)
		}
	}
}

// wait blocks while the gate is shut; false when stop ends first.
func (g *gate) wait(stop <-chan struct{}) bool {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-stop:
		return false
	}
}

// TCPProxy forwards TCP connections to one target. Down makes it a blackhole:
// bytes and closes wait (no RST, no FIN) until it comes back up, exactly like a cut
// path; TCP's own timers and the application's pings decide what dies meanwhile.
type TCPProxy struct {
	ln     net.Listener
	target string
	g      *gate
	stop   chan struct{}
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// NewTCPProxy listens on 127.0.0.1 (a free port) and forwards to target.
func NewTCPProxy(target string) (*TCPProxy, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &TCPProxy{ln: ln, target: target, g: newGate(), stop: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address clients connect to.
func (p *TCPProxy) Addr() string { return p.ln.Addr().String() }

// SetDown cuts (true) or restores (false) every connection through the proxy.
func (p *TCPProxy) SetDown(down bool) { p.g.set(down) }

// Close ends the proxy and every connection through it.
func (p *TCPProxy) Close() error {
	var err error
	p.once.Do(func() {
		close(p.stop)
		err = p.ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return err
}

func (p *TCPProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stop:
		_ = c.Close()
		return false
	default:
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *TCPProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *TCPProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-p.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *TCPProxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	// A connection opened while the path is cut waits, like a SYN being retransmitted.
	if !p.g.wait(p.stop) {
		return
	}
	u, err := net.DialTimeout("tcp4", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(u) {
		return
	}
	defer p.untrack(u)
	done := make(chan struct{}, 2)
	go func() { p.pipe(u, c); done <- struct{}{} }()
	go func() { p.pipe(c, u); done <- struct{}{} }()
	select {
	case <-done: // one side ended: end both (after the gate lets the close through)
	case <-p.stop:
	}
}

// pipe copies src to dst; every write, and the final close, waits for the gate.
func (p *TCPProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.g.wait(p.stop) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			p.g.wait(p.stop)
			return
		}
	}
}
