package sfu

import (
	"bytes"
	"crypto/rand"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/opscenter/opscenter/synth/media"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v2"
	"github.com/pion/webrtc/v3"
)

// captureWriter records the datagrams a downlink writes through its endpoint.
type captureWriter struct {
	mu   sync.Mutex
	pkts [][]byte
}

func (c *captureWriter) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.pkts = append(c.pkts, append([]byte(nil), b...))
	c.mu.Unlock()
	return len(b), nil
}

func testDownlink(t testing.TB, profile srtp.ProtectionProfile, ep io.Writer) *downlink {
	kl, err := profile.KeyLen()
	if err != nil {
		t.Fatal(err)
	}
	sl, err := profile.SaltLen()
	if err != nil {
		t.Fatal(err)
	}
	d := &downlink{key: make([]byte, kl), salt: make([]byte, sl), profile: profile, ep: ep}
	_, _ = rand.Read(d.key)
	_, _ = rand.Read(d.salt)
	return d
}

// TestOwnSRTPOutput: slots on the own SRTP path write packets the receiver
// decrypts with the leg's keys, with continuous sequence numbers, the
// original payload, and consecutive transport-wide sequence numbers that the
// history can look up; for both negotiated profiles.
func TestOwnSRTPOutput(t *testing.T) {
	for _, profile := range []srtp.ProtectionProfile{srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAes128CmHmacSha1_80} {
		t.Run(profile.String(), func(t *testing.T) {
			r := newUnitRig()
			ep := &captureWriter{}
			s := r.slot(&fakeWriter{})
			dl := testDownlink(t, profile, ep)
			s.peer.down.Store(dl)
			s.peer.subDirect.Store(true)
			b := s.dt.binding.Load()
			s.dt.binding.Store(&binding{ssrc: b.ssrc, pt: b.pt, twcc: 3, w: b.w})

			v := media.NewVideo(media.VideoConfig{Code: "22", Width: 320, Height: 180, Bitrate: 300_000, KeyframeInterval: -1, SSRC: 3})
			now := time.Unix(0, 0)
			var sent [][]byte
			for f := 0; f < 20; f++ {
				now = now.Add(33 * time.Millisecond)
				_ = v.NextFrame(now, func(p *rtp.Packet) error {
					sent = append(sent, append([]byte(nil), p.Payload...))
					r.ingest(p)
					return nil
				})
			}
			ep.mu.Lock()
			defer ep.mu.Unlock()
			if len(ep.pkts) != len(sent) {
				t.Fatalf("%d datagrams for %d packets", len(ep.pkts), len(sent))
			}
			rx, err := srtp.CreateContext(dl.key, dl.salt, profile)
			if err != nil {
				t.Fatal(err)
			}
			var prevSeq, prevTW uint16
			for i, enc := range ep.pkts {
				var h rtp.Header
				plain, err := rx.DecryptRTP(nil, enc, &h)
				if err != nil {
					t.Fatalf("packet %d: decrypt: %v", i, err)
				}
				var pkt rtp.Packet
				if err := pkt.Unmarshal(plain); err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if !bytes.Equal(pkt.Payload, sent[i]) {
					t.Fatalf("packet %d: payload differs", i)
				}
				ext := pkt.GetExtension(3)
				var tw rtp.TransportCCExtension
				if err := tw.Unmarshal(ext); err != nil {
					t.Fatalf("packet %d: transport-cc extension: %v", i, err)
				}
				if i > 0 && (pkt.SequenceNumber != prevSeq+1 || tw.TransportSequence != prevTW+1) {
					t.Fatalf("packet %d: seq %d after %d, transport seq %d after %d", i, pkt.SequenceNumber, prevSeq, tw.TransportSequence, prevTW)
				}
				prevSeq, prevTW = pkt.SequenceNumber, tw.TransportSequence
				if _, size, ok := s.peer.tw.lookup(nanotime(), tw.TransportSequence); !ok || size != len(plain) {
					t.Fatalf("packet %d: history has size %d ok=%v, want %d", i, size, ok, len(plain))
				}
			}
			if st := s.Stats(); st.Packets != uint64(len(sent)) {
				t.Errorf("slot counted %d packets, want %d", st.Packets, len(sent))
			}
			s.close()
			s.wg.Wait()
		})
	}
}

