// Command opscenter is the whole product in one binary: the server and its admin
// subcommands.
//
//	opscenter serve [--config FILE] [--demo]
//	opscenter migrate
//	opscenter user add --username U --role R [--district CODE]   (password on stdin)
//	opscenter endpoint token CODE | --all [--rotate]
//	opscenter endpoint revoke CODE
//	opscenter wall token NAME | wall revoke NAME
//	opscenter audit verify
//	opscenter recording repair FILE | verify
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/opscenter/opscenter/internal/config"
)

const usage = `usage: opscenter COMMAND [flags]

commands:
  serve                       run the server (--demo creates an admin and prints join links)
  migrate                     apply database migrations and exit
  user add --username U --role R [--district CODE]
                              add a staff account; the password is read from stdin;
                              --district limits it to that district and its communes
  endpoint token CODE         issue a fresh join link for one endpoint (the old one stops working)
  endpoint token --all        issue links for every endpoint as CSV (--rotate to replace existing)
  endpoint revoke CODE        revoke an endpoint's join link
  wall token NAME             issue a press wall's link (a new one replaces the old)
  wall revoke NAME            revoke a press wall's link; its screens stop at once
  audit verify                check the audit log's hash chain
  recording repair FILE       rebuild a recording's index (cues, duration) after a crash
  recording verify            check every indexed recording against its SHA-256
  replay [--speed N] [--media all|some|none] [--scenario FILE] [--out DIR]
                              replay a day (docs/replay.md) against an opscenter of its own

Every command takes --config FILE. Environment variables OPSCENTER_* override the config.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "opscenter:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command")
	}
	cmd, rest := args[0], args[1:]
	if len(rest) > 0 && (cmd == "user" || cmd == "endpoint" || cmd == "audit" || cmd == "recording" || cmd == "wall") {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "migrate":
		return migrate(ctx, rest, stderr)
	case "user add":
		return userAdd(ctx, rest, stdin, stdout, stderr)
	case "endpoint token":
		return endpointToken(ctx, rest, stdout, stderr)
	case "endpoint revoke":
		return endpointRevoke(ctx, rest, stdout, stderr)
	case "wall token":
		return wallToken(ctx, rest, stdout, stderr)
	case "wall revoke":
		return wallRevoke(ctx, rest, stdout, stderr)
	case "audit verify":
		return auditVerify(ctx, rest, stdout, stderr)
	case "recording repair":
		return recordingRepair(rest, stdout, stderr)
	case "recording verify":
		return recordingVerify(ctx, rest, stdout, stderr)
	case "replay":
		return replayCmd(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func newLogger(c config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Log.Level)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
