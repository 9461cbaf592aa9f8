package faulttest

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// udpEcho answers every datagram with itself.
func udpEcho(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, a, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDP(buf[:n], a)
		}
	}()
	return c
}

// The relay forwards both ways, drops by Loss and Down, and delays by Delay.
func TestUDPRelayImpairments(t *testing.T) {
	echo := udpEcho(t)
	r, err := NewUDPRelay(echo.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := net.DialUDP("udp4", nil, r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrips := func(n int) (got int, rtt time.Duration) {
		buf := make([]byte, 64)
		for i := range n {
			start := time.Now()
			if _, err := c.Write([]byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err == nil {
				got++
				rtt += time.Since(start)
			}
		}
		if got > 0 {
			rtt /= time.Duration(got)
		}
		return got, rtt
	}
	if got, _ := roundTrips(20); got != 20 {
		t.Fatalf("clean: %d of 20 echoed", got)
	}
	r.Set(Impairment{Loss: 0.5})
	for i := range 200 { // a burst, then count the echoes until 300 ms of quiet
		if _, err := c.Write([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	got := 0
	for buf := make([]byte, 64); ; got++ {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	t.Logf("50%% loss each way: %d of 200 round trips", got)
	if got < 20 || got > 90 { // expected 50
		t.Errorf("50%% loss each way: %d of 200 round trips, want about 50", got)
	}
	r.Set(Impairment{Delay: 100 * time.Millisecond, Jitter: 20 * time.Millisecond})
	got, rtt := roundTrips(5)
	t.Logf("100 ms ± 20 ms each way: mean round trip %v", rtt)
	if got != 5 || rtt < 150*time.Millisecond || rtt > 500*time.Millisecond {
		t.Errorf("delay: %d of 5, mean round trip %v, want about 200 ms", got, rtt)
	}
	r.Set(Impairment{Down: true})
	if got, _ := roundTrips(2); got != 0 {
		t.Errorf("down: %d round trips", got)
	}
	st := r.Stats()
	if st.Flows != 1 || st.DroppedUp == 0 {
		t.Errorf("stats %+v", st)
	}
}

// A cut proxy holds bytes (no RST, no FIN) and delivers them when restored.
func TestTCPProxyBlackhole(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	p, err := NewTCPProxy(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp4", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 16)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("clean echo: %q %v", buf[:n], err)
	}
	p.SetDown(true)
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("read %q through a cut proxy", buf[:n])
	}
	p.SetDown(false)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "held" {
		t.Fatalf("after restore: %q %v", buf[:n], err)
	}
}

// Rules are removed by Clear, and rules of dead processes by cleanStale.
func TestFirewallRulesCleanedUp(t *testing.T) {
	needFirewall(t)
	f := NewFirewall()
	if err := f.Drop("-p", "udp", "--dport", "1"); err != nil {
		t.Fatal(err)
	}
	// A rule as a killed test binary would leave it (a pid above pid_max never runs).
	dead := []string{"INPUT", "-i", "lo", "-p", "udp", "--dport", "2", "-m", "comment", "--comment", "opscenter-faulttest-4194999-1", "-j", "DROP"}
	if err := iptables(append([]string{"-I"}, dead...)...); err != nil {
		t.Fatal(err)
	}
	cleanStale()
	out, err := exec.Command("iptables", "-S", "INPUT").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "opscenter-faulttest-4194999-1") {
		_ = iptables(append([]string{"-D"}, dead...)...)
		t.Error("cleanStale left a dead process's rule")
	}
	if !strings.Contains(string(out), f.tag) {
		t.Error("cleanStale removed a live process's rule")
	}
	if err := f.Clear(); err != nil {
		t.Fatal(err)
	}
	out, _ = exec.Command("iptables", "-S", "INPUT").Output()
	if strings.Contains(string(out), f.tag) {
		t.Errorf("Clear left rules:\n%s", out)
	}
}
