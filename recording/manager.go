// Package recording runs the video record: it owns recording.dir, starts and
// stops record.Recorder files for the program and the floor, indexes each file
// in PostgreSQL (store.Recording, with audit events), repairs files left open by
// a crash, deletes files past their retention, watches free space, and verifies
// files against their SHA-256.
//
// The media plane feeds it. For each recorded stream (the program; each floor
// holder in turn):
//
//	h, err := mgr.Start(ctx, sessionID, recording.Program, "22",
//		record.WithKeyframeRequest(func() { go sendPLI() }))
//	if errors.Is(err, recording.ErrDiskLow) || errors.Is(err, recording.ErrDisabled) { ... don't record ... }
//	rec := h.Recorder()
//	// per RTP packet, per RTCP sender report, until h.Done() is closed:
//	rec.WriteVideoRTP(pkt); rec.WriteAudioRTP(pkt); rec.SenderReport(record.Video, ntp, rtpTS)
//	// when the stream ends (floor revoked, publisher gone):
//	row, err := h.Close()
//	// when the session ends: every recording of it at once
//	rows, err := mgr.StopSession(sessionID)
//
// In the app the manager is app.App.Recordings; it is made, repaired (RepairOpen)
// and run (Go: free space, retention) at start, and closed after the media plane
// at stop.
//
// The manager may stop a recording itself (free space below recording.min_free);
// h.Done() is then closed and the recorder's writes return record.ErrClosed.
// Media is never affected: recording is a subscriber like any other.
package recording

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/opscenter/opscenter/record"
	"github.com/opscenter/opscenter/store"
)

// Kinds of recording.
const (
	Program     = "program"
	Floor       = "floor"
	PrivateLine = "private_line"
)

// Actor is who recording audit events are written as.
const Actor = "system"

// Errors returned by Start.
var (
	ErrDisabled    = errors.New("recording: disabled")
	ErrDiskLow     = errors.New("recording: free space below recording.min_free")
	ErrNotRecorded = errors.New("recording: this kind is not recorded")
	ErrClosed      = errors.New("recording: manager closed")
)

// Options configure a Manager.
type Options struct {
	Enabled     bool
	Dir         string
	Keep        time.Duration // 0: forever
	MinFree     int64         // bytes
	PrivateLine bool          // record the private line too
	Log         *slog.Logger
	// Registry, if not nil, gets the opscenter_recording_disk_low gauge (and
	// opscenter_recording_active).
	Registry prometheus.Registerer
	// OnDiskLow, if not nil, is called when free space falls below MinFree
	// (low=true) and when it recovers (low=false). Wire it to the consoles.
	OnDiskLow func(low bool, free, minFree int64)
	// DiskCheckEvery and RetentionEvery pace Run (defaults 5s and 10m).
	DiskCheckEvery time.Duration
	RetentionEvery time.Duration
	// FreeSpace returns the bytes available on dir's file system; the default
	// uses statfs. Tests replace it.
	FreeSpace func(dir string) (int64, error)
	// RecordOptions are passed to every record.NewWriter (before Start's own).
	RecordOptions []record.Option
	// Now is the clock for retention (default time.Now).
	Now func() time.Time
}

// Manager owns recording.dir and the recordings in progress. It is safe for
// concurrent use.
type Manager struct {
	st   *store.Store
	opt  Options
	log  *slog.Logger
	low  prometheus.Gauge
	live prometheus.Gauge

	mu       sync.Mutex
	handles  map[string]*Handle
	diskLow  bool
	closed   bool
	stopLoop context.CancelFunc
	loopDone chan struct{}
}

