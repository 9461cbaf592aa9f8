package app

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/journal"
	"github.com/opscenter/opscenter/recording"
	"github.com/opscenter/opscenter/store"
)

// startRecording makes the recording manager, repairs the files a previous
// process left open, and starts its free-space and retention loop. Trouble with
// the record is logged, never fatal: media and the log run without it. The
// disk-low alert is an audit event (recording.disk_low / recording.disk_ok), so
// it reaches the consoles on the event stream, through the journal if
// PostgreSQL is away.
func startRecording(ctx context.Context, cfg config.Recording, st *store.Store, j *journal.Journal,
	reg prometheus.Registerer, log *slog.Logger) (*recording.Manager, error) {
	opt := recording.Options{
		Enabled: cfg.Enabled, Dir: cfg.Dir, Keep: cfg.Keep.Duration(), MinFree: int64(cfg.MinFree),
		PrivateLine: cfg.PrivateLine, Log: log, Registry: reg,
		OnDiskLow: func(low bool, free, minFree int64) {
			action := "recording.disk_ok"
			if low {
				action = "recording.disk_low"
			}
			doc, _ := json.Marshal(map[string]any{"free_bytes": free, "min_free_bytes": minFree, "dir": cfg.Dir})
			if err := j.Record(context.Background(), store.Event{Actor: recording.Actor, Action: action,
				Entity: "recording", EntityID: "disk", After: doc}); err != nil {
				log.Error("recording: disk alert not recorded", "action", action, "err", err)
			}
		},
	}
	m, err := recording.New(st, opt)
	if err != nil && opt.Enabled {
		// recording.dir cannot be created: run without the record rather than not at all.
		log.Error("recording: cannot use recording.dir; recording is OFF", "dir", cfg.Dir, "err", err)
		opt.Enabled = false
		m, err = recording.New(st, opt)
	}
	if err != nil {
		return nil, err
	}
	if !opt.Enabled {
		log.Info("recording disabled")
		return m, nil
	}
	rep, err := m.RepairOpen(ctx)
	if err != nil {
		log.Error("recording: repair of open recordings", "err", err)
	} else if n := len(rep.Repaired) + len(rep.Deleted) + len(rep.Failed); n > 0 {
		log.Warn("recording: recordings left open were repaired", "repaired", len(rep.Repaired),
			"deleted", len(rep.Deleted), "failed", len(rep.Failed))
	}
	if _, _, err := m.CheckDisk(); err != nil {
		log.Error("recording: free space", "dir", m.Dir(), "err", err)
	}
	m.Go()
	log.Info("recording", "dir", m.Dir(), "keep", cfg.Keep.Duration(), "min_free", int64(cfg.MinFree))
	return m, nil
}
