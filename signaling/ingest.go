package signaling

// WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep): HTTP offer/answer media
// sessions without a WebSocket. The HTTP side is web/whip.go; here is the
// media and the room's part.
//
//   - A WHIP publisher (an unscoped leader's or admin's token, or endpoint
//     22's join link) is a program publisher like a leader's console or the
//     command room's device: its first track makes it the program (newest
//     publisher wins), so routing, the record and the command room's presence
//     treat it as endpoint 22's program.
//   - A WHEP viewer (any unscoped staff role, or a press wall's link) receives the
//     program and, when asked, the floor, and sends nothing. It is a
//     subscriber of the routing policy only: never a member, so never an
//     endpoint in presence, the health board or the counts.
//
// Neither is in Room.conns: nothing of the WebSocket protocol reaches them.

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/media"
)

// Ingest kinds.
const (
	IngestWHIP = "whip"
	IngestWHEP = "whep"
)

// Errors of the ingest API (the web layer maps them to statuses).
var (
	ErrIngestForbidden = errors.New("forbidden")           // 403
	ErrIngestNotFound  = errors.New("no such resource")    // 404
	ErrIngestBadSDP    = errors.New("bad SDP")             // 400
	ErrIngestPrecond   = errors.New("ETag does not match") // 412
)

// ingestGather bounds the wait for local candidates before answering.
const ingestGather = 5 * time.Second

// extPeer is a WHIP publisher or a WHEP viewer in the room (Room.ext).
type extPeer struct {
	program    bool     // a WHIP publisher: may become the program
	relayFloor bool     // the uplink's relay of the parent's floor (relayfloor.go)
	slots      []string // a WHEP viewer: the slots it negotiated
}

// IngestSession is one WHIP or WHEP resource.
type IngestSession struct {
	svc    *Service
	id     string
	kind   string
	peerID string
	actor  string
	peer   MediaPeer
	target media.Target

	mu     sync.Mutex
	etag   string
	offer  string // the last offer applied
	answer string // the answer to it, with our candidates
	closed bool
}

// ID is the resource id (the last segment of its Location).
func (m *IngestSession) ID() string { return m.id }

// Kind is IngestWHIP or IngestWHEP.
func (m *IngestSession) Kind() string { return m.kind }

// PeerID is the media peer's id ("whip:NAME#N", "whep:NAME#N").
func (m *IngestSession) PeerID() string { return m.peerID }

// Actor is who created it (auth.Principal.Actor).
func (m *IngestSession) Actor() string { return m.actor }

// Answer is the current answer SDP (with the server's candidates).
func (m *IngestSession) Answer() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.answer
}

// ETag is the current entity tag, quoted.
func (m *IngestSession) ETag() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etag
}

// ICEServers are the TURN servers and credentials for this session (nil when
// TURN is off), for the Link headers.
func (m *IngestSession) ICEServers() []webrtc.ICEServer { return m.svc.iceServers(m.peerID) }

// ingestTable holds the live WHIP and WHEP sessions by id.
type ingestTable struct {
	mu     sync.Mutex
	byID   map[string]*IngestSession
	byPeer map[string]*IngestSession
}

func (t *ingestTable) put(m *IngestSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID == nil {
		t.byID, t.byPeer = map[string]*IngestSession{}, map[string]*IngestSession{}
	}
	t.byID[m.id], t.byPeer[m.peerID] = m, m
}

func (t *ingestTable) del(m *IngestSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID[m.id] == m {
		delete(t.byID, m.id)
		delete(t.byPeer, m.peerID)
	}
}

// Ingest returns the live session of that kind and id.
func (s *Service) Ingest(kind, id string) (*IngestSession, bool) {
	s.ingest.mu.Lock()
	defer s.ingest.mu.Unlock()
	m := s.ingest.byID[id]
	if m == nil || m.kind != kind {
		return nil, false
	}
	return m, true
}

