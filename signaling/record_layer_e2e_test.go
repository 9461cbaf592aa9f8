package signaling_test

import (
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/opscenter/opscenter/record"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/wire"
)

// A recording follows the best layer that flows. A publisher that does not
// send its top layer (a small camera sends two; a short uplink drops one) is
// recorded from the next one down; when the top layer comes back the
// recording moves up to it in a new file, and down again when it stops. Every
// file has video, and together they cover the time recorded.
func TestRecordFollowsLayerE2E(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	l := startLive(t)
	l.startSession()
	cmd := l.dial(l.a.Endpoint(signaling.CommandCode).Token, wire.RoleConsole, true)
	cmd.HoldLayer("f", true)
	t0 := time.Now()
	if err := cmd.WaitConnected(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rows := func() []store.Recording {
		rs, err := l.a.Store.ListRecordings(ctx, l.sessID)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(rs, func(a, b store.Recording) int { return a.StartedAt.Compare(b.StartedAt) })
		return rs
	}
	waitT(t, "the program's recording", 20*time.Second, func() bool { return len(rows()) > 0 })
	time.Sleep(5 * time.Second) // h only

	cmd.HoldLayer("f", false)
	d := waitT(t, "a file of the top layer", 30*time.Second, func() bool {
		rs := rows()
		return len(rs) >= 2 && rs[len(rs)-1].State == "open"
	})
	t.Logf("the top layer back: a new file %v after", d)
	time.Sleep(4 * time.Second)

	cmd.HoldLayer("f", true)
	n := len(rows())
	d = waitT(t, "a file of the layer below", 30*time.Second, func() bool { return len(rows()) > n })
	t.Logf("the top layer held: a new file %v after", d)
	time.Sleep(4 * time.Second)

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
	var widths []int
	var total time.Duration
	for i, r := range rows() {
		if r.State == "deleted" && r.Note == "no_media" {
			continue // an empty file, removed (see TestRecordSplitE2E)
		}
		if r.Kind != "program" || r.State != "closed" || r.SHA256 == nil {
			t.Errorf("file %d: %s state %s note %q", i, r.Kind, r.State, r.Note)
			continue
		}
		path := l.a.Recordings.Path(r)
		if err := record.Verify(path, *r.SHA256); err != nil {
			t.Error(err)
		}
		codecs, dur := probeCodecs(t, path)
		total += dur
		widths = append(widths, derefInt(r.Width))
		t.Logf("file %d: %v..%v, %dx%d, ffprobe %v, streams %v", i, r.StartedAt.Format("15:04:05.000"),
			r.EndedAt.Format("15:04:05.000"), derefInt(r.Width), derefInt(r.Height), dur, codecs)
		if !codecs["vp8"] || !codecs["opus"] {
			t.Errorf("file %d: streams %v, want vp8 and opus", i, codecs)
		}
	}
	// h (640) while f was held, f (1280) while it flowed, h again: in that order.
	if want := []int{640, 1280, 640}; !slices.Equal(widths, want) {
		t.Errorf("file widths %v, want %v", widths, want)
	}
	t.Logf("%d files, %v of media over a window of %v", len(widths), total, window)
	if total < window/2 {
		t.Errorf("the files hold %v of a %v window", total, window)
	}
}
