// Package replay runs a scenario (docs/replay.md) against a fresh opscenter: the
// day of a province replayed at a chosen speed with the project's own Pion
// clients and the REST API, then checked from what the API reads back.
package replay

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/opscenter/opscenter/configs/scenarios"
)

// Scenario is one day as the YAML file describes it.
type Scenario struct {
	Name        string           `yaml:"name"`
	Roster      string           `yaml:"roster"`
	Date        string           `yaml:"date"`
	UTCOffset   string           `yaml:"utc_offset"`
	Seed        uint64           `yaml:"seed"`
	Session     SessionSpec      `yaml:"session"`
	Totals      Totals           `yaml:"totals"`
	Joins       Joins            `yaml:"joins"`
	Turnout     TurnoutRules     `yaml:"turnout"`
	Incidents   []IncidentSpec   `yaml:"incidents"`
	Directives  []DirectiveSpec  `yaml:"directives"`
	Live        []LiveSpec       `yaml:"live"`
	Outages     []OutageSpec     `yaml:"outages"`
	Corrections []CorrectionSpec `yaml:"corrections"`
	Fault       FaultSpec        `yaml:"fault"`
	loc         *time.Location   // from UTCOffset
	day         time.Time        // midnight of Date, local
}

// SessionSpec is the session's title and planned local times.
type SessionSpec struct {
	Title string `yaml:"title"`
	Start string `yaml:"start"`
	End   string `yaml:"end"`
}

// Totals are the province's published figures.
type Totals struct {
	Registered int64 `yaml:"registered"`
	Voted      int64 `yaml:"voted"`
}

// Joins say how endpoints come on the link.
type Joins struct {
	Over      Duration `yaml:"over"`
	MediaSome []string `yaml:"media_some"`
}

// TurnoutRules generate every commune's reports.
type TurnoutRules struct {
	FirstReport     string         `yaml:"first_report"`
	Interval        Duration       `yaml:"interval"`
	PhoneEvery      int            `yaml:"phone_every"`
	CompleteSpread  Duration       `yaml:"complete_spread"`
	DefaultComplete string         `yaml:"default_complete"`
	Districts       []DistrictRule `yaml:"districts"`
}

// DistrictRule is when a district's last commune completes, and whether all its
// registered voters voted.
type DistrictRule struct {
	Code     string `yaml:"code"`
	Complete string `yaml:"complete"`
	Full     bool   `yaml:"full"`
}

// IncidentSpec is one incident and the desk's follow-up.
type IncidentSpec struct {
	Key        string           `yaml:"key"`
	At         string           `yaml:"at"`
	OccurredAt string           `yaml:"occurred_at"`
	Code       string           `yaml:"code"`
	Category   string           `yaml:"category"`
	Severity   string           `yaml:"severity"`
	Via        string           `yaml:"via"`
	Title      string           `yaml:"title"`
	Body       string           `yaml:"body"`
	Updates    []IncidentUpdate `yaml:"updates"`
}

// IncidentUpdate is one step of the desk on an incident.
type IncidentUpdate struct {
	At       string `yaml:"at"`
	Status   string `yaml:"status"`
	Assignee string `yaml:"assignee"`
	Comment  string `yaml:"comment"`
}

// DirectiveSpec is one directive, its acknowledgements and replies.
type DirectiveSpec struct {
	Key      string      `yaml:"key"`
	At       string      `yaml:"at"`
	Text     string      `yaml:"text"`
	To       Targets     `yaml:"to"`
	Incident string      `yaml:"incident"`
	Due      string      `yaml:"due"`
	Acks     AckRules    `yaml:"acks"`
	Replies  []ReplySpec `yaml:"replies"`
}

// Targets is exactly one of all, district, endpoints (as the API takes them).
type Targets struct {
	All       bool     `yaml:"all" json:"all,omitempty"`
	District  string   `yaml:"district" json:"district,omitempty"`
	Endpoints []string `yaml:"endpoints" json:"endpoints,omitempty"`
}

