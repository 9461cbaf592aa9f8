package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/opscenter/opscenter/record"
	"github.com/opscenter/opscenter/recording"
	"github.com/opscenter/opscenter/sfu"
	"github.com/opscenter/opscenter/signaling"
)

// MediaRecorder connects the media plane to the recording manager: it
// implements signaling.Recorder. Each recording taps the source's video top
// layer and its audio (sfu.Tap: the publisher's original packets, continuous
// RTP timestamps, and their sender reports) and writes them to the current
// file's record.Recorder, straight from the sfu's reader goroutines (a copy
// into a preallocated slot and a non-blocking send; no allocation, no lock).
// A new file starts at least every hour (SetSplit) and, after the manager
// stopped a file (disk low), as soon as the manager lets one start again.
type MediaRecorder struct {
	Manager *recording.Manager
	Log     *slog.Logger
	// Retry is how often a stopped recording tries to start again (default 10 s).
	Retry time.Duration

	splitNs atomic.Int64
}

// SetSplit sets the longest file (default, and 0: one hour). It applies from
// each recording's next file; tests shorten it.
func (m *MediaRecorder) SetSplit(d time.Duration) { m.splitNs.Store(int64(d)) }

// Record implements signaling.Recorder.
func (m *MediaRecorder) Record(sessionID, kind, code string, video, audio signaling.UpTrack) (signaling.Recording, error) {
	r := &mediaRecording{m: m, session: sessionID, kind: kind, code: code, stop: make(chan struct{}),
		done: make(chan struct{}), swapped: make(chan struct{}, 1)}
	for _, s := range []*tapSink{&r.video, &r.audio} {
		s.r = r
		for i := range s.layers {
			s.layers[i].s, s.layers[i].layer = s, int32(i)
		}
	}
	r.video.kind, r.audio.kind = record.Video, record.Audio
	h, err := r.open(-1)
	if err != nil {
		return nil, err
	}
	r.cur.Store(h.Recorder())
	r.setTracks(sfuTrack(video), sfuTrack(audio))
	go r.run(h)
	return r, nil
}

func (m *MediaRecorder) split() time.Duration {
	if d := time.Duration(m.splitNs.Load()); d > 0 {
		return d
	}
	return time.Hour
}

func (m *MediaRecorder) retry() time.Duration {
	if m.Retry > 0 {
		return m.Retry
	}
	return 10 * time.Second
}

func (m *MediaRecorder) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.New(slog.DiscardHandler)
}

// mediaRecording is one source being recorded, over one or more files.
type mediaRecording struct {
	m                   *MediaRecorder
	session, kind, code string
	cur                 atomic.Pointer[record.Recorder] // the file being written
	// next is the following file while a split hands over: it gets every
	// packet too, and becomes cur at its first video keyframe (handed, then
	// signalled on swapped), so consecutive files overlap rather than leave a
	// hole while the publisher answers the keyframe request.
	next    atomic.Pointer[record.Recorder]
	swapped chan struct{}

	video, audio tapSink

	tapMu sync.Mutex // serialises setTracks and Stop
	once  sync.Once
	stop  chan struct{}
	done  chan struct{}
}

// tapSink is one track's recording: it writes to the recording's current file.
// Video is tapped on every simulcast layer but written from one, the chosen
// layer: the best that flows (see followLayer), since a publisher may never
// send its top layer or may drop it for a while. Audio has one layer.
type tapSink struct {
	r      *mediaRecording
	kind   record.Kind
	chosen atomic.Int32 // the layer written; -1 while a file changes layer
	layers [sfu.LayerHigh + 1]layerTap
	rising int // followLayer's count of checks that saw a higher layer flow
	// started is when the taps were set: the top layer, paused while nobody
	// watched it, takes a moment to resume (layerStartGrace).
	started time.Time
}

// layerTap is one layer's sfu.TapSink: it passes the chosen layer's packets
// on and remembers the layer's last sender report, for the next file.
type layerTap struct {
	s     *tapSink
	layer int32
	tap   atomic.Pointer[sfu.Tap]

	srMu  sync.Mutex
	srNTP uint64
	srRTP uint32
	srOK  bool
}

