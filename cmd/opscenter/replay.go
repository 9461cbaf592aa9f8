package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opscenter/opscenter/replay"
)

// replayCmd runs a scenario against an opscenter of its own (docs/replay.md) and
// fails, naming the checks, when the day did not come out as scripted.
func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	scenario := fs.String("scenario", "", "scenario YAML (default: the embedded Quảng Ninh, 23 May 2021)")
	speed := fs.Float64("speed", 60, "scenario seconds per real second (60: the 12.5-hour day in 12.5 minutes)")
	media := fs.String("media", "some", "all: every endpoint publishes; some: the command room and the scenario's 20; none: signalling only")
	fault := fs.String("fault", "", "db-restart (PostgreSQL stops and returns) or kill (kill -9 of the server, started again) at the scenario's fault.at")
	out := fs.String("out", "", "directory for the run's files (default ./var/replay-DATE)")
	dbURL := fs.String("database-url", "", "PostgreSQL URL for the server (default: an embedded PostgreSQL of its own)")
	repo := fs.String("repo", "", "the opscenter source tree the server is built from (default: found from the working directory)")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	sc, err := replay.LoadScenario(*scenario)
	if err != nil {
		return err
	}
	if *repo == "" {
		if *repo, err = moduleRoot(); err != nil {
			return err
		}
	}
	if *out == "" {
		*out = filepath.Join("var", "replay-"+time.Now().Format("2006-01-02T150405"))
	}
	res, err := replay.Run(ctx, replay.Options{Scenario: sc, Speed: *speed, Media: *media, Fault: *fault, Out: *out,
		DatabaseURL: *dbURL, RepoDir: *repo, Progress: stdout,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	res.Print(stdout)
	fmt.Fprintf(stdout, "files in %s\n", res.Out)
	if failed := res.Failed(); len(failed) > 0 {
		return fmt.Errorf("replay: %d checks failed: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}

// moduleRoot finds the go.mod above the working directory: the server is built
// from source, as the load generator's is.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("replay: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("replay: no go.mod above the working directory; pass --repo")
		}
		dir = parent
	}
}
