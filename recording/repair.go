package recording

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/opscenter/opscenter/record"
	"github.com/opscenter/opscenter/store"
)

// RepairReport says what RepairOpen did with each recording left open.
type RepairReport struct {
	Repaired []store.Recording // closed as repaired (file rebuilt, or found whole)
	Deleted  []store.Recording // no file, or nothing in it: marked deleted
	Failed   map[string]error  // by recording id: left open
}

// RepairOpen closes the rows of recordings left open by a process that died: each
// file is rebuilt with record.Repair when record.Inspect says it needs it, its
// SHA-256 is computed, and its row is closed as "repaired" (recording.repaired).
// A missing or empty file is marked deleted. Recordings this manager is writing
// are left alone. Call it at start, before Start.
func (m *Manager) RepairOpen(ctx context.Context) (RepairReport, error) {
	rep := RepairReport{Failed: map[string]error{}}
	open, err := m.st.OpenRecordings(ctx)
	if err != nil {
		return rep, err
	}
	for _, r := range open {
		m.mu.Lock()
		_, running := m.handles[r.ID]
		m.mu.Unlock()
		if running {
			continue
		}
		row, deleted, err := m.repairOne(ctx, r)
		switch {
		case err != nil:
			rep.Failed[r.ID] = err
			m.log.Error("recording: repair", "id", r.ID, "path", r.Path, "err", err)
		case deleted:
			rep.Deleted = append(rep.Deleted, row)
			m.log.Warn("recording: open recording had no media; marked deleted", "id", r.ID, "path", r.Path, "note", row.Note)
		default:
			rep.Repaired = append(rep.Repaired, row)
			m.log.Warn("recording: repaired a recording left open", "id", r.ID, "path", r.Path, "note", row.Note)
		}
	}
	return rep, nil
}

func (m *Manager) repairOne(ctx context.Context, r store.Recording) (store.Recording, bool, error) {
	path := m.Path(r)
	if path == "" {
		return r, false, fmt.Errorf("recording %s: bad path %q", r.ID, r.Path)
	}
	fi, err := record.Inspect(path)
	if errors.Is(err, os.ErrNotExist) {
		row, err := m.st.MarkDeleted(ctx, Actor, r.ID, "missing_at_repair")
		return row, true, err
	}
	if err != nil {
		// Not even a header: the writer died before the first keyframe.
		if st, serr := os.Stat(path); serr == nil && st.Size() < 4096 {
			_ = os.Remove(path)
			row, err := m.st.MarkDeleted(ctx, Actor, r.ID, "no_media")
			return row, true, err
		}
		return r, false, fmt.Errorf("inspect %s: %w", path, err)
	}
	var end store.RecordingEnd
	if fi.NeedsRepair() {
		info, err := record.Repair(path)
		if errors.Is(err, record.ErrNoMedia) {
			_ = os.Remove(path)
			row, err := m.st.MarkDeleted(ctx, Actor, r.ID, "no_media")
			return row, true, err
		}
		if err != nil {
			return r, false, err
		}
		end = endOf(info, true, "file rebuilt at start")
	} else {
		sum, size, err := record.FileSHA256(path)
		if err != nil {
			return r, false, err
		}
		end = store.RecordingEnd{Repaired: true, StartedAt: fi.Start, Size: size, SHA256: sum,
			Duration: fi.Duration, Note: "file was whole; index closed at start"}
		if !fi.Start.IsZero() {
			end.EndedAt = fi.Start.Add(fi.Duration)
		}
	}
	row, err := m.st.CloseRecording(ctx, Actor, r.ID, end)
	return row, false, err
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Checked int               `json:"checked"`
	OK      int               `json:"ok"`
	Missing []store.Recording `json:"missing"`
	Altered []store.Recording `json:"altered"`
	// Errors are files that could not be read (permissions, I/O), by id.
	Errors map[string]string `json:"errors,omitempty"`
}

// Bad reports whether any file is missing, altered or unreadable.
func (r VerifyReport) Bad() bool { return len(r.Missing)+len(r.Altered)+len(r.Errors) > 0 }

// Verify checks every kept recording (closed or repaired) against its recorded
// SHA-256. progress, if not nil, is called before each file.
func (m *Manager) Verify(ctx context.Context, progress func(i, n int, r store.Recording)) (VerifyReport, error) {
	rep := VerifyReport{Missing: []store.Recording{}, Altered: []store.Recording{}}
	kept, err := m.st.KeptRecordings(ctx)
	if err != nil {
		return rep, err
	}
	for i, r := range kept {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if progress != nil {
			progress(i, len(kept), r)
		}
		rep.Checked++
		path := m.Path(r)
		if r.SHA256 == nil || path == "" {
			rep.Altered = append(rep.Altered, r)
			continue
		}
		err := record.Verify(path, *r.SHA256)
		switch {
		case err == nil:
			rep.OK++
		case errors.Is(err, os.ErrNotExist):
			rep.Missing = append(rep.Missing, r)
		case errors.Is(err, record.ErrMismatch):
			rep.Altered = append(rep.Altered, r)
		default:
			if rep.Errors == nil {
				rep.Errors = map[string]string{}
			}
			rep.Errors[r.ID] = err.Error()
		}
	}
	return rep, nil
}
