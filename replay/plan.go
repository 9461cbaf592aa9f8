package replay

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/opscenter/opscenter/configs"
	"github.com/opscenter/opscenter/store"
)

// Plan is a scenario expanded against its roster: every figure and every event
// of the day, deterministic from the scenario's seed.
type Plan struct {
	S          *Scenario
	Units      []store.RosterEntry // roster order: province, districts, communes
	Registered map[string]int64    // commune → registered voters
	Voted      map[string]int64    // commune → voters at the end of the day
	Completed  map[string]time.Time
	Events     []Event // in scenario-time order
	byCode     map[string]store.RosterEntry
	incidents  map[string]*IncidentSpec
	acks       map[string]map[string]string // directive key → code → app | phone | never
}

// Plan loads the scenario's roster and registered voters (embedded) and
// synthesizes the day.
func (s *Scenario) Plan() (*Plan, error) {
	rf, err := configs.Rosters.Open("roster/" + s.Roster + ".tsv")
	if err != nil {
		return nil, fmt.Errorf("roster %s: %w", s.Roster, err)
	}
	defer rf.Close()
	units, err := store.ParseRoster(rf)
	if err != nil {
		return nil, fmt.Errorf("roster %s: %w", s.Roster, err)
	}
	tf, err := configs.Turnout.Open("turnout/" + s.Roster + ".tsv")
	if err != nil {
		return nil, fmt.Errorf("registered voters %s: %w", s.Roster, err)
	}
	defer tf.Close()
	figs, err := store.ParseRegistered(tf, '\t')
	if err != nil {
		return nil, fmt.Errorf("registered voters %s: %w", s.Roster, err)
	}
	reg := map[string]int64{}
	for _, f := range figs {
		if f.Registered != nil {
			reg[f.Code] = *f.Registered
		}
	}
	return newPlan(s, units, reg)
}

func newPlan(s *Scenario, units []store.RosterEntry, reg map[string]int64) (*Plan, error) {
	p := &Plan{S: s, Units: units, Registered: reg, Voted: map[string]int64{}, Completed: map[string]time.Time{},
		byCode: map[string]store.RosterEntry{}, incidents: map[string]*IncidentSpec{}, acks: map[string]map[string]string{}}
	var sum int64
	for _, u := range units {
		p.byCode[u.Code] = u
		if u.Kind == store.KindCommune {
			r, ok := reg[u.Code]
			if !ok {
				return nil, fmt.Errorf("commune %s has no registered figure", u.Code)
			}
			sum += r
		}
	}
	if sum != s.Totals.Registered {
		return nil, fmt.Errorf("registered voters sum to %d, the scenario says %d", sum, s.Totals.Registered)
	}
	steps := []func() error{p.turnout, p.corrections, p.joins, p.incidentEvents, p.directiveEvents, p.liveEvents, p.outageEvents}
	for _, f := range steps {
		if err := f(); err != nil {
			return nil, fmt.Errorf("scenario: %w", err)
		}
	}
	p.Events = append(p.Events, Event{At: s.Start(), Kind: KindSessionStart}, Event{At: s.End(), Kind: KindSessionEnd})
	if s.Fault.At != "" {
		t, err := p.at("fault.at", s.Fault.At)
		if err != nil {
			return nil, fmt.Errorf("scenario: %w", err)
		}
		p.Events = append(p.Events, Event{At: t, Kind: KindFault})
	}
	slices.SortStableFunc(p.Events, func(a, b Event) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return int(a.Kind) - int(b.Kind)
	})
	return p, nil
}

// rng is a generator for one purpose (key), so that adding an event to the
// scenario does not reshuffle the figures of everything else.
func (p *Plan) rng(key string) *rand.Rand {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return rand.New(rand.NewPCG(p.S.Seed, h.Sum64()))
}

func (p *Plan) at(field, hhmm string) (time.Time, error) {
	t, err := p.S.At(hhmm)
	if err != nil {
		return t, fmt.Errorf("%s: %w", field, err)
	}
	if t.Before(p.S.Start()) || t.After(p.S.End()) {
		return t, fmt.Errorf("%s: %s is outside the session", field, hhmm)
	}
	return t, nil
}

func (p *Plan) unit(field, code string) (store.RosterEntry, error) {
	u, ok := p.byCode[code]
	if !ok {
		return u, fmt.Errorf("%s: %q is not in roster %s", field, code, p.S.Roster)
	}
	return u, nil
}

// Communes returns the communes of a district (or of all, for the province).
func (p *Plan) Communes(parent string) []store.RosterEntry {
	var out []store.RosterEntry
	for _, u := range p.Units {
		if u.Kind == store.KindCommune && (parent == p.Units[0].Code || u.ParentCode == parent) {
			out = append(out, u)
		}
	}
	return out
}

