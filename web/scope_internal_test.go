package web

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
)

// TestEventViewLiveActions: what a district's stream keeps of events that name a
// unit only by entity (live-session actions) or concern no unit.
func TestEventViewLiveActions(t *testing.T) {
	s := &Server{}
	s.parents.parents = map[string]string{"22": "", "195": "22", "06760": "195", "207": "22", "07192": "207"}
	s.parents.loaded = time.Now().Add(time.Hour) // fresh for the whole test: no database needed
	p := auth.Principal{Username: "duty195", Role: auth.RoleDuty, District: "195"}
	ev := func(entity, id, action, after string) store.Event {
		e := store.Event{ID: 1, Entity: entity, EntityID: id, Action: action}
		if after != "" {
			e.After = json.RawMessage(after)
		}
		return e
	}
	for _, c := range []struct {
		e    store.Event
		want bool
	}{
		{ev("endpoint", "06760", "floor.given", `{"floor":"06760","previous":"07192"}`), true},
		{ev("endpoint", "07192", "floor.given", `{"floor":"07192","previous":"06760"}`), false},
		{ev("endpoint", "195", "endpoint.muted", `{"muted":true}`), true},
		{ev("endpoint", "06760", "endpoint.link_issued", ""), false},
		{ev("endpoint", "06760", "endpoint.updated", `{"code":"06760"}`), false},
		{ev("live_session", "all", "roll_call.started", `{"active":true}`), true},
		{ev("session", "x", "session.started", ""), true},
		{ev("user", "someone", "user.created", `{"username":"someone"}`), false},
		{ev("roster", "2021-05-23", "roster.loaded", ""), false},
		{ev("turnout_registered", "2021-05-23", "turnout.registered_loaded", ""), false},
		{ev("recording", "disk", "recording.disk_low", ""), false},
		{ev("turnout_report", "r1", "turnout.reported", `{"endpoint_code":"06760"}`), true},
		{ev("turnout_report", "r2", "turnout.reported", `{"endpoint_code":"07192"}`), false},
		{ev("directive", "d1", "directive.acknowledged", `{"endpoint_code":"07192"}`), false},
		{ev("directive", "d1", "directive.delivered", `{"directive_id":"d1","endpoint_code":"06760"}`), true},
		{ev("something_new", "x", "x.y", ""), false},
	} {
		got, ok := s.eventView(context.Background(), p, c.e)
		if ok != c.want {
			t.Errorf("%s %s %s: visible %v, want %v", c.e.Entity, c.e.EntityID, c.e.Action, ok, c.want)
		}
		if ok && c.e.Action == "floor.given" {
			var doc map[string]any
			if json.Unmarshal(got.After, &doc) != nil || doc["previous"] != nil || doc["floor"] != "06760" {
				t.Errorf("floor.given kept another district's previous holder: %s", got.After)
			}
		}
		if all, ok := s.eventView(context.Background(), auth.Principal{Username: "lead", Role: auth.RoleLeader}, c.e); !ok ||
			string(all.After) != string(c.e.After) {
			t.Errorf("unscoped %s: %v %s", c.e.Action, ok, all.After)
		}
	}
}
