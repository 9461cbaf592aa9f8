package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStandbyConfig(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Standby.Enabled || c.Standby.PollInterval != time.Second || c.Live.StatePath != "" {
		t.Fatalf("defaults: %+v, state_path %q", c.Standby, c.Live.StatePath)
	}
	if got := c.NodeURLsOrPublic(); !slices.Equal(got, []string{c.HTTP.PublicURL}) {
		t.Fatalf("node URLs by default %v", got)
	}

	// A pair: from the environment, as the process test runs it.
	c, err = Load("", []string{"OPSCENTER_DATABASE_URL=postgres://db/ops", "OPSCENTER_STANDBY_ENABLED=true",
		"OPSCENTER_STANDBY_NODE_URLS=https://a.example.vn, https://b.example.vn",
		"OPSCENTER_STANDBY_ADVERTISE_URL=https://a.example.vn"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.NodeURLsOrPublic(), []string{"https://a.example.vn", "https://b.example.vn"}) ||
		c.AdvertiseURLOrPublic() != "https://a.example.vn" {
		t.Fatalf("pair: %+v", c.Standby)
	}

	for env, want := range map[string]string{
		"OPSCENTER_STANDBY_ENABLED=true":           "needs database.url",
		"OPSCENTER_STANDBY_NODE_URLS=a.example.vn": "not an absolute URL",
	} {
		if _, err := Load("", []string{env}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", env, err, want)
		}
	}

	// An old config with live.state_path still starts (the app warns that it is ignored).
	p := filepath.Join(t.TempDir(), "old.yaml")
	if err := os.WriteFile(p, []byte("live:\n  state_path: ./var/live-state.json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(p, nil); err != nil || c.Live.StatePath != "./var/live-state.json" {
		t.Fatalf("old config: %v", err)
	}
}