// turnout gives each commune its final figure and completion time and its
// reports through the day.
func (p *Plan) turnout() error {
	tr := p.S.Turnout
	first, err := p.at("turnout.first_report", tr.FirstReport)
	if err != nil {
		return err
	}
	defComplete, err := p.at("turnout.default_complete", tr.DefaultComplete)
	if err != nil {
		return err
	}
	rules := map[string]DistrictRule{}
	for i, r := range tr.Districts {
		if u, err := p.unit("turnout.districts", r.Code); err != nil {
			return err
		} else if u.Kind != store.KindDistrict {
			return fmt.Errorf("turnout.districts: %s is not a district", r.Code)
		}
		if _, err := p.at("turnout.districts["+r.Code+"]", r.Complete); err != nil {
			return err
		}
		rules[r.Code] = tr.Districts[i]
	}
	// The voters who stayed home, spread over the districts that are not full,
	// one at a time, in proportion to registered voters.
	var pool []store.RosterEntry
	var poolReg int64
	for _, c := range p.Communes(p.Units[0].Code) {
		p.Voted[c.Code] = p.Registered[c.Code]
		if !rules[c.ParentCode].Full {
			pool = append(pool, c)
			poolReg += p.Registered[c.Code]
		}
	}
	missing := p.S.Totals.Registered - p.S.Totals.Voted
	if missing < 0 || (missing > 0 && poolReg < missing) {
		return fmt.Errorf("totals.voted %d cannot be reached", p.S.Totals.Voted)
	}
	rng := p.rng("abstain")
	for k := int64(0); k < missing; {
		x := rng.Int64N(poolReg)
		for _, c := range pool {
			if x < p.Registered[c.Code] {
				if p.Voted[c.Code] > 0 {
					p.Voted[c.Code]--
					k++
				}
				break
			}
			x -= p.Registered[c.Code]
		}
	}
	// Completion: the district's time for one commune (picked by the seed), the
	// others within complete_spread before it.
	for _, d := range p.Units {
		if d.Kind != store.KindDistrict {
			continue
		}
		end := defComplete
		if r, ok := rules[d.Code]; ok {
			end, _ = p.S.At(r.Complete)
		}
		cs := p.Communes(d.Code)
		if len(cs) == 0 {
			continue
		}
		rng := p.rng("complete/" + d.Code)
		last := rng.IntN(len(cs))
		for i, c := range cs {
			t := end
			if i != last && tr.CompleteSpread.Duration > 0 {
				t = end.Add(-time.Duration(rng.Int64N(int64(tr.CompleteSpread.Duration/time.Minute)+1)) * time.Minute)
			}
			if !t.After(first) {
				return fmt.Errorf("district %s completes before the first report", d.Code)
			}
			p.Completed[c.Code] = t
		}
	}
	start := p.S.Start()
	for i, c := range p.Communes(p.Units[0].Code) {
		via := ""
		if tr.PhoneEvery > 0 && i%tr.PhoneEvery == tr.PhoneEvery-1 {
			via = "phone"
		}
		rng := p.rng("reports/" + c.Code)
		done, final := p.Completed[c.Code], p.Voted[c.Code]
		t := first.Add(time.Duration(rng.Int64N(int64(tr.Interval.Duration/time.Minute)+1)) * time.Minute)
		for ; t.Before(done); t = t.Add(tr.Interval.Duration) {
			x := float64(t.Sub(start)) / float64(done.Sub(start))
			v := int64(math.Floor(float64(final) * 0.97 * (1 - (1-x)*(1-x))))
			p.Events = append(p.Events, Event{At: t, Kind: KindReport, Code: c.Code,
				Report: &Report{Code: c.Code, AsOf: t, Voted: v, Via: via}})
		}
		p.Events = append(p.Events, Event{At: done, Kind: KindReport, Code: c.Code,
			Report: &Report{Code: c.Code, AsOf: done, Voted: final, Complete: true, Via: via}})
	}
	return nil
}

// corrections lower the figure in force at their time; the later reports are
// all above it, so nothing after them needs changing.
func (p *Plan) corrections() error {
	for i, c := range p.S.Corrections {
		f := fmt.Sprintf("corrections[%d]", i)
		if u, err := p.unit(f, c.Code); err != nil {
			return err
		} else if u.Kind != store.KindCommune {
			return fmt.Errorf("%s: %s is not a commune", f, c.Code)
		}
		t, err := p.at(f, c.At)
		if err != nil {
			return err
		}
		if c.Reason == "" || c.Minus <= 0 {
			return fmt.Errorf("%s: needs minus > 0 and a reason", f)
		}
		var inForce int64 = -1
		for _, e := range p.Events {
			if e.Kind == KindReport && e.Code == c.Code && !e.At.After(t) && e.Report.Voted > inForce {
				inForce = e.Report.Voted
			}
		}
		if inForce < c.Minus {
			return fmt.Errorf("%s: %s has reported %d by %s, less than minus", f, c.Code, inForce, c.At)
		}
		if !t.Before(p.Completed[c.Code]) {
			return fmt.Errorf("%s: %s is complete by then", f, c.Code)
		}
		p.Events = append(p.Events, Event{At: t, Kind: KindCorrection, Code: c.Code,
			Report: &Report{Code: c.Code, AsOf: t, Voted: inForce - c.Minus, Via: "phone", Reason: c.Reason}})
	}
	return nil
}

