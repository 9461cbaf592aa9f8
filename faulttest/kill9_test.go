package faulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/store/storetest"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatal("go.mod not found")
		}
	}
}

// buildBinary builds ./cmd/opscenter into the test's temp dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "opscenter")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/opscenter")
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeUDPPort returns a UDP port free on 127.0.0.1 and on the wildcard address.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{})
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// proc is one run of the opscenter binary.
type proc struct {
	cmd    *exec.Cmd
	exited chan error
	log    *os.File
}

// serverEnv is what every run of the binary gets: the same database, ports and
// local state files.
type serverEnv struct {
	bin, url string
	env      []string
	logDir   string
	runs     int
}

func (s *serverEnv) start(t *testing.T) *proc {
	t.Helper()
	s.runs++
	p, took := serve(t, s.bin, s.env, filepath.Join(s.logDir, fmt.Sprintf("server-%d.log", s.runs)), "opscenter", s.url, 200)
	t.Logf("opscenter run %d (pid %d) ready in %v", s.runs, p.cmd.Process.Pid, took.Round(time.Millisecond))
	return p
}

// serve starts `bin serve` with env, its output in logPath, and waits (60 s at
// most) until it answers /readyz at url with want; it is stopped at the end of
// the test.
func serve(t *testing.T, bin string, env []string, logPath, name, url string, want int) (*proc, time.Duration) {
	t.Helper()
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan error, 1), log: lf}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { p.stop() })
	start := time.Now()
	for {
		select {
		case err := <-p.exited:
			p.exited <- err
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited: %v\n%s", name, err, b)
		default:
		}
		if st, _ := readyz(url); st == want {
			return p, time.Since(start)
		}
		if time.Since(start) > 60*time.Second {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s: /readyz not %d after 60 s\n%s", name, want, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and reaps the process.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err
	case <-time.After(10 * time.Second):
		t.Fatal("opscenter did not die from SIGKILL")
	}
}

