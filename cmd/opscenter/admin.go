package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/internal/pgembed"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/web"
)

func environ() []string { return os.Environ() }

// withStore opens the log for an admin command: the configured URL, else the running
// embedded server, else a temporary start of the embedded server.
func withStore(ctx context.Context, cfgPath string, stderr io.Writer, fn func(*store.Store, config.Config) error) error {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	dsn := cfg.Database.URL
	if dsn == "" {
		dsn = pgembed.RunningDSN(cfg.Database.DataDir, cfg.Database.FallbackDataDir, "opscenter")
	}
	if dsn == "" {
		pg, err := pgembed.Start(ctx, pgembed.Options{DataDir: cfg.Database.DataDir, FallbackDir: cfg.Database.FallbackDataDir, Logger: log})
		if err != nil {
			return err
		}
		defer pg.Stop(context.Background())
		if err := app.EnsureDatabase(ctx, pg); err != nil {
			return err
		}
		dsn = pg.DSN("opscenter")
	}
	if err := store.Migrate(ctx, dsn, func(seq int32, name string) { log.Info("applying migration", "seq", seq, "name", name) }); err != nil {
		return err
	}
	st, err := store.Open(ctx, dsn, 4)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := app.LoadRoster(ctx, st, cfg.Roster, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	return fn(st, cfg)
}

func migrate(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return withStore(ctx, *cfgPath, stderr, func(*store.Store, config.Config) error {
		fmt.Fprintln(stderr, "migrations are up to date")
		return nil
	})
}

func userAdd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	username := fs.String("username", "", "login name")
	roleName := fs.String("role", "", "admin, leader, duty or observer")
	district := fs.String("district", "", "limit the account to one district (its code) and its communes; not for admin")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	role, err := auth.ParseRole(*roleName)
	if err != nil {
		return err
	}
	if *username == "" {
		return fmt.Errorf("--username is required")
	}
	if *district != "" && role == auth.RoleAdmin {
		return fmt.Errorf("--district: an admin manages the whole province and cannot be limited to a district")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("read password from stdin: %w", err)
	}
	hash, err := auth.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		return err
	}
	return withStore(ctx, *cfgPath, stderr, func(st *store.Store, _ config.Config) error {
		if _, err := st.CreateScopedUser(ctx, "cli", *username, role, *district, hash); err != nil {
			var fe *store.FieldError
			if errors.As(err, &fe) && fe.Field == "district" {
				return fmt.Errorf("--district %s: %s", *district, fe.Msg)
			}
			return err
		}
		if *district != "" {
			fmt.Fprintf(stdout, "user %s added with role %s, limited to district %s\n", *username, role, *district)
			return nil
		}
		fmt.Fprintf(stdout, "user %s added with role %s\n", *username, role)
		return nil
	})
}

func endpointToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("endpoint token", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	all := fs.Bool("all", false, "issue links for every endpoint, as CSV")
	rotate := fs.Bool("rotate", false, "with --all: replace links that exist")
	fs.SetOutput(stderr)
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	if *all == (fs.NArg() == 1) {
		return fmt.Errorf("give one endpoint CODE, or --all")
	}
	return withStore(ctx, *cfgPath, stderr, func(st *store.Store, cfg config.Config) error {
		if !*all {
			tok, err := st.IssueEndpointToken(ctx, "cli", fs.Arg(0))
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, web.JoinURL(cfg.HTTP.PublicURL, tok))
			return nil
		}
		toks, err := st.IssueAllEndpointTokens(ctx, "cli", *rotate)
		if err != nil {
			return err
		}
		eps, err := st.ListEndpoints(ctx, store.EndpointFilter{})
		if err != nil {
			return err
		}
		sort.SliceStable(eps, func(i, j int) bool { return len(eps[i].Code) < len(eps[j].Code) })
		w := csv.NewWriter(stdout)
		_ = w.Write([]string{"code", "name", "kind", "parent_code", "join_url"})
		for _, e := range eps {
			_ = w.Write([]string{e.Code, e.Name, e.Kind, e.ParentCode, web.JoinURL(cfg.HTTP.PublicURL, toks[e.Code])})
		}
		w.Flush()
		return w.Error()
	})
}

func endpointRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("endpoint revoke", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	fs.SetOutput(stderr)
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("give one endpoint CODE")
	}
	return withStore(ctx, *cfgPath, stderr, func(st *store.Store, _ config.Config) error {
		if err := st.RevokeEndpointToken(ctx, "cli", fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "join link of %s revoked\n", fs.Arg(0))
		return nil
	})
}

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return withStore(ctx, *cfgPath, stderr, func(st *store.Store, _ config.Config) error {
		rep, err := st.VerifyChain(ctx, func(n int64) { fmt.Fprintf(stderr, "checked %d events…\n", n) })
		if err != nil {
			return err
		}
		if rep.FirstBroken != 0 {
			fmt.Fprintf(stdout, "BROKEN at event %d: %s (%d events before it are intact)\n", rep.FirstBroken, rep.Reason, rep.Checked)
			return fmt.Errorf("audit chain broken")
		}
		fmt.Fprintf(stdout, "audit chain intact: %d events\n", rep.Checked)
		return nil
	})
}

// reorder lets flags follow positional arguments ("token 07192 --config x").
func reorder(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		if strings.HasPrefix(args[i], "-") {
			flags = append(flags, args[i])
			if !strings.Contains(args[i], "=") && args[i] == "--config" && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, args[i])
	}
	return append(flags, pos...)
}
