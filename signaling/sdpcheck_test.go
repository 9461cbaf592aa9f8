package signaling

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v3"
)

// pionPair makes a real Pion offer (video and audio, sendonly) and its answer.
func pionPair(t *testing.T) (offer, answer string) {
	t.Helper()
	a, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := a.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := a.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetRemoteDescription(o); err != nil {
		t.Fatal(err)
	}
	an, err := b.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP, an.SDP
}

// dropLines removes the lines starting with any prefix.
func dropLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.SplitAfter(s, "\r\n") {
		keep := true
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				keep = false
			}
		}
		if keep {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// emptyLastUfrag empties the last section's ufrag.
func emptyLastUfrag(s string) string {
	i := strings.LastIndex(s, "a=ice-ufrag:")
	j := i + strings.Index(s[i:], "\r\n")
	return s[:i] + "a=ice-ufrag:" + s[j:]
}

// firstSections keeps the session part and the first n m-sections.
func firstSections(s string, n int) string {
	parts := strings.Split(s, "m=")
	return strings.Join(parts[:n+1], "m=")
}

// sessionLevel moves the first ICE credentials and fingerprint to the session level.
func sessionLevel(s string) string {
	var ufrag, pwd, fp string
	for _, l := range strings.Split(s, "\r\n") {
		switch {
		case ufrag == "" && strings.HasPrefix(l, "a=ice-ufrag:"):
			ufrag = l
		case pwd == "" && strings.HasPrefix(l, "a=ice-pwd:"):
			pwd = l
		case fp == "" && strings.HasPrefix(l, "a=fingerprint:"):
			fp = l
		}
	}
	s = dropLines(s, "a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:")
	i := strings.Index(s, "m=")
	return s[:i] + ufrag + "\r\n" + pwd + "\r\n" + fp + "\r\n" + s[i:]
}

func TestCheckOffer(t *testing.T) {
	offer, _ := pionPair(t)
	video := firstSections(offer, 1)
	mids := strings.NewReplacer("a=mid:0", "a=mid:1", "a=mid:1", "a=mid:0").Replace(offer)
	for _, tc := range []struct {
		name, sdp, prev, want string // want: "" accepted, else a piece of the error
	}{
		{"pion offer", offer, "", ""},
		{"credentials at the session level", sessionLevel(offer), "", ""},
		{"one section", video, "", ""},
		{"empty", "", "", "empty"},
		{"garbage", "hello", "", "unparsable"},
		{"no media section", firstSections(offer, 0), "", "no media section"},
		{"no ice-ufrag", dropLines(offer, "a=ice-ufrag:"), "", "ice-ufrag"},
		{"no ice-pwd", dropLines(offer, "a=ice-pwd:"), "", "ice-pwd"},
		{"no ICE credentials in one section", strings.Replace(offer, "a=ice-ufrag:", "a=x-ufrag:", 1), "", "ice-ufrag"},
		{"two ufrags in one section", offer + "a=ice-ufrag:zzzzzzzz\r\n", "", "twice"},
		{"conflicting ufrags", strings.Replace(offer, "a=ice-ufrag:", "a=ice-ufrag:zz", 1), "", "conflicting"},
		{"empty and good ufrags", emptyLastUfrag(offer), "", "conflicting"},
		{"short ufrag", sessionLevel(strings.Replace(dropLines(offer, "a=ice-ufrag:"), "a=ice-pwd:", "a=ice-ufrag:abc\r\na=ice-pwd:", 1)), "", "4 to 256"},
		{"no fingerprint", dropLines(offer, "a=fingerprint:"), "", "fingerprint"},
		{"bad fingerprint", strings.ReplaceAll(offer, "a=fingerprint:sha-256 ", "a=fingerprint:sha-256 zz:"), "", "fingerprint"},
		{"unknown hash", strings.ReplaceAll(offer, "a=fingerprint:sha-256 ", "a=fingerprint:crc32 "), "", "hash"},
		{"no setup", dropLines(offer, "a=setup:"), "", "setup"},
		{"setup holdconn", strings.ReplaceAll(offer, "a=setup:actpass", "a=setup:holdconn"), "", "setup"},
		{"no mid", dropLines(offer, "a=mid:"), "", "mid"},
		{"repeated mid", strings.ReplaceAll(offer, "a=mid:1", "a=mid:0"), "", "repeats mid"},
		{"unknown kind", strings.Replace(offer, "m=video", "m=text", 1), "", "kind"},
		{"payload type without rtpmap", strings.Replace(offer, "UDP/TLS/RTP/SAVPF 96", "UDP/TLS/RTP/SAVPF 77 96", 1), "", "rtpmap"},
		{"payload type not a number", strings.Replace(offer, "UDP/TLS/RTP/SAVPF 96", "UDP/TLS/RTP/SAVPF x96", 1), "", "payload type"},
		{"bad candidate", strings.Replace(offer, "a=mid:0\r\n", "a=mid:0\r\na=candidate:1 1 udp x 127.0.0.1 9 typ host\r\n", 1), "", "candidate"},
		{"unknown candidate type is skipped", strings.Replace(offer, "a=mid:0\r\n", "a=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ moon\r\n", 1), "", ""},
		{"every section rejected", strings.NewReplacer("m=video 9", "m=video 0", "m=audio 9", "m=audio 0").Replace(offer), "", "rejected"},
		{"two tracks in one section (Plan B)", strings.Replace(dropLines(offer, "a=ssrc:"), "a=mid:0\r\n", "a=mid:0\r\na=ssrc:111 cname:x\r\na=ssrc:222 cname:x\r\n", 1), "", "Plan B"},
		{"one track with its RTX", strings.Replace(dropLines(offer, "a=ssrc:"), "a=mid:0\r\n", "a=mid:0\r\na=ssrc-group:FID 111 222\r\na=ssrc:111 cname:x\r\na=ssrc:222 cname:x\r\n", 1), "", ""},
		{"same sections again", offer, offer, ""},
		{"a section added", offer, video, ""},
		{"a section removed", video, offer, "cannot be removed"},
		{"sections reordered", mids, offer, "mid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkOffer(tc.sdp, tc.prev, "")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want an error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q, want one with %q", err, tc.want)
			}
		})
	}
}

