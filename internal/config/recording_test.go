package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecordingConfig(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Recording
	if !r.Enabled || r.Dir != "./var/recordings" || r.Keep != 0 || r.MinFree != 2<<30 || r.PrivateLine {
		t.Fatalf("recording defaults %+v", r)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	load := func(yaml string, env ...string) (Recording, error) {
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, env)
		return c.Recording, err
	}
	if r, err = load("recording:\n  min_free: 500MB\n  keep: 2160h\n  private_line: true\n"); err != nil ||
		r.MinFree != 500e6 || r.Keep.Duration() != 2160*time.Hour || !r.PrivateLine {
		t.Fatalf("file: %+v %v", r, err)
	}
	if r, err = load("recording:\n  min_free: 1073741824\n"); err != nil || r.MinFree != 1<<30 {
		t.Fatalf("integer size: %+v %v", r, err)
	}
	if r, err = load("recording: {}\n", "OPSCENTER_RECORDING_MIN_FREE=1.5GiB", "OPSCENTER_RECORDING_KEEP=720h",
		"OPSCENTER_RECORDING_ENABLED=false", "OPSCENTER_RECORDING_DIR=/srv/rec"); err != nil ||
		r.MinFree != 3<<29 || r.Keep.Duration() != 720*time.Hour || r.Enabled || r.Dir != "/srv/rec" {
		t.Fatalf("env: %+v %v", r, err)
	}
	if r, err = load("recording:\n  keep: 90d\n"); err != nil || r.Keep.Duration() != 90*24*time.Hour {
		t.Fatalf("days: %+v %v", r, err)
	}
	if r, err = load("recording:\n  keep: \"\"\n", "OPSCENTER_RECORDING_KEEP="); err != nil || r.Keep != 0 {
		t.Fatalf("empty keep: %+v %v", r, err)
	}
	if r, err = load("", "OPSCENTER_RECORDING_MIN_FREE=123"); err != nil || r.MinFree != 123 {
		t.Fatalf("env integer: %+v %v", r, err)
	}
	for yaml, want := range map[string]string{
		"recording:\n  min_free: 2XB\n": "unknown unit",
		"recording:\n  min_free: [1]\n": "size",
		"recording:\n  keep: -1h\n":     "recording.keep",
		"recording:\n  dir: \"\"\n":     "recording.dir",
		"recording:\n  keep_for: 1h\n":  "keep_for",
	} {
		if _, err := load(yaml); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error about %s", yaml, err, want)
		}
	}
	for in, want := range map[string]ByteSize{"0": 0, "2GiB": 2 << 30, "2G": 2 << 30, "2gb": 2e9, "10 MiB": 10 << 20, "512": 512} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