// CanWHIP reports whether p may publish the program over WHIP: endpoint 22's
// join link, or an unscoped leader or admin (CapRunSession).
func CanWHIP(p auth.Principal) bool { return canWHIP(p, CommandCode) }

// canWHIP is CanWHIP at a node whose command room is root.
func canWHIP(p auth.Principal, root string) bool {
	if p.IsEndpoint() {
		return p.EndpointCode == root
	}
	return p.Can(auth.CapRunSession)
}

// CanWHEP reports whether p may view the program over WHEP: any unscoped
// staff role, or a press wall's link (it receives media and sends none).
func CanWHEP(p auth.Principal) bool {
	return p.IsWall() || !p.IsEndpoint() && !p.Scoped() && p.Can(auth.CapRead)
}

// StartWHIP applies a WHIP offer: a new publisher that becomes the program when
// its first track arrives. The answer carries every server candidate.
func (s *Service) StartWHIP(p auth.Principal, offer string) (*IngestSession, error) {
	if !canWHIP(p, s.room.root) {
		return nil, fmt.Errorf("%w: WHIP needs an unscoped leader's or admin's token, or endpoint 22's join link", ErrIngestForbidden)
	}
	if _, err := checkIngestOffer(offer, true); err != nil {
		return nil, err
	}
	m, err := s.newIngest(IngestWHIP, p, media.Publisher)
	if err != nil {
		return nil, err
	}
	// In the room before the offer: the first track (OnTrack → published) must
	// find it program-capable.
	s.room.addExt(m.peerID, extPeer{program: true})
	answer, err := m.peer.PublishOffer(offer)
	if err == nil {
		answer, err = m.peer.GatheredDescription(media.Publisher, ingestGather)
	}
	if err != nil {
		m.Close()
		return nil, sdpFault(err)
	}
	m.offer, m.answer = offer, answer
	s.ingest.put(m)
	s.log.Info("signaling: WHIP publisher started", "peer", m.peerID, "actor", m.actor, "resource", m.id)
	// The record: who put what on the program, and when (no refusal if the log is
	// away: the journal keeps it, and a failure is logged by audit).
	_ = s.audit(s.ctx, m.actor, "program.whip_started", s.room.root, map[string]any{"peer": m.peerID, "resource": m.id})
	return m, nil
}

// StartWHEP applies a WHEP offer: a viewer of the program and, with floor,
// the floor. Offered sections take, by kind and in order, program_video then
// floor_video, program_audio then floor_audio.
func (s *Service) StartWHEP(p auth.Principal, offer string, floor bool) (*IngestSession, error) {
	if !CanWHEP(p) {
		return nil, fmt.Errorf("%w: WHEP needs an unscoped staff token or a wall link", ErrIngestForbidden)
	}
	kinds, err := checkIngestOffer(offer, false)
	if err != nil {
		return nil, err
	}
	m, err := s.newIngest(IngestWHEP, p, media.Subscriber)
	if err != nil {
		return nil, err
	}
	var slots []string
	nv, na := 0, 0
	for _, k := range kinds {
		var name string
		switch {
		case k == "video" && nv == 0:
			name = SlotProgramVideo
		case k == "video" && nv == 1 && floor:
			name = SlotFloorVideo
		case k == "audio" && na == 0:
			name = SlotProgramAudio
		case k == "audio" && na == 1 && floor:
			name = SlotFloorAudio
		}
		if k == "video" {
			nv++
		} else if k == "audio" {
			na++
		}
		if name == "" {
			continue
		}
		kind := webrtc.RTPCodecTypeVideo
		if SlotIsAudio(name) {
			kind = webrtc.RTPCodecTypeAudio
		}
		if _, err := m.peer.AddSlot(name, kind); err != nil {
			m.Close()
			return nil, fmt.Errorf("add slot %s: %w", name, err)
		}
		slots = append(slots, name)
	}
	answer, err := m.peer.AnswerSubscriberOffer(offer)
	if err == nil {
		answer, err = m.peer.GatheredDescription(media.Subscriber, ingestGather)
	}
	if err != nil {
		m.Close()
		return nil, sdpFault(err)
	}
	m.offer, m.answer = offer, answer
	s.ingest.put(m)
	s.room.addExt(m.peerID, extPeer{slots: slots}) // routing starts here
	s.log.Info("signaling: WHEP viewer started", "peer", m.peerID, "actor", m.actor, "resource", m.id, "slots", slots)
	return m, nil
}

