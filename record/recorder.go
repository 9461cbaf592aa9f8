package record

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// Errors returned by a Recorder.
var (
	ErrClosed  = errors.New("record: recorder closed")
	ErrNoMedia = errors.New("record: nothing was recorded")
)

// Info describes a finished file.
type Info struct {
	Path     string
	Size     int64
	SHA256   string // hex, of the whole file as closed
	Duration time.Duration
	// Start is the server's wall-clock time of the file's time 0 (when the
	// first recorded packet arrived, on the recording's timeline); End is
	// Start+Duration. A duty-log time t is at offset t-Start in the file.
	Start, End    time.Time
	Width, Height int // of the first keyframe
	VideoFrames   uint64
	AudioFrames   uint64
	Stats         Stats
}

// Stats counts what happened to packets and frames. All counts are totals.
type Stats struct {
	VideoPackets     uint64 // accepted into the queue
	AudioPackets     uint64
	QueueDrops       uint64 // dropped because the queue was full
	Oversize         uint64 // dropped: payload larger than MaxPayload
	LatePackets      uint64 // duplicates, or too late for the reorder window
	Gaps             uint64 // holes seen in sequence numbers (some filled later)
	LostPackets      uint64 // sequence numbers never seen
	DroppedFrames    uint64 // video frames not written: broken or waiting for a keyframe
	LateAudioFrames  uint64 // audio frames behind the timeline
	KeyframeRequests uint64
}

type counters struct {
	packets          [2]atomic.Uint64
	queueDrops       atomic.Uint64
	oversize         atomic.Uint64
	late             atomic.Uint64
	lost             atomic.Uint64
	droppedFrames    atomic.Uint64
	lateAudio        atomic.Uint64
	keyframeRequests atomic.Uint64
	gaps             atomic.Uint64
}

// Recorder writes one video (VP8) and one audio (Opus) RTP stream to a WebM
// file. Its Write methods and SenderReport are safe for concurrent use and
// never block; Close must be called once.
type Recorder struct {
	path  string
	cfg   config
	f     *os.File
	free  chan *slot
	queue chan *slot
	stop  *slot
	done  chan struct{}

	closed  atomic.Bool
	needKey atomic.Bool
	n       counters

	// Owned by the recorder's goroutine.
	jb       [2]*jitter
	tl       *timeline
	vp8      *vp8Frames
	mux      *muxer
	pend     [2][]frame  // frames not yet written, per track
	bufs     [2][][]byte // frame buffers written out, for reuse, per track
	head     [2]int      // first unwritten index in pend
	failed   bool        // the muxer could not start: frames are dropped
	lastT    int64       // last ms written to the file
	wall0    int64       // arrival (Unix ns) of the reference track's first packet
	lastAsk  int64       // video ext timestamp of the last keyframe request
	lastKey  int64       // video ext timestamp of the last keyframe written
	asked    bool
	info     Info
	err      error
	firstErr error
}

type frame struct {
	key  bool
	t    int64
	data []byte
}

// NewWriter creates (or truncates) path and starts a Recorder writing to it.
// Nothing but the file is created until the first video keyframe (or, with no
// video, StartWait of audio): the video track's size comes from that keyframe.
func NewWriter(path string, opts ...Option) (*Recorder, error) {
	r, err := newRecorder(path, opts...)
	if err != nil {
		return nil, err
	}
	go r.run()
	return r, nil
}

// newRecorder is NewWriter without the goroutine (benchmarks drive it).
func newRecorder(path string, opts ...Option) (*Recorder, error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, err
	}
	r := &Recorder{
		path: path, cfg: cfg, f: f,
		free:  make(chan *slot, cfg.queueSize),
		queue: make(chan *slot, cfg.queueSize+1), // +1: Close's stop slot never waits
		stop:  &slot{},
		done:  make(chan struct{}),
		jb: [2]*jitter{
			newJitter(cfg.videoLate, uint32(cfg.lateSpan.Milliseconds()*90)),
			newJitter(cfg.audioLate, uint32(cfg.lateSpan.Milliseconds()*48)),
		},
		tl:    newTimeline(),
		vp8:   newVP8Frames(),
		lastT: -1 << 62,
	}
	for i := 0; i < cfg.queueSize; i++ {
		r.free <- &slot{buf: make([]byte, 0, cfg.maxPayload)}
	}
	return r, nil
}

