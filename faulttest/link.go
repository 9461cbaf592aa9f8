package faulttest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"
)

// CanFirewall reports whether iptables rules can be added here (root and iptables on
// PATH), with the reason when not.
func CanFirewall() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "needs root for iptables (CI runs as root)"
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return false, "iptables is not installed: apt-get install -y iptables"
	}
	return true, ""
}

var ruleSeq atomic.Int64

// Firewall adds iptables rules to the INPUT chain (on loopback a DROP there is
// silent to the sender, as on a cut path) and removes exactly those rules on Close.
type Firewall struct {
	mu    sync.Mutex
	tag   string
	rules [][]string
}

// NewFirewall returns an empty rule set tagged with this process.
func NewFirewall() *Firewall {
	return &Firewall{tag: fmt.Sprintf("opscenter-faulttest-%d-%d", os.Getpid(), ruleSeq.Add(1))}
}

func iptables(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Drop adds a DROP rule for the match (for example "-p", "udp", "--dport", "4000").
func (f *Firewall) Drop(match ...string) error {
	spec := append([]string{"INPUT", "-i", "lo"}, match...)
	spec = append(spec, "-m", "comment", "--comment", f.tag, "-j", "DROP")
	if err := iptables(append([]string{"-I"}, spec...)...); err != nil {
		return err
	}
	f.mu.Lock()
	f.rules = append(f.rules, spec)
	f.mu.Unlock()
	return nil
}

// Clear removes every rule this firewall added.
func (f *Firewall) Clear() error {
	f.mu.Lock()
	rules := f.rules
	f.rules = nil
	f.mu.Unlock()
	var first error
	for i := len(rules) - 1; i >= 0; i-- {
		if err := iptables(append([]string{"-D"}, rules[i]...)...); err != nil && first == nil {
			first = err
		}
	}
	return first
}

var cleanOnce sync.Once

// cleanStale removes rules left by test processes that no longer run (a test
// binary killed by its timeout cannot remove its own); rules of live processes stay.
func cleanStale() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "iptables", "-w", "5", "-S", "INPUT").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		i := strings.Index(line, "opscenter-faulttest-")
		if !strings.HasPrefix(line, "-A INPUT ") || i < 0 {
			continue
		}
		pid, _, _ := strings.Cut(line[i+len("opscenter-faulttest-"):], "-")
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue
		}
		spec := strings.Fields(strings.TrimPrefix(line, "-A "))
		_ = iptables(append([]string{"-D"}, spec...)...)
	}
}

var portBase atomic.Int64

// portRange picks a block of UDP ports below Linux's ephemeral range (32768+), so
// nothing else on the machine is handed them by the kernel. The process id spreads
// concurrent test binaries apart.
func portRange() (uint16, uint16) {
	const size = 24
	if portBase.Load() == 0 {
		portBase.CompareAndSwap(0, int64(20000+(os.Getpid()%200)*size))
	}
	lo := portBase.Add(size) - size
	if lo+size > 32000 {
		portBase.Store(20000)
		lo = 20000
	}
	return uint16(lo), uint16(lo + size - 1)
}

// Link is one endpoint's whole network path to the server: its WebSocket through a
// TCP proxy and its media through a UDP relay. As root, iptables keeps its media
// ports from reaching the server's ICE port directly, so every packet takes the relay.
type Link struct {
	Proxy *TCPProxy
	Relay *UDPRelay
	// UDPPortMin..UDPPortMax are the endpoint's own media ports (pass them to
	// client.Options).
	UDPPortMin, UDPPortMax uint16
	serverUDP              int
	fw                     *Firewall // direct-path block (root only)
	cut                    *Firewall // the cut, when done with iptables
	useIptables            bool
	mu                     sync.Mutex
	down                   bool
}

