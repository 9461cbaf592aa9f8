package replay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opscenter/opscenter/internal/harness"
	"github.com/opscenter/opscenter/internal/pgembed"
	"github.com/opscenter/opscenter/synth/client"
)

// dbRig is a PostgreSQL the replay runs itself, so that --fault db-restart can
// stop it and start it again on the same port (the server's own embedded one
// is out of reach, inside the child process).
type dbRig struct {
	mu  sync.Mutex
	pg  *pgembed.Server
	dir string
}

func startDB(ctx context.Context) (*dbRig, error) {
	base, err := os.MkdirTemp("", "opscenter-replay-pg-")
	if err != nil {
		return nil, fmt.Errorf("db: %w", err)
	}
	_ = os.Chmod(base, 0o755) // PostgreSQL runs as postgres when we are root
	d := &dbRig{dir: filepath.Join(base, "pg")}
	if d.pg, err = pgembed.Start(ctx, pgembed.Options{DataDir: d.dir}); err != nil {
		_ = os.RemoveAll(base)
		return nil, fmt.Errorf("db: %w", err)
	}
	return d, nil
}

func (d *dbRig) dsn() string { return d.pg.DSN("postgres") }

// restart stops PostgreSQL, keeps it down for down, and starts it on the same port.
func (d *dbRig) restart(ctx context.Context, down time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	port := d.pg.Port()
	if err := d.pg.Stop(ctx); err != nil {
		return fmt.Errorf("db stop: %w", err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(down):
	}
	pg, err := pgembed.Start(ctx, pgembed.Options{DataDir: d.dir, Port: port})
	if err != nil {
		return fmt.Errorf("db start: %w", err)
	}
	d.pg = pg
	return nil
}

func (d *dbRig) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	_ = d.pg.Stop(context.Background())
	_ = os.RemoveAll(filepath.Dir(d.dir))
}

// fault strikes at the scenario's fault time, in the background: the timeline
// goes on, and its API calls retry until the server or the database is back.
func (r *runner) fault(ctx context.Context) {
	start := time.Now()
	var err error
	switch r.o.Fault {
	case "db-restart":
		down := r.plan.S.Fault.Down.Duration
		if down <= 0 {
			down = 8 * time.Second
		}
		fmt.Fprintf(r.o.Progress, "fault: PostgreSQL stops for %v\n", down)
		err = r.db.restart(ctx, down)
	case "kill":
		fmt.Fprintf(r.o.Progress, "fault: kill -9 of the server (pid %d)\n", r.srv.PID)
		err = r.killServer(ctx)
	}
	if err != nil {
		r.fail("fault "+r.o.Fault, err)
		return
	}
	if r.o.Fault == "kill" {
		r.faultGap = time.Since(start)
	}
	r.faultDone.Store(true)
	fmt.Fprintf(r.o.Progress, "fault: %s recovered in %v\n", r.o.Fault, time.Since(start).Round(time.Millisecond))
}

// killServer kills the server with SIGKILL and starts it again with the same
// command and environment (harness.Server.Restart, as an operator's service
// manager would), then every endpoint reconnects.
func (r *runner) killServer(ctx context.Context) error {
	if ps, err := harness.ReadProc(r.srv.PID); err == nil {
		r.cpuBefore += ps.CPU
	}
	if fs, err := r.srv.Forward(ctx); err == nil {
		r.fwdBefore, r.droppedBefore = fs.Packets, fs.Dropped
	}
	if err := r.srv.Kill(); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	if err := r.srv.Restart(ctx); err != nil {
		return fmt.Errorf("kill: restart: %w", err)
	}
	r.procStart.CPU = 0
	return r.reconnectAll(ctx)
}

// reconnectAll brings every endpoint back after a restart: the console and the
// media endpoints restore themselves (AutoReconnect, or watch for an outage's
// endpoint), the signalling-only ones reconnect here.
func (r *runner) reconnectAll(ctx context.Context) error {
	r.eps.mu.Lock()
	codes := make([]string, 0, len(r.eps.clients))
	for c := range r.eps.clients {
		codes = append(codes, c)
	}
	r.eps.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, code := range codes {
		if _, down := r.down.Load(code); down {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := r.eps.get(code, time.Second)
			if err == nil && !r.mediaCodes[code] {
				err = c.Reconnect(ctx)
			}
			if err != nil {
				r.fail("reconnect "+code, err)
			}
		}()
	}
	wg.Wait()
	back := func(c *client.Client) bool {
		st := c.State()
		return st == client.StateConnected || st == client.StateJoined
	}
	if err := client.WaitFor(func() bool { return back(r.console) }, time.Minute); err != nil {
		return fmt.Errorf("console not back: %w", err)
	}
	return nil
}
