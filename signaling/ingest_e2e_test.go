package signaling_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/synth/media"
	"github.com/opscenter/opscenter/synth/rtc"
	"github.com/opscenter/opscenter/wire"
)

// httpClient is a WHIP/WHEP client's HTTP side (raw requests: the tests check
// statuses and headers, not JSON).
type httpClient struct {
	t     *testing.T
	base  string
	token string
}

func (h httpClient) do(method, path, ctype, ifMatch, body string) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (h httpClient) want(method, path, ctype, ifMatch, body string, status int) (*http.Response, string) {
	h.t.Helper()
	resp, b := h.do(method, path, ctype, ifMatch, body)
	if resp.StatusCode != status {
		h.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, status, b)
	}
	return resp, b
}

// pionPC is a loopback-only Pion PeerConnection like the synthetic client's.
func pionPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	api, err := rtc.LoopbackAPI()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// offerLikeOBS creates the offer, gathers, and returns it without a single
// a=candidate line (OBS 30.2 and later), plus the candidates it gathered.
func offerLikeOBS(t *testing.T, pc *webrtc.PeerConnection) (string, []webrtc.ICECandidateInit) {
	t.Helper()
	var mu sync.Mutex
	var cands []webrtc.ICECandidateInit
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			mu.Lock()
			cands = append(cands, c.ToJSON())
			mu.Unlock()
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("client gathering did not complete")
	}
	var b strings.Builder
	for _, ln := range strings.SplitAfter(pc.LocalDescription().SDP, "\n") {
		tl := strings.TrimSpace(ln)
		if strings.HasPrefix(tl, "a=candidate:") || tl == "a=end-of-candidates" {
			continue
		}
		b.WriteString(ln)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(cands) == 0 {
		t.Fatal("the client gathered no candidates")
	}
	return b.String(), append([]webrtc.ICECandidateInit(nil), cands...)
}

// trickleFrag is an RFC 8840 fragment with the client's (unchanged) ICE
// credentials and its candidates, as RFC 9725 trickle sends it.
func trickleFrag(pc *webrtc.PeerConnection, cands []webrtc.ICECandidateInit) string {
	sdpText := pc.LocalDescription().SDP
	attr := func(name string) string {
		for _, ln := range strings.Split(sdpText, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(ln), "a="+name+":"); ok {
				return v
			}
		}
		return ""
	}
	var b strings.Builder
	b.WriteString("a=ice-ufrag:" + attr("ice-ufrag") + "\r\n")
	b.WriteString("a=ice-pwd:" + attr("ice-pwd") + "\r\n")
	b.WriteString("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n")
	b.WriteString("a=mid:" + attr("mid") + "\r\n")
	for _, c := range cands {
		b.WriteString("a=" + c.Candidate + "\r\n")
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String()
}

