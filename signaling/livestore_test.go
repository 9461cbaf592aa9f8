package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// flakyLiveStore is PostgreSQL away (each save hangs until its deadline) and
// then back.
type flakyLiveStore struct {
	mu    sync.Mutex
	down  bool
	tries int
	saved []byte
}

func (f *flakyLiveStore) LoadLiveState(context.Context) ([]byte, error) { return nil, nil }

func (f *flakyLiveStore) SaveLiveState(ctx context.Context, doc []byte) error {
	f.mu.Lock()
	down := f.down
	f.tries++
	f.mu.Unlock()
	if down {
		<-ctx.Done() // a hung connection: the writer's own deadline ends it
		return errors.New("database unavailable (test)")
	}
	f.mu.Lock()
	f.saved = append([]byte(nil), doc...)
	f.mu.Unlock()
	return nil
}

func (f *flakyLiveStore) state(t *testing.T) (LiveState, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var st LiveState
	if f.saved != nil {
		if err := json.Unmarshal(f.saved, &st); err != nil {
			t.Fatal(err)
		}
	}
	return st, f.tries
}

// While the live state cannot be saved, the room goes on (changes apply at
// once), the writer keeps trying, and when the store is back the newest state
// is what it saves.
func TestLiveStateSaveRetriesWithTheNewestState(t *testing.T) {
	fs := &flakyLiveStore{down: true}
	s := &Service{log: slog.New(slog.DiscardHandler), saveC: make(chan struct{}, 1), liveStore: fs}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.room = newRoom(func() {})
	s.room.onState = s.stateChanged
	for _, c := range []string{"07192", "07195", "07198"} {
		s.room.inRoster[c] = true
	}
	s.wg.Add(1)
	go s.stateLoop()
	defer s.Close()

	give := func(code string) time.Duration {
		start := time.Now()
		s.room.mu.Lock()
		s.room.sessionID, s.room.floor = "sess-1", code
		s.room.member(code).muted = true
		s.room.mu.Unlock()
		s.room.onState()
		return time.Since(start)
	}
	for _, code := range []string{"07192", "07195", "07198"} {
		if d := give(code); d > 100*time.Millisecond {
			t.Fatalf("a change waited %v for the store", d)
		}
		time.Sleep(700 * time.Millisecond) // a save attempt is hanging meanwhile
	}
	if _, tries := fs.state(t); tries < 2 {
		t.Fatalf("%d save attempts while the store was away, want retries", tries)
	}
	fs.mu.Lock()
	fs.down = false
	fs.mu.Unlock()
	back := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, tries := fs.state(t)
		if st.Floor == "07198" {
			if len(st.Muted) != 3 {
				t.Fatalf("saved mutes %v, want all three", st.Muted)
			}
			t.Logf("newest state saved %v after the store returned (%d attempts in all)", time.Since(back).Round(time.Millisecond), tries)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("newest state not saved 10 s after the store returned: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