func (l *layerTap) TapRTP(p *rtp.Packet) {
	if l.s.chosen.Load() == l.layer {
		l.s.TapRTP(p)
	}
}

func (l *layerTap) TapSenderReport(ntp uint64, rtpTS uint32) {
	l.srMu.Lock()
	l.srNTP, l.srRTP, l.srOK = ntp, rtpTS, true
	l.srMu.Unlock()
	if l.s.chosen.Load() != l.layer {
		return
	}
	if rec := l.s.r.cur.Load(); rec != nil {
		rec.SenderReport(l.s.kind, ntp, rtpTS)
	}
}

// tap is the chosen layer's tap (nil: none).
func (s *tapSink) tap() *sfu.Tap {
	c := s.chosen.Load()
	if c < 0 {
		return nil
	}
	return s.layers[c].tap.Load()
}

// best is the highest layer whose tap has packets flowing (-1: none).
func (s *tapSink) best() int32 {
	for i := len(s.layers) - 1; i >= 0; i-- {
		if tp := s.layers[i].tap.Load(); tp != nil && tp.Flowing() {
			return int32(i)
		}
	}
	return -1
}

func (s *tapSink) TapRTP(p *rtp.Packet) {
	r := s.r
	if nx := r.next.Load(); nx != nil {
		if s.kind == record.Video && vp8KeyframeStart(p.Payload) && r.next.CompareAndSwap(nx, nil) {
			// The next file starts here: the current one ends with the frame before.
			r.cur.Store(nx)
			select {
			case r.swapped <- struct{}{}:
			default:
			}
		} else {
			s.write(nx, p)
		}
	}
	if rec := r.cur.Load(); rec != nil {
		s.write(rec, p)
	}
}

func (s *tapSink) write(rec *record.Recorder, p *rtp.Packet) {
	if s.kind == record.Video {
		_ = rec.WriteVideoRTP(p)
	} else {
		_ = rec.WriteAudioRTP(p)
	}
}

// vp8KeyframeStart reports whether a VP8 RTP payload (RFC 7741) is the first
// packet of a keyframe: S set, partition 0, and the P bit of the VP8 payload
// header clear.
func vp8KeyframeStart(b []byte) bool {
	if len(b) < 2 || b[0]&0x10 == 0 || b[0]&0x07 != 0 {
		return false
	}
	i := 1
	if b[0]&0x80 != 0 { // X: extension byte
		x := b[1]
		i = 2
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits
			if i >= len(b) {
				return false
			}
			if b[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/KEYIDX
			i++
		}
	}
	return i < len(b) && b[i]&0x01 == 0
}

// replaySR gives a new file the last sender report of layer, so its tracks
// are on one timeline from the start.
func (s *tapSink) replaySR(rec *record.Recorder, layer int32) {
	l := &s.layers[layer]
	l.srMu.Lock()
	ntp, ts, ok := l.srNTP, l.srRTP, l.srOK
	l.srMu.Unlock()
	if ok {
		rec.SenderReport(s.kind, ntp, ts)
	}
}

// set taps t (nil: none), replacing the current taps if they are of another
// track. Video starts on the best layer flowing, else the top one.
func (s *tapSink) set(t *sfu.UpTrack) {
	old := s.layers[0].tap.Load()
	if old != nil && t != nil && old.Track() == t {
		return
	}
	for i := range s.layers {
		l := &s.layers[i]
		if tp := l.tap.Load(); tp != nil {
			tp.Close()
			l.tap.Store(nil)
		}
		l.srMu.Lock()
		l.srOK = false
		l.srMu.Unlock()
	}
	s.chosen.Store(0)
	s.rising = 0
	if t == nil {
		return
	}
	n := 1
	if s.kind == record.Video {
		n = len(s.layers)
	}
	for i := 0; i < n-1; i++ {
		s.layers[i].tap.Store(t.StandbyTap(i, &s.layers[i]))
	}
	s.layers[n-1].tap.Store(t.Tap(n-1, &s.layers[n-1]))
	// The top layer first, even when a lower one flows and it does not yet: a
	// layer nobody watched is paused, and resumes now that the tap asks for it.
	// followLayer moves down if it has not come after layerStartGrace.
	s.chosen.Store(int32(n - 1))
	s.started = time.Now()
	s.ask()
}

