package uplink_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/synth/client"
)

// A directive of the nation to province 22 lands in the province's log as a
// directive from the parent; the province's acknowledgement and reply answer
// the nation's receipt; the province's desk passes it on to its communes,
// linked to the original.
func TestParentDirectiveDownAckUp(t *testing.T) {
	tr := startTree(t)
	waitUp(t, tr, "join", 20*time.Second)
	nat := tr.parent.User("nat-lead", auth.RoleLeader)
	duty := tr.child.User("qn-duty", auth.RoleDuty)
	startSession(t, nat, "Bầu cử 23/5/2021 (toàn quốc)")
	startSession(t, tr.child.User("qn-lead", auth.RoleLeader), "Bầu cử 23/5/2021 (Quảng Ninh)")

	id := uuid.NewString()
	text := "Các tỉnh báo cáo tình hình bầu cử trước 11 giờ"
	issued := time.Now()
	nat.Do("POST", "/api/v1/directives", map[string]any{"id": id, "text": text,
		"targets": map[string]any{"endpoints": []string{"22", "01"}}}, nil, 201)

	// Down: in the province's log, under the same id, from the parent.
	var local store.Directive
	err := client.WaitFor(func() bool {
		st, _ := duty.Do("GET", "/api/v1/directives/"+id, nil, &local, 0)
		return st == 200
	}, 25*time.Second)
	if err != nil {
		t.Fatalf("the directive never reached the province's log: %v", err)
	}
	t.Logf("directive: issued at the nation → in the province's log after %v", time.Since(issued))
	if local.Text != text || local.IssuedBy != store.ParentPrefix+"user:nat-lead" ||
		len(local.Receipts) != 1 || local.Receipts[0].EndpointCode != "22" {
		t.Fatalf("the province's copy: %+v", local)
	}

	// Up: the province's duty acknowledges for its command room; the nation's
	// matrix shows 22 acknowledged by the endpoint itself, 01 still waiting.
	acked := time.Now()
	duty.Do("POST", "/api/v1/directives/"+id+"/ack", map[string]any{"endpoint_code": "22", "via": "in_person"}, nil, 200)
	receipt := func(code string) store.Receipt {
		var d store.Directive
		nat.Do("GET", "/api/v1/directives/"+id, nil, &d, 200)
		for _, r := range d.Receipts {
			if r.EndpointCode == code {
				return r
			}
		}
		t.Fatalf("no receipt for %s at the nation", code)
		return store.Receipt{}
	}
	if err := client.WaitFor(func() bool { return receipt("22").AckedAt != nil }, 25*time.Second); err != nil {
		t.Fatalf("the nation's receipt of 22 was not acknowledged: %+v", receipt("22"))
	}
	t.Logf("acknowledged at the province → the nation's receipt after %v", time.Since(acked))
	if r := receipt("22"); r.AckedBy != "endpoint:22" || r.AckVia != store.AckViaApp {
		t.Fatalf("the nation's receipt of 22: %+v", r)
	}
	if receipt("01").AckedAt != nil {
		t.Fatal("01 was not acknowledged")
	}

	// A reply, done, given at the province.
	duty.Do("POST", "/api/v1/directives/"+id+"/reply", map[string]any{"endpoint_code": "22",
		"text": "Đã triển khai tới 13 huyện", "done": true}, nil, 200)
	if err := client.WaitFor(func() bool { r := receipt("22"); return r.DoneAt != nil && strings.Contains(r.Reply, "13 huyện") }, 25*time.Second); err != nil {
		t.Fatalf("the nation's receipt of 22 has no reply: %+v", receipt("22"))
	}

	// Pass-on: the province's desk directs district 207 and its communes, linked
	// to the original; the commune reads the link.
	passID := uuid.NewString()
	var pass store.Directive
	duty.Do("POST", "/api/v1/directives", map[string]any{"id": passID, "text": "Chuyển chỉ đạo của Trung ương: " + text,
		"targets": map[string]any{"district": "207"}, "relayed_from": id}, &pass, 201)
	if pass.RelayedFrom == nil || *pass.RelayedFrom != id {
		t.Fatalf("pass-on: %+v", pass)
	}
	var mine struct{ Directives []store.Directive }
	tr.child.Endpoint("07192").Do("GET", "/api/v1/directives", nil, &mine, 200)
	if len(mine.Directives) != 1 || mine.Directives[0].ID != passID || mine.Directives[0].RelayedFrom == nil || *mine.Directives[0].RelayedFrom != id {
		t.Fatalf("the commune's directives: %+v", mine.Directives)
	}
	// A retry of the pass-on writes nothing twice; an unknown original is refused.
	duty.Do("POST", "/api/v1/directives", map[string]any{"id": passID, "text": "Chuyển chỉ đạo của Trung ương: " + text,
		"targets": map[string]any{"district": "207"}, "relayed_from": id}, nil, 200)
	duty.Do("POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "x",
		"targets": map[string]any{"district": "207"}, "relayed_from": uuid.NewString()}, nil, 400)

	// The province's log holds the parent's directive once, however often synced.
	time.Sleep(500 * time.Millisecond)
	var all struct{ Directives []store.Directive }
	duty.Do("GET", "/api/v1/directives", nil, &all, 200)
	n := 0
	for _, d := range all.Directives {
		if d.ID == id {
			n++
		}
	}
	if n != 1 || len(all.Directives) != 2 {
		t.Fatalf("the province's log: %d copies of the parent's directive, %d directives", n, len(all.Directives))
	}
}
