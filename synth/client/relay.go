package client

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"
)

// UDPRelay forwards a client's ICE/UDP media to the server through a socket the
// test controls: point the client at it with MapRemoteCandidate (see Via), then
// Blackhole it to cut the path. Each client source address gets its own upstream
// socket, so the server sees distinct 5-tuples.
type UDPRelay struct {
	ln        *net.UDPConn
	target    *net.UDPAddr
	blackhole atomic.Bool
	packets   atomic.Int64

	mu       sync.Mutex
	upstream map[string]*net.UDPConn
	closed   bool
}

// NewUDPRelay listens on 127.0.0.1 and forwards to target ("ip:port").
func NewUDPRelay(target string) (*UDPRelay, error) {
	ta, err := net.ResolveUDPAddr("udp4", target)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	r := &UDPRelay{ln: ln, target: ta, upstream: map[string]*net.UDPConn{}}
	go r.run()
	return r, nil
}

// Addr is the relay's listening address.
func (r *UDPRelay) Addr() *net.UDPAddr { return r.ln.LocalAddr().(*net.UDPAddr) }

// Blackhole drops every packet in both directions while on.
func (r *UDPRelay) Blackhole(on bool) { r.blackhole.Store(on) }

// Packets is how many packets the relay forwarded (both directions).
func (r *UDPRelay) Packets() int64 { return r.packets.Load() }

func (r *UDPRelay) run() {
	buf := make([]byte, 1600)
	for {
		n, from, err := r.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if r.blackhole.Load() {
			continue
		}
		up, err := r.up(from)
		if err != nil {
			continue
		}
		if _, err := up.Write(buf[:n]); err == nil {
			r.packets.Add(1)
		}
	}
}

func (r *UDPRelay) up(from *net.UDPAddr) (*net.UDPConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, net.ErrClosed
	}
	if c := r.upstream[from.String()]; c != nil {
		return c, nil
	}
	c, err := net.DialUDP("udp4", nil, r.target)
	if err != nil {
		return nil, err
	}
	r.upstream[from.String()] = c
	go func() { // server → client
		buf := make([]byte, 1600)
		for {
			n, err := c.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP refusals while the server restarts
			}
			if r.blackhole.Load() {
				continue
			}
			if _, err := r.ln.WriteToUDP(buf[:n], from); err == nil {
				r.packets.Add(1)
			}
		}
	}()
	return c, nil
}

// Close stops the relay.
func (r *UDPRelay) Close() error {
	r.mu.Lock()
	r.closed = true
	for _, c := range r.upstream {
		c.Close()
	}
	r.mu.Unlock()
	return r.ln.Close()
}

// TCPRelay forwards ICE-TCP connections to the server. Stall(true) stops reading
// from the server side: the server's socket buffer fills, as with a client that
// stops reading its socket.
type TCPRelay struct {
	ln     net.Listener
	target string
	stall  atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

// NewTCPRelay listens on 127.0.0.1 and forwards to target ("ip:port").
func NewTCPRelay(target string) (*TCPRelay, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &TCPRelay{ln: ln, target: target}
	go r.run()
	return r, nil
}

// Addr is the relay's listening address.
func (r *TCPRelay) Addr() *net.TCPAddr { return r.ln.Addr().(*net.TCPAddr) }

// Stall stops (true) or resumes (false) reading from the server.
func (r *TCPRelay) Stall(on bool) { r.stall.Store(on) }

func (r *TCPRelay) run() {
	for {
		cc, err := r.ln.Accept()
		if err != nil {
			return
		}
		sc, err := net.DialTimeout("tcp4", r.target, 5*time.Second)
		if err != nil {
			cc.Close()
			continue
		}
		if tc, ok := sc.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(64 << 10) // so a stall backs up into the server soon
		}
		r.mu.Lock()
		r.conns = append(r.conns, cc, sc)
		r.mu.Unlock()
		go func() { _, _ = io.Copy(sc, cc); sc.Close() }()
		go func() {
			buf := make([]byte, 16<<10)
			for {
				for r.stall.Load() {
					time.Sleep(20 * time.Millisecond)
				}
				n, err := sc.Read(buf)
				if n > 0 {
					if _, werr := cc.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			cc.Close()
		}()
	}
}

// Close stops the relay and its connections.
func (r *TCPRelay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	return err
}

// Via returns a MapRemoteCandidate function that points the server's host
// candidates of the given protocol ("udp" or "tcp") at addr and drops the
// others (so the relay is the only path).
func Via(proto string, addr net.Addr) func(webrtc.ICECandidateInit) (webrtc.ICECandidateInit, bool) {
	host, port, _ := net.SplitHostPort(addr.String())
	return func(ci webrtc.ICECandidateInit) (webrtc.ICECandidateInit, bool) {
		f := strings.Fields(strings.TrimPrefix(ci.Candidate, "candidate:"))
		// foundation component protocol priority address port typ type ...
		if len(f) < 8 || !strings.EqualFold(f[2], proto) {
			return ci, false
		}
		if strings.Contains(f[4], ":") { // IPv6: the relays are IPv4
			return ci, false
		}
		f[4], f[5] = host, port
		ci.Candidate = "candidate:" + strings.Join(f, " ")
		return ci, true
	}
}

// CandidateAddr returns a candidate's protocol, address and port ("" when unparsable).
func CandidateAddr(ci webrtc.ICECandidateInit) (proto, ip string, port int) {
	f := strings.Fields(strings.TrimPrefix(ci.Candidate, "candidate:"))
	if len(f) < 6 {
		return "", "", 0
	}
	port, _ = strconv.Atoi(f[5])
	return strings.ToLower(f[2]), f[4], port
}
