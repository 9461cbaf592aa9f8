package signaling

import (
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/opscenter/opscenter/media"
	"github.com/opscenter/opscenter/wire"
)

// liveEndpoints lists the connections that currently represent an endpoint.
func (r *Room) liveEndpoints() []*conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*conn, 0, len(r.members))
	for _, m := range r.members {
		if m.conn != nil && m.conn.peer != nil {
			out = append(out, m.conn)
		}
	}
	return out
}

// updateStats records an endpoint's media statistics and re-judges its presence.
func (r *Room) updateStats(c *conn, st media.PeerStats, now time.Time) (wire.StatEntry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[c.code]
	if m == nil || m.conn != c {
		return wire.StatEntry{}, false
	}
	loss, unhealthy := judgeHealth(st, m.legUp, now)
	m.unhealthy = unhealthy
	m.noMedia = judgeNoMedia(m, st, now)
	layer := -1
	for _, s := range st.Slots {
		if s.Kind == webrtc.RTPCodecTypeVideo.String() && s.EffectiveLayer > layer {
			layer = s.EffectiveLayer
		}
	}
	rtt := st.Subscriber.RTT
	if st.Publisher.RTT > rtt {
		rtt = st.Publisher.RTT
	}
	r.publishPresence(m, now)
	m.stats = wire.StatEntry{Code: c.code, State: m.state, BitrateIn: st.BitrateIn, BitrateOut: st.BitrateOut,
		Loss: loss, JitterMs: max(st.Publisher.JitterMs, st.Subscriber.JitterMs),
		RTTMs: float64(rtt) / float64(time.Millisecond), Layer: layer}
	return m.stats, true
}

// judgeHealth decides degraded presence from media statistics (DESIGN.md):
// loss over 5%, or no RTCP for 5 s on a connected leg that carries media. Media
// that is paused or gated on purpose is never a fault; media expected but not
// arriving is judged by judgeNoMedia. Publisher loss is the sfu's windowed RecentLoss (last ~4 s, net
// of NACK repairs); subscriber loss is the latest receiver report's.
func judgeHealth(st media.PeerStats, legUp [2]bool, now time.Time) (loss float64, unhealthy bool) {
	loss = max(st.Publisher.RecentLoss, st.Subscriber.Loss)
	silent := func(last time.Time) bool { return !last.IsZero() && now.Sub(last) > DegradedNoRTCP }
	noRTCP := (legUp[0] && st.BitrateIn > 0 && silent(st.Publisher.LastRTCP)) ||
		(legUp[1] && st.BitrateOut > 0 && silent(st.Subscriber.LastRTCP))
	return loss, loss > DegradedLoss || noRTCP
}

// ReasonNoMedia: degraded because media is expected from the publisher leg
// but none arrives.
const ReasonNoMedia = "no_media"

// mediaOn is what an endpoint's mute_state last said it sends.
type mediaOn struct {
	known           bool // a mute_state arrived on this connection
	camera, mic     bool
	cameraAt, micAt time.Time // when each was last turned on
}

// selfMedia records the camera and microphone state from mute_state.
func (r *Room) selfMedia(c *conn, camera, mic bool) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.members[c.code]
	if m == nil || m.conn != c {
		return
	}
	o := &m.mediaOn
	if camera && !(o.known && o.camera) {
		o.cameraAt = now
	}
	if mic && !(o.known && o.mic) {
		o.micAt = now
	}
	o.known, o.camera, o.mic = true, camera, mic
}

// judgeNoMedia: the server expects media from the publisher leg (a camera or
// microphone that mute_state says is on, negotiated, with a layer the
// server has not paused) and none has arrived for DegradedNoMedia. Paused
// layers are never expected; audio is gated at the SFU's egress, so a
// microphone that is on keeps sending. The clock starts no earlier than the
// leg coming up, the device being turned on, or a paused layer resuming.
// Called with mu held.
func judgeNoMedia(m *member, st media.PeerStats, now time.Time) bool {
	if !m.legUp[0] || !m.mediaOn.known {
		return false
	}
	silent := func(on bool, onAt time.Time, pm media.PublishedMedia) bool {
		if !on || !pm.Negotiated || pm.Paused {
			return false
		}
		since := m.pubUpAt
		for _, t := range []time.Time{onAt, pm.LastRTP, pm.ResumedAt} {
			if t.After(since) {
				since = t
			}
		}
		return now.Sub(since) > DegradedNoMedia
	}
	return silent(m.mediaOn.camera, m.mediaOn.cameraAt, st.PubVideo) || silent(m.mediaOn.mic, m.mediaOn.micAt, st.PubAudio)
}

// broadcastStats sends the health board to consoles.
func (r *Room) broadcastStats(msg wire.StatsMsg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sendStats(msg)
}

// Stats returns the last media statistics of every live endpoint (health board).
func (r *Room) Stats() []wire.StatEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []wire.StatEntry{}
	for _, code := range sortedKeys(r.members) {
		if m := r.members[code]; m.conn != nil {
			out = append(out, m.stats)
		}
	}
	return out
}

// Stats returns the live media statistics per endpoint (for the health board).
func (s *Service) Stats() []wire.StatEntry { return s.room.Stats() }

// presenceCollector exports presence counts as Prometheus gauges.
type presenceCollector struct{ r *Room }

var descPresence = prometheus.NewDesc("opscenter_endpoints_presence", "Endpoints by presence state.", []string{"state"}, nil)

func (p presenceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descPresence }

func (p presenceCollector) Collect(ch chan<- prometheus.Metric) {
	counts := p.r.Counts()
	for _, st := range []string{wire.StateJoined, wire.StateConnected, wire.StateDegraded} {
		ch <- prometheus.MustNewConstMetric(descPresence, prometheus.GaugeValue, float64(counts[st]), st)
	}
	online := counts[wire.StateJoined] + counts[wire.StateConnected] + counts[wire.StateDegraded]
	ch <- prometheus.MustNewConstMetric(descPresence, prometheus.GaugeValue, float64(len(p.r.roster)-online), wire.StateOffline)
}
