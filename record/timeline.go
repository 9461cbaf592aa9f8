package record

import "math"

// Kind names a track.
type Kind uint8

// The two tracks of a recording.
const (
	Video Kind = 0
	Audio Kind = 1
)

func (k Kind) String() string {
	if k == Video {
		return "video"
	}
	return "audio"
}

// trackClock unwraps one track's 32-bit RTP timestamps and maps them to the
// recording's timeline in milliseconds.
type trackClock struct {
	rate    int64
	started bool
	last    uint32 // newest timestamp seen (unwrap base)
	lastExt int64  // its extended value; the first packet is 0
	off     int64  // ms added to this track's own time

	srOK    bool
	srNTP   float64 // seconds
	srExt   int64
	pendSR  bool
	pendNTP uint64
	pendRTP uint32
}

// timeline puts two tracks on one clock. The first track to deliver a packet is
// the reference and keeps offset 0. The other starts where the reference is at
// that moment and is moved onto the sender-report clock once both tracks have a
// sender report: wall clock, never arrival time, decides lip sync.
type timeline struct {
	c       [2]trackClock
	ref     int // -1 until the first packet
	aligned bool
}

func newTimeline() *timeline {
	t := &timeline{ref: -1}
	t.c[Video].rate = 90000
	t.c[Audio].rate = 48000
	return t
}

// extend returns ts as an extended timestamp of track k (0 = its first packet).
func (t *timeline) extend(k Kind, ts uint32) int64 {
	c := &t.c[k]
	if !c.started {
		c.started, c.last, c.lastExt = true, ts, 0
		if t.ref < 0 {
			t.ref = int(k)
		} else {
			r := &t.c[t.ref]
			c.off = t.ms(Kind(t.ref), r.lastExt)
		}
		if c.pendSR {
			c.pendSR = false
			t.senderReport(k, c.pendNTP, c.pendRTP)
		}
		return 0
	}
	ext := c.lastExt + int64(int32(ts-c.last))
	if ext > c.lastExt {
		c.last, c.lastExt = ts, ext
	}
	return ext
}

// ms maps an extended timestamp of track k to the timeline.
func (t *timeline) ms(k Kind, ext int64) int64 {
	c := &t.c[k]
	v := ext * 1000
	q := v / c.rate
	if v%c.rate != 0 && v < 0 {
		q--
	}
	return c.off + q
}

// senderReport records an RTCP SR for track k (ntp in the 64-bit NTP format).
func (t *timeline) senderReport(k Kind, ntp uint64, rtpTime uint32) {
	c := &t.c[k]
	if !c.started {
		c.pendSR, c.pendNTP, c.pendRTP = true, ntp, rtpTime
		return
	}
	c.srExt = c.lastExt + int64(int32(rtpTime-c.last))
	c.srNTP = float64(ntp>>32) + float64(ntp&0xFFFFFFFF)/(1<<32)
	c.srOK = true
	t.align()
}

func (t *timeline) align() {
	if t.ref < 0 {
		return
	}
	r, o := &t.c[t.ref], &t.c[1-t.ref]
	if !r.srOK || !o.srOK || !o.started {
		return
	}
	// Sender wall clock of each track's first packet.
	r0 := r.srNTP - float64(r.srExt)/float64(r.rate)
	o0 := o.srNTP - float64(o.srExt)/float64(o.rate)
	o.off = r.off + int64(math.Round((o0-r0)*1000))
	t.aligned = true
}
