package replay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opscenter/opscenter/store"
)

// Check is one end-of-run check.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// turnoutUnit is one unit of GET /api/v1/turnout.
type turnoutUnit struct {
	Code        string     `json:"code"`
	Name        string     `json:"name"`
	Kind        string     `json:"kind"`
	Registered  int64      `json:"registered"`
	Voted       int64      `json:"voted"`
	Percent     float64    `json:"percent"`
	Complete    bool       `json:"complete"`
	CompletedAt *time.Time `json:"completed_at"`
}

// fetchTurnout reads every unit's figure back from the API: the province, its
// districts, and each district's communes.
func (r *runner) fetchTurnout(ctx context.Context) (map[string]turnoutUnit, error) {
	out := map[string]turnoutUnit{}
	get := func(q string) ([]turnoutUnit, error) {
		var res struct {
			Units []turnoutUnit `json:"units"`
		}
		err := r.lead.do(ctx, "GET", "/api/v1/turnout?session="+r.sessionID+q, nil, &res)
		return res.Units, err
	}
	prov := r.plan.Units[0].Code
	lists := [][]turnoutUnit{}
	for _, q := range []string{"", "&parent=" + prov} {
		l, err := get(q)
		if err != nil {
			return nil, err
		}
		lists = append(lists, l)
	}
	for _, d := range lists[1] {
		l, err := get("&parent=" + d.Code)
		if err != nil {
			return nil, err
		}
		lists = append(lists, l)
	}
	for _, l := range lists {
		for _, u := range l {
			out[u.Code] = u
		}
	}
	return out, nil
}

func (r *runner) checks(ctx context.Context) []Check {
	var cs []Check
	add := func(name string, ok bool, f string, a ...any) {
		cs = append(cs, Check{Name: name, OK: ok, Detail: fmt.Sprintf(f, a...)})
	}
	r.errMu.Lock()
	errs := append([]string(nil), r.errs...)
	r.errMu.Unlock()
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Sprintf("… %d more", len(errs)-5))
	}
	add("every event went through", len(errs) == 0, "%s", strings.Join(errs, "; "))
	if r.o.Fault != "" {
		add("fault "+r.o.Fault+" struck and the run recovered", r.faultDone.Load(), "at %s", r.plan.S.Fault.At)
	}

	units, err := r.fetchTurnout(ctx)
	if err != nil {
		add("turnout read back", false, "%v", err)
	} else {
		cs = append(cs, r.turnoutChecks(units)...)
	}
	evs, err := r.auditEvents(ctx)
	if err != nil {
		add("log read back", false, "%v", err)
	} else {
		cs = append(cs, r.logChecks(ctx, evs)...)
	}
	if out, err := r.srv.CLI(ctx, "", "audit", "verify"); err != nil {
		add("opscenter audit verify", false, "%v", err)
	} else {
		add("opscenter audit verify", true, "%s", bytes.TrimSpace(out))
	}
	cs = append(cs, r.recordingCheck(ctx, evs))
	cs = append(cs, r.outageCheck(ctx))
	return cs
}

func (r *runner) turnoutChecks(units map[string]turnoutUnit) []Check {
	s, prov := r.plan.S, r.plan.Units[0].Code
	p := units[prov]
	cs := []Check{{Name: "province turnout", OK: p.Voted == s.Totals.Voted && p.Registered == s.Totals.Registered,
		Detail: fmt.Sprintf("%d / %d (%.2f%%), want %d / %d", p.Voted, p.Registered, p.Percent, s.Totals.Voted, s.Totals.Registered)}}
	var bad []string
	first, firstAt := "", time.Time{}
	for _, d := range r.plan.Units {
		if d.Kind != store.KindDistrict {
			continue
		}
		var reg, voted int64
		for _, c := range r.plan.Communes(d.Code) {
			u := units[c.Code]
			reg, voted = reg+u.Registered, voted+u.Voted
			if u.Voted != r.plan.Voted[c.Code] {
				bad = append(bad, fmt.Sprintf("%s voted %d, scenario %d", c.Code, u.Voted, r.plan.Voted[c.Code]))
			}
		}
		du := units[d.Code]
		if du.Registered != reg || du.Voted != voted {
			bad = append(bad, fmt.Sprintf("%s %d/%d, communes %d/%d", d.Code, du.Voted, du.Registered, voted, reg))
		}
		if du.CompletedAt != nil && (first == "" || du.CompletedAt.Before(firstAt)) {
			first, firstAt = d.Code, *du.CompletedAt
		}
	}
	cs = append(cs, Check{Name: "every district is the sum of its communes", OK: len(bad) == 0,
		Detail: strings.Join(bad, "; ")})
	want, wantAt := "", ""
	if len(s.Turnout.Districts) > 0 {
		want, wantAt = s.Turnout.Districts[0].Code, s.Date+" "+s.Turnout.Districts[0].Complete
	}
	got := ""
	if first != "" {
		got = s.Local(firstAt)
	}
	cs = append(cs, Check{Name: "first district complete", OK: first == want && got == wantAt,
		Detail: fmt.Sprintf("%s at %s, want %s at %s", first, got, want, wantAt)})
	return cs
}

