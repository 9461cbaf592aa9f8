package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/web"
)

// wallToken issues a press wall's link. Several walls may exist, each named;
// reissuing a name replaces its link, and its screens must be opened again.
func wallToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wall token", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	fs.SetOutput(stderr)
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("give one wall NAME (for example press-1)")
	}
	name := fs.Arg(0)
	if err := store.ValidWallName(name); err != nil {
		return fmt.Errorf("wall name %q: %w", name, err)
	}
	return withStore(ctx, *cfgPath, stderr, func(st *store.Store, cfg config.Config) error {
		tok, err := st.IssueWallToken(ctx, "cli", name)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, web.WallURL(cfg.HTTP.PublicURL, tok))
		return nil
	})
}

// wallRevoke ends a wall's link: its screens stop at once.
func wallRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wall revoke", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML config file")
	fs.SetOutput(stderr)
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("give one wall NAME")
	}
	return withStore(ctx, *cfgPath, stderr, func(st *store.Store, _ config.Config) error {
		err := st.RevokeWall(ctx, "cli", fs.Arg(0))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no wall %q with a live link", fs.Arg(0))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wall link of %s revoked\n", fs.Arg(0))
		return nil
	})
}
