package signaling

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/media"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/wire"
)

// fuzzService is a Service without a database or WebSocket: a real media engine
// on loopback, a room with a small roster and a session in progress, an auditor
// that accepts everything. One per test process (fuzz workers are processes).
var fuzzSvc struct {
	once sync.Once
	s    *Service
	err  error
}

type nopAuditor struct{}

func (nopAuditor) Record(context.Context, store.Event) error { return nil }

func fuzzService(t testing.TB, engine func() (MediaEngine, error)) *Service {
	fuzzSvc.once.Do(func() {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		s := &Service{log: log, auditor: nopAuditor{}, kickC: make(chan struct{}, 1), saveC: make(chan struct{}, 1),
			applied: map[string]map[string]appliedSlot{}}
		s.cfg.defaults()
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.endSession = func(context.Context, string, string) error { return nil }
		s.room = newRoom(s.kick)
		for _, c := range []string{CommandCode, "207", "07192", "07195"} {
			s.room.roster = append(s.room.roster, c)
			s.room.inRoster[c] = true
		}
		s.room.sessionID = "fuzz-session"
		s.engine, fuzzSvc.err = engine()
		fuzzSvc.s = s
	})
	if fuzzSvc.err != nil {
		t.Fatal(fuzzSvc.err)
	}
	return fuzzSvc.s
}

// fuzzConn is a connection with no socket: what it would send stays in out.
func fuzzConn(s *Service, p auth.Principal) *conn {
	c := newConn(s, nil, p)
	c.out = newSendQueue(1 << 14)
	return c
}

// joinedConn returns a connection that has joined (a leader's console, or an
// endpoint), with its media peer.
func joinedConn(t testing.TB, s *Service, leader bool) *conn {
	p := auth.Principal{EndpointCode: "07192"}
	role := wire.RoleEndpoint
	if leader {
		p = auth.Principal{UserID: 1, Username: "lead", Role: auth.RoleLeader}
		role = wire.RoleConsole
	}
	c := fuzzConn(s, p)
	c.dispatch([]byte(fmt.Sprintf(`{"type":"join","id":"j","payload":{"role":%q}}`, role)))
	if !c.joined {
		t.Fatalf("join failed: %v", drainAll(c))
	}
	drainAll(c)
	return c
}

func drainAll(c *conn) []wire.Envelope {
	var out []wire.Envelope
	for {
		m, ok := c.out.pop()
		if !ok {
			return out
		}
		if m.data != nil {
			var env wire.Envelope
			_ = json.Unmarshal(m.data, &env)
			out = append(out, env)
		}
	}
}

func closeConn(c *conn) {
	c.closing.Store(true)
	c.cancel()
	if c.joined {
		c.svc.room.leave(c, true)
	}
	if c.peer != nil {
		_ = c.peer.Close()
	}
}

func errorsIn(envs []wire.Envelope) []wire.ErrorMsg {
	var out []wire.ErrorMsg
	for _, e := range envs {
		if e.Type == wire.TypeError {
			var m wire.ErrorMsg
			_ = json.Unmarshal(e.Payload, &m)
			out = append(out, m)
		}
	}
	return out
}

// The fuzz targets themselves (FuzzEnvelope, FuzzPublishOfferSDP) are in
// fuzz_engine_test.go, in package signaling_test: they need a real media
// engine, which internal/app adapts, and this package's own test files cannot
// import internal/app (it imports signaling). They hand it to the bodies here.

