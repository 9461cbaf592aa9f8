package uplink_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/synth/client"
)

// An incident reported by a commune of the province is escalated by the
// province's desk to the nation: the nation holds it under the same id, as an
// incident of unit 22; the province's escalation records its delivery.
func TestIncidentEscalatesToParent(t *testing.T) {
	tr := startTree(t)
	waitUp(t, tr, "join", 20*time.Second)
	nat := tr.parent.User("nat-duty", auth.RoleDuty)
	duty := tr.child.User("qn-duty", auth.RoleDuty)
	startSession(t, tr.parent.User("nat-lead", auth.RoleLeader), "Bầu cử 23/5/2021 (toàn quốc)")
	startSession(t, tr.child.User("qn-lead", auth.RoleLeader), "Bầu cử 23/5/2021 (Quảng Ninh)")

	id := uuid.NewString()
	occurred := time.Now().Add(-5 * time.Minute).UTC().Truncate(time.Second)
	tr.child.Endpoint("07192").Do("POST", "/api/v1/incidents", map[string]any{"id": id, "category": "logistics",
		"severity": "high", "title": "Tàu ra đảo Cô Tô hoãn chuyến", "body": "Hòm phiếu phụ chưa chuyển được",
		"occurred_at": occurred}, nil, 201)

	// Not escalated: the nation does not know it.
	nat.Do("GET", "/api/v1/incidents/"+id, nil, nil, 404)

	escalated := time.Now()
	var e store.Escalation
	duty.Do("POST", "/api/v1/incidents/"+id+"/escalate", nil, &e, 201)
	if e.IncidentID != id || e.RequestedBy != "user:qn-duty" {
		t.Fatalf("escalation: %+v", e)
	}
	duty.Do("POST", "/api/v1/incidents/"+id+"/escalate", nil, nil, 200) // again: nothing new

	var up store.Incident
	err := client.WaitFor(func() bool {
		st, _ := nat.Do("GET", "/api/v1/incidents/"+id, nil, &up, 0)
		return st == 200
	}, 25*time.Second)
	if err != nil {
		t.Fatalf("the escalated incident never reached the nation: %v", err)
	}
	t.Logf("incident escalated at the province → at the nation after %v", time.Since(escalated))
	if up.EndpointCode != "22" || up.ReportedBy != "endpoint:22" || up.Title != "Tàu ra đảo Cô Tô hoãn chuyến" ||
		up.Severity != "high" || !up.OccurredAt.Equal(occurred) {
		t.Fatalf("the nation's incident: %+v", up)
	}
	// The province's side of the link: delivered.
	err = client.WaitFor(func() bool {
		duty.Do("GET", "/api/v1/incidents/"+id+"/escalation", nil, &e, 200)
		return e.DeliveredAt != nil
	}, 10*time.Second)
	if err != nil {
		t.Fatalf("the province's escalation was not marked delivered: %+v", e)
	}
	// Once only at the nation, however often synced.
	time.Sleep(500 * time.Millisecond)
	var list struct{ Incidents []store.Incident }
	nat.Do("GET", "/api/v1/incidents", nil, &list, 200)
	if len(list.Incidents) != 1 {
		t.Fatalf("the nation's incidents: %+v", list.Incidents)
	}
	// A node without a parent has nobody to escalate to.
	tr.parent.User("nat-lead2", auth.RoleLeader).Do("POST", "/api/v1/incidents/"+id+"/escalate", nil, nil, 409)
}
