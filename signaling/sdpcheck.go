package signaling

// Semantic checks of a client's description before Pion sees it.
//
// Pion's SetRemoteDescription moves the PeerConnection's signalling state first
// and validates the content afterwards (media sections, mids, ICE credentials,
// candidates, fingerprint, codecs), without rolling back when that fails. A
// description that parses but is not usable would then leave the leg stuck: the
// publisher in have-remote-offer (every later publish_offer refused), the
// subscriber in stable with its offer still counted as outstanding. So every
// failure Pion can meet after the state change is refused here, while the leg is
// still untouched: "the legs keep their last good state" (docs/protocol.md).

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/ice/v2"
	"github.com/pion/sdp/v3"
)

// Fingerprint hash functions and their digest sizes in bytes (RFC 8122; the ones
// Pion's DTLS knows).
var fingerprintSizes = map[string]int{"md5": 16, "sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}

// checkOffer checks a publisher offer. prevOffer and prevAnswer are the last
// offer accepted on the leg and our answer to it ("" before the first): a later
// offer keeps its m-sections in the same order with the same mids and kinds, and
// may only add sections at the end (JSEP 5.2.2). A section that either side had
// rejected or stopped (port 0) may be recycled with a new mid and kind.
func checkOffer(offer, prevOffer, prevAnswer string) error {
	d, err := parseSDP(offer)
	if err != nil {
		return err
	}
	if err := checkDescription(d, false); err != nil {
		return err
	}
	if prevOffer == "" {
		return nil
	}
	p, err := parseSDP(prevOffer)
	if err != nil {
		return nil // our own record of an offer Pion accepted; nothing to compare
	}
	if len(d.MediaDescriptions) < len(p.MediaDescriptions) {
		return fmt.Errorf("the offer has %d media sections, the previous one %d: sections cannot be removed",
			len(d.MediaDescriptions), len(p.MediaDescriptions))
	}
	a, _ := parseSDP(prevAnswer)
	return sameSections(d, p, "previous offer", func(i int) bool {
		return p.MediaDescriptions[i].MediaName.Port.Value == 0 ||
			(a != nil && i < len(a.MediaDescriptions) && a.MediaDescriptions[i].MediaName.Port.Value == 0)
	})
}

// checkAnswer checks a subscriber answer against our outstanding offer: the same
// media sections, in the same order, with the same mids and kinds.
func checkAnswer(answer, offer string) error {
	d, err := parseSDP(answer)
	if err != nil {
		return err
	}
	if err := checkDescription(d, true); err != nil {
		return err
	}
	o, err := parseSDP(offer)
	if err != nil {
		return fmt.Errorf("no usable offer to compare with: %w", err)
	}
	if len(d.MediaDescriptions) != len(o.MediaDescriptions) {
		return fmt.Errorf("the answer has %d media sections, the offer %d", len(d.MediaDescriptions), len(o.MediaDescriptions))
	}
	return sameSections(d, o, "offer", func(int) bool { return false })
}

func parseSDP(s string) (*sdp.SessionDescription, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty description")
	}
	var d sdp.SessionDescription
	if err := d.Unmarshal([]byte(s)); err != nil {
		return nil, fmt.Errorf("unparsable description: %w", err)
	}
	return &d, nil
}

// sameSections checks that d's first len(ref) m-sections match ref's mids and
// kinds, except the sections free says may be recycled.
func sameSections(d, ref *sdp.SessionDescription, what string, free func(i int) bool) error {
	for i, r := range ref.MediaDescriptions {
		if free(i) {
			continue
		}
		m := d.MediaDescriptions[i]
		rm, _ := r.Attribute(sdp.AttrKeyMID)
		mm, _ := m.Attribute(sdp.AttrKeyMID)
		if mm != rm {
			return fmt.Errorf("media section %d has mid %q, the %s %q", i, mm, what, rm)
		}
		if m.MediaName.Media != r.MediaName.Media {
			return fmt.Errorf("media section %d is %s, the %s's is %s", i, m.MediaName.Media, what, r.MediaName.Media)
		}
	}
	return nil
}

// sessionWide collects the values of one attribute that must agree across the
// session level and every media section (ICE credentials, the fingerprint).
type sessionWide struct {
	key, value string
	set        bool
}

func (w *sessionWide) add(v string) error {
	if !w.set {
		w.value, w.set = v, true
		return nil
	}
	if v != w.value {
		return fmt.Errorf("conflicting a=%s values %q and %q", w.key, w.value, v)
	}
	return nil
}

