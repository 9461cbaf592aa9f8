package signaling

import "time"

// The record: while a session is in progress, the program (the program
// publisher's top layer and its audio) and the floor (whoever holds it, video
// and audio as forwarded) are recorded. Signaling knows who they are; a
// Recorder (package recording through internal/app) writes the files. A new
// recording starts when the source changes (another floor holder, another
// program publisher, a republished track) and the Recorder splits files
// itself at least every hour.
//
// Recordings are started and stopped on their own goroutine (recordLoop),
// never on the reconcile loop: opening a recording writes its index row, and
// routing must not wait for PostgreSQL.

// Kinds of recording (the same strings as package recording).
const (
	RecordProgram     = "program"
	RecordFloor       = "floor"
	RecordPrivateLine = "private_line" // only with Config.RecordPrivateLine
)

// recordKinds are the recordings a session may have at once, by index.
var recordKinds = [...]string{RecordProgram, RecordFloor, RecordPrivateLine}

// Recorder starts recordings of the media plane. Record starts recording one
// source: kind is RecordProgram or RecordFloor, code the endpoint code whose
// media it is, video and audio its published tracks (either may be nil; video
// is recorded from its top layer). It returns an error when nothing is
// recorded (recording disabled, disk low, the index unreachable).
type Recorder interface {
	Record(sessionID, kind, code string, video, audio UpTrack) (Recording, error)
}

// Recording is one source being recorded.
type Recording interface {
	// SetTracks changes the tracks recorded (a track that appeared, audio
	// gated by a mute). A different non-nil track is not passed here: a new
	// recording is started instead.
	SetTracks(video, audio UpTrack)
	// Stop finishes the recording's file (closed and indexed).
	Stop()
}

// recordWant is what one kind of recording should be.
type recordWant struct {
	session, code, peer string
	video, audio        UpTrack
}

func (w recordWant) active() bool {
	return w.session != "" && w.peer != "" && (w.video != nil || w.audio != nil)
}

type recordCur struct {
	want   recordWant
	rec    Recording
	failed string // the last start error, logged once
}

// wantRecordings computes the recordings from the routing state (on the
// reconcile goroutine) and hands them to recordLoop (latest wins).
func (s *Service) wantRecordings(st *PolicyState) {
	if s.recorder == nil {
		return
	}
	var want [len(recordKinds)]recordWant
	if st.SessionActive {
		if st.Program != "" {
			w := recordWant{session: st.SessionID, code: st.root(), peer: st.Program}
			w.video, w.audio = s.tracksOf(st.Program)
			want[0] = w
		}
		if p := st.Peers[st.Floor]; p != "" {
			w := recordWant{session: st.SessionID, code: st.Floor, peer: p}
			w.video, w.audio = s.tracksOf(p)
			if st.Muted[st.Floor] {
				w.audio = nil // recorded as forwarded: a muted microphone reaches no one
			}
			want[1] = w
		}
		// The private line is private: recorded only when the configuration
		// says so, and not twice when its endpoint holds the floor.
		if pl := st.PrivateLine; s.cfg.RecordPrivateLine && pl != "" && pl != st.Floor && st.Peers[pl] != "" {
			w := recordWant{session: st.SessionID, code: pl, peer: st.Peers[pl]}
			w.video, w.audio = s.tracksOf(st.Peers[pl])
			if st.Muted[pl] {
				w.audio = nil
			}
			want[2] = w
		}
	}
	s.recMu.Lock()
	s.recWant = want
	s.recMu.Unlock()
	select {
	case s.recC <- struct{}{}:
	default:
	}
}

func (s *Service) tracksOf(peerID string) (video, audio UpTrack) {
	if p := s.engine.Peer(peerID); p != nil {
		return p.Tracks()
	}
	return nil, nil
}

// recordLoop applies the wanted recordings. It retries a recording that
// could not start (disk low, the index away) every recordRetry.
func (s *Service) recordLoop() {
	defer s.wg.Done()
	var cur [len(recordKinds)]recordCur
	retry := time.NewTicker(recordRetry)
	defer retry.Stop()
	defer func() {
		for i := range cur {
			if cur[i].rec != nil {
				cur[i].rec.Stop()
			}
		}
	}()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.recC:
		case <-retry.C:
		}
		s.recMu.Lock()
		want := s.recWant
		s.recMu.Unlock()
		for i := range cur {
			s.applyRecording(recordKinds[i], &cur[i], want[i])
		}
	}
}

// recordRetry is how often a recording that failed to start is tried again.
const recordRetry = 10 * time.Second

func (s *Service) applyRecording(kind string, c *recordCur, w recordWant) {
	if c.rec != nil {
		o := c.want
		changed := !w.active() || o.session != w.session || o.peer != w.peer || o.code != w.code ||
			(o.video != nil && w.video != nil && o.video != w.video) ||
			(o.audio != nil && w.audio != nil && o.audio != w.audio)
		if !changed {
			if o.video != w.video || o.audio != w.audio {
				// A track appeared, or audio was gated or ungated: same file.
				if w.video == nil {
					w.video = o.video // a track that ended keeps its place until replaced
				}
				c.rec.SetTracks(w.video, w.audio)
				c.want = w
			}
			return
		}
		// Finishing a file takes a read of it (its SHA-256) and a write to the
		// index: off this loop, so the next source starts at once.
		rec := c.rec
		s.wg.Add(1)
		go func() { defer s.wg.Done(); rec.Stop() }()
		s.log.Info("signaling: recording stopped", "kind", kind, "code", o.code, "session", o.session)
		c.rec, c.want = nil, recordWant{}
	}
	if !w.active() {
		return
	}
	rec, err := s.recorder.Record(w.session, kind, w.code, w.video, w.audio)
	if err != nil {
		if msg := err.Error(); msg != c.failed {
			c.failed = msg
			s.log.Warn("signaling: recording not started", "kind", kind, "code", w.code, "session", w.session, "err", err)
		}
		return
	}
	c.rec, c.want, c.failed = rec, w, ""
}
