package record

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crashChild is the process the crash test kills: it records part of the
// fixtures, says READY once clusters are on disk, and waits to be killed.
func crashChild(out string) {
	t := childTB{}
	video, audio := media(t)
	r, err := NewWriter(out)
	if err != nil {
		t.Fatal(err)
	}
	var pkts []tpkt
	for _, p := range interleave(video, audio) {
		if p.ms < 4500 {
			pkts = append(pkts, p)
		}
	}
	feed(t, r, pkts)
	for {
		if fi, err := Inspect(out); err == nil && fi.WholeClusters >= 4 && len(r.queue) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	os.Stdout.WriteString("READY\n")
	time.Sleep(time.Minute) // killed before this ends
	os.Exit(3)
}

// childTB reports a failure in the child by exiting, which the parent sees.
type childTB struct{}

func (childTB) Helper()                      {}
func (childTB) Fatal(args ...any)            { fmt.Fprintln(os.Stderr, args...); os.Exit(2) }
func (childTB) Fatalf(f string, args ...any) { fmt.Fprintf(os.Stderr, f+"\n", args...); os.Exit(2) }
func (childTB) Skipf(f string, args ...any)  { fmt.Fprintf(os.Stderr, f+"\n", args...); os.Exit(2) }

// TestCrashKill9 kills a recording process with SIGKILL, then checks that the
// file plays up to its last cluster and that Repair gives it Cues and a
// Duration.
func TestCrashKill9(t *testing.T) {
	dir := fixtures(t)
	path := filepath.Join(t.TempDir(), "crash.webm")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "RECORD_CRASH_OUT="+path, "RECORD_FIXTURES="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "READY" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			t.Fatal("child ended without READY")
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("child not READY in 60s")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// As the dead writer left it: no Cues, no sizes at the end, but whole
	// clusters and a Duration that covers them.
	fi, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("crashed: %+v", fi)
	if fi.Cues || fi.SegmentSized || !fi.NeedsRepair() {
		t.Errorf("crashed file looks finished: %+v", fi)
	}
	if fi.WholeClusters < 4 || fi.Duration < 3*time.Second {
		t.Errorf("crashed file: %+v, want 4 whole clusters and their duration", fi)
	}
	p, dur := ffprobe(t, path)
	if len(p.Streams) != 2 || p.Streams[0].Width != 320 {
		t.Errorf("ffprobe of the crashed file: %+v", p)
	}
	if math.Abs(dur-fi.Duration.Seconds()) > 0.1 {
		t.Errorf("ffprobe says %.3fs, Duration %v", dur, fi.Duration)
	}
	framesBefore := countVideoFrames(t, path)
	bl := blocks(t, path)
	if framesBefore != len(bl[videoTrack]) || framesBefore < 3*fixtureFPS {
		t.Errorf("ffmpeg reads %d video frames, %d whole in the file", framesBefore, len(bl[videoTrack]))
	}

	info, err := Repair(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repaired: %+v", info)
	fi2, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repaired: %+v", fi2)
	if fi2.NeedsRepair() || fi2.CuePoints < 3 {
		t.Errorf("repaired file: %+v", fi2)
	}
	if fi2.Duration != fi2.MediaDuration || fi2.Duration < fi.Duration {
		t.Errorf("repaired Duration %v, media %v, before %v", fi2.Duration, fi2.MediaDuration, fi.Duration)
	}
	if !fi2.Start.Equal(fi.Start) || fi2.Start.IsZero() {
		t.Errorf("start %v, was %v", fi2.Start, fi.Start)
	}
	if n := countVideoFrames(t, path); n != framesBefore {
		t.Errorf("%d video frames after repair, %d before", n, framesBefore)
	}
	decodeClean(t, path)
	decodeClean(t, path, "-ss", "2.5")
	if err := Verify(path, info.SHA256); err != nil {
		t.Error(err)
	}
	// Repairing a finished file changes nothing that matters.
	if _, err := Repair(path); err != nil {
		t.Fatal(err)
	}
	if fi3, _ := Inspect(path); fi3 != fi2 {
		t.Errorf("second repair: %+v, first %+v", fi3, fi2)
	}
}

// TestRepairCutMidCluster cuts a finished file in the middle of a cluster, as
// a power cut might, and repairs it: the whole blocks are kept and play.
func TestRepairCutMidCluster(t *testing.T) {
	video, audio := media(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "full.webm")
	r, err := NewWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, r, interleave(video, audio))
	if _, err := r.Close(); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.webm")
	if err := os.WriteFile(cut, full[:len(full)*7/10+13], 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := Inspect(cut)
	if err != nil {
		t.Fatal(err)
	}
	if !before.NeedsRepair() {
		t.Fatalf("cut file looks whole: %+v", before)
	}
	if _, err := Repair(cut); err != nil {
		t.Fatal(err)
	}
	after, err := Inspect(cut)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cut %+v\nrepaired %+v", before, after)
	if after.NeedsRepair() || after.Blocks != before.Blocks || after.Blocks == 0 {
		t.Errorf("repaired: %+v, had %d whole blocks", after, before.Blocks)
	}
	decodeClean(t, cut)
}