// layerStartGrace is how long a new recording waits for its top layer to
// resume before it takes a lower one (a resume takes a round trip and a
// keyframe).
const layerStartGrace = 3 * time.Second

// ask sets which layers the taps ask the publisher for: the top one (the
// program's high layer is what a recording is for) and the one written, or
// every layer while the one written does not flow, so that the best of the
// rest comes back. Others stay on standby: paused unless someone watches.
func (s *tapSink) ask() {
	c := s.chosen.Load()
	flowing := false
	if c >= 0 {
		if tp := s.layers[c].tap.Load(); tp != nil {
			flowing = tp.Flowing()
		}
	}
	top := -1
	for i := range s.layers {
		if s.layers[i].tap.Load() != nil {
			top = i
		}
	}
	for i := range s.layers {
		if tp := s.layers[i].tap.Load(); tp != nil {
			tp.SetStandby(!(i == top || int32(i) == c || !flowing))
		}
	}
}

// open starts a file that will take video from layer: the keyframe request
// goes to that layer's publisher (rate-limited PLI), a gap is refilled from
// the sfu's packet cache.
func (r *mediaRecording) open(layer int32) (*recording.Handle, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := r.m.Manager.Start(ctx, r.session, r.kind, r.code,
		record.WithKeyframeRequest(func() {
			if tp := r.video.tap(); tp != nil {
				go tp.RequestKeyframe()
			}
		}),
		record.WithGapHandler(func(k record.Kind, first uint16, n int) {
			s := &r.video
			if k == record.Audio {
				s = &r.audio
			}
			if tp := s.tap(); tp != nil {
				tp.Refill(first, n) // cache copy + non-blocking writes
			}
		}))
	if err != nil {
		return nil, err
	}
	rec := h.Recorder()
	if layer >= 0 {
		r.video.replaySR(rec, layer)
		if tp := r.video.layers[layer].tap.Load(); tp != nil {
			go tp.RequestKeyframe()
		}
	}
	r.audio.replaySR(rec, 0)
	return h, nil
}

// handover makes next the file written: at once without video, else at its
// first keyframe (the video sink swaps), or after handoverWait at the latest.
func (r *mediaRecording) handover(next *recording.Handle) {
	rec := next.Recorder()
	if r.video.tap() == nil {
		r.cur.Store(rec)
		return
	}
	select {
	case <-r.swapped: // a stale signal
	default:
	}
	r.next.Store(rec)
	t := time.NewTimer(handoverWait)
	defer t.Stop()
	select {
	case <-r.swapped:
	case <-t.C:
	case <-r.stop:
	}
	if r.next.CompareAndSwap(rec, nil) {
		r.cur.Store(rec) // no keyframe in time: the file starts at its first anyway
	}
}

// handoverWait bounds the overlap of two files of one source.
const handoverWait = 3 * time.Second

func (r *mediaRecording) setTracks(video, audio *sfu.UpTrack) {
	r.tapMu.Lock()
	defer r.tapMu.Unlock()
	select {
	case <-r.stop:
		return
	default:
	}
	r.video.set(video)
	r.audio.set(audio)
}

// SetTracks implements signaling.Recording.
func (r *mediaRecording) SetTracks(video, audio signaling.UpTrack) {
	r.setTracks(sfuTrack(video), sfuTrack(audio))
}

// Stop implements signaling.Recording: the taps are closed, then the file.
func (r *mediaRecording) Stop() {
	r.once.Do(func() {
		r.tapMu.Lock()
		close(r.stop)
		r.video.set(nil)
		r.audio.set(nil)
		r.tapMu.Unlock()
	})
	<-r.done
}