// stop ends the process (SIGTERM, then SIGKILL) if it still runs.
func (p *proc) stop() {
	select {
	case err := <-p.exited:
		p.exited <- err
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	p.log.Close()
}

// opscenter is killed with SIGKILL in the middle of a session and started again on
// the same ports: every synthetic endpoint (and the consoles) reconnects by itself,
// the floor, the mutes and the hand queue come back, every incident the API had
// acknowledged is there (and an unacknowledged one retried with its id exists once),
// and `opscenter audit verify` finds the chain intact.
func TestKill9AndRestart(t *testing.T) {
	ctx := context.Background()
	bin := buildBinary(t)
	dsn := storetest.DSN(t)
	st, err := store.Open(ctx, dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	httpPort, udpPort, tcpPort := freeUDPPort(t), freeUDPPort(t), freeUDPPort(t)
	stateDir := t.TempDir()
	s := &serverEnv{bin: bin, url: fmt.Sprintf("http://127.0.0.1:%d", httpPort), logDir: t.TempDir()}
	s.env = []string{
		"OPSCENTER_DATABASE_URL=" + dsn,
		fmt.Sprintf("OPSCENTER_HTTP_ADDR=127.0.0.1:%d", httpPort),
		"OPSCENTER_METRICS_ADDR=127.0.0.1:0", // a free port: parallel servers
		"OPSCENTER_HTTP_PUBLIC_URL=" + s.url,
		fmt.Sprintf("OPSCENTER_MEDIA_UDP_PORT=%d", udpPort),
		fmt.Sprintf("OPSCENTER_MEDIA_TCP_PORT=%d", tcpPort),
		"OPSCENTER_DATABASE_JOURNAL_PATH=" + filepath.Join(stateDir, "audit.journal"),
		"OPSCENTER_RECORDING_DIR=" + filepath.Join(stateDir, "recordings"),
		"OPSCENTER_LOG_LEVEL=info",
	}
	p := s.start(t)

	// Credentials straight in the database; the API through the binary.
	lead := login(t, st, s.url, "lead", auth.RoleLeader)
	duty := login(t, st, s.url, "duty", auth.RoleDuty)
	sessID := uuid.NewString()
	now := time.Now().UTC()
	lead.do(t, "POST", "/api/v1/sessions", map[string]any{"id": sessID, "title": "Bầu cử 23/5/2021",
		"planned_start": now, "planned_end": now.Add(12 * time.Hour)}, nil, 201)
	lead.do(t, "POST", "/api/v1/sessions/"+sessID+"/start", nil, nil, 200)

	eps, err := st.ListEndpoints(ctx, store.EndpointFilter{Kind: store.KindCommune})
	if err != nil {
		t.Fatal(err)
	}
	codes := []string{}
	for _, e := range eps[:6] {
		codes = append(codes, e.Code)
	}
	floor, muted, hands := codes[0], []string{codes[1], codes[2]}, []string{codes[3], codes[4]}
	watcher := codes[5]
	rig := &rig{t: t}
	all := map[string]*client.Client{}
	all["22"] = rig.dial(reconnecting(s.url, endpointToken(t, st, signaling.CommandCode), wire.RoleConsole, true))
	console := rig.dial(reconnecting(s.url, lead.token, wire.RoleConsole, false))
	all["console"] = console
	for _, code := range codes {
		all[code] = rig.dial(reconnecting(s.url, endpointToken(t, st, code), wire.RoleEndpoint, true))
	}
	waitT(t, "everyone connected", 30*time.Second, allConnected(all))

	// The live state: floor, two mutes, two hands in order.
	t0 := time.Now()
	send(t, console, wire.TypeGiveFloor, wire.CodeMsg{Code: floor})
	for _, m := range muted {
		send(t, console, wire.TypeMute, wire.CodeMsg{Code: m})
	}
	for _, h := range hands {
		send(t, all[h], wire.TypeRaiseHand, nil)
		if _, err := console.WaitMessage(wire.TypeHands, t0, 5*time.Second, func(e wire.Envelope) bool {
			return bytes.Contains(e.Payload, []byte(h))
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitT(t, "two mutes at the console", 5*time.Second, func() bool { return len(console.Messages(wire.TypeMute)) >= 2 })
	floorVideoFlows(t, map[string]*client.Client{watcher: all[watcher]}, floor, t0, "before the kill")

	// Incidents: 10 acknowledged before, and a writer that keeps going through the kill.
	incidents := newIncidentLog(func(id, code string) int { return postIncident(duty, id, code) })
	for i := range 10 {
		if st := incidents.send(uuid.NewString(), codes[i%len(codes)]); st != 201 {
			t.Fatalf("incident before the kill: %d", st)
		}
	}
	incidents.startWriter(codes, 2000) // unanswered ones (the kill) are retried later
	time.Sleep(500 * time.Millisecond)
	evBefore := allEvents(t, st)

	recon0 := reconnects(all)
	killAt := time.Now()
	p.kill(t)
	t.Logf("opscenter killed with SIGKILL; %d incidents acknowledged so far", incidents.nAcked())
	time.Sleep(time.Second)
	incidents.stopWriter()
	p = s.start(t)
	restartedIn := time.Since(killAt)

	// Everyone reconnects by itself.
	d := waitT(t, "every client reconnected by itself", 60*time.Second, allBack(all, recon0, ""))
	t.Logf("server back %v after the kill; all %d clients (%d endpoints, the command room, the leader's console) reconnected %v later",
		restartedIn.Round(time.Millisecond), len(all), len(codes), d.Round(time.Millisecond))

	// The live state came back.
	w := console.Welcome().State
	t.Logf("console's welcome after the restart: session %s floor %s hands %v muted %v", w.Session, strp(w.Floor), w.Hands, w.MutedCodes)
	if w.Floor == nil || *w.Floor != floor {
		t.Errorf("floor after the restart %s, want %s", strp(w.Floor), floor)
	}
	if !slices.Equal(w.Hands, hands) {
		t.Errorf("hands after the restart %v, want %v", w.Hands, hands)
	}
	for _, m := range muted {
		if !slices.Contains(w.MutedCodes, m) {
			t.Errorf("%s not muted after the restart (muted: %v)", m, w.MutedCodes)
		}
		if !all[m].Welcome().State.Muted {
			t.Errorf("%s's own welcome says it is not muted", m)
		}
	}
	for _, h := range hands {
		if !all[h].Welcome().State.HandRaised {
			t.Errorf("%s's own welcome says its hand is down", h)
		}
	}
	floorVideoFlows(t, map[string]*client.Client{watcher: all[watcher]}, floor, time.Now(), "after the restart")

	// Unanswered incidents are retried with their ids; everything acknowledged is there.
	incidents.retryUnacked(t, codes[0], "after the restart")
	lost, inLog := incidents.check(t, st, 200)
	t.Logf("%d incidents acknowledged (%d unanswered during the kill, retried with the same id), %d lost, %d in the log",
		len(incidents.acked), len(incidents.unacked), lost, inLog)
	evAfter := allEvents(t, st)
	eventsKept(t, evBefore, evAfter)

	// opscenter audit verify, as an operator would run it.
	verified := auditVerify(t, bin, s.env)
	t.Logf("opscenter audit verify: %s (%d events before the kill, %d now)", bytes.TrimSpace(verified), len(evBefore), len(evAfter))
}

func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// rest calls the API of the binary as one principal.
type rest struct{ base, token string }

// try sends body as JSON and returns the status (0: no answer) and the body.
func (r *rest) try(method, path string, body any) (int, []byte) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return 0, nil
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func (r *rest) do(t *testing.T, method, path string, body, out any, want int) {
	t.Helper()
	st, raw := r.try(method, path, body)
	if st != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, st, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}
