package signaling_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/opscenter/opscenter/internal/app"
	"github.com/opscenter/opscenter/sfu"
	"github.com/opscenter/opscenter/signaling"
)

// The fuzz targets run their bodies (fuzz_test.go) on a real engine on
// loopback, adapted as internal/app adapts the server's: package signaling's
// own test files cannot import internal/app, which imports signaling.

func FuzzEnvelope(f *testing.F) { signaling.RunFuzzEnvelope(f, fuzzEngine) }

func FuzzPublishOfferSDP(f *testing.F) { signaling.RunFuzzPublishOfferSDP(f, fuzzEngine) }

func fuzzEngine() (signaling.MediaEngine, error) {
	cfg := sfu.DefaultConfig()
	cfg.UDPPort, cfg.TCPPort, cfg.IncludeLoopback, cfg.Interfaces = 0, -1, true, []string{"lo"}
	cfg.NetworkTypes = []string{"udp4"}
	e, err := sfu.NewEngine(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), sfu.Hooks{})
	if err != nil {
		return nil, err
	}
	return app.MediaEngine(e), nil
}
