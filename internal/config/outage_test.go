package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// live.outage_incident_after: 60 s by default, from the file or the
// environment, and never zero or negative.
func TestOutageIncidentAfter(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Live.OutageIncidentAfter != 60*time.Second {
		t.Fatalf("default %v, want 60s", c.Live.OutageIncidentAfter)
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("live:\n  outage_incident_after: 2m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(p, nil); err != nil || c.Live.OutageIncidentAfter != 2*time.Minute {
		t.Fatalf("from the file: %v %v", c.Live.OutageIncidentAfter, err)
	}
	if c, err = Load(p, []string{"OPSCENTER_LIVE_OUTAGE_INCIDENT_AFTER=2s"}); err != nil || c.Live.OutageIncidentAfter != 2*time.Second {
		t.Fatalf("from the environment: %v %v", c.Live.OutageIncidentAfter, err)
	}
	if _, err = Load("", []string{"OPSCENTER_LIVE_OUTAGE_INCIDENT_AFTER=0s"}); err == nil || !strings.Contains(err.Error(), "outage_incident_after") {
		t.Fatalf("zero accepted: %v", err)
	}
	if err := os.WriteFile(p, []byte("live:\n  outage_incident_afterr: 2m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = Load(p, nil); err == nil {
		t.Fatal("a misspelt key accepted")
	}
}