// AckRules: who acknowledges how and when.
type AckRules struct {
	Within Duration `yaml:"within"`
	Phone  []string `yaml:"phone"`
	Late   []string `yaml:"late"`
	LateAt string   `yaml:"late_at"`
	Never  []string `yaml:"never"`
}

// ReplySpec is one target's reply.
type ReplySpec struct {
	At   string `yaml:"at"`
	Code string `yaml:"code"`
	Text string `yaml:"text"`
	Done bool   `yaml:"done"`
}

// LiveSpec is one action in the room.
type LiveSpec struct {
	At     string `yaml:"at"`
	Action string `yaml:"action"`
	Code   string `yaml:"code"`
}

// CorrectionSpec is a duty correction of a commune's figure: the figure in force at
// At, less Minus, with a reason (the API's correction).
type CorrectionSpec struct {
	Code   string `yaml:"code"`
	At     string `yaml:"at"`
	Minus  int64  `yaml:"minus"`
	Reason string `yaml:"reason"`
}

// FaultSpec is when --fault strikes, and how long the database stays down (real
// time) for db-restart.
type FaultSpec struct {
	At   string   `yaml:"at"`
	Down Duration `yaml:"down"`
}

// OutageSpec is one endpoint's link dropping and returning.
type OutageSpec struct {
	Code string   `yaml:"code"`
	At   string   `yaml:"at"`
	For  Duration `yaml:"for"`
}

// Duration is a Go duration in YAML ("45m").
type Duration struct{ time.Duration }

// UnmarshalYAML parses "45m", "1h30m".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	d.Duration = v
	return nil
}

// LoadScenario reads a scenario file; an empty path is the embedded default.
func LoadScenario(path string) (*Scenario, error) {
	var b []byte
	var err error
	if path == "" {
		b, err = scenarios.Files.ReadFile(scenarios.Default)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return ParseScenario(b)
}

// ParseScenario decodes a scenario strictly (unknown keys are errors) and checks
// its times; the roster-dependent checks happen in Plan.
func ParseScenario(b []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	off, err := time.Parse("-07:00", s.UTCOffset)
	if err != nil {
		return nil, fmt.Errorf("scenario: utc_offset %q: %w", s.UTCOffset, err)
	}
	_, secs := off.Zone()
	s.loc = time.FixedZone(s.UTCOffset, secs)
	if s.day, err = time.ParseInLocation("2006-01-02", s.Date, s.loc); err != nil {
		return nil, fmt.Errorf("scenario: date: %w", err)
	}
	if s.Roster == "" || s.Session.Title == "" {
		return nil, errors.New("scenario: roster and session.title are required")
	}
	start, err := s.At(s.Session.Start)
	if err != nil {
		return nil, fmt.Errorf("scenario: session.start: %w", err)
	}
	end, err := s.At(s.Session.End)
	if err != nil {
		return nil, fmt.Errorf("scenario: session.end: %w", err)
	}
	if !end.After(start) {
		return nil, errors.New("scenario: session.end must be after session.start")
	}
	if s.Turnout.Interval.Duration <= 0 {
		return nil, errors.New("scenario: turnout.interval must be positive")
	}
	return &s, nil
}

// At turns a local "HH:MM" or "HH:MM:SS" of the scenario's date into a time.
func (s *Scenario) At(hhmm string) (time.Time, error) {
	for _, layout := range []string{"15:04", "15:04:05"} {
		if t, err := time.ParseInLocation(layout, hhmm, s.loc); err == nil {
			return s.day.Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute +
				time.Duration(t.Second())*time.Second), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want HH:MM", hhmm)
}

// Start and End are the session's planned times.
func (s *Scenario) Start() time.Time { t, _ := s.At(s.Session.Start); return t }

// End is the session's planned end.
func (s *Scenario) End() time.Time { t, _ := s.At(s.Session.End); return t }

// Local formats a time as the scenario's local clock, "2021-05-23 11:30".
func (s *Scenario) Local(t time.Time) string { return t.In(s.loc).Format("2006-01-02 15:04") }
