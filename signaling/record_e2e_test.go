package signaling_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/opscenter/opscenter/record"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/wire"
)

type probeOut struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func ffprobeFile(t *testing.T, path string) (probeOut, time.Duration) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "quiet", "-show_entries",
		"format=duration:stream=codec_name,codec_type,width,height", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probeOut
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	s, _ := strconv.ParseFloat(p.Format.Duration, 64)
	return p, time.Duration(s * float64(time.Second))
}

// The record (issue "The record of what was seen and said", 1): while a
// session is in progress the program and the floor are recorded as forwarded;
// the floor starts a new file when it changes hands; the session's end closes
// every file (SHA-256, Cues), and ffprobe reads VP8 and Opus of about the
// length recorded.
func TestRecordProgramAndFloorE2E(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	l := startLive(t)
	l.startSession()
	xy := l.communes(2)
	x, y := xy[0], xy[1]
	tProgram := time.Now() // the program is recorded from when it publishes
	cmd := l.dial(l.a.Endpoint(signaling.CommandCode).Token, wire.RoleConsole, true)
	lead := l.dial(l.leader.Token, wire.RoleConsole, false)
	ex, ey := l.endpoint(x), l.endpoint(y)
	for _, c := range []interface{ WaitConnected(time.Duration) error }{cmd, lead, ex, ey} {
		if err := c.WaitConnected(20 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	rows := func() []store.Recording {
		rs, err := l.a.Store.ListRecordings(ctx, l.sessID)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	find := func(kind, code, state string) *store.Recording {
		for _, r := range rows() {
			if r.Kind == kind && r.SourceCode == code && (state == "" || r.State == state) {
				return &r
			}
		}
		return nil
	}
	// seen: when each file was first seen open, and when it was asked to end.
	type window struct{ from, to time.Time }
	win := map[string]*window{}

	t0 := time.Now()
	send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: x})
	d := waitT(t, "program and floor recordings open", 20*time.Second, func() bool {
		return find("program", signaling.CommandCode, "open") != nil && find("floor", x, "open") != nil
	})
	t.Logf("program and floor(%s) recordings open %v after the floor was given", x, d)
	win["program"] = &window{from: tProgram}
	win["floor/"+x] = &window{from: t0}
	time.Sleep(4 * time.Second)

	t1 := time.Now()
	send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: y})
	d = waitT(t, "the floor's second file", 20*time.Second, func() bool {
		return find("floor", y, "open") != nil && find("floor", x, "closed") != nil
	})
	t.Logf("floor passed to %s: its file open, %s's closed, %v after", y, x, d)
	win["floor/"+x].to = t1
	win["floor/"+y] = &window{from: t1}
	time.Sleep(4 * time.Second)

	t2 := time.Now()
	l.leader.Do("POST", "/api/v1/sessions/"+l.sessID+"/end", nil, nil, 200)
	win["program"].to, win["floor/"+y].to = t2, t2
	d = waitT(t, "every recording closed", 30*time.Second, func() bool {
		for _, r := range rows() {
			if r.State == "open" {
				return false
			}
		}
		return true
	})
	t.Logf("session ended: every recording closed %v after", d)

	got := map[string]int{}
	for _, r := range rows() {
		key := r.Kind
		if r.Kind == "floor" {
			key += "/" + r.SourceCode
		}
		got[key]++
		if r.State != "closed" {
			t.Errorf("%s %s: state %s (note %q)", key, r.ID, r.State, r.Note)
			continue
		}
		if r.SHA256 == nil || len(*r.SHA256) != 64 {
			t.Errorf("%s: no SHA-256", key)
			continue
		}
		path := l.a.Recordings.Path(r)
		if err := record.Verify(path, *r.SHA256); err != nil {
			t.Errorf("%s: %v", key, err)
		}
		fi, err := record.Inspect(path)
		if err != nil {
			t.Errorf("%s: inspect: %v", key, err)
			continue
		}
		if !fi.Cues || fi.NeedsRepair() {
			t.Errorf("%s: cues=%v needs repair=%v (%+v)", key, fi.Cues, fi.NeedsRepair(), fi)
		}
		codecs, dur := probeCodecs(t, path)
		w := win[key]
		if w == nil {
			t.Errorf("unexpected recording %s", key)
			continue
		}
		span := w.to.Sub(w.from)
		t.Logf("%s: %s, %d bytes, %dx%d, ffprobe %v (streams %v), row duration %dms, Inspect %v, %d cue points, time recorded at most %v",
			key, r.Path, deref(r.Size), derefInt(r.Width), derefInt(r.Height), dur, codecs, deref(r.DurationMS),
			fi.Duration, fi.CuePoints, span.Round(time.Millisecond))
		if !codecs["vp8"] || !codecs["opus"] {
			t.Errorf("%s: streams %v, want vp8 and opus", key, codecs)
		}
		// The file starts at the first keyframe after it opened and ends when the
		// source changed: at most the window, and (5x margin) not much less.
		if dur > span+time.Second || dur < span/5 {
			t.Errorf("%s: ffprobe duration %v, window %v", key, dur, span)
		}
	}
	want := map[string]int{"program": 1, "floor/" + x: 1, "floor/" + y: 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%d %s recordings, want %d (all: %v)", got[k], k, n, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("recordings %v, want %v", got, want)
	}
}

