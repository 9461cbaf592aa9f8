package auth

import "testing"

// A wall is neither staff nor an endpoint: no capability, no unit in scope.
func TestWallPrincipal(t *testing.T) {
	w := Principal{Wall: "press-1"}
	if !w.IsWall() || w.IsEndpoint() || w.Scoped() {
		t.Fatalf("kind: wall %v endpoint %v scoped %v", w.IsWall(), w.IsEndpoint(), w.Scoped())
	}
	for _, c := range []Capability{CapRead, CapWriteLog, CapRunSession, CapAdmin} {
		if w.Can(c) {
			t.Fatalf("a wall has capability %d", c)
		}
	}
	for _, code := range []string{"22", "207", "07192", ""} {
		if w.InScope(code, func(string) string { return "207" }) {
			t.Fatalf("unit %q in a wall's scope", code)
		}
	}
	if w.Actor() != "wall:press-1" {
		t.Fatalf("actor %q", w.Actor())
	}
}