// RunFuzzEnvelope (FuzzEnvelope) feeds arbitrary messages to the envelope decoder and dispatch of
// a fresh connection, a joined endpoint and a leader's console. It must never
// panic; malformed JSON and unknown types are answered with an error, and no
// input causes an internal error.
func RunFuzzEnvelope(f *testing.F, engine func() (MediaEngine, error)) {
	for _, seed := range []string{
		`{"type":"join","payload":{"role":"endpoint"}}`,
		`{"type":"join","payload":{"role":"console","device":{"user_agent":"x"}}}`,
		`{"type":"ping","id":"1"}`,
		`{"type":"raise_hand"}`, `{"type":"lower_hand"}`,
		`{"type":"mute_state","payload":{"audio":false,"video":true}}`,
		`{"type":"mute_state","payload":{"audio":"loud"}}`,
		`{"type":"give_floor","payload":{"code":"07195"}}`, `{"type":"give_floor","payload":{"code":"22"}}`,
		`{"type":"revoke_floor"}`, `{"type":"mute","payload":{"code":"07195"}}`, `{"type":"mute_all"}`,
		`{"type":"request_unmute","payload":{"code":"07192"}}`, `{"type":"unmute_accept"}`,
		`{"type":"private_line_open","payload":{"code":"07195"}}`, `{"type":"private_line_close"}`,
		`{"type":"roll_call_start"}`, `{"type":"roll_call_stop"}`, `{"type":"remove","payload":{"code":"99999"}}`,
		`{"type":"session_end"}`, `{"type":"leave"}`,
		`{"type":"visibility","payload":{"tiles":[{"code":"07192","visible":true,"size":"large","slot":3}]}}`,
		`{"type":"visibility","payload":{"tiles":[{"code":"07192","visible":true,"slot":-1}]}}`,
		`{"type":"layer_request","payload":{"slot":"floor_video","layer":2}}`,
		`{"type":"ice_candidate","payload":{"target":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}}}`,
		`{"type":"ice_candidate","payload":{"target":"moon"}}`, `{"type":"ice_restart"}`,
		`{"type":"subscriber_answer","payload":{"sdp":"v=0"}}`, `{"type":"publish_offer","payload":{"sdp":"v=0\r\n"}}`,
		`{"type": "join",`, `null`, `[]`, `{"type":7}`, `{"type":"teleport"}`, `{"payload":{}}`, "\x00\xff", ``,
	} {
		f.Add([]byte(seed))
	}
	capMinimize()
	f.Fuzz(func(t *testing.T, b []byte) {
		s := fuzzService(t, engine)
		var probe wire.Envelope
		bad := json.Unmarshal(b, &probe) != nil
		_, known := handlers[probe.Type]
		for _, mk := range []func() *conn{
			func() *conn { return fuzzConn(s, auth.Principal{EndpointCode: "07195"}) },
			func() *conn { return joinedConn(t, s, false) },
			func() *conn { return joinedConn(t, s, true) },
		} {
			c := mk()
			c.dispatch(b)
			errs := errorsIn(drainAll(c))
			closeConn(c)
			if bad && (len(errs) == 0 || errs[0].Code != wire.ErrBadJSON) {
				t.Fatalf("malformed JSON %q answered with %v", b, errs)
			}
			if !bad && !known && (len(errs) == 0 || errs[0].Code != wire.ErrUnknownType) {
				t.Fatalf("unknown type %q answered with %v", probe.Type, errs)
			}
			for _, e := range errs {
				if e.Code == wire.ErrInternal {
					t.Fatalf("%q caused an internal error: %s", b, e.Message)
				}
			}
		}
	})
}

