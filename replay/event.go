package replay

import "time"

// Kind is what an event does. At the same scenario time, events run in this
// order (a directive before its acknowledgements, an acknowledgement before a
// reply).
type Kind int

// The kinds of event.
const (
	KindSessionStart Kind = iota
	KindJoin
	KindReport
	KindCorrection
	KindIncident
	KindIncidentUpdate
	KindDirective
	KindAck
	KindReply
	KindLive
	KindOutage
	KindFault
	KindSessionEnd
)

var kindNames = [...]string{"session_start", "join", "report", "correction", "incident", "incident_update",
	"directive", "ack", "reply", "live", "outage", "fault", "session_end"}

func (k Kind) String() string { return kindNames[k] }

// Event is one thing that happens at a scenario time.
type Event struct {
	At        time.Time // scenario time (the reporter's clock)
	Kind      Kind
	Code      string // the endpoint it concerns, if any
	Via       string // ack: app or phone
	Report    *Report
	Incident  *IncidentSpec
	Update    *IncidentUpdate
	Directive *DirectiveSpec
	Reply     *ReplySpec
	Live      *LiveSpec
	Outage    *OutageSpec
}

// Report is one turnout report (or a correction, with a reason).
type Report struct {
	Code     string
	AsOf     time.Time
	Voted    int64
	Complete bool
	Via      string // empty: the endpoint itself
	Reason   string
}
