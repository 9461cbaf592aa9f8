package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// LiveStateStore keeps the room's live state document (LiveState as JSON).
// *store.Store keeps it in PostgreSQL, where a node's standby process reads it
// when it takes over; FileLiveState keeps it in a local file.
type LiveStateStore interface {
	// LoadLiveState returns the saved document, or nil when there is none.
	LoadLiveState(ctx context.Context) ([]byte, error)
	// SaveLiveState replaces the document; it may fail while the store is away
	// (the caller retries with its newest state).
	SaveLiveState(ctx context.Context, doc []byte) error
}

// restoreState loads the saved live state into the empty room at start.
func (s *Service) restoreState(ctx context.Context, curID string) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	doc, err := s.liveStore.LoadLiveState(lctx)
	cancel()
	if err == nil && doc == nil {
		return
	}
	var st LiveState
	if err == nil {
		err = json.Unmarshal(doc, &st)
	}
	if err == nil && st.Version != liveStateVersion {
		err = fmt.Errorf("version %d, want %d", st.Version, liveStateVersion)
	}
	if err != nil { // a damaged state must not stop election day: log it and start empty
		s.log.Error("signaling: live state not restored", "err", err)
		return
	}
	restored := s.room.restore(st, curID, time.Now())
	s.log.Info("signaling: live state restored", "saved_at", st.SavedAt,
		"session", st.SessionID, "current_session", curID, "restored", restored)
	// Outages found at the restore are saved before anything else happens, so
	// another stop keeps their loss times (and their incident ids).
	s.saveState(nil, time.Time{})
}

// FileLiveState keeps the live state in one local file, rewritten atomically
// (a single process that restarts on the same machine; tests).
type FileLiveState struct{ Path string }

// LoadLiveState reads the file; a missing file is no state.
func (f FileLiveState) LoadLiveState(context.Context) ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read live state: %w", err)
	}
	return b, nil
}

// SaveLiveState rewrites the file atomically.
func (f FileLiveState) SaveLiveState(_ context.Context, doc []byte) error {
	if err := writeFileAtomic(f.Path, doc); err != nil {
		return fmt.Errorf("write live state %s: %w", f.Path, err)
	}
	return nil
}

// writeFileAtomic writes b to path: a temporary file, fsync, rename, fsync of
// the folder. A crash leaves either the old or the new file, never a torn one.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
