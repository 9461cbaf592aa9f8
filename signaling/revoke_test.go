package signaling_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/synth/client"
	"github.com/opscenter/opscenter/wire"
)

// Revoking a join link, or issuing a new one, also puts out the device that joined
// with the old credential, at once; it cannot come back with it.
func TestRevokedLinkClosesTheDevice(t *testing.T) {
	l := startLive(t)
	admin := l.a.User("root", auth.RoleAdmin)
	codes := l.communes(2)
	cases := []struct {
		code, method string
	}{
		{codes[0], "DELETE"}, // revoked
		{codes[1], "POST"},   // replaced by a new link
	}
	for _, tc := range cases {
		tok := l.a.Endpoint(tc.code).Token
		dev := l.dial(tok, wire.RoleEndpoint, true)
		if err := dev.WaitConnected(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		since := time.Now()
		want := 200
		if tc.method == "DELETE" {
			want = 204
		}
		admin.Do(tc.method, "/api/v1/endpoints/"+tc.code+"/link", nil, nil, want)
		env, err := dev.WaitMessage(wire.TypeRemoved, since, 10*time.Second, nil)
		if err != nil {
			t.Fatalf("%s %s: device not told: %v", tc.method, tc.code, err)
		}
		var m wire.RemovedMsg
		_ = json.Unmarshal(env.Payload, &m)
		if m.Reason != "credential_revoked" || m.By != "user:root" {
			t.Errorf("removed message %+v", m)
		}
		took := waitT(t, "device closed", 10*time.Second, func() bool {
			closed, st := dev.Closed()
			return closed && st == signaling.StatusCredentialRevoked
		})
		t.Logf("%s %s: device closed %v after the change", tc.method, tc.code, took.Round(time.Millisecond))
		waitT(t, "offline at once", 5*time.Second, func() bool { return l.a.Live.Presence(tc.code) == wire.StateOffline })
		// The old credential no longer opens /ws.
		if _, err := client.Dial(t.Context(), client.Options{URL: l.a.URL(), Token: tok}); err == nil {
			t.Errorf("%s: the old credential still joins", tc.code)
		}
	}
}