// joins: every endpoint but the command room joins within joins.over.
func (p *Plan) joins() error {
	rng := p.rng("joins")
	over := p.S.Joins.Over.Duration
	for _, c := range p.S.Joins.MediaSome {
		if _, err := p.unit("joins.media_some", c); err != nil {
			return err
		}
	}
	for _, u := range p.Units[1:] {
		d := time.Duration(0)
		if over > 0 {
			d = time.Duration(rng.Int64N(int64(over/time.Second)+1)) * time.Second
		}
		p.Events = append(p.Events, Event{At: p.S.Start().Add(d), Kind: KindJoin, Code: u.Code})
	}
	return nil
}

var (
	categories = []string{"security_order", "health_covid", "complaint", "logistics", "communications", "other"}
	severities = []string{"info", "low", "high", "critical"}
	vias       = []string{"phone", "radio", "in_person", "other"}
	statuses   = []string{"open", "acknowledged", "in_progress", "resolved", "closed"}
)

func (p *Plan) incidentEvents() error {
	for i := range p.S.Incidents {
		in := &p.S.Incidents[i]
		f := fmt.Sprintf("incidents[%d]", i)
		if in.Key == "" || p.incidents[in.Key] != nil {
			return fmt.Errorf("%s: key missing or repeated", f)
		}
		p.incidents[in.Key] = in
		if _, err := p.unit(f, in.Code); err != nil {
			return err
		}
		if !slices.Contains(categories, in.Category) || !slices.Contains(severities, in.Severity) {
			return fmt.Errorf("%s: category %q or severity %q unknown", f, in.Category, in.Severity)
		}
		if in.Via != "" && !slices.Contains(vias, in.Via) {
			return fmt.Errorf("%s: via %q", f, in.Via)
		}
		t, err := p.at(f, in.At)
		if err != nil {
			return err
		}
		if in.OccurredAt != "" {
			if _, err := p.S.At(in.OccurredAt); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
		p.Events = append(p.Events, Event{At: t, Kind: KindIncident, Code: in.Code, Incident: in})
		prev := t
		for j := range in.Updates {
			u := &in.Updates[j]
			ut, err := p.at(fmt.Sprintf("%s.updates[%d]", f, j), u.At)
			if err != nil {
				return err
			}
			if ut.Before(prev) || (u.Status != "" && !slices.Contains(statuses, u.Status)) {
				return fmt.Errorf("%s.updates[%d]: out of order or unknown status", f, j)
			}
			prev = ut
			p.Events = append(p.Events, Event{At: ut, Kind: KindIncidentUpdate, Code: in.Code, Incident: in, Update: u})
		}
	}
	return nil
}

// targets expands a directive's targets as the API does.
func (p *Plan) targets(t Targets) ([]string, error) {
	n := 0
	for _, b := range []bool{t.All, t.District != "", len(t.Endpoints) > 0} {
		if b {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("to: exactly one of all, district, endpoints")
	}
	var out []string
	switch {
	case t.All:
		for _, u := range p.Units[1:] {
			out = append(out, u.Code)
		}
	case t.District != "":
		if u, err := p.unit("to.district", t.District); err != nil || u.Kind != store.KindDistrict {
			return nil, fmt.Errorf("to.district %q is not a district", t.District)
		}
		out = append(out, t.District)
		for _, c := range p.Communes(t.District) {
			out = append(out, c.Code)
		}
	default:
		for _, c := range t.Endpoints {
			if u, err := p.unit("to.endpoints", c); err != nil || u.Kind == store.KindProvince {
				return nil, fmt.Errorf("to.endpoints: %q", c)
			}
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

func (p *Plan) directiveEvents() error {
	for i := range p.S.Directives {
		d := &p.S.Directives[i]
		f := fmt.Sprintf("directives[%d]", i)
		if d.Key == "" || p.acks[d.Key] != nil {
			return fmt.Errorf("%s: key missing or repeated", f)
		}
		t, err := p.at(f, d.At)
		if err != nil {
			return err
		}
		if d.Incident != "" && p.incidents[d.Incident] == nil {
			return fmt.Errorf("%s: incident %q is not in the scenario", f, d.Incident)
		}
		if d.Due != "" {
			if _, err := p.S.At(d.Due); err != nil {
				return fmt.Errorf("%s: due: %w", f, err)
			}
		}
		codes, err := p.targets(d.To)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		how := map[string]string{}
		for _, c := range codes {
			how[c] = "app"
		}
		for via, list := range map[string][]string{"phone": d.Acks.Phone, "late": d.Acks.Late, "never": d.Acks.Never} {
			for _, c := range list {
				if how[c] != "app" {
					return fmt.Errorf("%s: acks: %s is not a target, or listed twice", f, c)
				}
				how[c] = via
			}
		}
		lateAt := t
		if len(d.Acks.Late) > 0 {
			if lateAt, err = p.at(f+".acks.late_at", d.Acks.LateAt); err != nil {
				return err
			}
		}
		p.Events = append(p.Events, Event{At: t, Kind: KindDirective, Directive: d})
		replyAt := map[string]time.Time{}
		for j, r := range d.Replies {
			rt, err := p.at(fmt.Sprintf("%s.replies[%d]", f, j), r.At)
			if err != nil {
				return err
			}
			if (how[r.Code] != "app" && how[r.Code] != "late") || rt.Before(t) {
				return fmt.Errorf("%s.replies[%d]: %s must be a target that acknowledges in the app, replying after the directive", f, j, r.Code)
			}
			replyAt[r.Code] = rt
			p.Events = append(p.Events, Event{At: rt, Kind: KindReply, Code: r.Code, Directive: d, Reply: &d.Replies[j]})
		}
		rng := p.rng("acks/" + d.Key)
		p.acks[d.Key] = map[string]string{}
		for _, c := range codes {
			var at time.Time
			switch how[c] {
			case "never":
				p.acks[d.Key][c] = "never"
				continue
			case "late":
				at, how[c] = lateAt, "app"
			default:
				at = t.Add(time.Duration(rng.Int64N(int64(d.Acks.Within.Duration/time.Second)+1)) * time.Second)
			}
			// A reply from the endpoint acknowledges it too: the ack comes first.
			if rt, ok := replyAt[c]; ok && rt.Before(at) {
				at = rt
			}
			p.acks[d.Key][c] = how[c]
			p.Events = append(p.Events, Event{At: at, Kind: KindAck, Code: c, Directive: d, Via: how[c]})
		}
	}
	return nil
}

var liveActions = map[string]bool{"raise_hand": true, "lower_hand": true, "give_floor": true, "revoke_floor": false,
	"private_line_open": true, "private_line_close": false, "roll_call_start": false, "roll_call_stop": false}

func (p *Plan) liveEvents() error {
	for i := range p.S.Live {
		l := &p.S.Live[i]
		f := fmt.Sprintf("live[%d]", i)
		needsCode, ok := liveActions[l.Action]
		if !ok {
			return fmt.Errorf("%s: unknown action %q", f, l.Action)
		}
		if needsCode {
			if u, err := p.unit(f, l.Code); err != nil || u.Kind == store.KindProvince {
				return fmt.Errorf("%s: code %q", f, l.Code)
			}
		}
		t, err := p.at(f, l.At)
		if err != nil {
			return err
		}
		p.Events = append(p.Events, Event{At: t, Kind: KindLive, Code: l.Code, Live: l})
	}
	return nil
}

func (p *Plan) outageEvents() error {
	for i := range p.S.Outages {
		o := &p.S.Outages[i]
		f := fmt.Sprintf("outages[%d]", i)
		if u, err := p.unit(f, o.Code); err != nil || u.Kind == store.KindProvince {
			return fmt.Errorf("%s: code %q", f, o.Code)
		}
		t, err := p.at(f, o.At)
		if err != nil {
			return err
		}
		if o.For.Duration <= 0 || t.Add(o.For.Duration).After(p.S.End()) {
			return fmt.Errorf("%s: for must be positive and end within the session", f)
		}
		p.Events = append(p.Events, Event{At: t, Kind: KindOutage, Code: o.Code, Outage: o})
	}
	return nil
}

// ExpectedAcks is how each target of a directive acknowledges: app, phone or never.
func (p *Plan) ExpectedAcks(key string) map[string]string { return p.acks[key] }

// MediaCodes are the endpoints that publish and receive media under mode (all,
// some, none); an endpoint with an outage always has a media path, since only
// an endpoint that was online can go offline.
func (p *Plan) MediaCodes(mode string) map[string]bool {
	m := map[string]bool{}
	switch mode {
	case "all":
		for _, u := range p.Units[1:] {
			m[u.Code] = true
		}
	case "some":
		for _, c := range p.S.Joins.MediaSome {
			m[c] = true
		}
	}
	for _, o := range p.S.Outages {
		m[o.Code] = true
	}
	return m
}
