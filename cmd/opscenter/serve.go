package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/web"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file (default: embedded defaults)")
	demo := fs.Bool("demo", false, "create an admin with a generated password and print join links")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	n, err := app.StartNode(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer n.Stop(context.Background())
	if *demo {
		a := n.App()
		if a == nil {
			return errors.New("--demo needs an active process (this one is a standby)")
		}
		if err := app.SeedTurnout(ctx, a.Store, cfg.Roster, log); err != nil {
			return err
		}
		if err := printDemo(ctx, a.Store, cfg, stdout); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case <-n.Fenced(): // a standby pair's other process is active now: this one must not be
		return app.ErrFenced
	}
}

// printDemo creates the demo admin once (its generated password is shown only then)
// and prints fresh join links for the command room, a district and a commune.
func printDemo(ctx context.Context, st *store.Store, cfg config.Config, w io.Writer) error {
	n, err := st.CountAdmins(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n=== opscenter demo ===\nOpen %s/login\n", cfg.HTTP.PublicURL)
	if n == 0 {
		pw := auth.NewPassword()
		h, err := auth.HashPassword(pw)
		if err != nil {
			return err
		}
		if _, err := st.CreateUser(ctx, "system:demo", "admin", auth.RoleAdmin, h); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		fmt.Fprintf(w, "Admin login: admin / %s   (shown once; keep it)\n", pw)
	} else {
		fmt.Fprintln(w, "An admin exists already; its password was printed on the first demo run.")
	}
	fmt.Fprintln(w, "Join links (fresh each start; older demo links stop working):")
	for _, code := range []string{"22", "195", "07192"} {
		tok, err := st.IssueEndpointToken(ctx, "system:demo", code)
		if err != nil {
			return err
		}
		ep, _ := st.GetEndpoint(ctx, code)
		fmt.Fprintf(w, "  %-6s %-28s %s\n", code, ep.Name, web.JoinURL(cfg.HTTP.PublicURL, tok))
	}
	fmt.Fprintln(w, "======================")
	return nil
}

func loadConfig(path string) (config.Config, error) {
	return config.Load(path, environ())
}
