package replay

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/internal/harness"
	"github.com/opscenter/opscenter/synth/client"
)

// runner is one replay in progress.
type runner struct {
	o           Options
	plan        *Plan
	srv         *harness.Server
	threshold   time.Duration
	ns          uuid.UUID // namespace of this run's client ids
	api         *apiClient
	lead, duty  *apiClient
	sessionID   string
	console     *client.Client
	eps         endpoints
	mediaCodes  map[string]bool
	outageCodes map[string]bool

	t0    time.Time // real time of the session's planned start
	clock atomic.Int64
	bg    sync.WaitGroup // outage returns and the fault
	down  sync.Map       // code → chan struct{}, closed when its outage ends
	// outageMu orders a scripted drop against watch's reconnects.
	outageMu sync.Mutex
	playDone chan struct{} // closed when the timeline has run

	db            *dbRig        // --fault db-restart: the PostgreSQL the replay runs
	cpuBefore     time.Duration // CPU of a killed server
	fwdBefore     uint64        // and the packets it forwarded and dropped
	droppedBefore uint64
	faultDone     atomic.Bool
	faultGap      time.Duration // a killed server's absence, until its return
	dropped       sync.Map      // code → time.Time its link was dropped
	started       time.Time     // real time the play began (figures)
	procStart     harness.ProcStat

	done, failed [numKinds]atomic.Int64
	errMu        sync.Mutex
	errs         []string
}

const numKinds = int(KindSessionEnd) + 1

// real is the real time of a scenario time.
func (r *runner) real(at time.Time) time.Time {
	return r.t0.Add(time.Duration(float64(at.Sub(r.plan.S.Start())) / r.o.Speed))
}

// fail records an event that did not go through; the run goes on, and the
// checks report it.
func (r *runner) fail(what string, err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	r.errs = append(r.errs, what+": "+err.Error())
	r.o.Log.Warn("replay: event failed", "what", what, "err", err)
}

// barrier kinds run alone, after everything before them has finished: they
// change what later events may do (a directive before its acknowledgements).
func barrier(k Kind) bool {
	switch k {
	case KindSessionStart, KindSessionEnd, KindDirective, KindLive, KindOutage:
		return true
	}
	return false
}

// play runs the events on the scenario clock. Events of one endpoint run in
// order on one worker; joins have their own pool (a join takes a while).
func (r *runner) play(ctx context.Context) error {
	r.mediaCodes = r.plan.MediaCodes(r.o.Media)
	r.outageCodes = map[string]bool{}
	for _, o := range r.plan.S.Outages {
		r.outageCodes[o.Code] = true
	}
	const workers = 6
	queues := make([]chan Event, workers)
	var inflight, wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan Event, 8192)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range queues[i] {
				r.handle(ctx, e)
				inflight.Done()
			}
		}()
	}
	joinSem := make(chan struct{}, 8)
	var joins sync.WaitGroup
	defer func() {
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
		joins.Wait()
	}()

	r.playDone = make(chan struct{})
	r.procStart, _ = harness.ReadProc(r.srv.PID)
	r.started = time.Now()
	r.t0 = time.Now().Add(time.Second)
	stop := r.progress()
	defer stop()
	for _, e := range r.plan.Events {
		if d := time.Until(r.real(e.At)); d > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("replay: %w", ctx.Err())
			case <-time.After(d):
			}
		}
		r.clock.Store(e.At.Unix())
		switch {
		case e.Kind == KindFault:
			if r.o.Fault != "" {
				r.bg.Add(1)
				go func() { defer r.bg.Done(); r.fault(ctx) }()
			}
		case e.Kind == KindJoin:
			joins.Add(1)
			joinSem <- struct{}{}
			go func() { defer joins.Done(); r.join(ctx, e.Code); <-joinSem }()
		case barrier(e.Kind):
			inflight.Wait()
			r.handle(ctx, e)
		default:
			h := fnv.New32a()
			_, _ = h.Write([]byte(e.Code))
			inflight.Add(1)
			queues[h.Sum32()%workers] <- e
		}
	}
	inflight.Wait()
	joins.Wait()
	close(r.playDone)
	r.bg.Wait()
	return nil
}

// progress prints the scenario clock and the counts every few seconds.
func (r *runner) progress() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(3 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				r.printProgress()
				return
			case <-t.C:
				r.printProgress()
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (r *runner) printProgress() {
	clock := time.Unix(r.clock.Load(), 0).In(r.plan.S.loc).Format("15:04")
	n := func(k Kind) string {
		if f := r.failed[k].Load(); f > 0 {
			return fmt.Sprintf("%d (%d failed)", r.done[k].Load(), f)
		}
		return fmt.Sprint(r.done[k].Load())
	}
	fmt.Fprintf(r.o.Progress, "%s  endpoints %d/%d (media %d)  reports %s  incidents %s  directives %s  acks %s  replies %s  live %s  [%s]\n",
		clock, r.eps.joined.Load(), len(r.plan.Units)-1, r.eps.media.Load(), n(KindReport), n(KindIncident),
		n(KindDirective), n(KindAck), n(KindReply), n(KindLive), time.Since(r.started).Round(time.Second))
}

// handle runs one event and counts it.
func (r *runner) handle(ctx context.Context, e Event) {
	err := r.do(ctx, e)
	if err != nil {
		r.failed[e.Kind].Add(1)
		r.fail(fmt.Sprintf("%s %s at %s", e.Kind, e.Code, r.plan.S.Local(e.At)), err)
		return
	}
	r.done[e.Kind].Add(1)
}