func (s *Service) newIngest(kind string, p auth.Principal, t media.Target) (*IngestSession, error) {
	who := p.Username
	if p.IsEndpoint() {
		who = p.EndpointCode
	} else if p.IsWall() {
		who = "wall-" + p.Wall
	}
	peerID := fmt.Sprintf("%s:%s#%d", kind, who, s.seq.Add(1))
	peer, err := s.engine.NewPeer(peerID)
	if err != nil {
		return nil, fmt.Errorf("new peer: %w", err)
	}
	return &IngestSession{svc: s, id: randomID(), kind: kind, peerID: peerID, actor: p.Actor(), peer: peer,
		target: t, etag: newETag()}, nil
}

// Close ends the session (DELETE, or its media path failed). Idempotent.
func (m *IngestSession) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	started := m.answer != ""
	m.mu.Unlock()
	m.svc.ingest.del(m)
	m.svc.room.dropExt(m.peerID)
	if err := m.peer.Close(); err != nil {
		m.svc.log.Debug("signaling: close ingest peer", "peer", m.peerID, "err", err)
	}
	m.svc.log.Info("signaling: "+strings.ToUpper(m.kind)+" session ended", "peer", m.peerID, "resource", m.id)
	if m.kind == IngestWHIP && started && m.svc.ctx.Err() == nil { // it had started (and was recorded)
		_ = m.svc.audit(m.svc.ctx, m.actor, "program.whip_ended", m.svc.room.root, map[string]any{"peer": m.peerID, "resource": m.id})
	}
}

// Patch applies a PATCH body (application/trickle-ice-sdpfrag). ifMatch is
// the request's If-Match ("" none, "*" any). A fragment with a new ice-ufrag
// and ice-pwd is an ICE restart: it returns the answer fragment (restart
// true, and the session has a new ETag); otherwise its candidates are added.
func (m *IngestSession) Patch(ifMatch, frag string) (answerFrag string, restart bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", false, ErrIngestNotFound
	}
	if ifMatch != "" && ifMatch != "*" && !etagMatches(ifMatch, m.etag) {
		return "", false, ErrIngestPrecond
	}
	f, err := parseFrag(frag)
	if err != nil {
		return "", false, err
	}
	mid := firstMid(m.offer)
	if f.ufrag != "" && f.pwd != "" && f.ufrag != iceAttr(m.offer, "ice-ufrag") {
		offer := restartOffer(m.offer, f.ufrag, f.pwd)
		var answer string
		if m.target == media.Publisher {
			answer, err = m.peer.PublishOffer(offer)
		} else {
			answer, err = m.peer.AnswerSubscriberOffer(offer)
		}
		if err == nil {
			answer, err = m.peer.GatheredDescription(m.target, ingestGather)
		}
		if err != nil {
			return "", false, sdpFault(err)
		}
		m.offer, m.answer, m.etag = offer, answer, newETag()
		restart = true
		answerFrag = answerFragment(answer)
	} else if f.ufrag != "" && f.ufrag != iceAttr(m.offer, "ice-ufrag") {
		return "", false, fmt.Errorf("%w: an ICE restart needs both a=ice-ufrag and a=ice-pwd", ErrIngestBadSDP)
	}
	for _, c := range f.cands {
		cm := c.mid
		if cm == "" {
			cm = mid
		}
		if err := m.peer.AddCandidate(m.target, webrtc.ICECandidateInit{Candidate: c.line, SDPMid: &cm}); err != nil {
			if errors.Is(err, media.ErrClosed) {
				return "", false, ErrIngestNotFound
			}
			return "", false, fmt.Errorf("%w: candidate %q: %v", ErrIngestBadSDP, c.line, err)
		}
	}
	return answerFrag, restart, nil
}

