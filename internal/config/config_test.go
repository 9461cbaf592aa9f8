package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != "127.0.0.1:8080" || c.Media.UDPPort != 7882 || c.Media.TCPPort != 7881 || c.Media.TURN.Port != 3478 || c.Media.TURN.Enabled {
		t.Fatalf("defaults differ from the conventions: %+v", c)
	}
	if c.Database.URL != "" || c.Database.DataDir != "./var/pg" {
		t.Fatalf("database defaults: %+v", c.Database)
	}
}

func TestLoadLayers(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name    string
		yaml    string
		env     []string
		wantErr string
		check   func(Config) bool
	}{
		{"file overrides", "http:\n  addr: 127.0.0.1:9000\n", nil, "", func(c Config) bool { return c.HTTP.Addr == "127.0.0.1:9000" && c.HTTP.MaxBodyBytes == 1<<20 }},
		{"env beats file", "http:\n  addr: 127.0.0.1:9000\n", []string{"OPSCENTER_HTTP_ADDR=0.0.0.0:1", "OPSCENTER_DATABASE_URL=postgres://x/y"}, "",
			func(c Config) bool { return c.HTTP.Addr == "0.0.0.0:1" && c.Database.URL == "postgres://x/y" }},
		{"env types", "", []string{"OPSCENTER_MEDIA_PUBLIC_IPS=1.2.3.4, 5.6.7.8", "OPSCENTER_MEDIA_TURN_ENABLED=true", "OPSCENTER_HTTP_SESSION_TTL=2h", "OPSCENTER_MEDIA_UDP_PORT=0"}, "",
			func(c Config) bool {
				return len(c.Media.PublicIPs) == 2 && c.Media.PublicIPs[1] == "5.6.7.8" && c.Media.TURN.Enabled && c.HTTP.SessionTTL == 2*time.Hour && c.Media.UDPPort == 0
			}},
		{"unrelated env ignored", "", []string{"PATH=/bin", "HOME=/root"}, "", func(c Config) bool { return true }},
		{"unknown key", "http:\n  adr: x\n", nil, "adr", nil},
		{"unknown section", "htp: {}\n", nil, "htp", nil},
		{"unknown env", "", []string{"OPSCENTER_HTTP_ADR=x"}, "OPSCENTER_HTTP_ADR", nil},
		{"bad env int", "", []string{"OPSCENTER_MEDIA_UDP_PORT=abc"}, "OPSCENTER_MEDIA_UDP_PORT", nil},
		{"bad public url", "http:\n  public_url: nope\n", nil, "public_url", nil},
		{"tls half set", "http:\n  tls_cert: a.pem\n", nil, "tls", nil},
		{"bad roster date", "roster:\n  date: 23/05/2021\n", nil, "roster.date", nil},
		{"bad log format", "log:\n  format: xml\n", nil, "log.format", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = write(tc.yaml)
			}
			c, err := Load(path, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
}
