package main

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/opscenter/opscenter/record"
	"github.com/opscenter/opscenter/recording"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
)

// writeVP8 feeds a few seconds of made-up VP8 (a keyframe each second).
func writeVP8(t *testing.T, rec *record.Recorder, frames int) {
	t.Helper()
	rng := rand.New(rand.NewSource(1))
	pz := rtp.NewPacketizer(1200, 96, 1, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewFixedSequencer(0), 90000)
	for i := 0; i < frames; i++ {
		fr := make([]byte, 3000)
		if i%30 == 0 {
			fr = make([]byte, 20000)
		}
		rng.Read(fr)
		if i%30 == 0 {
			copy(fr, []byte{0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01})
		} else {
			fr[0] |= 1
		}
		for _, p := range pz.Packetize(fr, 3000) {
			if err := rec.WriteVideoRTP(p); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestRecordingCommands(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	dir := filepath.Join(t.TempDir(), "recordings")
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("database:\n  url: \""+dsn+"\"\nrecording:\n  dir: "+dir+"\nlog:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	call := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, args, strings.NewReader(""), &out, &errb)
		return out.String() + errb.String(), err
	}
	// Migrate and load the roster through the CLI, then record two files.
	if out, err := call("migrate", "--config", cfg); err != nil {
		t.Fatalf("migrate: %s %v", out, err)
	}
	st, err := store.Open(ctx, dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Date(2021, 5, 23, 6, 30, 0, 0, time.UTC)
	sess, _, err := st.CreateSession(ctx, "user:lead", store.NewSession{ID: uuid.NewString(), Title: "Bầu cử",
		PlannedStart: start, PlannedEnd: start.Add(12 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := recording.New(st, recording.Options{Enabled: true, Dir: dir, RecordOptions: []record.Option{record.WithSync(false)}})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, src := range []string{"22", "07192"} {
		h, err := m.Start(ctx, sess.ID, recording.Floor, src)
		if err != nil {
			t.Fatal(err)
		}
		writeVP8(t, h.Recorder(), 95)
		if _, err := h.Close(); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, h.Path())
	}

	out, err := call("recording", "verify", "--config", cfg)
	if err != nil || !strings.Contains(out, "intact: 2 files") {
		t.Fatalf("verify: %s %v", out, err)
	}

	// Cut a copy of one file, as a crash would, and repair it.
	full, _ := os.ReadFile(paths[0])
	cut := filepath.Join(t.TempDir(), "cut.webm")
	if err := os.WriteFile(cut, full[:len(full)*7/10+13], 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = call("recording", "repair", cut)
	if err != nil || !strings.Contains(out, "repaired "+cut) || !strings.Contains(out, "cut short") {
		t.Fatalf("repair: %s %v", out, err)
	}
	t.Log(out)
	if fi, err := record.Inspect(cut); err != nil || fi.NeedsRepair() || fi.Blocks == 0 {
		t.Fatalf("after repair: %+v %v", fi, err)
	}
	if out, err = call("recording", "repair", cut); err != nil || !strings.Contains(out, "nothing to repair") {
		t.Fatalf("repair of a whole file: %s %v", out, err)
	}
	if _, err = call("recording", "repair"); err == nil {
		t.Fatal("repair without a FILE")
	}

	// Alter one indexed file and remove the other: verify names both and fails.
	if err := os.WriteFile(paths[0], append(full[:len(full)-1:len(full)-1], full[len(full)-1]^1), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(paths[1]); err != nil {
		t.Fatal(err)
	}
	out, err = call("recording", "verify", "--config", cfg)
	if err == nil || !strings.Contains(out, "ALTERED") || !strings.Contains(out, paths[0]) ||
		!strings.Contains(out, "MISSING") || !strings.Contains(out, paths[1]) {
		t.Fatalf("verify after tampering: %s %v", out, err)
	}
}
