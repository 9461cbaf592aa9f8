package signaling_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/wire"
)

// The private line is not recorded unless recording.private_line is on; when it
// is, the endpoint on the line is recorded as a file of its own (kind
// private_line) for as long as the line is open.
func TestRecordPrivateLineE2E(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		t.Run(name, func(t *testing.T) {
			a := apptest.Start(t, func(c *config.Config) { c.Recording.PrivateLine = on })
			l := &live{t: t, a: a, leader: a.User("lead", auth.RoleLeader)}
			l.startSession()
			x := l.communes(1)[0]
			lead := l.dial(l.leader.Token, wire.RoleConsole, false)
			ex := l.endpoint(x)
			for _, c := range []interface{ WaitConnected(time.Duration) error }{lead, ex} {
				if err := c.WaitConnected(20 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
			rows := func() []store.Recording {
				rs, err := a.Store.ListRecordings(context.Background(), l.sessID)
				if err != nil {
					t.Fatal(err)
				}
				return rs
			}
			find := func(state string) *store.Recording {
				for _, r := range rows() {
					if r.Kind == signaling.RecordPrivateLine && r.SourceCode == x && (state == "" || r.State == state) {
						return &r
					}
				}
				return nil
			}
			send(t, lead, wire.TypePrivateLineOpen, wire.CodeMsg{Code: x})
			if !on {
				// Nothing to wait for: give the recorder the time it takes when on
				// (logged there), five times over, and check nothing started.
				time.Sleep(5 * time.Second)
				if r := find(""); r != nil {
					t.Fatalf("private line recorded with recording.private_line off: %+v", *r)
				}
				return
			}
			d := waitT(t, "the private line's recording", 20*time.Second, func() bool { return find("open") != nil })
			t.Logf("private line recording open %v after the line opened", d)
			time.Sleep(3 * time.Second)
			send(t, lead, wire.TypePrivateLineClose, struct{}{})
			d = waitT(t, "the private line's recording closed", 20*time.Second, func() bool { return find("closed") != nil })
			t.Logf("closed %v after the line closed", d)
			r := find("closed")
			codecs, dur := probeCodecs(t, a.Recordings.Path(*r))
			t.Logf("private line file: streams %v, %v", codecs, dur)
			if !codecs["opus"] || dur < time.Second {
				t.Errorf("private line file: streams %v, duration %v", codecs, dur)
			}
		})
	}
}