// checkDescription checks what every usable description needs: at least one media
// section in use; for each section a unique mid, a known kind, usable codecs,
// header extensions and candidates; and, at the session level or in every section
// in use, ICE credentials, a DTLS fingerprint and a setup role (actpass, active or
// passive in an offer; active or passive in an answer).
func checkDescription(d *sdp.SessionDescription, answer bool) error {
	if len(d.MediaDescriptions) == 0 {
		return errors.New("no media section")
	}
	if err := once(d.Attributes); err != nil {
		return fmt.Errorf("session level: %w", err)
	}
	ufrag := &sessionWide{key: "ice-ufrag"}
	pwd := &sessionWide{key: "ice-pwd"}
	fp := &sessionWide{key: "fingerprint"}
	mids := map[string]bool{}
	used := 0
	for i, m := range d.MediaDescriptions {
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		if mid == "" {
			return fmt.Errorf("media section %d has no a=mid", i)
		}
		if mids[mid] {
			return fmt.Errorf("media section %d repeats mid %q", i, mid)
		}
		mids[mid] = true
		if err := once(m.Attributes); err != nil {
			return fmt.Errorf("media section %d (mid %q): %w", i, mid, err)
		}
		kind := m.MediaName.Media
		if kind != "audio" && kind != "video" && kind != "application" {
			return fmt.Errorf("media section %d (mid %q) has unknown kind %q", i, mid, kind)
		}
		if err := checkExtmaps(m); err != nil {
			return fmt.Errorf("media section %d (mid %q): %w", i, mid, err)
		}
		if err := checkCandidates(m); err != nil {
			return fmt.Errorf("media section %d (mid %q): %w", i, mid, err)
		}
		if !answer && tracksIn(m) > 1 {
			return fmt.Errorf("media section %d (mid %q) sends more than one track (Plan B); "+
				"use one section per track, and rids for simulcast", i, mid)
		}
		if m.MediaName.Port.Value == 0 {
			continue // rejected or stopped: no transport of its own
		}
		used++
		if kind != "application" {
			if err := checkCodecs(m); err != nil {
				return fmt.Errorf("media section %d (mid %q): %w", i, mid, err)
			}
		}
		for _, w := range []*sessionWide{ufrag, pwd, fp} {
			v, ok := attr(d, m, w.key)
			if !ok {
				return fmt.Errorf("media section %d (mid %q) has no a=%s (at its level or the session's)", i, mid, w.key)
			}
			if err := w.add(v); err != nil {
				return err
			}
		}
		setup, ok := attr(d, m, "setup")
		if !ok {
			return fmt.Errorf("media section %d (mid %q) has no a=setup", i, mid)
		}
		if err := checkSetup(setup, answer); err != nil {
			return fmt.Errorf("media section %d (mid %q): %w", i, mid, err)
		}
	}
	if used == 0 {
		return errors.New("every media section is rejected (port 0)")
	}
	// The session level and sections not in use may carry values too; Pion reads
	// them all and refuses conflicting ones.
	for _, w := range []*sessionWide{ufrag, pwd, fp} {
		if v, ok := d.Attribute(w.key); ok {
			if err := w.add(v); err != nil {
				return err
			}
		}
	}
	for _, m := range d.MediaDescriptions {
		for _, w := range []*sessionWide{ufrag, pwd, fp} {
			if v, ok := m.Attribute(w.key); ok {
				if err := w.add(v); err != nil {
					return err
				}
			}
		}
	}
	if err := checkICEChars("ice-ufrag", ufrag.value, 4); err != nil {
		return err
	}
	if err := checkICEChars("ice-pwd", pwd.value, 22); err != nil {
		return err
	}
	return checkFingerprint(fp.value)
}

// once refuses a repeated attribute that may appear at most once per level
// (Pion would read the first and ignore the rest).
func once(attrs []sdp.Attribute) error {
	seen := map[string]bool{}
	for _, a := range attrs {
		switch a.Key {
		case "ice-ufrag", "ice-pwd", "setup", sdp.AttrKeyMID:
			if seen[a.Key] {
				return fmt.Errorf("a=%s appears twice", a.Key)
			}
			seen[a.Key] = true
		}
	}
	return nil
}

// attr is a media-level attribute, or else the session-level one.
func attr(d *sdp.SessionDescription, m *sdp.MediaDescription, key string) (string, bool) {
	if v, ok := m.Attribute(key); ok {
		return v, true
	}
	return d.Attribute(key)
}

// checkICEChars checks an ICE credential's grammar (RFC 8839 5.4: ice-char is
// ALPHA / DIGIT / "+" / "/", 4 to 256 for the ufrag, 22 to 256 for the password).
func checkICEChars(key, v string, minLen int) error {
	if len(v) < minLen || len(v) > 256 {
		return fmt.Errorf("a=%s must have %d to 256 characters, has %d", key, minLen, len(v))
	}
	for _, r := range v {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '/'
		if !ok {
			return fmt.Errorf("a=%s has the character %q (allowed: letters, digits, + and /)", key, r)
		}
	}
	return nil
}