func waitIngestPC(t *testing.T, pc *webrtc.PeerConnection, what string, timeout time.Duration) time.Duration {
	t.Helper()
	return waitT(t, what, timeout, func() bool { return pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
}

// whipPub is a WHIP publisher as OBS would be: gather, offer without
// candidates, then (unlike OBS) trickle them by PATCH so the test also covers
// trickle. Video is synthetic VP8 whose payload names code; with several rids
// it sends simulcast (MID and RID header extensions stamped, as a browser does).
type whipPub struct {
	pc        *webrtc.PeerConnection
	loc, etag string
	frag      string
	cancel    context.CancelFunc
}

func publishWHIP(t *testing.T, h httpClient, code string, rids []string) *whipPub {
	t.Helper()
	pc := pionPC(t)
	sender, tracks, err := rtc.AddSimulcastSendOnly(pc, "whip-"+code, rids)
	if err != nil {
		t.Fatal(err)
	}
	offer, cands := offerLikeOBS(t, pc)
	if len(rids) > 1 && !strings.Contains(offer, "a=simulcast:send ") {
		t.Fatalf("no simulcast in the offer:\n%s", offer)
	}
	start := time.Now()
	resp, answer := h.want("POST", "/whip/program", "application/sdp", "", offer, 201)
	t.Logf("WHIP answer (gathered) in %v", time.Since(start))
	w := &whipPub{pc: pc, loc: resp.Header.Get("Location"), etag: resp.Header.Get("ETag")}
	if !strings.HasPrefix(w.loc, "/whip/program/") || w.etag == "" || resp.Header.Get("Content-Type") != "application/sdp" {
		t.Fatalf("201 headers: %v", resp.Header)
	}
	if !strings.Contains(answer, "a=candidate:") {
		t.Fatalf("the answer carries no candidates:\n%s", answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	w.frag = trickleFrag(pc, cands)
	h.want("PATCH", w.loc, "application/trickle-ice-sdpfrag", `"wrong"`, w.frag, 412)
	h.want("PATCH", w.loc, "application/sdp", w.etag, w.frag, 415)
	h.want("PATCH", w.loc, "application/trickle-ice-sdpfrag", w.etag, w.frag, 204)
	d := waitIngestPC(t, pc, "WHIP publisher connected", 30*time.Second)
	t.Logf("WHIP publisher %s connected (checked %v after the trickle)", code, d)

	midID, ridID, mid := rtc.SimulcastIDs(pc, sender)
	go func() { // keyframes on PLI
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if _, ok := p.(*rtcp.PictureLossIndication); ok {
					// no per-layer mapping needed: every layer's generator honours it below
					pliC.Add(1)
				}
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	t.Cleanup(cancel)
	for i, rid := range rids {
		tr := tracks[i]
		r := rid
		if len(rids) == 1 {
			r = ""
		}
		gen := media.NewVideo(media.VideoConfig{Code: code, RID: r, Width: 320 << i, Height: 180 << i, FPS: 15,
			Bitrate: 100_000 << i, SSRC: uint32(4242 + i), KeyframeInterval: time.Second})
		go func() {
			_ = gen.Run(ctx, func(p *rtp.Packet) error {
				if len(rids) > 1 {
					if midID != 0 {
						_ = p.Header.SetExtension(midID, []byte(mid))
					}
					if ridID != 0 {
						_ = p.Header.SetExtension(ridID, []byte(rid))
					}
				}
				if err := tr.WriteRTP(p); err != nil && !errors.Is(err, io.ErrClosedPipe) {
					return err
				}
				return nil
			})
		}()
	}
	return w
}

var pliC atomic.Int64

// TestWHIPProgramToEndpoint publishes the program over WHIP as OBS would (no
// candidates in the offer; here they trickle by PATCH afterwards), checks the
// header contract and the refusals, and that an endpoint receives the WHIP
// publisher's video in its program slot: simulcast first, then one layer;
// DELETE ends each.
func TestWHIPProgramToEndpoint(t *testing.T) {
	l := startLive(t)
	l.startSession()
	code := l.communes(1)[0]
	ep := l.dial(l.a.Endpoint(code).Token, wire.RoleEndpoint, false)
	cmdTok := l.a.Endpoint(signaling.CommandCode).Token
	h := httpClient{t: t, base: l.a.URL(), token: cmdTok}

	// The refusals first.
	httpClient{t: t, base: l.a.URL(), token: "not-a-token"}.want("POST", "/whip/program", "application/sdp", "", "v=0\r\n", 401)
	httpClient{t: t, base: l.a.URL()}.want("POST", "/whip/program", "application/sdp", "", "v=0\r\n", 401)
	duty := l.a.User("duty1", auth.RoleDuty)
	httpClient{t: t, base: l.a.URL(), token: duty.Token}.want("POST", "/whip/program", "application/sdp", "", "v=0\r\n", 403)
	obs := l.a.User("obs1", auth.RoleObserver)
	httpClient{t: t, base: l.a.URL(), token: obs.Token}.want("POST", "/whip/program", "application/sdp", "", "v=0\r\n", 403)
	httpClient{t: t, base: l.a.URL(), token: l.a.Endpoint(code).Token}.want("POST", "/whip/program", "application/sdp", "", "v=0\r\n", 403)
	scoped := scopedLeader(t, l)
	httpClient{t: t, base: l.a.URL(), token: scoped}.want("POST", "/whip/program", "application/sdp", "", "v=0\r\n", 403)
	h.want("POST", "/whip/program", "application/json", "", "{}", 415)
	_, msg := h.want("POST", "/whip/program", "application/sdp", "", "this is not SDP", 400)
	t.Logf("bad SDP: %s", msg)
	resp, _ := h.want("OPTIONS", "/whip/program", "", "", "", 204)
	if resp.Header.Get("Accept-Post") != "application/sdp" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "If-Match") {
		t.Fatalf("OPTIONS headers: %v", resp.Header)
	}

	// Simulcast, with endpoint 22's join link token.
	w := publishWHIP(t, h, "whip1", []string{"q", "h", "f"})
	d := waitT(t, "program video from the simulcast WHIP publisher at the endpoint", 20*time.Second, func() bool {
		return ep.Received("whip1", time.Time{})[signaling.SlotProgramVideo].Packets > 0
	})
	t.Logf("endpoint %s receives the simulcast WHIP program %v after it connected (limit 20 s)", code, d)
	if got := l.a.Live.Presence(signaling.CommandCode); got != wire.StateConnected {
		t.Errorf("command room presence with a WHIP program: %s, want connected", got)
	}
	if n := auditCount(t, l, "program.whip_started", signaling.CommandCode); n != 1 {
		t.Errorf("program.whip_started events: %d, want 1", n)
	}

	if resp, _ := h.want("OPTIONS", w.loc, "", "", "", 204); !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PATCH") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "DELETE") {
		t.Fatalf("OPTIONS on the resource: %v", resp.Header)
	}
	// Another credential cannot touch the resource; DELETE ends it, then it is gone.
	httpClient{t: t, base: l.a.URL(), token: l.leader.Token}.want("DELETE", w.loc, "", "", "", 404)
	h.want("DELETE", w.loc, "", "", "", 200)
	h.want("PATCH", w.loc, "application/trickle-ice-sdpfrag", w.etag, w.frag, 404)
	h.want("DELETE", w.loc, "", "", "", 404)
	if n := auditCount(t, l, "program.whip_ended", signaling.CommandCode); n != 1 {
		t.Errorf("program.whip_ended events: %d, want 1", n)
	}
	time.Sleep(1500 * time.Millisecond) // in-flight and queued packets drain
	after := time.Now()
	time.Sleep(time.Second)
	if n := ep.Received("whip1", after)[signaling.SlotProgramVideo].Packets; n != 0 {
		t.Errorf("%d program packets from the WHIP publisher arrived more than 1.5 s after DELETE", n)
	}
	w.cancel()

	// One layer, with a leader's token.
	w2 := publishWHIP(t, httpClient{t: t, base: l.a.URL(), token: l.leader.Token}, "whip2", []string{"q"})
	d = waitT(t, "program video from the single-layer WHIP publisher at the endpoint", 20*time.Second, func() bool {
		return ep.Received("whip2", time.Time{})[signaling.SlotProgramVideo].Packets > 0
	})
	t.Logf("endpoint %s receives the single-layer WHIP program %v after it connected (limit 20 s); PLIs seen by the publishers: %d", code, d, pliC.Load())

	// A real ICE restart, as a WHIP client does it: new local credentials, the
	// fragment by PATCH (If-Match: *), the answer fragment applied to the last
	// answer; media continues, and the old ETag is stale.
	lh := httpClient{t: t, base: l.a.URL(), token: l.leader.Token}
	ro, err := w2.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.pc.SetLocalDescription(ro); err != nil {
		t.Fatal(err)
	}
	rf := trickleFrag(w2.pc, nil)
	restartAt := time.Now()
	resp, afrag := lh.want("PATCH", w2.loc, "application/trickle-ice-sdpfrag", "*", rf, 200)
	if e := resp.Header.Get("ETag"); e == "" || e == w2.etag {
		t.Fatalf("ICE restart ETag %q (was %q)", e, w2.etag)
	}
	newAns := applyAnswerFrag(t, w2.pc.RemoteDescription().SDP, afrag)
	if err := w2.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: newAns}); err != nil {
		t.Fatalf("apply the restarted answer: %v\n%s", err, newAns)
	}
	lh.want("PATCH", w2.loc, "application/trickle-ice-sdpfrag", w2.etag, w2.frag, 412)
	d = waitT(t, "program video after the WHIP ICE restart", 20*time.Second, func() bool {
		return ep.Received("whip2", restartAt.Add(time.Second))[signaling.SlotProgramVideo].Packets > 0
	})
	t.Logf("media from whip2 still arrives after the ICE restart (%v after restart + 1 s; limit 20 s)", d)
	lh.want("DELETE", w2.loc, "", "", "", 200)
}

// applyAnswerFrag replaces the ICE credentials and candidates of an answer with
// those of an RFC 8840 answer fragment (what a WHIP client does on restart).
func applyAnswerFrag(t *testing.T, answer, frag string) string {
	t.Helper()
	attr := func(text, name string) string {
		for _, ln := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(ln), "a="+name+":"); ok {
				return v
			}
		}
		return ""
	}
	ufrag, pwd := attr(frag, "ice-ufrag"), attr(frag, "ice-pwd")
	if ufrag == "" || pwd == "" || ufrag == attr(answer, "ice-ufrag") {
		t.Fatalf("answer fragment without new credentials: %q", frag)
	}
	var cands []string
	for _, ln := range strings.Split(frag, "\n") {
		if tl := strings.TrimSpace(ln); strings.HasPrefix(tl, "a=candidate:") {
			cands = append(cands, tl)
		}
	}
	var b strings.Builder
	for _, ln := range strings.SplitAfter(answer, "\n") {
		tl := strings.TrimSpace(ln)
		switch {
		case strings.HasPrefix(tl, "a=ice-ufrag:"):
			b.WriteString("a=ice-ufrag:" + ufrag + "\r\n")
		case strings.HasPrefix(tl, "a=ice-pwd:"):
			b.WriteString("a=ice-pwd:" + pwd + "\r\n")
		case strings.HasPrefix(tl, "a=candidate:"), tl == "a=end-of-candidates":
		case strings.HasPrefix(tl, "a=mid:"):
			b.WriteString(ln)
			for _, c := range cands {
				b.WriteString(c + "\r\n")
			}
		default:
			b.WriteString(ln)
		}
	}
	return b.String()
}