// RunFuzzPublishOfferSDP (FuzzPublishOfferSDP) sends arbitrary SDP through publish_offer into
// sfu.PublishOffer: garbage gets a clear error (invalid_sdp or bad_state), a
// valid offer a publish_answer; never a panic or an internal error. And the
// refusal is semantic, not only syntactic: after a refused offer the leg keeps its
// last good state, so a valid offer on the same connection is still answered (a
// description Pion half-applied would leave the leg in have-remote-offer, and
// refuse it).
func RunFuzzPublishOfferSDP(f *testing.F, engine func() (MediaEngine, error)) {
	good := validOffer(f, 3, true)
	f.Add(validOffer(f, 1, true))
	f.Add(validOffer(f, 3, true))
	f.Add(validOffer(f, 1, false))
	for _, seed := range []string{"", "v=0", "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
		"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n",
		"m=audio 0 RTP/AVP 0\n", "a=candidate:garbage\r\n", "\x00\x01\x02"} {
		f.Add(seed)
	}
	// Valid but for one thing: these parse, and used to leave the leg stuck.
	f.Add(good[:strings.Index(good, "m=")])
	f.Add(strings.NewReplacer("a=ice-ufrag:", "a=x-ufrag:", "a=ice-pwd:", "a=x-pwd:").Replace(good))
	f.Add(strings.ReplaceAll(good, "a=fingerprint:", "a=x-fingerprint:"))
	f.Add(strings.ReplaceAll(good, "a=mid:", "a=x-mid:"))
	f.Add(strings.Replace(good, "a=ice-ufrag:", "a=ice-ufrag:x", 1))
	f.Add(strings.Replace(good, "a=candidate:", "a=candidate:x ", 1))
	plain := validOffer(f, 1, false) // Plan B: two tracks in one section
	f.Add(strings.Replace(plain, "a=mid:0\r\n", "a=mid:0\r\na=ssrc:111 cname:x\r\n", 1))
	capMinimize()
	f.Fuzz(func(t *testing.T, sdp string) {
		// A real offer arrives in one WebSocket message (MaxMessageBytes, 64 KiB
		// by default, JSON-escaped): larger inputs only slow the parser down.
		if len(sdp) > 32<<10 {
			return
		}
		s := fuzzService(t, engine)
		// A fresh publishing endpoint per input, closed after it. One shared
		// peer made every input depend on the ones before (a valid offer
		// started ICE, later offers renegotiated or ICE-restarted it, and
		// its transceivers piled up): execs slowed to a halt under -fuzz.
		pub := joinedConn(t, s, false)
		defer closeConn(pub)
		var envs []wire.Envelope
		watchdog(t, 10*time.Second, func() {
			msg, _ := json.Marshal(wire.Envelope{Type: wire.TypePublishOffer, ID: "o", Payload: mustMarshal(wire.SDPMsg{SDP: sdp})})
			pub.dispatch(msg)
			envs = drainAll(pub)
		})
		answered := false
		for _, e := range envs {
			if e.Type == wire.TypePublishAnswer {
				answered = true
			}
		}
		errs := errorsIn(envs)
		for _, e := range errs {
			if e.Code != wire.ErrInvalidSDP && e.Code != wire.ErrBadState {
				t.Fatalf("SDP %q answered with %s: %s", sdp, e.Code, e.Message)
			}
		}
		if !answered && len(errs) == 0 {
			t.Fatalf("SDP %q got neither an answer nor an error", sdp)
		}
		if answered {
			return // a later offer must keep its sections: not comparable with good
		}
		watchdog(t, 10*time.Second, func() {
			msg, _ := json.Marshal(wire.Envelope{Type: wire.TypePublishOffer, ID: "v", Payload: mustMarshal(wire.SDPMsg{SDP: good})})
			pub.dispatch(msg)
			envs = drainAll(pub)
		})
		for _, e := range envs {
			if e.Type == wire.TypePublishAnswer && e.ID == "v" {
				return
			}
		}
		t.Fatalf("after the refused SDP %q, a valid offer got %v", sdp, errorsIn(envs))
	})
}

// capMinimize bounds input minimisation unless -fuzzminimizetime was given.
// Why FuzzPublishOfferSDP used to stall at a dozen execs under -fuzz: each exec
// runs real Pion (PeerConnections, ICE agents, interceptors), whose background
// goroutines add coverage at random, so the worker keeps finding "new" inputs
// and minimises each one (5 KB SDPs: thousands of slow execs, up to the 60 s
// default per input) without reporting progress. It takes effect in the
// coordinating process, which hands the limit to its workers.
func capMinimize() {
	fl := flag.Lookup("test.fuzzminimizetime")
	if fl == nil {
		return
	}
	set := false
	flag.Visit(func(v *flag.Flag) { set = set || v.Name == fl.Name })
	if !set {
		_ = fl.Value.Set("200x")
	}
}

// watchdog runs f and fails with every goroutine's stack if it takes longer
// than d (a hang is a finding too).
func watchdog(t *testing.T, d time.Duration, f func()) {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Fatalf("no answer within %v:\n%s", d, b.String())
	}
}

func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// validOffer makes a real Pion publisher offer (VP8 with n simulcast layers, and
// Opus when audio).
func validOffer(f *testing.F, layers int, audio bool) string {
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		f.Fatal(err)
	}
	defer pc.Close()
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	var sender *webrtc.RTPSender
	for i := 0; i < layers; i++ {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if layers > 1 {
			opts = append(opts, webrtc.WithRTPStreamID(media.RIDs[i]))
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(vp8, "video", "fuzz", opts...)
		if err != nil {
			f.Fatal(err)
		}
		if i == 0 {
			if sender, err = pc.AddTrack(tr); err != nil {
				f.Fatal(err)
			}
		} else if err := sender.AddEncoding(tr); err != nil {
			f.Fatal(err)
		}
	}
	if audio {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "fuzz")
		if err != nil {
			f.Fatal(err)
		}
		if _, err := pc.AddTrack(tr); err != nil {
			f.Fatal(err)
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		f.Fatal(err)
	}
	return o.SDP
}