// TestTWCCHistoryAndAcks decodes feedback in both chunk kinds, with losses,
// against the send history, including sequence numbers that wrapped and
// packets that fell out of the ring.
func TestTWCCHistoryAndAcks(t *testing.T) {
	var h twccHistory
	h.next.Store(65530) // wrap inside the feedback
	base := int64(1_000_000_000)
	for i := 0; i < 12; i++ {
		h.record(base+int64(i)*1_000_000, 1000+i)
	}
	fb := &rtcp.TransportLayerCC{
		BaseSequenceNumber: 65530,
		PacketStatusCount:  12,
		ReferenceTime:      10, // 640 ms
		PacketChunks: []rtcp.PacketStatusChunk{
			&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 3},
			&rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeOneBit, SymbolList: []uint16{0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		},
	}
	// 3 + 7 received (the vector reports 9 statuses, 2 lost, of which 7 count).
	for i := 0; i < 10; i++ {
		fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 1000})
	}
	acks := h.acks(base+time.Second.Nanoseconds(), fb, nil)
	if len(acks) != 12 {
		t.Fatalf("%d acks, want 12", len(acks))
	}
	lost := map[int]bool{3: true, 5: true}
	arrival := int64(640_000_000)
	for i, a := range acks {
		if a.sent != base+int64(i)*1_000_000 || a.size != 1000+i {
			t.Errorf("ack %d: sent %d size %d", i, a.sent, a.size)
		}
		if a.received == lost[i] {
			t.Errorf("ack %d: received %v", i, a.received)
		}
		if a.received {
			arrival += 1_000_000
			if a.arrived != arrival {
				t.Errorf("ack %d: arrived %d, want %d", i, a.arrived, arrival)
			}
		}
	}
	// Push the first packets out of the ring: their acks lose the send time.
	for i := 0; i < twccRing; i++ {
		h.record(base, 1)
	}
	if _, _, ok := h.lookup(base, 65530); ok {
		t.Error("a packet older than the ring was found")
	}
	if _, _, ok := h.lookup(base, uint16(h.next.Load())); ok {
		t.Error("a packet not yet sent was found")
	}
}

// BenchmarkFanoutOwnSRTP: the reader-side cost of fanning one packet out to
// 190 subscribers on the own SRTP path (AES-GCM, transport-wide sequence
// numbers; the endpoint discards). Per op = one packet to all 190.
func BenchmarkFanoutOwnSRTP(b *testing.B) {
	r := newUnitRig()
	var slots []*Slot
	for i := 0; i < 190; i++ {
		s := r.slot(&fakeWriter{})
		s.peer.down.Store(testDownlink(b, srtp.ProtectionProfileAeadAes128Gcm, discard{}))
		s.peer.subDirect.Store(true)
		bd := s.dt.binding.Load()
		s.dt.binding.Store(&binding{ssrc: bd.ssrc, pt: bd.pt, twcc: 3, w: bd.w})
		slots = append(slots, s)
	}
	runFanoutBench(b, r, slots)
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// TestSRTPGCMMatchesPion: our in-place AES-GCM sealer produces what
// pion/srtp decrypts, across a sequence number wrap (rollover counter) and
// for a retransmission of a packet from before the wrap.
func TestSRTPGCMMatchesPion(t *testing.T) {
	dl := testDownlink(t, srtp.ProtectionProfileAeadAes128Gcm, nil)
	g, err := newSRTPGCM(dl.key, dl.salt)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := srtp.CreateContext(dl.key, dl.salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	seqs := []uint16{65530, 65531, 65533, 65534, 65535, 0, 1, 65532, 2, 3}
	for _, seq := range seqs {
		h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: 0xCAFE}
		payload := []byte{byte(seq), 1, 2, 3, 4, 5, 6, 7, 8, 9}
		buf := make([]byte, 1500)
		hl, err := h.MarshalTo(buf)
		if err != nil {
			t.Fatal(err)
		}
		n := hl + copy(buf[hl:], payload)
		pkt := g.seal(buf, hl, n, h.SSRC, seq)
		var got rtp.Header
		plain, err := rx.DecryptRTP(nil, pkt, &got)
		if err != nil {
			t.Fatalf("seq %d: pion cannot decrypt: %v", seq, err)
		}
		if got.SequenceNumber != seq || !bytes.Equal(plain[hl:], payload) {
			t.Fatalf("seq %d: got seq %d payload %v", seq, got.SequenceNumber, plain[hl:])
		}
	}
	if g.roc != 1 {
		t.Errorf("rollover counter %d after one wrap", g.roc)
	}
}

func BenchmarkSRTPGCMSeal(b *testing.B) {
	dl := testDownlink(b, srtp.ProtectionProfileAeadAes128Gcm, nil)
	g, err := newSRTPGCM(dl.key, dl.salt)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1500)
	b.SetBytes(1200)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = g.seal(buf, 20, 1220, 1, uint16(i))
	}
}