// ingestPeerState ends a session whose media path failed or closed; false if
// peerID is not a WHIP or WHEP peer.
func (s *Service) ingestPeerState(peerID string, st webrtc.PeerConnectionState) bool {
	s.ingest.mu.Lock()
	m := s.ingest.byPeer[peerID]
	s.ingest.mu.Unlock()
	if m == nil {
		return false
	}
	if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
		go m.Close() // not on the engine's callback goroutine
	}
	return true
}

// ---- room ----

// addExt puts a WHIP publisher or WHEP viewer in the room.
func (r *Room) addExt(peerID string, e extPeer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ext == nil {
		r.ext = map[string]extPeer{}
	}
	r.ext[peerID] = e
	r.onChange()
}

// dropExt removes one; a WHIP program gives way to the previous publisher.
func (r *Room) dropExt(peerID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.ext[peerID]; !ok {
		return
	}
	delete(r.ext, peerID)
	r.dropProgram(peerID)
	r.dropRelayFloor(peerID)
	r.onChange()
}

// extSubscribers lists the WHEP viewers for the policy. Called with mu held.
func (r *Room) extSubscribers() []Subscriber {
	var out []Subscriber
	for _, id := range sortedKeys(r.ext) {
		if e := r.ext[id]; !e.program && !e.relayFloor {
			out = append(out, Subscriber{PeerID: id, Only: append([]string{}, e.slots...)})
		}
	}
	return out
}

// ---- SDP helpers ----

// sdpFault turns an sfu error into ErrIngestBadSDP when the SDP was at fault.
func sdpFault(err error) error {
	if errors.Is(err, media.ErrInvalidSDP) {
		return fmt.Errorf("%w: %v", ErrIngestBadSDP, err)
	}
	return err
}

// checkIngestOffer parses an offer and returns its media kinds in order. A
// WHIP offer must send something; a WHEP offer must be willing to receive.
func checkIngestOffer(offer string, publish bool) ([]string, error) {
	var d sdp.SessionDescription
	if strings.TrimSpace(offer) == "" {
		return nil, fmt.Errorf("%w: empty body (an SDP offer is expected)", ErrIngestBadSDP)
	}
	if err := d.Unmarshal([]byte(offer)); err != nil {
		return nil, fmt.Errorf("%w: not an SDP offer: %v", ErrIngestBadSDP, err)
	}
	var kinds []string
	usable := 0
	for _, md := range d.MediaDescriptions {
		k := md.MediaName.Media
		kinds = append(kinds, k)
		if k != "audio" && k != "video" {
			continue
		}
		dir := "sendrecv"
		for _, a := range md.Attributes {
			switch a.Key {
			case "sendonly", "recvonly", "inactive", "sendrecv":
				dir = a.Key
			}
		}
		if publish && (dir == "sendonly" || dir == "sendrecv") || !publish && (dir == "recvonly" || dir == "sendrecv") {
			usable++
		}
	}
	if usable == 0 {
		if publish {
			return nil, fmt.Errorf("%w: the offer sends no audio or video (a WHIP offer has sendonly media sections)", ErrIngestBadSDP)
		}
		return nil, fmt.Errorf("%w: the offer receives no audio or video (a WHEP offer has recvonly media sections)", ErrIngestBadSDP)
	}
	return kinds, nil
}

type fragCand struct{ mid, line string }

type sdpFrag struct {
	ufrag, pwd string
	cands      []fragCand
}