// WriteVideoRTP queues a VP8 packet. The packet is copied; the caller keeps it.
func (r *Recorder) WriteVideoRTP(p *rtp.Packet) error { return r.writeRTP(Video, p) }

// WriteAudioRTP queues an Opus packet. The packet is copied; the caller keeps it.
func (r *Recorder) WriteAudioRTP(p *rtp.Packet) error { return r.writeRTP(Audio, p) }

func (r *Recorder) writeRTP(k Kind, p *rtp.Packet) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if len(p.Payload) > r.cfg.maxPayload {
		r.n.oversize.Add(1)
		return nil
	}
	var s *slot
	select {
	case s = <-r.free:
	default:
		// Full: drop. The hole it leaves is found by sequence number, and
		// video resumes at the next keyframe.
		r.n.queueDrops.Add(1)
		return nil
	}
	s.kind, s.sr, s.marker = k, false, p.Marker
	s.seq, s.ts = p.SequenceNumber, p.Timestamp
	s.at = time.Now().UnixNano()
	s.buf = append(s.buf[:0], p.Payload...)
	r.n.packets[k].Add(1)
	r.queue <- s // never blocks: the queue holds every slot
	return nil
}

// SenderReport passes an RTCP sender report of the given track: ntpTime in the
// 64-bit NTP format and the RTP timestamp it corresponds to. Reports put the
// two tracks on one wall clock; before both have one, the tracks are aligned
// where each starts.
func (r *Recorder) SenderReport(k Kind, ntpTime uint64, rtpTime uint32) {
	if r.closed.Load() || k > Audio {
		return
	}
	select {
	case s := <-r.free:
		s.kind, s.sr, s.ntp, s.ts = k, true, ntpTime, rtpTime
		r.queue <- s
	default:
		r.n.queueDrops.Add(1)
	}
}

// NeedKeyframe reports whether video is waiting for a keyframe (at the start,
// or after a loss it cannot write through).
func (r *Recorder) NeedKeyframe() bool { return r.needKey.Load() }

// Stats returns the counters so far.
func (r *Recorder) Stats() Stats {
	return Stats{
		VideoPackets:     r.n.packets[Video].Load(),
		AudioPackets:     r.n.packets[Audio].Load(),
		QueueDrops:       r.n.queueDrops.Load(),
		Oversize:         r.n.oversize.Load(),
		LatePackets:      r.n.late.Load(),
		Gaps:             r.n.gaps.Load(),
		LostPackets:      r.n.lost.Load(),
		DroppedFrames:    r.n.droppedFrames.Load(),
		LateAudioFrames:  r.n.lateAudio.Load(),
		KeyframeRequests: r.n.keyframeRequests.Load(),
	}
}

// Close writes what is buffered, the Cues and the Duration, syncs and closes
// the file, and returns its description (the SHA-256 takes one read of the
// file). A file with no media is removed, with ErrNoMedia.
func (r *Recorder) Close() (Info, error) {
	if !r.closed.CompareAndSwap(false, true) {
		<-r.done
		return r.info, ErrClosed
	}
	r.queue <- r.stop
	<-r.done
	return r.info, r.err
}

func (r *Recorder) run() {
	defer close(r.done)
	for s := range r.queue {
		if s == r.stop {
			r.err = r.finish()
			return
		}
		if s.sr {
			r.tl.senderReport(s.kind, s.ntp, s.ts)
			r.free <- s
			continue
		}
		r.push(s)
	}
}

func (r *Recorder) push(s *slot) {
	jb := r.jb[s.kind]
	if d := int16(s.seq - jb.highest); jb.started && d > 1 && int(d) < len(jb.ring) {
		r.n.gaps.Add(1)
		if r.cfg.onGap != nil {
			r.cfg.onGap(s.kind, jb.highest+1, int(d)-1)
		}
	}
	switch jb.push(s) {
	case pushLate:
		r.n.late.Add(1)
		r.free <- s
		return
	case pushJump:
		r.drain(s.kind) // a reset or a long outage: write what is held, start over
		jb.reset()
		jb.push(s)
	}
	for {
		p, lost := jb.pop(false)
		if p == nil {
			return
		}
		r.packet(p, lost)
	}
}