// New makes a manager on st. The directory is created when recording is enabled.
func New(st *store.Store, opt Options) (*Manager, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.FreeSpace == nil {
		opt.FreeSpace = FreeSpace
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.DiskCheckEvery <= 0 {
		opt.DiskCheckEvery = 5 * time.Second
	}
	if opt.RetentionEvery <= 0 {
		opt.RetentionEvery = 10 * time.Minute
	}
	if opt.Dir == "" {
		return nil, errors.New("recording: no directory")
	}
	abs, err := filepath.Abs(opt.Dir)
	if err != nil {
		return nil, fmt.Errorf("recording: dir: %w", err)
	}
	opt.Dir = abs
	if opt.Enabled {
		if err := os.MkdirAll(opt.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("recording: create %s: %w", opt.Dir, err)
		}
	}
	m := &Manager{st: st, opt: opt, log: opt.Log, handles: map[string]*Handle{},
		low: prometheus.NewGauge(prometheus.GaugeOpts{Name: "opscenter_recording_disk_low",
			Help: "1 while free space on recording.dir is below recording.min_free (no recording runs)."}),
		live: prometheus.NewGauge(prometheus.GaugeOpts{Name: "opscenter_recording_active",
			Help: "Recordings being written."}),
	}
	if opt.Registry != nil {
		if err := opt.Registry.Register(m.low); err != nil {
			return nil, fmt.Errorf("recording: register metric: %w", err)
		}
		if err := opt.Registry.Register(m.live); err != nil {
			return nil, fmt.Errorf("recording: register metric: %w", err)
		}
	}
	return m, nil
}

// Dir is the absolute recording directory.
func (m *Manager) Dir() string { return m.opt.Dir }

// Path is the absolute path of a recording's file.
func (m *Manager) Path(r store.Recording) string { return Resolve(m.opt.Dir, r.Path) }

// Resolve joins a recording's relative path to dir, refusing anything that
// would leave it ("" then).
func Resolve(dir, rel string) string {
	if !store.ValidRecordingPath(rel) {
		return ""
	}
	return filepath.Join(dir, filepath.FromSlash(rel))
}

// Handle is one recording in progress.
type Handle struct {
	m    *Manager
	row  store.Recording
	path string
	rec  *record.Recorder
	done chan struct{}

	once   sync.Once
	result store.Recording
	err    error
}

// ID is the recording's id (its row in the index).
func (h *Handle) ID() string { return h.row.ID }

// Path is the file's absolute path.
func (h *Handle) Path() string { return h.path }

// Row is the index row as it was opened.
func (h *Handle) Row() store.Recording { return h.row }

// Recorder is where the media plane writes RTP packets and sender reports.
func (h *Handle) Recorder() *record.Recorder { return h.rec }

// Done is closed when the recording has stopped: by Close, or by the manager
// (disk low, shutdown).
func (h *Handle) Done() <-chan struct{} { return h.done }

// Close finishes the file and closes its row (recording.closed). A recording
// that never got media is removed and its row marked deleted (note no_media).
// Calling it again returns the first result.
func (h *Handle) Close() (store.Recording, error) { return h.stop("") }

func (h *Handle) stop(note string) (store.Recording, error) {
	h.once.Do(func() {
		h.result, h.err = h.finish(note)
		h.m.mu.Lock()
		delete(h.m.handles, h.row.ID)
		h.m.live.Set(float64(len(h.m.handles)))
		h.m.mu.Unlock()
		close(h.done)
	})
	return h.result, h.err
}

func (h *Handle) finish(note string) (store.Recording, error) {
	m := h.m
	info, err := h.rec.Close()
	if errors.Is(err, record.ErrClosed) {
		return h.row, fmt.Errorf("recording %s: the recorder was closed outside its handle: %w", h.row.ID, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if errors.Is(err, record.ErrNoMedia) {
		if note == "" {
			note = "no_media"
		}
		row, derr := m.st.MarkDeleted(ctx, Actor, h.row.ID, note)
		if derr != nil {
			return row, fmt.Errorf("recording %s: index: %w", h.row.ID, derr)
		}
		return row, nil
	}
	repaired := false
	if err != nil {
		// The file could not be finished (a write failed: disk full?). Keep what
		// is whole, as a crash would.
		m.log.Error("recording: finish failed, repairing", "id", h.row.ID, "path", h.path, "err", err)
		rinfo, rerr := record.Repair(h.path)
		if rerr != nil {
			return h.row, fmt.Errorf("recording %s: %w (repair: %v); left open for repair at start", h.row.ID, err, rerr)
		}
		info, repaired = rinfo, true
		note = strings.TrimPrefix(note+"; write failed: "+err.Error(), "; ")
	}
	row, err := m.st.CloseRecording(ctx, Actor, h.row.ID, endOf(info, repaired, note))
	if err != nil {
		return row, fmt.Errorf("recording %s: index: %w (the row stays open; it is closed at the next start)", h.row.ID, err)
	}
	m.log.Info("recording closed", "id", row.ID, "kind", row.Kind, "source", row.SourceCode,
		"path", row.Path, "bytes", info.Size, "duration", info.Duration, "note", note)
	return row, nil
}

func endOf(info record.Info, repaired bool, note string) store.RecordingEnd {
	end := store.RecordingEnd{Repaired: repaired, StartedAt: info.Start, EndedAt: info.End, Size: info.Size,
		SHA256: info.SHA256, Duration: info.Duration, Width: info.Width, Height: info.Height, Note: note}
	if end.EndedAt.IsZero() || end.EndedAt.Year() < 2000 {
		end.StartedAt, end.EndedAt = time.Time{}, time.Now()
	}
	return end
}

// Start begins recording: it indexes the file (recording.started) and creates it
// with record.NewWriter. kind is Program, Floor or PrivateLine; source is the
// endpoint code whose media it is. It refuses with ErrDisabled, ErrNotRecorded
// (the private line, unless configured), or ErrDiskLow.
func (m *Manager) Start(ctx context.Context, sessionID, kind, source string, opts ...record.Option) (*Handle, error) {
	if !m.opt.Enabled {
		return nil, ErrDisabled
	}
	switch kind {
	case Program, Floor:
	case PrivateLine:
		if !m.opt.PrivateLine {
			return nil, ErrNotRecorded
		}
	default:
		return nil, fmt.Errorf("recording: kind %q: %w", kind, ErrNotRecorded)
	}
	if !validSource(source) {
		return nil, fmt.Errorf("recording: source %q is not an endpoint code", source)
	}
	if low, _, err := m.CheckDisk(); err != nil {
		return nil, fmt.Errorf("recording: free space: %w", err)
	} else if low {
		return nil, ErrDiskLow
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}

	id := uuid.NewString()
	now := time.Now().UTC()
	rel := fmt.Sprintf("%s/%s-%s-%s-%s.webm", sessionID, now.Format("20060102T150405Z"), kind, orDash(source), id[:8])
	row, err := m.st.OpenRecording(ctx, Actor, store.NewRecording{ID: id, SessionID: sessionID, Kind: kind,
		SourceCode: source, Path: rel, StartedAt: now})
	if err != nil {
		return nil, fmt.Errorf("recording: index: %w", err)
	}
	path := m.Path(row)
	rec, err := m.create(path, opts)
	if err != nil {
		if _, derr := m.st.MarkDeleted(ctx, Actor, id, "create_failed"); derr != nil {
			m.log.Error("recording: mark a file that could not be created", "id", id, "err", derr)
		}
		return nil, fmt.Errorf("recording: create %s: %w", path, err)
	}
	h := &Handle{m: m, row: row, path: path, rec: rec, done: make(chan struct{})}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_, _ = h.stop("shutdown")
		return nil, ErrClosed
	}
	m.handles[id] = h
	m.live.Set(float64(len(m.handles)))
	m.mu.Unlock()
	m.log.Info("recording started", "id", id, "kind", kind, "source", source, "path", rel)
	return h, nil
}

func (m *Manager) create(path string, opts []record.Option) (*record.Recorder, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	all := append(append([]record.Option(nil), m.opt.RecordOptions...), opts...)
	return record.NewWriter(path, all...)
}

func validSource(s string) bool {
	if len(s) > 16 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Active returns the recordings in progress.
func (m *Manager) Active() []*Handle {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Handle, 0, len(m.handles))
	for _, h := range m.handles {
		out = append(out, h)
	}
	return out
}

// StopSession finishes every recording of a session in progress (the session
// ended) and returns their rows.
func (m *Manager) StopSession(sessionID string) ([]store.Recording, error) {
	var rows []store.Recording
	var errs []error
	for _, h := range m.Active() {
		if h.row.SessionID != sessionID {
			continue
		}
		row, err := h.Close()
		rows = append(rows, row)
		errs = append(errs, err)
	}
	return rows, errors.Join(errs...)
}

// stopAll stops every recording in progress, noting why.
func (m *Manager) stopAll(note string) {
	for _, h := range m.Active() {
		if _, err := h.stop(note); err != nil {
			m.log.Error("recording: stop", "id", h.ID(), "err", err)
		}
	}
}

// Go runs Run in the background until Close.
func (m *Manager) Go() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.mu.Lock()
	m.stopLoop, m.loopDone = cancel, done
	m.mu.Unlock()
	go func() { defer close(done); m.Run(ctx) }()
}

// Close stops the background loop (Go), then the recordings in progress (their
// rows are closed), and refuses new ones.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	stop, done := m.stopLoop, m.loopDone
	m.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	m.stopAll("")
}

