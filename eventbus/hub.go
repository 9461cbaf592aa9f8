// Package eventbus fans the audit log's events out to live readers (the SSE stream,
// signaling). It LISTENs on PostgreSQL, so every opscenter process on one database
// sees every change, and reads events by id so none is skipped or reordered.
package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opscenter/opscenter/store"
)

// Source is what the hub needs of the store.
type Source interface {
	EventsAfter(ctx context.Context, after int64, limit int) ([]store.Event, error)
	LastEventID(ctx context.Context) (int64, error)
}

// Hub delivers committed events, in id order, to subscribers.
type Hub struct {
	src  Source
	dsn  string
	log  *slog.Logger
	mu   sync.Mutex
	subs map[*Sub]struct{}
	// last is the id of the last event handed out; -1 until the chain head has been
	// read, so a hub that starts while PostgreSQL is away never replays the history.
	last atomic.Int64
	// ready is closed once last holds the chain head: from then on the hub hands
	// out every later event, so a follower that starts from a position is whole.
	ready     chan struct{}
	readyOnce sync.Once
}

// Sub is one subscriber. C is closed when the subscriber falls too far behind (it
// should resume from its last id) or when the hub stops.
type Sub struct {
	C   chan store.Event
	hub *Hub
}

// Close unsubscribes.
func (s *Sub) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if _, ok := s.hub.subs[s]; ok {
		delete(s.hub.subs, s)
		close(s.C)
	}
}

// New makes a hub reading from src and listening on the database at dsn.
func New(src Source, dsn string, log *slog.Logger) *Hub {
	h := &Hub{src: src, dsn: dsn, log: log, subs: map[*Sub]struct{}{}, ready: make(chan struct{})}
	h.last.Store(-1)
	return h
}

// Subscribe returns a subscription to events committed from now on. It is cut off
// when it falls behind: callers that must lose nothing use Follow, or backfill from
// the store themselves and skip ids they have already seen.
func (h *Hub) Subscribe(buffer int) *Sub {
	s := &Sub{C: make(chan store.Event, buffer), hub: h}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Run listens until ctx ends, reconnecting with back-off when the database goes away.
func (h *Hub) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.listen(ctx)
		if ctx.Err() != nil {
			break
		}
		h.log.Warn("event hub: listener lost, retrying", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	h.mu.Lock()
	for s := range h.subs {
		delete(h.subs, s)
		close(s.C)
	}
	h.mu.Unlock()
}

func (h *Hub) listen(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, h.dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+store.NotifyChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if h.last.Load() < 0 {
		// First connection: start at the chain head. What committed before is history,
		// not news; readers that want it backfill by id.
		head, err := h.src.LastEventID(ctx)
		if err != nil {
			return fmt.Errorf("read the chain head: %w", err)
		}
		h.last.Store(head)
		h.readyOnce.Do(func() { close(h.ready) })
	}
	// Catch up on anything committed while we were not listening.
	if err := h.drain(ctx); err != nil {
		return err
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("wait: %w", err)
		}
		// On a timeout too: a cheap poll guards against a lost notification.
		if err := h.drain(ctx); err != nil {
			return err
		}
	}
}

// drain reads every event after the last delivered one and hands it out.
func (h *Hub) drain(ctx context.Context) error {
	for {
		evs, err := h.src.EventsAfter(ctx, h.last.Load(), 500)
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		for _, e := range evs {
			h.publish(e)
			h.last.Store(e.ID)
		}
		if len(evs) < 500 {
			return nil
		}
	}
}

func (h *Hub) publish(e store.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.C <- e:
		default:
			// Never wait on a slow reader: cut it off; it resumes by id and loses nothing.
			delete(h.subs, s)
			close(s.C)
		}
	}
}
