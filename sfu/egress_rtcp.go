package sfu

import (
	"math"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
)

// The subscriber leg's RTCP: what the subscriber reports about each slot
// (NACK, PLI/FIR, receiver reports, REMB, TWCC feedback), and the sender
// reports the slots send.

// rtcpLoop reads the RTCP the subscriber sends about this slot. It starts
// when the slot first gets a source (startRTCP): a slot that never carried
// media gets no RTCP. NACKs are answered from the publisher layer's cache, PLI/FIR are forwarded
// (rate-limited) to the publisher, RRs feed statistics, REMB feeds the BWE.
func (s *Slot) rtcpLoop() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, attr, err := s.sender.Read(buf)
		if err != nil {
			return
		}
		var pkts []rtcp.Packet
		if attr != nil {
			pkts, err = attr.GetRTCPPackets(buf[:n])
		} else {
			pkts, err = rtcp.Unmarshal(buf[:n])
		}
		if err != nil {
			continue
		}
		b := s.dt.binding.Load()
		var ssrc uint32
		if b != nil {
			ssrc = b.ssrc
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				if p.MediaSSRC != ssrc {
					continue
				}
				s.answerNACK(p.Nacks)
			case *rtcp.PictureLossIndication:
				if p.MediaSSRC == ssrc {
					s.forwardPLI()
				}
			case *rtcp.FullIntraRequest:
				if p.MediaSSRC == ssrc || p.MediaSSRC == 0 {
					s.forwardPLI()
				}
			case *rtcp.ReceiverReport:
				s.onReports(p.Reports, ssrc)
			case *rtcp.SenderReport:
				s.onReports(p.Reports, ssrc)
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				s.peer.setREMB(int(p.Bitrate))
			case *rtcp.TransportLayerCC:
				s.peer.onTWCC(p)
			}
		}
	}
}

// answerNACK answers a NACK from the publisher layer's cache. When the
// subscriber is on UDP and nothing is queued for the slot, this goroutine
// writes the retransmissions itself, as a publisher reader writes media on
// the direct path (a datagram write does not wait on the subscriber), so a
// slot on UDP never needs a writer goroutine. Otherwise (ICE-TCP, or while
// the queue drains, which keeps the order) they go to the writer.
func (s *Slot) answerNACK(nacks []rtcp.NackPair) {
	if s.peer.subDirect.Load() && len(s.q()) == 0 {
		s.wmu.Lock()
		st := s.writer()
		for _, pair := range nacks {
			s.writeNACK(st, qentry{op: opNACK, seq: pair.PacketID, blp: uint16(pair.LostPackets)})
		}
		s.wmu.Unlock()
		return
	}
	s.startWriter()
	for _, pair := range nacks {
		select {
		case s.q() <- qentry{op: opNACK, seq: pair.PacketID, blp: uint16(pair.LostPackets)}: // nil (drop) only once closed
		default:
			s.dropped.Add(1)
		}
	}
}

func (s *Slot) forwardPLI() {
	if c := s.current.Load(); c != nil {
		c.requestPLI(false)
	} else if d := s.desired.Load(); d != nil {
		d.requestPLI(false)
	}
}

func (s *Slot) onReports(reports []rtcp.ReceptionReport, ssrc uint32) {
	for _, r := range reports {
		if r.SSRC != ssrc {
			continue
		}
		now := time.Now()
		s.rrLoss.Store(math.Float64bits(float64(r.FractionLost) / 256))
		clock := 90000.0
		if s.kind == webrtc.RTPCodecTypeAudio {
			clock = 48000
		}
		s.rrJitter.Store(math.Float64bits(float64(r.Jitter) / clock * 1000))
		if r.LastSenderReport != 0 {
			if rtt := rttFromReport(now, r.LastSenderReport, r.Delay); rtt > 0 {
				s.rrRTT.Store(int64(rtt))
			}
		}
		s.rrTime.Store(nanotime())
	}
}

// rttFromReport computes RTT = now - LSR - DLSR in the compact NTP format.
func rttFromReport(now time.Time, lsr, dlsr uint32) time.Duration {
	ntp := toNTP(now)
	mid := uint32(ntp >> 16)
	d := mid - lsr - dlsr
	if int32(d) <= 0 || d > 10*65536 {
		return 0
	}
	return time.Duration(uint64(d) * uint64(time.Second) >> 16)
}

func toNTP(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	s := uint64(t.Unix()) + ntpEpochOffset
	f := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return s<<32 | f
}

// sendReports sends a sender report for every slot that has sent media:
// receivers use them for lip sync and to report round-trip times.
func (p *Peer) sendReports() {
	p.mu.Lock()
	pc := p.sub
	slots := append([]*Slot(nil), p.slots...)
	p.mu.Unlock()
	if pc == nil || !p.subReady.Load() {
		return
	}
	now := time.Now()
	ntp := toNTP(now) // wall time: the receiver maps it to its own NTP clock
	mono := nanotime()
	var pkts []rtcp.Packet
	for _, s := range slots {
		b := s.dt.binding.Load()
		n := s.packets.Load()
		if b == nil || n == 0 {
			continue
		}
		clock := int64(90000)
		if s.kind == webrtc.RTPCodecTypeAudio {
			clock = 48000
		}
		elapsed := mono - s.lastAt.Load()
		pkts = append(pkts, &rtcp.SenderReport{
			SSRC:        b.ssrc,
			NTPTime:     ntp,
			RTPTime:     s.lastTS.Load() + uint32(elapsed*clock/int64(time.Second)),
			PacketCount: uint32(n),
			OctetCount:  uint32(s.bytes.Load()),
		})
		if len(pkts) == 32 { // keep the compound packet within one MTU
			_ = pc.WriteRTCP(pkts)
			pkts = pkts[:0]
		}
	}
	if len(pkts) > 0 {
		_ = pc.WriteRTCP(pkts)
	}
}
