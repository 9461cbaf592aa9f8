package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/opscenter/opscenter/configs"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/store"
)

// SeedTurnout loads the embedded registered voters for the roster's date when no
// figures exist yet (demo and replay); with figures present, or no file for the date,
// it changes nothing. A roster from a file (roster.file) gets no embedded figures.
func SeedTurnout(ctx context.Context, st *store.Store, rc config.Roster, log *slog.Logger) error {
	if rc.File != "" {
		return nil // a roster of one's own: the embedded figures need not fit it
	}
	name := fmt.Sprintf("turnout/%s-%s.tsv", rc.ProvinceCode, rc.Date)
	f, err := configs.Turnout.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		log.Info("no embedded registered voters for the roster", "file", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("registered voters %s: %w", name, err)
	}
	defer f.Close()
	rows, err := store.ParseRegistered(f, '\t')
	if err != nil {
		return fmt.Errorf("registered voters %s: %w", name, err)
	}
	res, seeded, err := st.SeedRegistered(ctx, "system:demo", rows)
	if err != nil {
		return fmt.Errorf("registered voters %s: %w", name, err)
	}
	if seeded {
		log.Info("registered voters loaded", "file", name, "added", res.Added)
	}
	return nil
}