// DiskLow reports whether free space was below MinFree at the last check.
func (m *Manager) DiskLow() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.diskLow
}

// CheckDisk measures free space on the recording directory. On a change to low
// it raises the alert (OnDiskLow, the gauge) and stops every recording in
// progress; on recovery it clears them.
func (m *Manager) CheckDisk() (low bool, free int64, err error) {
	if m.opt.MinFree <= 0 {
		return false, 0, nil
	}
	free, err = m.opt.FreeSpace(m.opt.Dir)
	if err != nil {
		return false, 0, err
	}
	low = free < m.opt.MinFree
	m.mu.Lock()
	changed := low != m.diskLow
	m.diskLow = low
	m.mu.Unlock()
	if !changed {
		return low, free, nil
	}
	if low {
		m.low.Set(1)
		m.log.Error("recording: free space below recording.min_free; recordings stopped, none will start",
			"dir", m.opt.Dir, "free", free, "min_free", m.opt.MinFree)
		m.stopAll("disk_low")
	} else {
		m.low.Set(0)
		m.log.Warn("recording: free space recovered", "dir", m.opt.Dir, "free", free, "min_free", m.opt.MinFree)
	}
	if m.opt.OnDiskLow != nil {
		m.opt.OnDiskLow(low, free, m.opt.MinFree)
	}
	return low, free, nil
}

