package faulttest

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/synth/client"
)

// What the tests that kill a process mid-session share: the clients that come
// back by themselves, the incidents written through the kill, and the checks
// of the log after it.

// endpointToken issues an endpoint token for code in st.
func endpointToken(t *testing.T, st *store.Store, code string) string {
	t.Helper()
	tk, err := st.IssueEndpointToken(context.Background(), "test", code)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// reconnecting is the options of a client of url that reconnects by itself.
func reconnecting(url, token, role string, publish bool) client.Options {
	return client.Options{URL: url, Token: token, Role: role, Publish: publish, AutoReconnect: true,
		ReconnectMax: 2 * time.Second}
}

// allConnected is true when every client is connected.
func allConnected(all map[string]*client.Client) func() bool {
	return func() bool {
		for _, c := range all {
			if c.State() != client.StateConnected {
				return false
			}
		}
		return true
	}
}

// reconnects counts each client's reconnections so far.
func reconnects(groups ...map[string]*client.Client) map[string]int {
	n := map[string]int{}
	for _, all := range groups {
		for name, c := range all {
			n[name] = c.Reconnects()
		}
	}
	return n
}

// allBack is true when every client has reconnected since recon0 and is
// connected, to url unless url is "".
func allBack(all map[string]*client.Client, recon0 map[string]int, url string) func() bool {
	return func() bool {
		for n, c := range all {
			if c.Reconnects() <= recon0[n] || c.State() != client.StateConnected || (url != "" && c.ServerURL() != url) {
				return false
			}
		}
		return true
	}
}

// incidentLog posts incidents with ids the client makes, as a console does, and
// remembers which the API acknowledged and which got no answer (to retry with
// the same id later).
type incidentLog struct {
	post func(id, code string) int // one POST (to as many addresses as the test tries): its status

	mu      sync.Mutex
	acked   map[string]int // id → status
	unacked []string       // sent by the writer, no answer

	stop, done chan struct{}
}

func newIncidentLog(post func(id, code string) int) *incidentLog {
	return &incidentLog{post: post, acked: map[string]int{}}
}

// postIncident is one POST of incident id at endpoint code; its status (0: no answer).
func postIncident(r *rest, id, code string) int {
	status, _ := r.try("POST", "/api/v1/incidents", map[string]any{"id": id, "endpoint_code": code,
		"category": "logistics", "severity": "low", "title": "Thiếu phiếu bầu " + id[:8]})
	return status
}

func ackStatus(status int) bool { return status == 201 || status == 200 }

// send posts incident id and records it if it is acknowledged; its status.
func (l *incidentLog) send(id, code string) int {
	status := l.post(id, code)
	if ackStatus(status) {
		l.mu.Lock()
		l.acked[id] = status
		l.mu.Unlock()
	}
	return status
}

// nAcked is how many distinct ids were acknowledged.
func (l *incidentLog) nAcked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// startWriter posts up to max new incidents, one every 20 ms, across codes,
// until stopWriter.
func (l *incidentLog) startWriter(codes []string, max int) {
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		for i := 0; i < max; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			if id := uuid.NewString(); !ackStatus(l.send(id, codes[i%len(codes)])) {
				l.mu.Lock()
				l.unacked = append(l.unacked, id)
				l.mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

func (l *incidentLog) stopWriter() {
	close(l.stop)
	<-l.done
}

// retryUnacked posts each unanswered incident again with its id (where: "after
// the restart", …).
func (l *incidentLog) retryUnacked(t *testing.T, code, where string) {
	t.Helper()
	for _, id := range l.unacked {
		if status := l.send(id, code); !ackStatus(status) {
			t.Errorf("retry of %s %s: %d", id, where, status)
		}
	}
}

// check finds every acknowledged incident in st, and as many incidents in the
// log (the first limit) as distinct ids acknowledged: none lost, none twice.
// It returns how many were lost and how many are in the log.
func (l *incidentLog) check(t *testing.T, st *store.Store, limit int) (lost, inLog int) {
	t.Helper()
	ctx := context.Background()
	for id := range l.acked {
		if _, err := st.GetIncident(ctx, id); err != nil {
			lost++
			t.Errorf("acknowledged incident %s lost: %v", id, err)
		}
	}
	page, err := st.ListIncidents(ctx, store.IncidentFilter{Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Incidents) != len(l.acked) {
		t.Errorf("%d incidents in the log, %d distinct ids acknowledged", len(page.Incidents), len(l.acked))
	}
	return lost, len(page.Incidents)
}

// allEvents is the audit log of st.
func allEvents(t *testing.T, st *store.Store) []store.Event {
	t.Helper()
	evs, err := st.EventsAfter(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// eventsKept fails the test unless after begins with the events of before.
func eventsKept(t *testing.T, before, after []store.Event) {
	t.Helper()
	for i, e := range before {
		if i >= len(after) || after[i].ID != e.ID || after[i].Action != e.Action {
			t.Fatalf("audit event %d (%s) before the kill is not the same after it", e.ID, e.Action)
		}
	}
}

// auditVerify runs `opscenter audit verify` with env, as an operator would,
// and returns the last line of its output.
func auditVerify(t *testing.T, bin string, env []string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "audit", "verify")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("opscenter audit verify: %v\n%s", err, out)
	}
	return lastLine(out)
}
