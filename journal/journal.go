// Package journal keeps live-session audit events (floor, mute, hands) durable on
// local disk while PostgreSQL is unreachable, and writes them in order when it returns.
// The live session never waits on the database: an action applies at once, and its
// audit record is either committed or fsynced to the journal before Record returns.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/store"
)

// Sink is where events finally go: the store. RecordEvent must be idempotent by Key.
type Sink interface {
	RecordEvent(ctx context.Context, e store.Event) (int64, error)
}

// Journal is a write-ahead queue in front of the sink. Once anything is queued, later
// events queue behind it, so the log keeps the order in which things happened.
type Journal struct {
	path string
	sink Sink
	log  *slog.Logger

	mu     sync.Mutex // serialises writes, so order is kept
	f      *os.File
	queued []store.Event
	wake   chan struct{}
}

// Open reads any events left by an earlier run (a torn last line is dropped: it was
// never acknowledged) and opens the file for appending.
func Open(path string, sink Sink, log *slog.Logger) (*Journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("journal dir: %w", err)
	}
	j := &Journal{path: path, sink: sink, log: log, wake: make(chan struct{}, 1)}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var en entry
		if err := json.Unmarshal(sc.Bytes(), &en); err != nil || en.Key == "" {
			log.Warn("journal: dropping a torn entry", "err", err)
			continue
		}
		en.Event.Key = en.Key
		j.queued = append(j.queued, en.Event)
	}
	if err := j.rewrite(); err != nil {
		return nil, err
	}
	if len(j.queued) > 0 {
		log.Info("journal: events waiting from an earlier run", "count", len(j.queued))
	}
	return j, nil
}

// entry is the on-disk form; Key is kept (store.Event hides it from JSON).
type entry struct {
	store.Event
	Key string `json:"key"`
}

// Record writes e to the store, or, when the store is unreachable or events are
// already waiting, appends it durably to the journal. It returns an error only when
// the event is invalid or cannot be made durable at all.
func (j *Journal) Record(ctx context.Context, e store.Event) error {
	if e.Key == "" {
		e.Key = uuid.NewString()
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.queued) == 0 {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := j.sink.RecordEvent(wctx, e)
		cancel()
		if err == nil {
			return nil
		}
		if !store.IsUnavailable(err) {
			return err
		}
		j.log.Warn("journal: database unavailable; queueing audit events on disk", "err", err)
	}
	if err := j.append(e); err != nil {
		return err
	}
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return nil
}

// Pending is how many events wait for the database.
func (j *Journal) Pending() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.queued)
}

// Run drains the journal into the store until ctx ends, retrying with back-off.
func (j *Journal) Run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-j.wake:
		case <-t.C:
		}
		if err := j.flush(ctx); err != nil {
			j.log.Debug("journal: flush deferred", "err", err, "pending", j.Pending())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 250 * time.Millisecond
	}
}

// flush writes queued events in order; each is idempotent by its key, so a crash
// between the write and the rewrite of the file never duplicates an event.
func (j *Journal) flush(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.queued) == 0 {
		return nil
	}
	n := 0
	var ferr error
	for _, e := range j.queued {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := j.sink.RecordEvent(wctx, e)
		cancel()
		if err != nil {
			if !store.IsUnavailable(err) {
				// A poisoned entry would block the journal forever: log it loudly and move on.
				j.log.Error("journal: dropping an event the database refuses", "action", e.Action, "err", err)
				n++
				continue
			}
			ferr = err
			break
		}
		n++
	}
	if n > 0 {
		j.queued = j.queued[n:]
		if err := j.rewrite(); err != nil {
			return err
		}
		if len(j.queued) == 0 {
			j.log.Info("journal: all queued audit events written", "count", n)
		}
	}
	return ferr
}

func (j *Journal) append(e store.Event) error {
	b, err := json.Marshal(entry{Event: e, Key: e.Key})
	if err != nil {
		return fmt.Errorf("journal encode: %w", err)
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("journal write: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal fsync: %w", err)
	}
	j.queued = append(j.queued, e)
	return nil
}

// rewrite replaces the file with what is still queued (write, fsync, rename).
func (j *Journal) rewrite() error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal rewrite: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, e := range j.queued {
		b, err := json.Marshal(entry{Event: e, Key: e.Key})
		if err != nil {
			f.Close()
			return fmt.Errorf("journal encode: %w", err)
		}
		w.Write(b)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("journal rewrite: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("journal close: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("journal rename: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, err = os.OpenFile(j.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal reopen: %w", err)
	}
	return nil
}

// Close closes the file; queued events stay on disk for the next run.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
