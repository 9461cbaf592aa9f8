package recording_test

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/opscenter/opscenter/record"
	"github.com/opscenter/opscenter/recording"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// synthVP8 is a made-up VP8 stream (30 fps, a keyframe each second): the
// recorder does not decode, so random bytes behind a valid keyframe header do.
// (A copy of record's benchmark helper.)
func synthVP8(frames int) []*rtp.Packet {
	rng := rand.New(rand.NewSource(1))
	pz := rtp.NewPacketizer(1200, 96, 1, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewFixedSequencer(0), 90000)
	var out []*rtp.Packet
	for i := 0; i < frames; i++ {
		n := 3000
		if i%30 == 0 {
			n = 20000
		}
		fr := make([]byte, n)
		rng.Read(fr)
		if i%30 == 0 {
			copy(fr, []byte{0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}) // 640x360
		} else {
			fr[0] |= 1
		}
		out = append(out, pz.Packetize(fr, 3000)...)
	}
	return out
}

func feed(t *testing.T, rec *record.Recorder, frames int) {
	t.Helper()
	for _, p := range synthVP8(frames) {
		if err := rec.WriteVideoRTP(p); err != nil {
			t.Fatal(err)
		}
	}
}

type fixture struct {
	st   *store.Store
	sess store.Session
	dir  string
	free atomic.Int64
	reg  *prometheus.Registry

	mu     sync.Mutex
	alerts []bool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{st: storetest.NewWithRoster(t), dir: t.TempDir(), reg: prometheus.NewRegistry()}
	f.free.Store(100 << 30)
	ctx := context.Background()
	start := time.Date(2021, 5, 23, 6, 30, 0, 0, time.UTC)
	s, _, err := f.st.CreateSession(ctx, "user:lead", store.NewSession{ID: uuid.NewString(), Title: "Bầu cử",
		PlannedStart: start, PlannedEnd: start.Add(12 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if f.sess, err = f.st.StartSession(ctx, "user:lead", s.ID); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) manager(t *testing.T, mutate func(*recording.Options)) *recording.Manager {
	t.Helper()
	o := recording.Options{Enabled: true, Dir: f.dir, MinFree: 2 << 30, Registry: f.reg,
		FreeSpace: func(string) (int64, error) { return f.free.Load(), nil },
		OnDiskLow: func(low bool, _, _ int64) { f.mu.Lock(); f.alerts = append(f.alerts, low); f.mu.Unlock() },
		// No fsync per cluster: tests measure behaviour, not durability.
		RecordOptions: []record.Option{record.WithSync(false)},
	}
	if mutate != nil {
		mutate(&o)
	}
	m, err := recording.New(f.st, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func (f *fixture) actions(t *testing.T, entity string) []string {
	t.Helper()
	evs, err := f.st.EventsAfter(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if e.EntityID == entity {
			out = append(out, e.Action)
		}
	}
	return out
}

func TestRecordingStartCloseVerify(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	m := f.manager(t, nil)

	h, err := m.Start(ctx, f.sess.ID, recording.Program, "22")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.Path()); err != nil || !strings.HasPrefix(h.Path(), m.Dir()) {
		t.Fatalf("file %s: %v", h.Path(), err)
	}
	row, _ := f.st.GetRecording(ctx, h.ID())
	if row.State != "open" || row.Kind != "program" || row.SourceCode != "22" {
		t.Fatalf("row while recording: %+v", row)
	}
	feed(t, h.Recorder(), 95)
	closed, err := h.Close()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if closed.State != "closed" || closed.SHA256 == nil || *closed.Size == 0 || *closed.DurationMS < 3000 ||
		*closed.Width != 640 || *closed.Height != 360 {
		t.Fatalf("closed row %+v", closed)
	}
	st, _ := os.Stat(h.Path())
	if st.Size() != *closed.Size {
		t.Fatalf("size %d, indexed %d", st.Size(), *closed.Size)
	}
	if err := record.Verify(h.Path(), *closed.SHA256); err != nil {
		t.Fatal(err)
	}
	fi, err := record.Inspect(h.Path())
	if err != nil || fi.NeedsRepair() {
		t.Fatalf("finished file: %+v %v", fi, err)
	}
	if got := strings.Join(f.actions(t, h.ID()), ","); got != "recording.started,recording.closed" {
		t.Fatalf("audit: %s", got)
	}
	if again, err := h.Close(); err != nil || again.ID != closed.ID {
		t.Fatalf("second Close: %+v %v", again, err)
	}

	// A second file, then alter one and remove the other: Verify names both.
	h2, err := m.Start(ctx, f.sess.ID, recording.Floor, "07192")
	if err != nil {
		t.Fatal(err)
	}
	feed(t, h2.Recorder(), 40)
	if _, err := h2.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := m.Verify(ctx, nil)
	if err != nil || rep.Bad() || rep.OK != 2 {
		t.Fatalf("verify intact: %+v %v", rep, err)
	}
	b, _ := os.ReadFile(h.Path())
	b[len(b)/2] ^= 0xFF
	if err := os.WriteFile(h.Path(), b, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(h2.Path()); err != nil {
		t.Fatal(err)
	}
	var seen int
	rep, err = m.Verify(ctx, func(i, n int, _ store.Recording) { seen++ })
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Bad() || rep.OK != 0 || len(rep.Altered) != 1 || rep.Altered[0].ID != h.ID() ||
		len(rep.Missing) != 1 || rep.Missing[0].ID != h2.ID() || seen != 2 {
		t.Fatalf("verify after tampering: %+v", rep)
	}
}

func TestRecordingNoMediaAndRefusals(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	m := f.manager(t, nil)
	h, err := m.Start(ctx, f.sess.ID, recording.Floor, "07192")
	if err != nil {
		t.Fatal(err)
	}
	row, err := h.Close()
	if err != nil {
		t.Fatal(err)
	}
	if row.State != "deleted" || row.Note != "no_media" {
		t.Fatalf("a recording with no media: %+v", row)
	}
	if _, err := os.Stat(h.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty file kept: %v", err)
	}
	if _, err := m.Start(ctx, f.sess.ID, recording.PrivateLine, "07192"); !errors.Is(err, recording.ErrNotRecorded) {
		t.Fatalf("private line recorded by default: %v", err)
	}
	if _, err := m.Start(ctx, f.sess.ID, recording.Floor, "../x"); err == nil {
		t.Fatal("a source that is not a code was accepted")
	}
	off := f.manager(t, func(o *recording.Options) { o.Enabled = false; o.Registry = nil })
	if _, err := off.Start(ctx, f.sess.ID, recording.Program, "22"); !errors.Is(err, recording.ErrDisabled) {
		t.Fatalf("disabled: %v", err)
	}
}

func TestRecordingDiskLow(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	m := f.manager(t, nil)
	gauge := func() float64 {
		mfs, err := f.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "opscenter_recording_disk_low" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no opscenter_recording_disk_low")
		return 0
	}
	h, err := m.Start(ctx, f.sess.ID, recording.Program, "22")
	if err != nil {
		t.Fatal(err)
	}
	feed(t, h.Recorder(), 40)
	if gauge() != 0 {
		t.Fatal("disk low before it is")
	}

	f.free.Store(1 << 30) // below the 2 GiB minimum
	if low, _, err := m.CheckDisk(); err != nil || !low {
		t.Fatalf("check: %v %v", low, err)
	}
	select {
	case <-h.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("recording not stopped on low disk")
	}
	row, _ := f.st.GetRecording(ctx, h.ID())
	if row.State != "closed" || row.Note != "disk_low" || row.SHA256 == nil {
		t.Fatalf("stopped row %+v", row)
	}
	if err := record.Verify(h.Path(), *row.SHA256); err != nil {
		t.Fatalf("the stopped file is whole and indexed: %v", err)
	}
	if err := h.Recorder().WriteVideoRTP(synthVP8(1)[0]); !errors.Is(err, record.ErrClosed) {
		t.Fatalf("write after stop: %v", err)
	}
	if _, err := m.Start(ctx, f.sess.ID, recording.Floor, "07192"); !errors.Is(err, recording.ErrDiskLow) {
		t.Fatalf("start on low disk: %v", err)
	}
	if gauge() != 1 || !m.DiskLow() {
		t.Fatal("gauge not raised")
	}
	m.CheckDisk() // still low: no second alert
	f.free.Store(50 << 30)
	m.CheckDisk()
	if gauge() != 0 || m.DiskLow() {
		t.Fatal("gauge not cleared")
	}
	f.mu.Lock()
	alerts := append([]bool(nil), f.alerts...)
	f.mu.Unlock()
	if len(alerts) != 2 || !alerts[0] || alerts[1] {
		t.Fatalf("alerts %v, want [true false]", alerts)
	}
	h2, err := m.Start(ctx, f.sess.ID, recording.Floor, "07192")
	if err != nil {
		t.Fatalf("start after recovery: %v", err)
	}
	h2.Close()
}

func TestRecordingRepairOpen(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	m := f.manager(t, nil)

	// A writer that "dies": its recorder is finished behind the manager's back
	// (the row stays open) and the file is then cut mid-cluster, as a power cut
	// would leave it.
	h, err := m.Start(ctx, f.sess.ID, recording.Program, "22")
	if err != nil {
		t.Fatal(err)
	}
	feed(t, h.Recorder(), 150)
	if _, err := h.Recorder().Close(); err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(h.Path())
	if err := os.WriteFile(h.Path(), full[:len(full)*7/10+13], 0o640); err != nil {
		t.Fatal(err)
	}
	before, err := record.Inspect(h.Path())
	if err != nil || !before.NeedsRepair() {
		t.Fatalf("cut file: %+v %v", before, err)
	}
	// One whose file never appeared, and one that was finished but not indexed.
	gone, err := f.st.OpenRecording(ctx, recording.Actor, store.NewRecording{ID: uuid.NewString(), SessionID: f.sess.ID,
		Kind: "floor", SourceCode: "07195", Path: f.sess.ID + "/gone.webm"})
	if err != nil {
		t.Fatal(err)
	}
	h3, err := m.Start(ctx, f.sess.ID, recording.Floor, "07192")
	if err != nil {
		t.Fatal(err)
	}
	feed(t, h3.Recorder(), 40)
	if _, err := h3.Recorder().Close(); err != nil {
		t.Fatal(err)
	}
	// "Restart": a new manager on the same directory.
	m2 := f.manager(t, func(o *recording.Options) { o.Registry = nil })
	rep, err := m2.RepairOpen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 0 || len(rep.Repaired) != 2 || len(rep.Deleted) != 1 {
		t.Fatalf("report %+v", rep)
	}
	row, _ := f.st.GetRecording(ctx, h.ID())
	if row.State != "repaired" || row.SHA256 == nil || !strings.Contains(row.Note, "rebuilt") {
		t.Fatalf("cut file's row %+v", row)
	}
	if err := record.Verify(h.Path(), *row.SHA256); err != nil {
		t.Fatal(err)
	}
	after, err := record.Inspect(h.Path())
	if err != nil || after.NeedsRepair() || after.Blocks != before.Blocks || after.Blocks == 0 {
		t.Fatalf("repaired file %+v (had %d whole blocks): %v", after, before.Blocks, err)
	}
	if got := strings.Join(f.actions(t, h.ID()), ","); got != "recording.started,recording.repaired" {
		t.Fatalf("audit: %s", got)
	}
	row, _ = f.st.GetRecording(ctx, gone.ID)
	if row.State != "deleted" || row.Note != "missing_at_repair" {
		t.Fatalf("missing file's row %+v", row)
	}
	row, _ = f.st.GetRecording(ctx, h3.ID())
	if row.State != "repaired" || !strings.Contains(row.Note, "whole") || record.Verify(h3.Path(), *row.SHA256) != nil {
		t.Fatalf("whole file's row %+v", row)
	}
	// A recording in progress in this process is not touched.
	live, err := m2.Start(ctx, f.sess.ID, recording.Floor, "07195")
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := m2.RepairOpen(ctx); err != nil || len(rep.Repaired)+len(rep.Deleted)+len(rep.Failed) != 0 {
		t.Fatalf("second repair: %+v %v", rep, err)
	}
	if row, _ := f.st.GetRecording(ctx, live.ID()); row.State != "open" {
		t.Fatalf("live recording's row %+v", row)
	}
	// The session ends: its recordings are finished (this one had no media).
	rows, err := m2.StopSession(f.sess.ID)
	if err != nil || len(rows) != 1 || rows[0].ID != live.ID() || rows[0].State != "deleted" || len(m2.Active()) != 0 {
		t.Fatalf("stop session: %+v %v", rows, err)
	}
}

func TestRecordingRetention(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	m := f.manager(t, func(o *recording.Options) {
		o.Keep = time.Hour
		o.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	h, err := m.Start(ctx, f.sess.ID, recording.Program, "22")
	if err != nil {
		t.Fatal(err)
	}
	feed(t, h.Recorder(), 40)
	if _, err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Retain(ctx); err != nil || n != 0 {
		t.Fatalf("retain now: %d %v", n, err)
	}
	clock.Store(now.Add(2 * time.Hour).UnixNano())
	if n, err := m.Retain(ctx); err != nil || n != 1 {
		t.Fatalf("retain two hours later: %d %v", n, err)
	}
	if _, err := os.Stat(h.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file kept: %v", err)
	}
	row, _ := f.st.GetRecording(ctx, h.ID())
	if row.State != "deleted" || row.Note != "retention" || row.DeletedAt == nil {
		t.Fatalf("row %+v", row)
	}
	if got := strings.Join(f.actions(t, h.ID()), ","); got != "recording.started,recording.closed,recording.deleted" {
		t.Fatalf("audit: %s", got)
	}
	if rep, err := m.Verify(ctx, nil); err != nil || rep.Bad() || rep.Checked != 0 {
		t.Fatalf("a deleted file is not missing: %+v %v", rep, err)
	}
}