// FreeSpace returns the bytes available to an unprivileged user on dir's file
// system.
func FreeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil //nolint:unconvert // field types differ by platform
}

// Run checks free space every DiskCheckEvery and applies retention every
// RetentionEvery (and once at the start) until ctx is done.
func (m *Manager) Run(ctx context.Context) {
	if !m.opt.Enabled {
		return
	}
	disk := time.NewTicker(m.opt.DiskCheckEvery)
	defer disk.Stop()
	keep := time.NewTicker(m.opt.RetentionEvery)
	defer keep.Stop()
	m.retain(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-disk.C:
			if _, _, err := m.CheckDisk(); err != nil {
				m.log.Error("recording: free space", "dir", m.opt.Dir, "err", err)
			}
		case <-keep.C:
			m.retain(ctx)
		}
	}
}

func (m *Manager) retain(ctx context.Context) {
	if n, err := m.Retain(ctx); err != nil {
		m.log.Error("recording: retention", "err", err, "deleted", n)
	} else if n > 0 {
		m.log.Info("recording: retention deleted old recordings", "count", n, "keep", m.opt.Keep)
	}
}

// Retain deletes the files of recordings that ended more than Keep ago, each
// with a recording.deleted audit event, and returns how many it deleted.
func (m *Manager) Retain(ctx context.Context) (int, error) {
	if m.opt.Keep <= 0 {
		return 0, nil
	}
	old, err := m.st.RecordingsOlderThan(ctx, m.opt.Now().Add(-m.opt.Keep))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range old {
		p := m.Path(r)
		if p == "" {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("recording: delete %s: %w", p, err)
		}
		if d := filepath.Dir(p); d != m.opt.Dir {
			_ = os.Remove(d) // the session's folder, once empty
		}
		if _, err := m.st.MarkDeleted(ctx, Actor, r.ID, "retention"); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
