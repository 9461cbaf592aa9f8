package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/configs"
	"github.com/opscenter/opscenter/internal/harness"
)

// Options are one replay's settings (the flags of `opscenter replay`).
type Options struct {
	Scenario    *Scenario
	Speed       float64 // scenario seconds per real second
	Media       string  // all, some, none
	Fault       string  // "", db-restart, kill
	Out         string  // directory for the files of the run
	DatabaseURL string  // empty: the embedded PostgreSQL
	RepoDir     string  // module root: the server is built from it (as loadgen does)
	Progress    io.Writer
	Log         *slog.Logger
}

// Result is what a replay measured and checked.
type Result struct {
	Checks  []Check
	Figures Figures
	Out     string
}

// Failed lists the names of the checks that failed.
func (r *Result) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

// outageFloor is the shortest outage threshold the replay gives the server: a
// shorter one would turn every scheduling hiccup of a loaded machine into an
// incident.
const outageFloor = time.Second

// offlineTimer is the server's delay before a lost path is offline (DESIGN.md).
const offlineTimer = 10 * time.Second

func (o *Options) check() error {
	if o.Scenario == nil {
		return errors.New("no scenario")
	}
	if o.Speed <= 0 {
		return fmt.Errorf("speed %v: must be positive", o.Speed)
	}
	switch o.Media {
	case "all", "some", "none":
	default:
		return fmt.Errorf("media %q: want all, some or none", o.Media)
	}
	switch o.Fault {
	case "":
	case "kill":
	case "db-restart":
		if o.DatabaseURL != "" {
			return errors.New("fault db-restart: the replay restarts a PostgreSQL of its own; drop --database-url")
		}
	default:
		return fmt.Errorf("fault %q: want db-restart or kill", o.Fault)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return nil
}

// OutageThreshold is the server's live.outage_incident_after for a speed: the
// default 60 s scaled, not below outageFloor.
func OutageThreshold(speed float64) time.Duration {
	return max(time.Duration(float64(60*time.Second)/speed), outageFloor)
}

// Run replays the scenario against a server of its own and checks the result.
// The error is for a run that could not be carried out; failed checks are in
// the result.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	plan, err := o.Scenario.Plan()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("out: %w", err)
	}
	var db *dbRig
	if o.Fault == "db-restart" {
		if db, err = startDB(ctx); err != nil {
			return nil, err
		}
		defer db.stop()
		o.DatabaseURL = db.dsn()
	}
	threshold := OutageThreshold(o.Speed)
	fmt.Fprintf(o.Progress, "replay: %s, speed %g, media %s; building and starting opscenter (outage threshold %v)\n",
		o.Scenario.Name, o.Speed, o.Media, threshold)
	srv, err := harness.Start(ctx, harness.Options{
		RepoDir: o.RepoDir, CPU: -1, DatabaseURL: o.DatabaseURL, KeepDir: true, NoSession: true, // removed below, after its log is copied
		Env:  []string{"OPSCENTER_LIVE_OUTAGE_INCIDENT_AFTER=" + threshold.String()},
		Logf: func(f string, a ...any) { o.Log.Info(fmt.Sprintf(f, a...)) },
	})
	if err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	defer func() {
		srv.Stop()
		_ = copyFile(filepath.Join(srv.Dir(), "server.log"), filepath.Join(o.Out, "server.log"))
		_ = os.RemoveAll(srv.Dir())
	}()
	r := &runner{o: o, plan: plan, srv: srv, threshold: threshold, ns: uuid.New(),
		api: &apiClient{base: srv.URL, http: &http.Client{}}, db: db}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	defer r.closeClients()
	if err := r.play(ctx); err != nil {
		return nil, err
	}
	res := &Result{Out: o.Out}
	res.Figures = r.figures(ctx)
	res.Checks = r.checks(ctx)
	if err := r.writeOut(ctx, res); err != nil {
		res.Checks = append(res.Checks, Check{Name: "out files", Detail: err.Error()})
	} else {
		res.Checks = append(res.Checks, Check{Name: "out files", OK: true, Detail: o.Out})
	}
	return res, nil
}

// setup: users, registered voters and the session, all through the API (the
// users through the admin command, as an operator would).
func (r *runner) setup(ctx context.Context) error {
	for _, u := range []struct{ name, role string }{{"replay-lead", "leader"}, {"replay-duty", "duty"}} {
		pw := "replay-" + uuid.NewString()
		if _, err := r.srv.CLI(ctx, pw+"\n", "user", "add", "--username", u.name, "--role", u.role); err != nil {
			return err
		}
		var login struct {
			Token string `json:"token"`
		}
		if err := r.api.do(ctx, "POST", "/api/v1/auth/login", map[string]string{"username": u.name, "password": pw}, &login); err != nil {
			return fmt.Errorf("login %s: %w", u.name, err)
		}
		if u.role == "leader" {
			r.lead = r.api.as(login.Token)
		} else {
			r.duty = r.api.as(login.Token)
		}
	}
	tsv, err := configs.Turnout.ReadFile("turnout/" + r.plan.S.Roster + ".tsv")
	if err != nil {
		return fmt.Errorf("registered voters: %w", err)
	}
	if err := r.lead.do(ctx, "PUT", "/api/v1/turnout/registered", rawBody{tsv, "text/tab-separated-values"}, nil); err != nil {
		return fmt.Errorf("registered voters: %w", err)
	}
	r.sessionID = r.id("session")
	s := r.plan.S
	if err := r.lead.do(ctx, "POST", "/api/v1/sessions", map[string]string{"id": r.sessionID, "title": s.Session.Title,
		"planned_start": s.Start().Format(time.RFC3339), "planned_end": s.End().Format(time.RFC3339)}, nil); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return r.dialConsole(ctx)
}

// id is the client id of one record of this run: the same key gives the same
// id, so a retry (or a fault's replay) is the same record.
func (r *runner) id(key string) string { return uuid.NewSHA1(r.ns, []byte(key)).String() }

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	return nil
}