// probeCodecs is the set of codecs in the file's streams, and its duration.
func probeCodecs(t *testing.T, path string) (map[string]bool, time.Duration) {
	t.Helper()
	p, dur := ffprobeFile(t, path)
	codecs := map[string]bool{}
	for _, s := range p.Streams {
		codecs[s.CodecName] = true
	}
	return codecs, dur
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// Files split at least every hour: with the split shortened to 2 s, a program
// recorded for about 7 s is several files, each closed with its SHA-256, VP8
// and Opus of the top layer, none much longer than the split, one after the
// other without a hole; and the recorder alone keeps the top layer unpaused.
func TestRecordSplitE2E(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	const split = 2 * time.Second
	l := startLive(t)
	if l.a.MediaRecorder == nil {
		t.Fatal("recording is off in the test app")
	}
	l.a.MediaRecorder.SetSplit(split)
	l.startSession()
	t0 := time.Now()
	cmd := l.dial(l.a.Endpoint(signaling.CommandCode).Token, wire.RoleConsole, true)
	if err := cmd.WaitConnected(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rows := func() []store.Recording {
		rs, err := l.a.Store.ListRecordings(ctx, l.sessID)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	time.Sleep(7 * time.Second)
	tEnd := time.Now()
	l.leader.Do("POST", "/api/v1/sessions/"+l.sessID+"/end", nil, nil, 200)
	window := time.Since(t0)
	waitT(t, "every recording closed", 30*time.Second, func() bool {
		for _, r := range rows() {
			if r.State == "open" {
				return false
			}
		}
		return true
	})
	rs := rows()
	slices.SortFunc(rs, func(a, b store.Recording) int { return a.StartedAt.Compare(b.StartedAt) })
	var total, worstGap time.Duration
	for i, r := range rs {
		if r.State == "deleted" && r.Note == "no_media" {
			// A split that began as the session ended got no media: the empty
			// file is removed, and the index says so.
			continue
		}
		if r.Kind != "program" || r.State != "closed" || r.SHA256 == nil || r.EndedAt == nil {
			t.Errorf("recording %d: %s %s state %s note %q", i, r.Kind, r.SourceCode, r.State, r.Note)
			continue
		}
		path := l.a.Recordings.Path(r)
		if err := record.Verify(path, *r.SHA256); err != nil {
			t.Error(err)
		}
		codecs, dur := probeCodecs(t, path)
		gap := time.Duration(0)
		if i > 0 && rs[i-1].EndedAt != nil {
			gap = r.StartedAt.Sub(*rs[i-1].EndedAt)
			worstGap = max(worstGap, gap)
		}
		total += dur
		t.Logf("file %d: %v..%v ffprobe %v, streams %v, gap after the previous %v", i,
			r.StartedAt.Format("15:04:05.000"), r.EndedAt.Format("15:04:05.000"), dur, codecs, gap)
		if !codecs["vp8"] || !codecs["opus"] {
			t.Errorf("file %d: streams %v", i, codecs)
		}
		if r.Width == nil || *r.Width != 1280 {
			t.Errorf("file %d: width %v, want the top layer's 1280", i, derefInt(r.Width))
		}
		if dur > split+time.Second {
			t.Errorf("file %d: %v, longer than the split %v", i, dur, split)
		}
	}
	t.Logf("%d files, %v in all over a window of %v; worst gap between files %v", len(rs), total, window, worstGap)
	// Nobody but the recorder watches the program here: its top layer must not
	// be paused while it records (the tap is a subscriber), while h, unwatched,
	// is. (After the session's end the recorder is gone and f pauses too.)
	lastBefore := func(rid string) (active, ok bool) {
		for _, m := range cmd.Messages(wire.TypeLayerControl) {
			if !m.At.Before(tEnd) {
				continue
			}
			if lc := payloadOf[wire.LayerControlMsg](t, m.Envelope); lc.RID == rid {
				active, ok = lc.Active, true
			}
		}
		return active, ok
	}
	if active, ok := lastBefore("f"); ok && !active {
		t.Error("the program's top layer was paused while recorded")
	}
	if active, ok := lastBefore("h"); !ok || active {
		t.Errorf("h, watched by nobody, not paused (last layer_control active=%v, seen=%v)", active, ok)
	}
	if n := len(rs); n < int(7*time.Second/split)-1 || n > int(window/split)+2 {
		t.Errorf("%d files for %v split every %v", n, window, split)
	}
	// Measured: the previous file is written until the next one's first
	// keyframe, so they overlap by tens of ms (a negative gap); a hole of more
	// than 1 s (5x the 200 ms a browser may take to answer the PLI) fails.
	if worstGap > time.Second {
		t.Errorf("a hole of %v between two files", worstGap)
	}
}
