package loadgen

import (
	"context"
	"time"

	"github.com/opscenter/opscenter/synth/client"
)

// EndpointLayers are the endpoint layers (~100/400/1200 kbit/s).
var EndpointLayers = []client.Layer{{RID: "q", Width: 320, Height: 180, Bitrate: 100_000},
	{RID: "h", Width: 640, Height: 360, Bitrate: 400_000}, {RID: "f", Width: 1280, Height: 720, Bitrate: 1_200_000}}

// ProgramLayers are the command room's program: 1.5 Mbit/s over 3 layers.
var ProgramLayers = []client.Layer{{RID: "q", Width: 320, Height: 180, Bitrate: 150_000},
	{RID: "h", Width: 640, Height: 360, Bitrate: 350_000}, {RID: "f", Width: 1280, Height: 720, Bitrate: 1_000_000}}

// Hist and HistSnap are the receive path's histogram (synth/client), under
// the names the ceiling and the replay use.
type (
	Hist     = client.Hist
	HistSnap = client.HistSnap
)

// endpoint is one synthetic endpoint of a run: the protocol client counting
// into the run's Meter, and when its dial started (for join times).
type endpoint struct {
	*client.Client
	start time.Time
}

// dial connects one endpoint to the run's server; its received media is
// counted in the run's Meter.
func (r *run) dial(ctx context.Context, o client.Options) (*endpoint, error) {
	o.URL = r.srv.URL
	o.Meter = &r.meter
	if o.FPS == 0 {
		o.FPS = r.cfg.FPS
	}
	if len(o.Layers) == 0 {
		o.Layers = EndpointLayers
	}
	e := &endpoint{start: time.Now()}
	c, err := client.Dial(ctx, o)
	if err != nil {
		return nil, err
	}
	e.Client = c
	r.mu.Lock()
	r.eps = append(r.eps, e)
	r.mu.Unlock()
	return e, nil
}

// quantiles of plain samples (join times: a few hundred values).
func sampleQuantile(xs []time.Duration, q float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	c := append([]time.Duration(nil), xs...)
	for i := 1; i < len(c); i++ { // insertion sort: n is small
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	i := int(q * float64(len(c)))
	if i >= len(c) {
		i = len(c) - 1
	}
	return c[i]
}