// scopedLeader logs in a district-scoped leader and returns its token.
func scopedLeader(t *testing.T, l *live) string {
	t.Helper()
	eps, err := l.a.Store.ListEndpoints(context.Background(), store.EndpointFilter{Kind: store.KindDistrict})
	if err != nil || len(eps) == 0 {
		t.Fatalf("districts: %v (%d)", err, len(eps))
	}
	pw := "password-scoped-long"
	hash, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.a.Store.CreateScopedUser(context.Background(), "test", "scoped1", auth.RoleLeader, eps[0].Code, hash); err != nil {
		t.Fatal(err)
	}
	var out struct{ Token string }
	l.a.Anon().Do("POST", "/api/v1/auth/login", map[string]string{"username": "scoped1", "password": pw}, &out, 200)
	return out.Token
}

// TestWHEPReceivesProgram views the program over WHEP with a Pion client:
// packets of the command room's device arrive on its video track. The viewer
// is never an endpoint in presence.
func TestWHEPReceivesProgram(t *testing.T) {
	l := startLive(t)
	l.startSession()
	cmd := l.dial(l.a.Endpoint(signaling.CommandCode).Token, wire.RoleConsole, true)
	if err := cmd.WaitConnected(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	obs := l.a.User("obs1", auth.RoleObserver)
	h := httpClient{t: t, base: l.a.URL(), token: obs.Token}

	httpClient{t: t, base: l.a.URL(), token: "not-a-token"}.want("POST", "/whep/program", "application/sdp", "", "v=0\r\n", 401)
	httpClient{t: t, base: l.a.URL(), token: l.a.Endpoint(signaling.CommandCode).Token}.want("POST", "/whep/program", "application/sdp", "", "v=0\r\n", 403)
	httpClient{t: t, base: l.a.URL(), token: scopedLeader(t, l)}.want("POST", "/whep/program", "application/sdp", "", "v=0\r\n", 403)
	h.want("POST", "/whep/program", "text/plain", "", "v=0\r\n", 415)
	h.want("POST", "/whep/program", "application/sdp", "", "v=0\r\nnonsense", 400)
	h.want("OPTIONS", "/whep/program", "", "", "", 204)

	pc := pionPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	var videoPkts, fromCmd atomic.Int64
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				videoPkts.Add(1)
				if m, ok := media.ParseMarker(p.Payload); ok && m.Code == signaling.CommandCode {
					fromCmd.Add(1)
				}
			}
		}
	})
	offer, cands := offerLikeOBS(t, pc)
	start := time.Now()
	resp, answer := h.want("POST", "/whep/program", "application/sdp", "", offer, 201)
	t.Logf("WHEP answer (gathered) in %v", time.Since(start))
	loc, etag := resp.Header.Get("Location"), resp.Header.Get("ETag")
	if !strings.HasPrefix(loc, "/whep/program/") || etag == "" {
		t.Fatalf("201 headers: %v", resp.Header)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	frag := trickleFrag(pc, cands)
	h.want("PATCH", loc, "application/trickle-ice-sdpfrag", `"nope"`, frag, 412)
	h.want("PATCH", loc, "application/trickle-ice-sdpfrag", etag, frag, 204)
	d := waitIngestPC(t, pc, "WHEP viewer connected", 30*time.Second)
	t.Logf("WHEP viewer connected (checked %v after the trickle)", d)
	d = waitT(t, "program video at the WHEP viewer", 20*time.Second, func() bool { return fromCmd.Load() > 0 })
	t.Logf("WHEP viewer receives the program %v after connecting (%d video packets; limit 20 s)", d, videoPkts.Load())

	// Never an endpoint: the roster API and presence know nothing of it.
	if _, raw := obs.Do("GET", "/api/v1/endpoints", nil, nil, 200); bytes.Contains(raw, []byte("whep")) {
		t.Fatalf("the WHEP viewer appears in the endpoints: %s", raw)
	}

	// ICE restart: new credentials in the fragment, 200 with the answer fragment and a new ETag.
	rf := "a=ice-ufrag:newufrag1\r\na=ice-pwd:newpasswordnewpassword12\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
	resp, body := h.want("PATCH", loc, "application/trickle-ice-sdpfrag", "*", rf, 200)
	if e2 := resp.Header.Get("ETag"); e2 == "" || e2 == etag || !strings.Contains(body, "a=ice-ufrag:") ||
		resp.Header.Get("Content-Type") != "application/trickle-ice-sdpfrag" {
		t.Fatalf("ICE restart: ETag %q (was %q), body %q", e2, etag, body)
	}
	h.want("PATCH", loc, "application/trickle-ice-sdpfrag", etag, frag, 412) // the old ETag is stale now

	h.want("DELETE", loc, "", "", "", 200)
	h.want("PATCH", loc, "application/trickle-ice-sdpfrag", "*", frag, 404)

	// ?floor=1: a second viewer offers two video and two audio sections and
	// gets the floor holder's video in the second video section.
	code := l.communes(1)[0]
	ep := l.endpoint(code)
	lead := l.dial(l.leader.Token, wire.RoleConsole, false)
	if err := ep.WaitConnected(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := lead.WaitConnected(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: code})
	pc2 := pionPC(t)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeAudio} {
		if _, err := pc2.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	byMid := map[string]map[string]int{} // mid -> source code -> video packets
	pc2.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		mid := ""
		if x := recv.RTPTransceiver(); x != nil {
			mid = x.Mid()
		}
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if m, ok := media.ParseMarker(p.Payload); ok && tr.Kind() == webrtc.RTPCodecTypeVideo {
				mu.Lock()
				if byMid[mid] == nil {
					byMid[mid] = map[string]int{}
				}
				byMid[mid][m.Code]++
				mu.Unlock()
			}
		}
	})
	offer2, _ := offerLikeOBS(t, pc2) // no trickle: the server learns the client's address from its checks
	resp, answer2 := h.want("POST", "/whep/program?floor=1", "application/sdp", "", offer2, 201)
	if err := pc2.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer2}); err != nil {
		t.Fatal(err)
	}
	waitIngestPC(t, pc2, "floor viewer connected", 30*time.Second)
	d = waitT(t, "program and floor at the floor viewer", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return byMid["0"][signaling.CommandCode] > 0 && byMid["1"][code] > 0
	})
	mu.Lock()
	t.Logf("floor viewer: program (mid 0) and floor %s (mid 1) %v after connecting: %v (limit 20 s)", code, d, byMid)
	mu.Unlock()
	h.want("DELETE", resp.Header.Get("Location"), "", "", "", 200)
}

// TestWHIPTURNLinks: with the embedded TURN server on, the WHIP answer names
// it in Link headers with short-lived credentials (RFC 9725 §4.6).
func TestWHIPTURNLinks(t *testing.T) {
	a := apptest.Start(t, func(c *config.Config) { c.Media.TURN.Enabled = true })
	lead := a.User("lead", auth.RoleLeader)
	pc := pionPC(t)
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, _ := offerLikeOBS(t, pc)
	h := httpClient{t: t, base: a.URL(), token: lead.Token}
	resp, _ := h.want("POST", "/whip/program", "application/sdp", "", offer, 201)
	links := resp.Header.Values("Link")
	ok := false
	for _, l := range links {
		if strings.HasPrefix(l, "<turn:") && strings.Contains(l, `rel="ice-server"`) && strings.Contains(l, "credential=") {
			ok = true
		}
	}
	if !ok {
		t.Fatalf("no TURN Link header: %q", links)
	}
	h.want("DELETE", resp.Header.Get("Location"), "", "", "", 200)
}