// parseFrag reads an application/trickle-ice-sdpfrag body (RFC 8840).
func parseFrag(body string) (sdpFrag, error) {
	var f sdpFrag
	mid := ""
	for _, ln := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		ln = strings.TrimSpace(ln)
		switch {
		case ln == "":
		case strings.HasPrefix(ln, "m="):
			mid = ""
		case strings.HasPrefix(ln, "a=mid:"):
			mid = strings.TrimPrefix(ln, "a=mid:")
		case strings.HasPrefix(ln, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(ln, "a=ice-ufrag:")
		case strings.HasPrefix(ln, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(ln, "a=ice-pwd:")
		case strings.HasPrefix(ln, "a=candidate:"):
			c := strings.TrimPrefix(ln, "a=")
			if len(strings.Fields(c)) < 8 {
				return f, fmt.Errorf("%w: malformed candidate line %q", ErrIngestBadSDP, ln)
			}
			f.cands = append(f.cands, fragCand{mid: mid, line: c})
		case strings.HasPrefix(ln, "a="):
			// a=ice-options, a=end-of-candidates, a=group: nothing to do
		default:
			return f, fmt.Errorf("%w: not an SDP fragment line: %q", ErrIngestBadSDP, ln)
		}
	}
	return f, nil
}

// iceAttr is the first a=NAME: value of an SDP (session or media level).
func iceAttr(s, name string) string {
	for _, ln := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(ln, "\r"), "a="+name+":"); ok {
			return v
		}
	}
	return ""
}

func firstMid(s string) string {
	if v := iceAttr(s, "mid"); v != "" {
		return v
	}
	return "0"
}

// restartOffer is offer with new ICE credentials and without its old candidates.
func restartOffer(offer, ufrag, pwd string) string {
	var b strings.Builder
	for _, ln := range strings.SplitAfter(offer, "\n") {
		t := strings.TrimRight(ln, "\r\n")
		switch {
		case strings.HasPrefix(t, "a=ice-ufrag:"):
			b.WriteString("a=ice-ufrag:" + ufrag + "\r\n")
		case strings.HasPrefix(t, "a=ice-pwd:"):
			b.WriteString("a=ice-pwd:" + pwd + "\r\n")
		case strings.HasPrefix(t, "a=candidate:"), t == "a=end-of-candidates":
		default:
			b.WriteString(ln)
		}
	}
	return b.String()
}

// answerFragment is the trickle-ice-sdpfrag of an answer: its ICE credentials,
// and per media section its mid and candidates.
func answerFragment(answer string) string {
	var b strings.Builder
	for _, name := range []string{"ice-lite", "ice-options"} {
		if v := iceAttr(answer, name); v != "" {
			b.WriteString("a=" + name + ":" + v + "\r\n")
		}
	}
	b.WriteString("a=ice-ufrag:" + iceAttr(answer, "ice-ufrag") + "\r\n")
	b.WriteString("a=ice-pwd:" + iceAttr(answer, "ice-pwd") + "\r\n")
	inMedia := false
	for _, ln := range strings.Split(answer, "\n") {
		t := strings.TrimRight(ln, "\r")
		switch {
		case strings.HasPrefix(t, "m="):
			inMedia = true
			b.WriteString(t + "\r\n")
		case inMedia && (strings.HasPrefix(t, "a=mid:") || strings.HasPrefix(t, "a=candidate:") || t == "a=end-of-candidates"):
			b.WriteString(t + "\r\n")
		}
	}
	return b.String()
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newETag() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return `"` + base64.RawURLEncoding.EncodeToString(b[:]) + `"`
}

// etagMatches compares an If-Match value (one tag or a list) with the tag.
func etagMatches(ifMatch, tag string) bool {
	for _, v := range strings.Split(ifMatch, ",") {
		v = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "W/"))
		if v == tag || `"`+v+`"` == tag {
			return true
		}
	}
	return false
}
