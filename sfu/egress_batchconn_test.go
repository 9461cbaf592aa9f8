package sfu

import (
	"net"
	"testing"
	"time"
)

// TestBatchConn: datagrams written during a fan-out are held until end and
// then all delivered, in order, to their destinations; writes outside a
// fan-out go out at once.
func TestBatchConn(t *testing.T) {
	for _, network := range []string{"udp4", "udp"} {
		t.Run(network, func(t *testing.T) {
			host := "127.0.0.1:0"
			if network == "udp" {
				host = "[::]:0"
			}
			pc, err := net.ListenPacket(network, host)
			if err != nil {
				t.Logf("no %s socket here (IPv6 disabled?): %v", network, err)
				return
			}
			defer pc.Close()
			b := newBatchConn(pc)
			if b.raw == nil {
				t.Fatal("batching not enabled on a UDP socket")
			}
			var rx [2]*net.UDPConn
			for i := range rx {
				if rx[i], err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
					t.Fatal(err)
				}
				defer rx[i].Close()
				_ = rx[i].SetReadBuffer(1 << 20)
			}
			read := func(c *net.UDPConn, wait time.Duration) (byte, bool) {
				buf := make([]byte, 1500)
				_ = c.SetReadDeadline(time.Now().Add(wait))
				n, _, err := c.ReadFromUDP(buf)
				if err != nil || n != 200 {
					return 0, false
				}
				return buf[0], true
			}
			msg := make([]byte, 200)
			// outside a fan-out: immediate
			msg[0] = 0xEE
			if _, err := b.WriteTo(msg, rx[0].LocalAddr()); err != nil {
				t.Fatal(err)
			}
			if v, ok := read(rx[0], 2*time.Second); !ok || v != 0xEE {
				t.Fatalf("direct write not received (%x %v)", v, ok)
			}
			// during a fan-out: held, then 300 datagrams (more than one batch)
			const total = 300
			b.begin()
			for i := 0; i < total; i++ {
				msg[0] = byte(i)
				if _, err := b.WriteTo(msg, rx[i%2].LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
			b.end()
			for i := 0; i < total; i++ {
				v, ok := read(rx[i%2], 2*time.Second)
				if !ok || v != byte(i) {
					t.Fatalf("datagram %d: got %x, %v", i, v, ok)
				}
			}
			if b.sent.Load() != total || b.errs.Load() != 0 {
				t.Errorf("sent %d errs %d calls %d", b.sent.Load(), b.errs.Load(), b.calls.Load())
			}
			t.Logf("%d datagrams in %d sendmmsg calls", b.sent.Load(), b.calls.Load())
		})
	}
}