// checkFingerprint checks "hash-func AA:BB:…" with a known hash and its digest size.
func checkFingerprint(v string) error {
	hash, hex, ok := strings.Cut(v, " ")
	size, known := fingerprintSizes[strings.ToLower(hash)]
	if !ok || !known {
		return fmt.Errorf("a=fingerprint %q: want a known hash function (sha-256, …) and a value", v)
	}
	parts := strings.Split(hex, ":")
	if len(parts) != size {
		return fmt.Errorf("a=fingerprint: a %s digest has %d bytes, got %d", hash, size, len(parts))
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 16, 8); err != nil || len(p) != 2 {
			return fmt.Errorf("a=fingerprint: %q is not a hex byte", p)
		}
	}
	return nil
}

// checkSetup checks the DTLS role (RFC 8842): an answer picks active or passive.
func checkSetup(v string, answer bool) error {
	switch v {
	case "active", "passive":
		return nil
	case "actpass":
		if !answer {
			return nil
		}
		return errors.New("an answer must choose a=setup:active or a=setup:passive, not actpass")
	}
	return fmt.Errorf("unknown a=setup role %q", v)
}

// checkCodecs mirrors Pion's reading of a section's formats: each is a payload
// type with an rtpmap (static 0, 8 and 9 excepted), and an apt names one.
func checkCodecs(m *sdp.MediaDescription) error {
	if len(m.MediaName.Formats) == 0 {
		return errors.New("no payload type")
	}
	one := &sdp.SessionDescription{MediaDescriptions: []*sdp.MediaDescription{m}}
	for _, f := range m.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 8)
		if err != nil {
			return fmt.Errorf("payload type %q is not 0..255", f)
		}
		c, err := one.GetCodecForPayloadType(uint8(pt))
		if err != nil {
			return fmt.Errorf("payload type %d has no a=rtpmap", pt)
		}
		for _, p := range strings.Split(c.Fmtp, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "apt") {
				if _, err := strconv.ParseUint(v, 10, 8); err != nil {
					return fmt.Errorf("payload type %d: apt=%q is not a payload type", pt, v)
				}
			}
		}
	}
	return nil
}

func checkExtmaps(m *sdp.MediaDescription) error {
	for _, a := range m.Attributes {
		if a.Key != sdp.AttrKeyExtMap {
			continue
		}
		var e sdp.ExtMap
		if err := e.Unmarshal(a.String()); err != nil {
			return fmt.Errorf("a=extmap:%s: %w", a.Value, err)
		}
	}
	return nil
}

// checkCandidates refuses a=candidate lines Pion would fail on (it skips unknown
// types and networks, and so do we).
func checkCandidates(m *sdp.MediaDescription) error {
	for _, a := range m.Attributes {
		if !a.IsICECandidate() {
			continue
		}
		if _, err := ice.UnmarshalCandidate(a.Value); err != nil &&
			!errors.Is(err, ice.ErrUnknownCandidateTyp) && !errors.Is(err, ice.ErrDetermineNetworkType) {
			return fmt.Errorf("a=candidate:%s: %w", a.Value, err)
		}
	}
	return nil
}

// tracksIn counts the tracks a section sends as Pion reads them: one per SSRC,
// RTX repair flows (ssrc-group FID) aside, or one for rids with an msid. Pion
// takes more than one as Plan B, which it then refuses to answer (CreateAnswer,
// after SetRemoteDescription moved the leg: the leg would be stuck).
func tracksIn(m *sdp.MediaDescription) int {
	if _, ok := m.Attribute(sdp.AttrKeyRecvOnly); ok {
		return 0
	}
	if _, ok := m.Attribute(sdp.AttrKeyInactive); ok {
		return 0
	}
	if m.MediaName.Media != "audio" && m.MediaName.Media != "video" {
		return 0
	}
	ssrcs := map[uint64]bool{}
	repair := map[uint64]bool{}
	msid, rids := false, false
	for _, a := range m.Attributes {
		f := strings.Split(a.Value, " ")
		switch a.Key {
		case sdp.AttrKeySSRCGroup:
			if f[0] == sdp.SemanticTokenFlowIdentification && len(f) == 3 {
				_, err1 := strconv.ParseUint(f[1], 10, 32)
				r, err2 := strconv.ParseUint(f[2], 10, 32)
				if err1 == nil && err2 == nil {
					repair[r] = true
				}
			}
		case sdp.AttrKeyMsid:
			msid = msid || len(f) == 2 && f[0] != "" && f[1] != ""
		case sdp.AttrKeySSRC:
			if n, err := strconv.ParseUint(f[0], 10, 32); err == nil {
				ssrcs[n] = true
				msid = msid || len(f) == 3 && strings.HasPrefix(f[1], "msid:") && len(f[1]) > 5 && f[2] != ""
			}
		case "rid":
			rids = true
		}
	}
	if rids && msid {
		return 1
	}
	n := 0
	for s := range ssrcs {
		if !repair[s] {
			n++
		}
	}
	return n
}
