package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParentFromEnvAndFile(t *testing.T) {
	c, err := Load("", []string{"OPSCENTER_PARENT_URL=https://nation.example:8443",
		"OPSCENTER_PARENT_JOIN_LINK=https://nation.example:8443/join#t=abc%2Bdef"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Parent.Enabled() || c.Parent.URL != "https://nation.example:8443" || c.Parent.Token() != "abc+def" {
		t.Fatalf("parent from env: %+v token %q", c.Parent, c.Parent.Token())
	}
	if d, _ := Default(); d.Parent.Enabled() {
		t.Fatal("a default node has no parent")
	}
	if (Parent{JoinLink: "bare-token"}).Token() != "bare-token" {
		t.Fatal("a bare token is its own credential")
	}

	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ body, want string }{
		{"parent:\n  url: http://n\n  joinlink: x\n", "joinlink"},                    // strict keys
		{"parent:\n  url: http://n\n", "parent.join_link"},                           // a parent needs its link
		{"parent:\n  join_link: http://n/join#t=x\n", "without parent.url"},          // and a link its parent
		{"parent:\n  url: ftp://n\n  join_link: x\n", "not an absolute http(s) URL"}, // http(s) only
		{"parent:\n  url: http://n\n  join_link: http://n/join#x=1\n", "parent.join_link"},
	} {
		_, err := Load(write(tc.body), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.body, err, tc.want)
		}
	}
	if _, err := Load("", []string{"OPSCENTER_PARENT_TOKEN=x"}); err == nil {
		t.Error("an unknown parent variable must be an error")
	}
}