// TestOwnSRTPNegotiatedLeg: a subscriber leg negotiated end to end with a
// real Pion client takes the own SRTP path (not Pion's writer), with either
// DTLS role, and the client decrypts what it sends; the legs gauge says so.
func TestOwnSRTPNegotiatedLeg(t *testing.T) {
	if err := CheckPionInternals(); err != nil {
		t.Fatalf("startup check: %v", err)
	}
	for _, role := range []webrtc.DTLSRole{webrtc.DTLSRoleClient, webrtc.DTLSRoleServer} {
		t.Run("client answers as DTLS "+role.String(), func(t *testing.T) {
			v := newEnv(t, testConfig())
			if !v.e.ownSRTPOK.Load() {
				t.Fatal("engine's startup check failed")
			}
			a, aVideo, _ := v.publisher("07192", stdLayers, 15)
			sp := v.peer("sub")
			sc := newClient(t, sp, "sub", clientOpts{answerRole: role})
			slot, err := sp.AddSlot("tile-1", webrtc.RTPCodecTypeVideo)
			must(t, err)
			must(t, slot.SetSource(aVideo, LayerHigh))
			rec := sc.recorder("tile-1")
			waitFor(t, 15*time.Second, "the own SRTP path", func() bool { return sp.down.Load() != nil })
			// Every packet from here on is encrypted by the own output.
			n0 := len(rec.snapshot())
			waitFor(t, 10*time.Second, "packets decrypted by the client", func() bool { return len(rec.snapshot()) > n0+30 })
			if p := sp.legPath.Load(); p != pathOwn {
				t.Errorf("leg path %d, want own (%d)", p, pathOwn)
			}
			own, pion := v.e.DownlinkLegs()
			t.Logf("legs: own_srtp %d, pion %d; %d packets received after the switch", own, pion, len(rec.snapshot())-n0)
			if own < 1 || pion != 0 {
				t.Errorf("legs: own_srtp %d, pion %d, want >= 1 and 0", own, pion)
			}
			sc.close()
			must(t, sp.Close())
			if own, _ := v.e.DownlinkLegs(); own != 0 {
				t.Errorf("own_srtp legs %d after the subscriber closed, want 0", own)
			}
			a.close()
			must(t, v.e.Close())
		})
	}
}

func TestDTLSClientFromSDP(t *testing.T) {
	sd := func(setup string) *webrtc.SessionDescription {
		return &webrtc.SessionDescription{SDP: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=setup:" + setup + "\r\n"}
	}
	for _, c := range []struct {
		local, remote string
		client, err   bool
	}{
		{"actpass", "active", false, false},
		{"actpass", "passive", true, false},
		{"active", "actpass", true, false},
		{"passive", "actpass", false, false},
		{"actpass", "actpass", false, true},
	} {
		got, err := dtlsClientFromSDP(sd(c.local), sd(c.remote))
		if (err != nil) != c.err || (err == nil && got != c.client) {
			t.Errorf("local %s remote %s: client=%v err=%v, want client=%v err=%v", c.local, c.remote, got, err, c.client, c.err)
		}
	}
	if _, err := dtlsClientFromSDP(nil, sd("active")); err == nil {
		t.Error("no local description: want an error")
	}
}
