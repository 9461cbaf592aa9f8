package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/opscenter/opscenter/internal/harness"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
)

// target is the server under soak: its URL, the endpoint tokens and a leader token.
type target struct {
	URL     string
	Metrics string            // the server's /metrics URL (its own listener)
	Tokens  map[string]string // endpoint code → join token
	Codes   []string          // roster order, without the command room
	Leader  string            // leader's bearer token
	Admin   string            // an admin's bearer token for /debug/pprof ("" for -url targets)
	LogPath string
	PID     int
	stop    func()
}

// startServer starts opscenter with the harness (the load generator's and the
// replay's: a fresh embedded PostgreSQL, credentials through its CLI), with an
// admin for the profiles and no session (the soak starts its own).
func startServer(ctx context.Context, o Options, logf func(string, ...any)) (*target, error) {
	srv, err := harness.Start(ctx, harness.Options{RepoDir: o.Repo, CPU: -1, Admin: true, NoSession: true, KeepDir: o.Keep, Logf: logf})
	if err != nil {
		return nil, err
	}
	if o.Keep {
		logf("keeping %s", srv.Dir())
	}
	t := &target{URL: srv.URL, Metrics: srv.MetricsURL, Tokens: srv.Tokens, Leader: srv.StaffTok, Admin: srv.AdminTok,
		LogPath: srv.LogPath(), PID: srv.PID, stop: srv.Stop}
	for _, c := range srv.Codes {
		if c != signaling.CommandCode {
			t.Codes = append(t.Codes, c)
		}
	}
	logf("opscenter pid %d ready at %s (log %s)", t.PID, t.URL, t.LogPath)
	return t, nil
}

// externalTarget reads the tokens CSV and logs the leader in.
func externalTarget(ctx context.Context, o Options) (*target, error) {
	if o.TokensCSV == "" || o.LeaderUser == "" || o.LeaderPassword == "" {
		return nil, errors.New("-url needs -tokens, -leader-user and -leader-password")
	}
	f, err := os.Open(o.TokensCSV)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.TokensCSV, err)
	}
	t := &target{URL: strings.TrimRight(o.URL, "/"), Metrics: o.MetricsURL, Tokens: map[string]string{}, stop: func() {}}
	for i, r := range recs {
		if i == 0 || len(r) < 5 {
			continue // header: code,name,kind,parent_code,join_url
		}
		_, tok, ok := strings.Cut(r[4], "#t=")
		if !ok {
			return nil, fmt.Errorf("%s line %d: no #t= in %q", o.TokensCSV, i+1, r[4])
		}
		t.Tokens[r[0]] = tok
		if r[2] != string(store.KindProvince) {
			t.Codes = append(t.Codes, r[0])
		}
	}
	if t.Leader, err = login(ctx, t.URL, o.LeaderUser, o.LeaderPassword); err != nil {
		return nil, err
	}
	return t, nil
}

func login(ctx context.Context, base, user, pw string) (string, error) {
	var out struct{ Token string }
	if err := harness.API(ctx, base, "POST", "/api/v1/auth/login", "", map[string]string{"username": user, "password": pw}, &out); err != nil {
		return "", fmt.Errorf("login %s: %w", user, err)
	}
	return out.Token, nil
}

// saveProfile writes the server's named pprof profile (debug text form) to
// file. Used with the admin token of a local target.
func saveProfile(ctx context.Context, t *target, name, file string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return harness.Download(ctx, t.URL+"/debug/pprof/"+name+"?debug=1", t.Admin, file)
}
