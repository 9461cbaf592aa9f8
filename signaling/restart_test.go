package signaling_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// dialAuto connects a synthetic client with AutoReconnect.
func (l *live) dialAuto(token, role string, publish bool) *client.Client {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URL: l.a.URL(), Token: token, Role: role, Publish: publish,
		Layers: testLayers, FPS: 10, AutoReconnect: true, ReconnectMax: 2 * time.Second})
	if err != nil {
		l.t.Fatalf("dial %s: %v", role, err)
	}
	l.t.Cleanup(c.Close)
	return c
}

// The live state survives a crash: app A runs a session with a floor, a mute,
// a hand queue and a private line, and dies without any clean-up. App B starts on
// the same database, state file and address; the synthetic clients reconnect by
// themselves and get their state back, and the floor's media flows again.
func TestLiveStateSurvivesCrash(t *testing.T) {
	a := apptest.Start(t, nil)
	l := &live{t: t, a: a, leader: a.User("lead", auth.RoleLeader)}
	l.startSession()
	codes := l.communes(5)
	floor, muted, hand1, hand2, watcher := codes[0], codes[1], codes[2], codes[3], codes[4]

	cmd := l.dialAuto(a.Endpoint(signaling.CommandCode).Token, wire.RoleConsole, true)
	lead := l.dialAuto(l.leader.Token, wire.RoleConsole, false)
	eps := map[string]*client.Client{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, code := range codes {
		tok := a.Endpoint(code).Token
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := l.dialAuto(tok, wire.RoleEndpoint, true)
			mu.Lock()
			eps[code] = c
			mu.Unlock()
		}()
	}
	wg.Wait()
	_ = cmd

	since := time.Now()
	send(t, lead, wire.TypeGiveFloor, wire.CodeMsg{Code: floor})
	send(t, lead, wire.TypeMute, wire.CodeMsg{Code: muted})
	send(t, eps[hand1], wire.TypeRaiseHand, nil)
	time.Sleep(50 * time.Millisecond)
	send(t, eps[hand2], wire.TypeRaiseHand, nil)
	send(t, lead, wire.TypePrivateLineOpen, wire.CodeMsg{Code: hand2})
	waitT(t, "state applied", 10*time.Second, func() bool {
		_, err := eps[watcher].WaitMessage(wire.TypeHands, since, 0, func(e wire.Envelope) bool {
			return strings.Contains(string(e.Payload), hand2)
		})
		return err == nil && !eps[watcher].Recorder().FirstFrom(signaling.SlotFloorVideo, floor, since).IsZero()
	})
	st := a.Store // the live state is in PostgreSQL
	waitT(t, "live state saved", 5*time.Second, func() bool {
		b, _ := st.LoadLiveState(context.Background())
		return strings.Contains(string(b), `"private_line": "`+hand2+`"`)
	})
	b, _ := st.LoadLiveState(context.Background())
	t.Logf("live state before the crash:\n%s", b)

	// Crash: connections cut without close frames, no clean-up of the state file.
	addr, dsn, journal := a.HTTPAddr(), a.DSN, a.Config.Database.JournalPath
	crash := time.Now()
	a.Kill()
	t.Logf("app A killed; starting app B on %s", addr)
	var bApp *apptest.App
	waitT(t, "app B listening on the same address", 20*time.Second, func() bool {
		ok := func() (ok bool) {
			defer func() {
				if recover() != nil {
					ok = false
				}
			}()
			bApp = apptest.StartDSN(&quietTB{TB: t}, dsn, func(c *config.Config) {
				c.HTTP.Addr, c.HTTP.PublicURL = addr, "http://"+addr
				c.Database.JournalPath = journal
			})
			return true
		}()
		return ok
	})
	t.Logf("app B up %v after the crash", time.Since(crash))

	all := append([]*client.Client{cmd, lead}, valuesOf(eps)...)
	for _, c := range all {
		if err := c.WaitReconnected(1, 45*time.Second); err != nil {
			t.Fatalf("%s did not come back: %v", c.Code(), err)
		}
	}
	t.Logf("all %d clients reconnected and media-connected %v after the crash", len(all), time.Since(crash))

	for code, c := range eps {
		st := c.Welcome().State
		if st.Session != "in_progress" || st.SessionID == nil || *st.SessionID != l.sessID {
			t.Errorf("%s: session %q %v after the restart", code, st.Session, st.SessionID)
		}
		if st.Floor == nil || *st.Floor != floor {
			t.Errorf("%s: floor %v after the restart, want %s", code, st.Floor, floor)
		}
		if !slices.Equal(st.Hands, []string{hand1, hand2}) {
			t.Errorf("%s: hands %v after the restart, want [%s %s] in order", code, st.Hands, hand1, hand2)
		}
		if st.Muted != (code == muted) {
			t.Errorf("%s: muted=%v after the restart", code, st.Muted)
		}
		if st.HandRaised != (code == hand1 || code == hand2) {
			t.Errorf("%s: hand_raised=%v after the restart", code, st.HandRaised)
		}
	}
	if st := eps[hand2].Welcome().State; st.PrivateLine == nil || *st.PrivateLine != hand2 {
		t.Errorf("private line %v after the restart, want %s", st.PrivateLine, hand2)
	}
	// The floor's media flows again from app B.
	d := waitT(t, "floor media after the restart", 20*time.Second, func() bool {
		return !eps[watcher].Recorder().FirstFrom(signaling.SlotFloorVideo, floor, crash).IsZero()
	})
	t.Logf("the watcher receives the floor (%s) again %v after waiting", floor, d)
	if p := bApp.Live.Presence(floor); p == wire.StateOffline {
		t.Errorf("floor holder offline on app B")
	}
}

func valuesOf(m map[string]*client.Client) []*client.Client {
	out := make([]*client.Client, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	return out
}

// quietTB turns Fatal during a retried start into a panic the retry recovers.
type quietTB struct{ testing.TB }

func (q *quietTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }
func (q *quietTB) Fatalf(f string, args ...any) {
	panic(fmt.Sprintf(f, args...))
}
func (q *quietTB) Helper() {}
