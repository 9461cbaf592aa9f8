package sfu

import (
	"math"
	"time"

	"github.com/pion/webrtc/v3"
)

// Stats returns a snapshot of the peer's statistics.
func (p *Peer) Stats() PeerStats {
	now := nanotime()
	es := p.est.stats()
	st := PeerStats{ID: p.id, EstimateBps: p.estimate(), AudioLevel: p.AudioLevel(), Congestion: es.State, CongestionCuts: es.Decreases}
	p.mu.Lock()
	pub, sub := p.pub, p.sub
	slots := append([]*Slot(nil), p.slots...)
	tracks := append([]*UpTrack(nil), p.tracks...)
	p.mu.Unlock()
	if pub != nil {
		st.Publisher.State = pub.ConnectionState().String()
		st.Publisher.RTT = pairRTT(pub)
	}
	if sub != nil {
		st.Subscriber.State = sub.ConnectionState().String()
		st.Subscriber.RTT = pairRTT(sub)
	}
	var lostSum, pktSum uint64
	var jit float64
	for _, t := range tracks {
		for i := range t.layers {
			l := t.layers[i].Load()
			if l == nil {
				continue
			}
			st.BitrateIn += l.meter.bitrate(now)
			lostSum += l.lost.Load()
			pktSum += l.packets.Load()
			clock := 90000.0
			if t.kind == webrtc.RTPCodecTypeAudio {
				clock = 48000
			}
			jit = math.Max(jit, math.Float64frombits(l.jitter.Load())/clock*1000)
		}
		if t.kind == webrtc.RTPCodecTypeVideo && st.Video == nil {
			st.Video = t.Layers()
		}
	}
	if pktSum+lostSum > 0 {
		st.Publisher.Loss = float64(lostSum) / float64(pktSum+lostSum)
	}
	if pub != nil {
		st.Publisher.RecentLoss = p.lossWin.recent(p.publisherCounters(now))
		if ts := p.pubRTCP.last.Load(); ts != 0 {
			st.Publisher.LastRTCP = monoTime(ts)
		}
	}
	if pub != nil {
		st.PubVideo.Negotiated, st.PubAudio.Negotiated = receiving(pub)
	}
	for _, t := range tracks {
		pm := &st.PubVideo
		if t.kind == webrtc.RTPCodecTypeAudio {
			pm = &st.PubAudio
		}
		last, paused, resumed := t.published()
		if last != 0 {
			if lt := monoTime(last); lt.After(pm.LastRTP) {
				pm.LastRTP = lt
			}
		}
		if resumed != 0 {
			if rt := monoTime(resumed); rt.After(pm.ResumedAt) {
				pm.ResumedAt = rt
			}
		}
		pm.Paused = paused // one track per kind in practice
	}
	st.Publisher.JitterMs = jit
	st.Publisher.BitrateBs = st.BitrateIn
	var rtt time.Duration
	for _, s := range slots {
		ss := s.Stats()
		st.Slots = append(st.Slots, ss)
		st.BitrateOut += s.meter.bitrate(now)
		if t := s.rrTime.Load(); t != 0 {
			st.Subscriber.Loss = math.Max(st.Subscriber.Loss, math.Float64frombits(s.rrLoss.Load()))
			st.Subscriber.JitterMs = math.Max(st.Subscriber.JitterMs, math.Float64frombits(s.rrJitter.Load()))
			if r := time.Duration(s.rrRTT.Load()); r > rtt {
				rtt = r
			}
			if tt := monoTime(t); tt.After(st.Subscriber.LastRTCP) {
				st.Subscriber.LastRTCP = tt
			}
		}
	}
	if rtt > 0 {
		st.Subscriber.RTT = rtt
	}
	st.Subscriber.BitrateBs = st.BitrateOut
	return st
}

// pairRTT returns the selected ICE candidate pair's current RTT.
func pairRTT(pc *webrtc.PeerConnection) time.Duration {
	for _, s := range pc.GetStats() {
		if cp, ok := s.(webrtc.ICECandidatePairStats); ok && cp.Nominated && cp.CurrentRoundTripTime > 0 {
			return time.Duration(cp.CurrentRoundTripTime * float64(time.Second))
		}
	}
	return 0
}

// receiving reports whether the publisher leg has a transceiver that
// receives video and audio.
func receiving(pc *webrtc.PeerConnection) (video, audio bool) {
	for _, tr := range pc.GetTransceivers() {
		if tr.Receiver() == nil {
			continue
		}
		switch tr.Direction() {
		case webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPTransceiverDirectionSendrecv:
		default:
			continue
		}
		switch tr.Kind() {
		case webrtc.RTPCodecTypeVideo:
			video = true
		case webrtc.RTPCodecTypeAudio:
			audio = true
		}
	}
	return video, audio
}
