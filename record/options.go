package record

import "time"

// Option configures a Recorder.
type Option func(*config)

type config struct {
	queueSize        int
	maxPayload       int
	videoLate        int
	audioLate        int
	lateSpan         time.Duration
	onKeyframe       func()
	onGap            func(k Kind, first uint16, n int)
	keyframeInterval time.Duration
	startWait        time.Duration
	mergeWait        time.Duration
	sync             bool
	cuesReserve      int
	fallbackW        int
	fallbackH        int
}

func defaults() config {
	return config{
		queueSize:        1024,
		maxPayload:       1500,
		videoLate:        128,
		audioLate:        16,
		lateSpan:         500 * time.Millisecond,
		keyframeInterval: 10 * time.Second,
		startWait:        5 * time.Second,
		mergeWait:        2 * time.Second,
		sync:             true,
		cuesReserve:      256 << 10,
		fallbackW:        640,
		fallbackH:        360,
	}
}

// WithQueueSize sets how many packets may wait for the recorder's goroutine
// (default 1024); each holds MaxPayload bytes, allocated up front. When the
// queue is full, packets are dropped and counted.
func WithQueueSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.queueSize = n
		}
	}
}

// WithMaxPayload sets the largest RTP payload kept (default 1500 bytes).
func WithMaxPayload(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxPayload = n
		}
	}
}

// WithReorderWindow sets how many newer packets may arrive before a missing
// one is declared lost (defaults 128 video, 16 audio); it is also declared
// lost once the packets after it span 500 ms of media.
func WithReorderWindow(video, audio int) Option {
	return func(c *config) {
		if video > 0 {
			c.videoLate = video
		}
		if audio > 0 {
			c.audioLate = audio
		}
	}
}

// WithKeyframeRequest sets the function called when the recorder needs a
// keyframe: at the start, after a loss, and every KeyframeInterval. It runs on
// the recorder's goroutine and must not block (send a PLI asynchronously).
func WithKeyframeRequest(f func()) Option {
	return func(c *config) { c.onKeyframe = f }
}

// WithGapHandler sets the function called when a hole in a track's sequence
// numbers is first seen: packets first..first+n-1 are missing. A packet
// written before the reorder window passes it (see WithReorderWindow), such as
// a retransmission from the SFU's cache, fills the hole. It runs on the
// recorder's goroutine and must not block; it may call WriteVideoRTP or
// WriteAudioRTP.
func WithGapHandler(f func(k Kind, first uint16, n int)) Option {
	return func(c *config) { c.onGap = f }
}

// WithKeyframeInterval asks for a keyframe when none came for d (default 10s;
// 0 never): WebRTC senders send keyframes only when asked, and a file can be
// entered only at one.
func WithKeyframeInterval(d time.Duration) Option {
	return func(c *config) { c.keyframeInterval = d }
}

// WithStartWait sets how much audio may wait for the first video keyframe
// before the file starts without one (default 5s).
func WithStartWait(d time.Duration) Option {
	return func(c *config) { c.startWait = d }
}

// WithSync sets whether each cluster is fsynced when it closes (default true),
// so a power cut loses at most the open cluster.
func WithSync(on bool) Option {
	return func(c *config) { c.sync = on }
}

// WithCuesReserve sets the space reserved after the header for the Cues
// (default 256 KiB, about 14,000 cue points); ebml-go thins the cues to fit.
func WithCuesReserve(bytes int) Option {
	return func(c *config) {
		if bytes >= 9 {
			c.cuesReserve = bytes
		}
	}
}
