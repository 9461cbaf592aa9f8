package sfu

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"
)

// UpTrack is one published track (one publisher, one kind, one transceiver).
// Video may have up to three simulcast layers keyed by rid (q=0, h=1, f=2);
// a non-simulcast track has a single layer 0.
type UpTrack struct {
	e      *Engine
	peer   *Peer
	id     string
	mid    string
	kind   webrtc.RTPCodecType
	layers [3]atomic.Pointer[upLayer]

	// mu guards watchers and demand state (control path only). A leaf: the
	// demand hook, PLIs and calls into slots happen after it is released. It
	// may be taken under a subscriber's Peer.allocMu (see Peer's lock order).
	mu       sync.Mutex
	watchers map[*Slot]struct{}
	taps     atomic.Pointer[[]*Tap] // copy on write under mu (ingress_tap.go)
	demand   [3]demandState
	gone     bool

	level     atomic.Uint64 // smoothed audio level (float64 bits), audio only
	resumedAt atomic.Int64  // nanotime of the last resume of a paused layer
}

type demandState struct {
	needed   bool        // current computed demand
	reported bool        // last value given to OnLayerDemand
	timer    *time.Timer // pending pause report
}

// PeerID is the id of the publishing peer.
func (t *UpTrack) PeerID() string { return t.peer.id }

// ID is the track id (the publisher's transceiver mid).
func (t *UpTrack) ID() string { return t.id }

// Kind is audio or video.
func (t *UpTrack) Kind() webrtc.RTPCodecType { return t.kind }

// Simulcast reports whether the track has rid-keyed layers.
func (t *UpTrack) Simulcast() bool {
	for i := range t.layers {
		if l := t.layers[i].Load(); l != nil && l.rid != "" {
			return true
		}
	}
	return false
}

// Layers returns a snapshot of the layers' statistics (index = layer).
func (t *UpTrack) Layers() []LayerStats {
	now := nanotime()
	var out []LayerStats
	t.mu.Lock()
	watchers := len(t.watchers)
	demand := t.demand
	t.mu.Unlock()
	for i := range t.layers {
		l := t.layers[i].Load()
		if l == nil {
			continue
		}
		out = append(out, LayerStats{
			RID:      l.rid,
			Width:    int(l.width.Load()),
			Height:   int(l.height.Load()),
			Bitrate:  l.meter.bitrate(now),
			Packets:  l.packets.Load(),
			Lost:     l.lost.Load(),
			Active:   l.active(now),
			Needed:   demand[i].needed,
			Watchers: watchers,
		})
	}
	return out
}

// published reports the track's last media RTP arrival (nanotime, 0 =
// none), whether all of its layers are paused on purpose, and the last
// resume (nanotime, 0 = never).
func (t *UpTrack) published() (last int64, paused bool, resumed int64) {
	t.mu.Lock()
	demand := t.demand
	t.mu.Unlock()
	known, pausedN := 0, 0
	for i := range t.layers {
		l := t.layers[i].Load()
		if l == nil {
			continue
		}
		last = max(last, l.lastPacket.Load())
		known++
		if t.kind == webrtc.RTPCodecTypeVideo && l.rid != "" && !demand[i].reported {
			pausedN++
		}
	}
	return last, known > 0 && pausedN == known, t.resumedAt.Load()
}

// AudioLevel returns the smoothed audio level 0..1 (audio tracks only).
func (t *UpTrack) AudioLevel() float64 { return math.Float64frombits(t.level.Load()) }

func (t *UpTrack) layer(i int) *upLayer {
	if i < 0 || i > 2 {
		return nil
	}
	return t.layers[i].Load()
}

func (t *UpTrack) numLayers() int {
	n := 0
	for i := range t.layers {
		if t.layers[i].Load() != nil {
			n = i + 1
		}
	}
	if n == 0 && t.kind == webrtc.RTPCodecTypeVideo {
		n = 1
	}
	return n
}

func layerIndex(rid string) int {
	switch rid {
	case "h", "m", "mid", "1":
		return 1
	case "f", "hi", "high", "2":
		return 2
	default:
		return 0
	}
}

// addWatcher / removeWatcher keep the set of slots whose source is t.
func (t *UpTrack) addWatcher(s *Slot) {
	t.mu.Lock()
	if t.watchers == nil {
		t.watchers = make(map[*Slot]struct{})
	}
	t.watchers[s] = struct{}{}
	t.mu.Unlock()
}

func (t *UpTrack) removeWatcher(s *Slot) {
	t.mu.Lock()
	delete(t.watchers, s)
	t.mu.Unlock()
	t.updateDemand()
}

// updateDemand recomputes which layers some watcher targets and reports
// changes through Hooks.OnLayerDemand: resumes at once, pauses after
// Config.PauseDelay without demand. The base layer is needed whenever any
// unmuted watcher exists, so that switches are fast.
func (t *UpTrack) updateDemand() {
	if t.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	var resumed []*upLayer
	t.mu.Lock()
	if t.gone {
		t.mu.Unlock()
		return
	}
	var need [3]bool
	for s := range t.watchers {
		tl := int(s.target.Load())
		if tl < 0 {
			continue
		}
		need[0] = true
		if tl <= 2 {
			need[tl] = true
		}
	}
	if tp := t.taps.Load(); tp != nil {
		for _, x := range *tp {
			if !x.standby.Load() {
				need[x.layer] = true // a recording needs its layer, not the base
			}
		}
	}
	for i := range t.demand {
		l := t.layers[i].Load()
		if l == nil || l.rid == "" {
			continue
		}
		d := &t.demand[i]
		d.needed = need[i]
		if d.needed {
			if d.timer != nil {
				d.timer.Stop()
				d.timer = nil
			}
			if !d.reported {
				d.reported = true
				resumed = append(resumed, l)
			}
			continue
		}
		if d.reported && d.timer == nil {
			idx, rid := i, l.rid
			d.timer = time.AfterFunc(t.e.cfg.PauseDelay, func() {
				t.mu.Lock()
				dd := &t.demand[idx]
				fire := dd.timer != nil && !dd.needed && dd.reported && !t.gone
				dd.timer = nil
				if fire {
					dd.reported = false
				}
				t.mu.Unlock()
				if fire {
					t.e.reportDemand(t.peer.id, rid, false)
				}
			})
		}
	}
	t.mu.Unlock()
	if len(resumed) > 0 {
		t.resumedAt.Store(nanotime())
	}
	// Hooks run outside t.mu so they may call back into the engine; from
	// reallocate a subscriber's Peer.allocMu is still held (see Peer).
	for _, l := range resumed {
		t.e.reportDemand(t.peer.id, l.rid, true)
		l.requestPLI(true)
	}
}

// close marks the track gone and detaches every watcher.
func (t *UpTrack) close() {
	t.mu.Lock()
	if t.gone {
		t.mu.Unlock()
		return
	}
	t.gone = true
	for i := range t.demand {
		if t.demand[i].timer != nil {
			t.demand[i].timer.Stop()
			t.demand[i].timer = nil
		}
	}
	watchers := make([]*Slot, 0, len(t.watchers))
	for s := range t.watchers {
		watchers = append(watchers, s)
	}
	t.mu.Unlock()
	for _, s := range watchers {
		s.sourceGone(t)
	}
}

// reallocateWatchers re-runs layer allocation for every peer watching t.
func (t *UpTrack) reallocateWatchers() {
	t.mu.Lock()
	peers := make(map[*Peer]struct{}, len(t.watchers))
	for s := range t.watchers {
		peers[s.peer] = struct{}{}
	}
	t.mu.Unlock()
	for q := range peers {
		q.reallocate()
	}
}
