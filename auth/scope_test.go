package auth

import "testing"

func TestDistrictScope(t *testing.T) {
	parents := map[string]string{"195": "22", "06760": "195", "207": "22", "07192": "207"}
	parentOf := func(c string) string { return parents[c] }
	lead := Principal{Username: "lead", Role: RoleLeader}
	leadA := Principal{Username: "lead195", Role: RoleLeader, District: "195"}
	ep := Principal{EndpointCode: "06760", District: "195"} // an endpoint is never "scoped staff"
	if lead.Scoped() || !leadA.Scoped() || ep.Scoped() {
		t.Fatal("Scoped")
	}
	for code, want := range map[string]bool{"195": true, "06760": true, "207": false, "07192": false, "22": false, "": false, "999": false} {
		if got := leadA.InScope(code, parentOf); got != want {
			t.Errorf("scoped InScope(%q) = %v", code, got)
		}
		if !lead.InScope(code, parentOf) {
			t.Errorf("unscoped InScope(%q) = false", code)
		}
		if got := ep.InScope(code, parentOf); got != (code == "06760") {
			t.Errorf("endpoint InScope(%q) = %v", code, got)
		}
	}
	if leadA.InScope("06760", nil) {
		t.Error("a commune in scope without the roster")
	}
	// A district's leader writes the log but never runs the session nor administers.
	if !leadA.Can(CapRead) || !leadA.Can(CapWriteLog) || leadA.Can(CapRunSession) || leadA.Can(CapAdmin) {
		t.Error("scoped leader capabilities")
	}
	if !lead.Can(CapRunSession) {
		t.Error("unscoped leader cannot run the session")
	}
}
