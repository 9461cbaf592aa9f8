package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/record"
	"github.com/opscenter/opscenter/recording"
	"github.com/opscenter/opscenter/store"
)

// recordingRepair rebuilds one WebM file's index (Cues, Duration, sizes) with
// record.Repair. It needs no database: it works on any file the recorder wrote.
func recordingRepair(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recording repair", flag.ContinueOnError)
	force := fs.Bool("force", false, "rewrite the file even if it looks whole")
	fs.SetOutput(stderr)
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("give one FILE")
	}
	path := fs.Arg(0)
	before, err := record.Inspect(path)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "before: %s\n", describe(before))
	if !before.NeedsRepair() && !*force {
		fmt.Fprintf(stdout, "%s is whole (cues, duration, nothing cut short): nothing to repair (--force rewrites it)\n", path)
		return nil
	}
	info, err := record.Repair(path)
	if err != nil {
		return err
	}
	after, err := record.Inspect(path)
	if err != nil {
		return fmt.Errorf("inspect repaired %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "after:  %s\n", describe(after))
	fmt.Fprintf(stdout, "repaired %s: kept %d whole blocks (%d video, %d audio frames), %s, %d bytes, sha256 %s\n",
		path, after.Blocks, info.VideoFrames, info.AudioFrames, info.Duration, info.Size, info.SHA256)
	if lost := before.Clusters - before.WholeClusters; lost > 0 {
		fmt.Fprintf(stdout, "the last %d cluster(s) were cut short; their whole blocks were kept\n", lost)
	}
	fmt.Fprintln(stdout, "note: the file's SHA-256 changed; if it is in the recordings index, `recording verify` reports it as altered")
	return nil
}

func describe(fi record.FileInfo) string {
	return fmt.Sprintf("duration %s (media %s), %d/%d whole clusters, %d blocks, cues %v (%d points), sized %v, complete %v",
		fi.Duration, fi.MediaDuration, fi.WholeClusters, fi.Clusters, fi.Blocks, fi.Cues, fi.CuePoints, fi.SegmentSized, fi.Complete)
}

// recordingVerify checks every indexed (closed or repaired) file against its
// SHA-256, lists the missing and altered ones, and fails if there is any.
func recordingVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recording verify", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return withStore(ctx, *cfgPath, stderr, func(st *store.Store, cfg config.Config) error {
		m, err := recording.New(st, recording.Options{Dir: cfg.Recording.Dir}) // Enabled false: read only
		if err != nil {
			return err
		}
		rep, err := m.Verify(ctx, func(i, n int, r store.Recording) {
			if i > 0 && i%100 == 0 {
				fmt.Fprintf(stderr, "checked %d of %d files…\n", i, n)
			}
		})
		if err != nil {
			return err
		}
		for _, r := range rep.Missing {
			fmt.Fprintf(stdout, "MISSING %s %s %s %s\n", r.ID, r.Kind, r.SourceCode, m.Path(r))
		}
		for _, r := range rep.Altered {
			fmt.Fprintf(stdout, "ALTERED %s %s %s %s\n", r.ID, r.Kind, r.SourceCode, m.Path(r))
		}
		for id, msg := range rep.Errors {
			fmt.Fprintf(stdout, "UNREADABLE %s %s\n", id, msg)
		}
		if rep.Bad() {
			fmt.Fprintf(stdout, "%d of %d recordings intact; %d missing, %d altered, %d unreadable\n",
				rep.OK, rep.Checked, len(rep.Missing), len(rep.Altered), len(rep.Errors))
			return errors.New("recordings missing or altered")
		}
		fmt.Fprintf(stdout, "recordings intact: %d files match their SHA-256 (%s)\n", rep.Checked, m.Dir())
		return nil
	})
}