func (r *Recorder) drain(k Kind) {
	for {
		p, lost := r.jb[k].pop(true)
		if p == nil {
			return
		}
		r.packet(p, lost)
	}
}

// packet handles one in-order packet and frees its slot.
func (r *Recorder) packet(p *slot, lost int) {
	defer func() { r.free <- p }()
	if lost > 0 {
		r.n.lost.Add(uint64(lost))
	}
	if r.tl.ref < 0 {
		r.wall0 = p.at
	}
	ext := r.tl.extend(p.kind, p.ts)
	if p.kind == Audio {
		if len(p.buf) > 0 {
			r.emit(Audio, true, r.tl.ms(Audio, ext), r.copyFrame(Audio, p.buf))
		}
		return
	}
	res := r.vp8.add(p.buf, p.ts, p.marker, lost)
	if res.dropped > 0 {
		r.n.droppedFrames.Add(uint64(res.dropped))
	}
	if res.frame != nil {
		if res.key {
			r.lastKey = ext
		}
		r.emit(Video, res.key, r.tl.ms(Video, ext), r.copyFrame(Video, res.frame))
	}
	r.needKey.Store(r.vp8.waitKey)
	switch {
	case res.askKey:
		r.askKeyframe(ext)
	case r.vp8.waitKey && ext-r.lastAsk >= 90000:
		r.askKeyframe(ext) // still waiting: ask again once a second
	case !r.vp8.waitKey && r.cfg.keyframeInterval > 0 &&
		ext-r.lastKey >= r.cfg.keyframeInterval.Milliseconds()*90 &&
		ext-r.lastAsk >= r.cfg.keyframeInterval.Milliseconds()*90:
		r.askKeyframe(ext) // for seeking: a cluster and a cue at each keyframe
	}
	if !r.asked { // at the start, before any keyframe
		r.askKeyframe(ext)
	}
}

func (r *Recorder) askKeyframe(ext int64) {
	r.asked, r.lastAsk = true, ext
	r.n.keyframeRequests.Add(1)
	if r.cfg.onKeyframe != nil {
		r.cfg.onKeyframe()
	}
}

// copyFrame copies a frame into a buffer of track k's free list (frames wait
// in pend for the other track), so that in a steady stream nothing is
// allocated: buffers go back to the list once written, and grow to the
// largest frames they carried.
func (r *Recorder) copyFrame(k Kind, b []byte) []byte {
	var buf []byte
	if n := len(r.bufs[k]); n > 0 {
		buf = r.bufs[k][n-1][:0]
		r.bufs[k][n-1] = nil
		r.bufs[k] = r.bufs[k][:n-1]
	}
	return append(buf, b...)
}

// freeFrame returns a written frame's buffer to track k's free list.
func (r *Recorder) freeFrame(k Kind, b []byte) {
	if cap(b) <= maxFreeFrame {
		r.bufs[k] = append(r.bufs[k], b)
	}
}

// maxFreeFrame is the largest frame buffer kept for reuse.
const maxFreeFrame = 1 << 20

// emit queues a frame and writes, in timeline order, whatever cannot be
// preceded by a frame still to come from the other track.
func (r *Recorder) emit(k Kind, key bool, t int64, data []byte) {
	if r.failed {
		return
	}
	r.pend[k] = append(r.pend[k], frame{key: key, t: t, data: data})
	if r.mux == nil && !r.start(false) {
		return
	}
	r.flush(false)
}

