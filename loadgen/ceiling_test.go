package loadgen

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"

	"github.com/opscenter/opscenter/synth/media"
)

// TestCeilingSealsPerSubscriber: each receiver gets every packet, in order,
// sealed with its own key (it decrypts with pion/srtp, as a browser would,
// and another subscriber's key fails), across a sequence wrap (the ROC),
// with more datagrams per fan-out than a batch holds.
func TestCeilingSealsPerSubscriber(t *testing.T) {
	const n = 3
	var mu sync.Mutex
	got := make([][][]byte, n)
	rx, err := newCeilingReceivers(n, func(i int, b []byte) {
		mu.Lock()
		got[i] = append(got[i], append([]byte(nil), b...))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	s, err := newCeilingSender(rx.addrs(), 2) // 2 per batch: 2 sendmmsg per fan-out
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < n; i++ {
		for j := 0; j < i; j++ {
			if bytes.Equal(s.subs[i].masterKey, s.subs[j].masterKey) {
				t.Fatalf("subscribers %d and %d share a master key", i, j)
			}
		}
	}

	// The fanout's program: top-layer video (sequence numbers moved close
	// to the wrap) and audio.
	top := ProgramLayers[len(ProgramLayers)-1]
	v := media.NewVideo(media.VideoConfig{Code: "22", RID: "f", Width: top.Width, Height: top.Height,
		FPS: 30, Bitrate: top.Bitrate, SSRC: 1002})
	a := media.NewAudio(media.AudioConfig{Code: "22", SSRC: 2000})
	var src [][]byte // payloads in send order
	seq := uint16(65500)
	now := time.Now()
	for f := 0; f < 20; f++ {
		_ = v.NextFrame(now, func(p *rtp.Packet) error {
			p.SequenceNumber = seq
			seq++
			src = append(src, append([]byte(nil), p.Payload...))
			s.fanout(p, ceilVideo)
			return nil
		})
		if f%2 == 0 {
			_ = a.NextPacket(now, func(p *rtp.Packet) error {
				src = append(src, append([]byte(nil), p.Payload...))
				s.fanout(p, ceilAudio)
				return nil
			})
		}
		now = now.Add(33 * time.Millisecond)
	}
	if seq > 100 {
		t.Fatalf("the source sequence did not wrap (%d)", seq)
	}
	want := uint64(n * len(src))
	if s.sent.Load() != want || s.errs.Load() != 0 {
		t.Fatalf("sent %d (errors %d), want %d", s.sent.Load(), s.errs.Load(), want)
	}
	if c := s.calls.Load(); c < uint64(2*len(src)) {
		t.Errorf("%d sendmmsg calls for %d fan-outs in batches of 2 to 3", c, len(src))
	}
	if tot := rx.waitTotal(want, 5*time.Second); tot != want {
		t.Fatalf("received %d of %d", tot, want)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < n; i++ {
		if len(got[i]) != len(src) {
			t.Fatalf("receiver %d got %d of %d", i, len(got[i]), len(src))
		}
		sub := &s.subs[i]
		ctx, err := srtp.CreateContext(sub.masterKey, sub.masterSalt, srtp.ProtectionProfileAeadAes128Gcm)
		if err != nil {
			t.Fatal(err)
		}
		var lastTW uint16
		for k, d := range got[i] {
			pt, err := ctx.DecryptRTP(nil, d, nil)
			if err != nil {
				t.Fatalf("receiver %d packet %d: %v", i, k, err)
			}
			var p rtp.Packet
			if err := p.Unmarshal(pt); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.Payload, src[k]) {
				t.Fatalf("receiver %d packet %d: payload differs", i, k)
			}
			tw := p.GetExtension(ceilTWCCExtID)
			if len(tw) != 2 || (k > 0 && uint16(tw[0])<<8|uint16(tw[1]) != lastTW+1) {
				t.Fatalf("receiver %d packet %d: transport-wide sequence %x after %d", i, k, tw, lastTW)
			}
			lastTW = uint16(tw[0])<<8 | uint16(tw[1])
		}
		// Another subscriber's key does not open this one's packets.
		o := &s.subs[(i+1)%n]
		octx, err := srtp.CreateContext(o.masterKey, o.masterSalt, srtp.ProtectionProfileAeadAes128Gcm)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := octx.DecryptRTP(nil, got[i][0], nil); err == nil {
			t.Fatalf("receiver %d's packet opened with subscriber %d's key", i, (i+1)%n)
		}
	}
}

// TestCeilingRunBounded runs the paced loop briefly (two subscribers,
// 0.1 s + 0.4 s) and checks that it stops on time, measures a window and
// that the receivers read everything it sent.
func TestCeilingRunBounded(t *testing.T) {
	rx, err := newCeilingReceivers(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	s, err := newCeilingSender(rx.addrs(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	rep, err := runCeiling(ctx, s, ceilingConfig{Warmup: 100 * time.Millisecond, Duration: 400 * time.Millisecond, FPS: 30})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v for 0.5 s", el)
	}
	if rep.Packets == 0 || rep.Seconds <= 0 || rep.CPUSeconds <= 0 || rep.TotalErrs != 0 || rep.TotalSent < rep.Packets {
		t.Fatalf("report %+v", rep)
	}
	if got := rx.waitTotal(rep.TotalSent, 5*time.Second); got != rep.TotalSent {
		t.Fatalf("received %d of %d", got, rep.TotalSent)
	}
	t.Logf("%+v", rep)
}
