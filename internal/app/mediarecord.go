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
func (m *MediaRecorder) Record(sessionID, kind, code string, video, audio *sfu.UpTrack) (signaling.Recording, error) {
	r := &mediaRecording{m: m, session: sessionID, kind: kind, code: code, stop: make(chan struct{}),
		done: make(chan struct{}), swapped: make(chan struct{}, 1)}
	r.video.r, r.video.kind = r, record.Video
	r.audio.r, r.audio.kind = r, record.Audio
	h, err := r.open()
	if err != nil {
		return nil, err
	}
	r.cur.Store(h.Recorder())
	r.setTracks(video, audio)
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

// tapSink is one track's sfu.TapSink: it writes to the recording's current
// file and remembers the last sender report, for the next file.
type tapSink struct {
	r    *mediaRecording
	kind record.Kind
	tap  atomic.Pointer[sfu.Tap]

	srMu  sync.Mutex
	srNTP uint64
	srRTP uint32
	srOK  bool
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

func (s *tapSink) TapSenderReport(ntp uint64, rtpTS uint32) {
	s.srMu.Lock()
	s.srNTP, s.srRTP, s.srOK = ntp, rtpTS, true
	s.srMu.Unlock()
	if rec := s.r.cur.Load(); rec != nil {
		rec.SenderReport(s.kind, ntp, rtpTS)
	}
}

// replaySR gives a new file the last sender report, so its tracks are on one
// timeline from the start.
func (s *tapSink) replaySR(rec *record.Recorder) {
	s.srMu.Lock()
	ntp, ts, ok := s.srNTP, s.srRTP, s.srOK
	s.srMu.Unlock()
	if ok {
		rec.SenderReport(s.kind, ntp, ts)
	}
}

// set taps t (nil: none), replacing the current tap if it is another track.
func (s *tapSink) set(t *sfu.UpTrack) {
	old := s.tap.Load()
	if old != nil && t != nil && old.Track() == t {
		return
	}
	if old != nil {
		old.Close()
		s.tap.Store(nil)
		s.srMu.Lock()
		s.srOK = false
		s.srMu.Unlock()
	}
	if t != nil {
		s.tap.Store(t.Tap(sfu.LayerHigh, s))
	}
}

// open starts a file: the keyframe request goes to the video tap's publisher
// layer (rate-limited PLI), a gap is refilled from the sfu's packet cache.
func (r *mediaRecording) open() (*recording.Handle, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := r.m.Manager.Start(ctx, r.session, r.kind, r.code,
		record.WithKeyframeRequest(func() {
			if tp := r.video.tap.Load(); tp != nil {
				go tp.RequestKeyframe()
			}
		}),
		record.WithGapHandler(func(k record.Kind, first uint16, n int) {
			s := &r.video
			if k == record.Audio {
				s = &r.audio
			}
			if tp := s.tap.Load(); tp != nil {
				tp.Refill(first, n) // cache copy + non-blocking writes
			}
		}))
	if err != nil {
		return nil, err
	}
	rec := h.Recorder()
	r.video.replaySR(rec)
	r.audio.replaySR(rec)
	if tp := r.video.tap.Load(); tp != nil {
		go tp.RequestKeyframe()
	}
	return h, nil
}

// handover makes next the file written: at once without video, else at its
// first keyframe (the video sink swaps), or after handoverWait at the latest.
func (r *mediaRecording) handover(next *recording.Handle) {
	rec := next.Recorder()
	if r.video.tap.Load() == nil {
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
func (r *mediaRecording) SetTracks(video, audio *sfu.UpTrack) { r.setTracks(video, audio) }

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
			next, err := r.open()
			if err != nil {
				log.Error("recording: next file", "err", err)
				continue
			}
			r.handover(next)
			closeFile(h)
			h = next
		case <-done:
			// Stopped by the manager (disk low, shutdown).
			r.cur.CompareAndSwap(h.Recorder(), nil)
			closeFile(h) // returns the first result
			h = nil
		case <-retry:
			next, err := r.open()
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