// start opens the muxer at the first video keyframe, or without one once
// StartWait of audio is waiting (or at Close).
func (r *Recorder) start(force bool) bool {
	v, a := r.pend[Video][r.head[Video]:], r.pend[Audio][r.head[Audio]:]
	switch {
	case len(v) > 0 && v[0].key:
	case force && (len(v) > 0 || len(a) > 0):
	case len(a) > 0 && a[len(a)-1].t-a[0].t >= r.cfg.startWait.Milliseconds():
	default:
		return false
	}
	for len(v) > 0 && !v[0].key {
		v = v[1:]
		r.head[Video]++
		r.n.droppedFrames.Add(1)
	}
	w, h := r.vp8.width, r.vp8.height
	if w == 0 {
		w, h = r.cfg.fallbackW, r.cfg.fallbackH
	}
	t0 := int64(1 << 62)
	for _, q := range [][]frame{v, a} {
		if len(q) > 0 && q[0].t < t0 {
			t0 = q[0].t
		}
	}
	r.info.Start = time.Unix(0, r.wall0).Add(time.Duration(t0) * time.Millisecond)
	r.info.Width, r.info.Height = w, h
	m, err := newMuxer(r.f, muxConfig{
		width: w, height: h, cuesReserve: r.cfg.cuesReserve, sync: r.cfg.sync, start: r.info.Start,
	})
	if err != nil {
		r.firstErr = fmt.Errorf("record: start %s: %w", r.path, err)
		r.pend, r.head, r.failed = [2][]frame{}, [2]int{}, true
		return false
	}
	r.mux = m
	return true
}

// flush writes pending frames in time order. A track may run ahead of the
// other by MergeWait before the other's frames count as late; a track that
// has not started does not hold the other back.
func (r *Recorder) flush(all bool) {
	wait := r.cfg.mergeWait.Milliseconds()
	for {
		v, a := r.pend[Video][r.head[Video]:], r.pend[Audio][r.head[Audio]:]
		var k Kind
		switch {
		case len(v) > 0 && len(a) > 0:
			k = Video
			if a[0].t <= v[0].t {
				k = Audio
			}
		case len(v) > 0 && (all || !r.tl.c[Audio].started || v[len(v)-1].t-v[0].t > wait):
			k = Video
		case len(a) > 0 && (all || !r.tl.c[Video].started || a[len(a)-1].t-a[0].t > wait):
			k = Audio
		default:
			return
		}
		fr := r.pend[k][r.head[k]]
		r.pend[k][r.head[k]] = frame{}
		r.head[k]++
		if h := r.head[k]; h == len(r.pend[k]) { // empty: reuse the array from its start
			r.pend[k], r.head[k] = r.pend[k][:0], 0
		} else if h >= 64 && 2*h >= len(r.pend[k]) { // never empty: compact
			n := copy(r.pend[k], r.pend[k][h:])
			clear(r.pend[k][n:])
			r.pend[k], r.head[k] = r.pend[k][:n], 0
		}
		if fr.t < r.lastT {
			if k == Audio {
				r.n.lateAudio.Add(1)
				r.freeFrame(k, fr.data)
				continue
			}
			fr.t = r.lastT // never drop video: later frames refer to it
		}
		r.lastT = fr.t
		r.mux.write(int(k), fr.key, fr.t, fr.data) // track index = Kind; written when it returns
		r.freeFrame(k, fr.data)
	}
}

// finish writes everything held, closes the muxer and describes the file.
func (r *Recorder) finish() error {
	r.drain(Video)
	r.drain(Audio)
	if r.mux == nil && !r.failed {
		r.start(true)
	}
	if r.mux == nil {
		_ = r.f.Close()
		_ = os.Remove(r.path)
		if r.firstErr != nil {
			return r.firstErr
		}
		return ErrNoMedia
	}
	r.flush(true)
	m := r.mux
	err := m.finish()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.info.Path = r.path
	r.info.VideoFrames, r.info.AudioFrames = m.written[Video], m.written[Audio]
	if m.first >= 0 {
		r.info.Duration = time.Duration(m.last-m.first) * time.Millisecond
	}
	r.info.End = r.info.Start.Add(r.info.Duration)
	r.info.Stats = r.Stats()
	if err != nil {
		return fmt.Errorf("record: write %s: %w", r.path, err)
	}
	sum, size, err := FileSHA256(r.path)
	if err != nil {
		return err
	}
	r.info.SHA256, r.info.Size = sum, size
	return nil
}
