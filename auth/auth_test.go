package auth

import "testing"

func TestCapabilities(t *testing.T) {
	cases := []struct {
		p    Principal
		c    Capability
		want bool
	}{
		{Principal{Role: RoleAdmin}, CapAdmin, true},
		{Principal{Role: RoleLeader}, CapAdmin, false},
		{Principal{Role: RoleLeader}, CapRunSession, true},
		{Principal{Role: RoleDuty}, CapRunSession, false},
		{Principal{Role: RoleDuty}, CapWriteLog, true},
		{Principal{Role: RoleObserver}, CapWriteLog, false},
		{Principal{Role: RoleObserver}, CapRead, true},
		{Principal{EndpointCode: "07192"}, CapRead, false},
		{Principal{EndpointCode: "07192", Role: RoleAdmin}, CapAdmin, false},
		{Principal{Role: "bogus"}, CapRead, false},
	}
	for _, tc := range cases {
		if got := tc.p.Can(tc.c); got != tc.want {
			t.Errorf("%+v.Can(%d) = %v, want %v", tc.p, tc.c, got, tc.want)
		}
	}
}

func TestPassword(t *testing.T) {
	if _, err := HashPassword("short"); err == nil {
		t.Fatal("short password accepted")
	}
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if CheckPassword(h, "correct horse battery") != nil || CheckPassword(h, "wrong horse battery") == nil {
		t.Fatal("password check broken")
	}
}

func TestTokens(t *testing.T) {
	a, b := NewToken(), NewToken()
	if a == b || len(a) != 43 {
		t.Fatalf("tokens %q %q", a, b)
	}
	if string(HashToken(a)) == string(HashToken(b)) || len(HashToken(a)) != 32 {
		t.Fatal("hash")
	}
}

func BenchmarkHashToken(b *testing.B) {
	tok := NewToken()
	for i := 0; i < b.N; i++ {
		HashToken(tok)
	}
}
