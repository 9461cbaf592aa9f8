package replay

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// writeOut fills the out directory from the API: the session's report (CSV and
// HTML), the recordings' index and markers, turnout.csv, and the checks.
func (r *runner) writeOut(ctx context.Context, res *Result) error {
	for name, path := range map[string]string{
		"report.csv":      "/api/v1/sessions/" + r.sessionID + "/report.csv",
		"report.html":     "/api/v1/sessions/" + r.sessionID + "/report.html",
		"recordings.json": "/api/v1/recordings?session=" + r.sessionID,
		"markers.vtt":     "/api/v1/sessions/" + r.sessionID + "/markers.vtt",
	} {
		var b []byte
		if err := r.lead.do(ctx, "GET", path, nil, &b); err != nil {
			// No program, no markers' time 0 is not a failure of the run.
			if name == "markers.vtt" && statusOf(err) == 409 {
				continue
			}
			return err
		}
		if err := os.WriteFile(filepath.Join(r.o.Out, name), b, 0o644); err != nil {
			return fmt.Errorf("out: %w", err)
		}
	}
	units, err := r.fetchTurnout(ctx)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"code", "name", "level", "registered", "voted", "percent", "completed_at"})
	for _, u := range r.plan.Units {
		t, ok := units[u.Code]
		if !ok {
			return fmt.Errorf("turnout: %s not read back", u.Code)
		}
		done := ""
		if t.CompletedAt != nil {
			done = r.plan.S.Local(*t.CompletedAt)
		}
		_ = w.Write([]string{u.Code, u.Name, u.Kind, strconv.FormatInt(t.Registered, 10), strconv.FormatInt(t.Voted, 10),
			strconv.FormatFloat(t.Percent, 'f', 2, 64), done})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("turnout.csv: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.o.Out, "turnout.csv"), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("out: %w", err)
	}
	var sum bytes.Buffer
	res.Print(&sum)
	if err := os.WriteFile(filepath.Join(r.o.Out, "checks.txt"), sum.Bytes(), 0o644); err != nil {
		return fmt.Errorf("out: %w", err)
	}
	return nil
}