// NewLink builds a link to a server at httpAddr (host:port) with its ICE UDP port.
// With firewall true (root), the direct path is blocked and Cut uses iptables.
func NewLink(httpAddr string, serverUDP int, firewall bool) (*Link, error) {
	p, err := NewTCPProxy(httpAddr)
	if err != nil {
		return nil, err
	}
	r, err := NewUDPRelay(fmt.Sprintf("127.0.0.1:%d", serverUDP))
	if err != nil {
		p.Close()
		return nil, err
	}
	l := &Link{Proxy: p, Relay: r, serverUDP: serverUDP, useIptables: firewall}
	l.UDPPortMin, l.UDPPortMax = portRange()
	if firewall {
		cleanOnce.Do(cleanStale)
		l.fw, l.cut = NewFirewall(), NewFirewall()
		rng := fmt.Sprintf("%d:%d", l.UDPPortMin, l.UDPPortMax)
		s := strconv.Itoa(serverUDP)
		for _, m := range [][]string{
			{"-p", "udp", "--sport", s, "--dport", rng},
			{"-p", "udp", "--sport", rng, "--dport", s},
		} {
			if err := l.fw.Drop(m...); err != nil {
				l.Close()
				return nil, err
			}
		}
	}
	return l, nil
}

// URL is the server base URL through the proxy.
func (l *Link) URL() string { return "http://" + l.Proxy.Addr() }

// MapCandidate rewrites the server's UDP candidates to the relay and drops the
// others (TCP, other addresses): give it to client.Options.MapRemoteCandidate.
func (l *Link) MapCandidate(ci webrtc.ICECandidateInit) (webrtc.ICECandidateInit, bool) {
	s := strings.TrimPrefix(ci.Candidate, "a=")
	f := strings.Fields(s)
	// candidate:FOUNDATION COMPONENT PROTOCOL PRIORITY IP PORT typ TYPE ...
	if len(f) < 8 || !strings.EqualFold(f[2], "udp") || f[5] != strconv.Itoa(l.serverUDP) {
		return ci, false
	}
	if ip := net.ParseIP(f[4]); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return ci, false
	}
	f[4] = "127.0.0.1"
	f[5] = strconv.Itoa(l.Relay.Addr().Port)
	ci.Candidate = strings.Join(f, " ")
	return ci, true
}

// Set impairs the media path (both directions).
func (l *Link) Set(imp Impairment) { l.Relay.Set(imp) }

// Cut cuts (true) or restores (false) the whole path: WebSocket and media. As root
// it is done with iptables DROP rules on the proxy's and the relay's ports; otherwise
// the proxy and relay blackhole in process. Neither sends a RST or an ICMP error.
func (l *Link) Cut(down bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if down == l.down {
		return nil
	}
	l.down = down
	if !l.useIptables {
		l.Proxy.SetDown(down)
		imp := l.Relay.Impairment()
		imp.Down = down
		l.Relay.Set(imp)
		return nil
	}
	if !down {
		return l.cut.Clear()
	}
	tp := strconv.Itoa(tcpPort(l.Proxy.Addr()))
	up := strconv.Itoa(l.Relay.Addr().Port)
	for _, m := range [][]string{
		{"-p", "tcp", "--dport", tp}, {"-p", "tcp", "--sport", tp},
		{"-p", "udp", "--dport", up}, {"-p", "udp", "--sport", up},
	} {
		if err := l.cut.Drop(m...); err != nil {
			return err
		}
	}
	return nil
}

// CutMethod says how Cut works on this link.
func (l *Link) CutMethod() string {
	if l.useIptables {
		return "iptables DROP on the link's TCP and UDP ports"
	}
	return "in-process blackhole in the proxy and relay"
}

func tcpPort(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Close removes the link's rules and stops its proxy and relay.
func (l *Link) Close() error {
	var first error
	for _, fw := range []*Firewall{l.cut, l.fw} {
		if fw != nil {
			if err := fw.Clear(); err != nil && first == nil {
				first = err
			}
		}
	}
	l.Proxy.Close()
	l.Relay.Close()
	return first
}