// auditEvents reads the audit log from the start to its head (the live stream,
// resumed from 0).
func (r *runner) auditEvents(ctx context.Context) ([]store.Event, error) {
	var head struct {
		LastEventID int64 `json:"last_event_id"`
	}
	if err := r.lead.do(ctx, "GET", "/api/v1/events/head", nil, &head); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", r.srv.URL+"/api/v1/events?after=0", nil)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+r.lead.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("events: %s", resp.Status)
	}
	var out []store.Event
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e store.Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		out = append(out, e)
		if e.ID >= head.LastEventID {
			return out, nil
		}
	}
	return nil, fmt.Errorf("events: stream ended before %d: %w", head.LastEventID, sc.Err())
}

// logChecks: every incident, directive, acknowledgement, reply and report of
// the scenario is in the audit log exactly once, and the receipts say how.
func (r *runner) logChecks(ctx context.Context, evs []store.Event) []Check {
	count := map[string]int{}
	for _, e := range evs {
		if e.SessionID != nil && *e.SessionID != r.sessionID {
			continue
		}
		switch e.Action {
		case "incident.created", "directive.issued":
			count[e.Action+" "+e.EntityID]++
		case "directive.acknowledged", "directive.replied":
			var rc store.Receipt
			if json.Unmarshal(e.After, &rc) == nil {
				count[e.Action+" "+rc.DirectiveID+" "+rc.EndpointCode]++
			}
		case "turnout.reported":
			count[e.Action]++
		}
	}
	var bad []string
	expect := func(key string, n int) {
		if count[key] != n {
			bad = append(bad, fmt.Sprintf("%s: %d times, want %d", key, count[key], n))
		}
	}
	nInc, nAck, nReply := 0, 0, 0
	for _, in := range r.plan.S.Incidents {
		expect("incident.created "+r.id("incident/"+in.Key), 1)
		nInc++
	}
	var viaBad []string
	for _, d := range r.plan.S.Directives {
		id := r.id("directive/" + d.Key)
		expect("directive.issued "+id, 1)
		acks := r.plan.ExpectedAcks(d.Key)
		for code, how := range acks {
			if how != "never" {
				expect("directive.acknowledged "+id+" "+code, 1)
				nAck++
			} else {
				expect("directive.acknowledged "+id+" "+code, 0)
			}
		}
		for _, rp := range d.Replies {
			expect("directive.replied "+id+" "+rp.Code, 1)
			nReply++
		}
		var doc struct {
			Receipts []store.Receipt `json:"receipts"`
		}
		if err := r.lead.do(ctx, "GET", "/api/v1/directives/"+id, nil, &doc); err != nil {
			viaBad = append(viaBad, err.Error())
			continue
		}
		for _, rc := range doc.Receipts {
			want := acks[rc.EndpointCode]
			if (want == "never") != (rc.AckedAt == nil) || (want != "never" && rc.AckVia != want) {
				viaBad = append(viaBad, fmt.Sprintf("%s %s acked via %q, want %s", d.Key, rc.EndpointCode, rc.AckVia, want))
			}
		}
	}
	reports := 0
	for _, e := range r.plan.Events {
		if e.Kind == KindReport || e.Kind == KindCorrection {
			reports++
		}
	}
	expect("turnout.reported", reports)
	sort.Strings(bad)
	if len(bad) > 8 {
		bad = append(bad[:8], "… "+strconv.Itoa(len(bad)-8)+" more")
	}
	if len(viaBad) > 8 {
		viaBad = append(viaBad[:8], "…")
	}
	return []Check{
		{Name: "every incident, directive, acknowledgement, reply and report in the log exactly once", OK: len(bad) == 0,
			Detail: fmt.Sprintf("%d incidents, %d directives, %d acknowledgements, %d replies, %d reports; %s",
				nInc, len(r.plan.S.Directives), nAck, nReply, reports, strings.Join(bad, "; "))},
		{Name: "acknowledgements by app, by phone, and never as scripted", OK: len(viaBad) == 0, Detail: strings.Join(viaBad, "; ")},
	}
}

type sessionDoc struct {
	ActualStart *time.Time `json:"actual_start"`
	ActualEnd   *time.Time `json:"actual_end"`
}