// run splits the file every Split, and starts a new one after the manager
// stopped it (disk low, shutdown) when it can, until Stop.
func (r *mediaRecording) run(h *recording.Handle) {
	defer close(r.done)
	log := r.m.log().With("kind", r.kind, "code", r.code, "session", r.session)
	split := time.NewTimer(r.m.split())
	defer split.Stop()
	follow := time.NewTicker(time.Second)
	defer follow.Stop()
	closeFile := func(h *recording.Handle) {
		if _, err := h.Close(); err != nil {
			log.Error("recording: close", "id", h.ID(), "err", err)
		}
	}
	for {
		var done <-chan struct{}
		if h != nil {
			done = h.Done()
		}
		var retry <-chan time.Time
		if h == nil {
			retry = time.After(r.m.retry())
		}
		select {
		case <-r.stop:
			r.cur.Store(nil)
			r.next.Store(nil)
			if h != nil {
				closeFile(h)
			}
			return
		case <-split.C:
			split.Reset(r.m.split())
			if h == nil {
				continue
			}
			// The next file first, so nothing is lost between the two: it
			// starts at the next keyframe, which it asks for, and the current
			// one is written until then.
			next, err := r.open(r.video.chosen.Load())
			if err != nil {
				log.Error("recording: next file", "err", err)
				continue
			}
			r.handover(next)
			closeFile(h)
			h = next
		case <-follow.C:
			if next := r.followLayer(h, log); next != h {
				closeFile(h)
				h = next
				split.Reset(r.m.split())
			}
		case <-done:
			// Stopped by the manager (disk low, shutdown).
			r.cur.CompareAndSwap(h.Recorder(), nil)
			closeFile(h) // returns the first result
			h = nil
		case <-retry:
			next, err := r.open(r.video.chosen.Load())
			if err != nil {
				if !errors.Is(err, recording.ErrDiskLow) && !errors.Is(err, recording.ErrClosed) {
					log.Warn("recording: restart", "err", err)
				}
				continue
			}
			r.cur.Store(next.Recorder())
			h = next
			split.Reset(r.m.split())
		}
	}
}

// layerRiseChecks is how many one-second checks a higher layer must flow
// before the recording moves up to it, so that a layer that flaps does not
// cut a file each time. A layer that stopped is left at the first check.
const layerRiseChecks = 3

// followLayer moves the video to the best layer that flows and returns the
// file to write from now on. A file that has video already ends there and
// the next one starts on the new layer, since a layer is another RTP stream
// (its own SSRC, sequence numbers and clock); the recorder starts it at a
// keyframe, which open asks for. Runs on run's goroutine, like the splits.
func (r *mediaRecording) followLayer(h *recording.Handle, log *slog.Logger) *recording.Handle {
	s := &r.video
	r.tapMu.Lock()
	s.ask()
	cur, best := s.chosen.Load(), s.best()
	var from *sfu.Tap
	if cur >= 0 {
		from = s.layers[cur].tap.Load()
	}
	if best < 0 || best == cur || from == nil {
		s.rising = 0
		r.tapMu.Unlock()
		return h
	}
	if best < cur && !from.Flowing() && time.Since(s.started) < layerStartGrace {
		r.tapMu.Unlock()
		return h // the top layer is still resuming
	}
	if best > cur && from.Flowing() {
		if s.rising++; s.rising < layerRiseChecks {
			r.tapMu.Unlock()
			return h
		}
	}
	s.rising = 0
	to := s.layers[best].tap.Load()
	if h == nil || h.Recorder().Stats().VideoPackets == 0 {
		// Nothing of the old layer in this file: it takes the new one as is.
		s.chosen.Store(best)
		s.ask()
		r.tapMu.Unlock()
		go to.RequestKeyframe()
		return h
	}
	r.tapMu.Unlock()

	next, err := r.open(best) // no lock held: it writes to the database
	if err != nil {
		log.Error("recording: file for a new layer", "err", err)
		return h
	}
	r.tapMu.Lock()
	defer r.tapMu.Unlock()
	if s.layers[best].tap.Load() != to {
		// The source changed meanwhile (SetTracks): keep the file as it is.
		_, _ = next.Close()
		return h
	}
	// Neither file may get a packet of the other's layer.
	s.chosen.Store(-1)
	r.cur.Store(next.Recorder())
	s.chosen.Store(best)
	s.ask()
	log.Info("recording: the video follows another layer", "from", cur, "to", best)
	return next
}