// A section rejected or stopped (port 0) in the previous offer or in our answer
// may be recycled with another mid (JSEP); a section in use may not.
func TestCheckOfferRecycledSection(t *testing.T) {
	offer, answer := pionPair(t)
	recycled := strings.Replace(offer, "a=mid:1", "a=mid:7", 1)
	stopped := strings.Replace(offer, "m=audio 9", "m=audio 0", 1)
	rejected := strings.Replace(answer, "m=audio 9", "m=audio 0", 1)
	if err := checkOffer(recycled, offer, answer); err == nil {
		t.Error("a section in use changed its mid, and was accepted")
	}
	if err := checkOffer(recycled, stopped, answer); err != nil {
		t.Errorf("a section stopped in the previous offer, recycled: %v", err)
	}
	if err := checkOffer(recycled, offer, rejected); err != nil {
		t.Errorf("a section our answer rejected, recycled: %v", err)
	}
}

func TestCheckAnswer(t *testing.T) {
	offer, answer := pionPair(t)
	for _, tc := range []struct {
		name, sdp, offer, want string
	}{
		{"pion answer", answer, offer, ""},
		{"credentials at the session level", sessionLevel(answer), offer, ""},
		{"no media section", firstSections(answer, 0), offer, "no media section"},
		{"no ICE credentials", dropLines(answer, "a=ice-ufrag:", "a=ice-pwd:"), offer, "ice-ufrag"},
		{"no fingerprint", dropLines(answer, "a=fingerprint:"), offer, "fingerprint"},
		{"setup actpass", strings.ReplaceAll(answer, "a=setup:active", "a=setup:actpass"), offer, "actpass"},
		{"fewer sections than the offer", firstSections(answer, 1), offer, "the offer 2"},
		{"more sections than the offer", answer, firstSections(offer, 1), "the offer 1"},
		{"other mids", strings.NewReplacer("a=mid:0", "a=mid:1", "a=mid:1", "a=mid:0").Replace(answer), offer, "mid"},
		{"other kinds", strings.NewReplacer("m=video", "m=audio", "m=audio", "m=video").Replace(answer), offer, "is audio"},
		{"no offer", answer, "", "no usable offer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkAnswer(tc.sdp, tc.offer)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want an error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q, want one with %q", err, tc.want)
			}
		})
	}
}