type recordingDoc struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	State     string     `json:"state"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
}

// recordingCheck: the program's files cover the session, and the markers name
// every incident. With --media none there is no program to record.
func (r *runner) recordingCheck(ctx context.Context, evs []store.Event) Check {
	c := Check{Name: "recordings cover the session, with markers for the incidents"}
	if r.o.Media == "none" {
		c.OK, c.Detail = true, "skipped: --media none publishes no program"
		return c
	}
	var sess sessionDoc
	if err := r.lead.do(ctx, "GET", "/api/v1/sessions/"+r.sessionID, nil, &sess); err != nil || sess.ActualStart == nil || sess.ActualEnd == nil {
		c.Detail = fmt.Sprintf("session: %v", err)
		return c
	}
	var recs struct {
		Recordings []recordingDoc `json:"recordings"`
	}
	// Files close shortly after the session ends.
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs.Recordings = nil
		if err := r.lead.do(ctx, "GET", "/api/v1/recordings?session="+r.sessionID, nil, &recs); err != nil {
			c.Detail = err.Error()
			return c
		}
		open := 0
		for _, rc := range recs.Recordings {
			if rc.State == "open" {
				open++
			}
		}
		if open == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	// A file covers from its start to when it was closed (its recording.closed
	// event): its media duration runs short when the synthetic camera's ticker
	// drops frames on a loaded machine. A file repaired after a kill ends where
	// its media ends.
	closedAt := map[string]time.Time{}
	for _, e := range evs {
		if e.Action == "recording.closed" {
			closedAt[e.EntityID] = e.At
		}
	}
	var spans [][2]time.Time
	for _, rc := range recs.Recordings {
		end, ok := closedAt[rc.ID]
		if !ok && rc.EndedAt != nil {
			end, ok = *rc.EndedAt, true
		}
		if rc.Kind == "program" && ok {
			spans = append(spans, [2]time.Time{rc.StartedAt, end})
		}
	}
	uncovered := uncoveredTime(spans, *sess.ActualStart, *sess.ActualEnd)
	// The session's first and last seconds, and a killed server's absence.
	allowed := 10*time.Second + r.faultGap
	covers := len(spans) > 0 && uncovered <= allowed
	var vtt []byte
	if err := r.lead.do(ctx, "GET", "/api/v1/sessions/"+r.sessionID+"/markers.vtt", nil, &vtt); err != nil {
		c.Detail = err.Error()
		return c
	}
	var missing []string
	for _, in := range r.plan.S.Incidents {
		if !strings.Contains(string(vtt), r.id("incident/"+in.Key)) {
			missing = append(missing, in.Key)
		}
	}
	c.OK = covers && len(missing) == 0
	c.Detail = fmt.Sprintf("%d recordings (%d of the program); session %s to %s, %v of it not recorded (allowed %v); markers missing: %v",
		len(recs.Recordings), len(spans), sess.ActualStart.Format(time.TimeOnly), sess.ActualEnd.Format(time.TimeOnly),
		uncovered.Round(time.Millisecond), allowed.Round(time.Millisecond), missing)
	return c
}

// uncoveredTime is how much of [from, to] no span covers.
func uncoveredTime(spans [][2]time.Time, from, to time.Time) time.Duration {
	sort.Slice(spans, func(i, j int) bool { return spans[i][0].Before(spans[j][0]) })
	var gap time.Duration
	at := from
	for _, sp := range spans {
		if sp[0].After(at) {
			end := sp[0]
			if end.After(to) {
				end = to
			}
			gap += end.Sub(at)
		}
		if sp[1].After(at) {
			at = sp[1]
		}
		if !at.Before(to) {
			return gap
		}
	}
	return gap + to.Sub(at)
}

type incidentRow struct {
	ID           string    `json:"id"`
	EndpointCode string    `json:"endpoint_code"`
	Category     string    `json:"category"`
	ReportedBy   string    `json:"reported_by"`
	OccurredAt   time.Time `json:"occurred_at"`
}

// outageCheck: each scripted outage opened exactly one incident by itself.
func (r *runner) outageCheck(ctx context.Context) Check {
	c := Check{Name: "the outage opened one incident by itself"}
	var all []incidentRow
	cursor := ""
	for range 50 {
		var page struct {
			Incidents  []incidentRow `json:"incidents"`
			NextCursor string        `json:"next_cursor"`
		}
		q := "/api/v1/incidents?limit=200&category=communications&session=" + r.sessionID
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		if err := r.lead.do(ctx, "GET", q, nil, &page); err != nil {
			c.Detail = err.Error()
			return c
		}
		all = append(all, page.Incidents...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	// The scripted outage's incident is the one whose loss time is when the
	// replay dropped the link; a fault or a loaded machine may open others.
	bySystem, other := map[string]int{}, map[string]int{}
	for _, in := range all {
		if in.ReportedBy != "system" {
			continue
		}
		if at, ok := r.droppedAt(in.EndpointCode); ok && !in.OccurredAt.Before(at.Add(-2*time.Second)) &&
			!in.OccurredAt.After(at.Add(3*time.Second)) {
			bySystem[in.EndpointCode]++
		} else {
			other[in.EndpointCode]++
		}
	}
	c.OK = len(r.plan.S.Outages) > 0
	var parts []string
	for _, o := range r.plan.S.Outages {
		parts = append(parts, fmt.Sprintf("%s: %d", o.Code, bySystem[o.Code]))
		if bySystem[o.Code] != 1 {
			c.OK = false
		}
	}
	c.Detail = strings.Join(parts, ", ")
	if len(other) > 0 {
		c.Detail += fmt.Sprintf("; other system incidents (a fault, a loaded machine; not judged): %v", other)
	}
	return c
}
