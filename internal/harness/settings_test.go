package harness

import (
	"path/filepath"
	"testing"

	"github.com/opscenter/opscenter/internal/config"
)

// Settings are valid configuration keys (an unknown OPSCENTER_ variable is an
// error) and give a server its own ports and state files.
func TestSettings(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load("", Settings(dir, "127.0.0.1:4567", "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:4567" || cfg.HTTP.PublicURL != "http://127.0.0.1:4567" || cfg.Metrics.Addr != "127.0.0.1:0" {
		t.Errorf("addresses: http %q public %q metrics %q", cfg.HTTP.Addr, cfg.HTTP.PublicURL, cfg.Metrics.Addr)
	}
	if cfg.Media.UDPPort != 0 || cfg.Media.TCPPort != 0 || cfg.Media.TURN.Port != 0 {
		t.Errorf("media ports %d %d %d, want free ones", cfg.Media.UDPPort, cfg.Media.TCPPort, cfg.Media.TURN.Port)
	}
	for name, p := range map[string]string{"journal": cfg.Database.JournalPath, "live state": cfg.Live.StatePath, "recordings": cfg.Recording.Dir} {
		if filepath.Dir(p) != dir {
			t.Errorf("%s at %s, not in %s", name, p, dir)
		}
	}
}
