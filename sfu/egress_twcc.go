package sfu

import (
	"sync/atomic"

	"github.com/pion/rtcp"
)

// twccHistory numbers the packets of one subscriber leg for transport-wide
// congestion control and remembers when each left and how big it was, so
// that the subscriber's TWCC feedback can be turned into acks for the
// estimator (egress_estimator.go).
//
// It replaces Pion's TWCC header extension interceptor and GCC feedback
// adapter, whose per-packet cost (a list, a map, a lock and an attribute map
// per packet) was a third of the server's CPU at N = 190. Recording is a
// counter increment and one atomic store into a fixed ring: the slots of one
// subscriber are written by different publisher readers concurrently, and
// the ring is read by the RTCP goroutine. An entry packs the on-wire
// sequence number, the size and the send time in microseconds (mod 2^32,
// about 71 minutes) into one word.
type twccHistory struct {
	next atomic.Uint32 // unwrapped transport sequence number of the next packet
	ring [twccRing]atomic.Uint64
}

// twccRing is a power of two. It must outlast the path's delay: feedback
// about packets that have left the ring teaches nothing (Peer.onTWCC then
// treats the leg as congested). 2048 entries are 14 s of a subscriber at
// the program's top layer (about 150 packets/s) and 2.3 s of the console
// (49 low tiles plus the program, about 900 packets/s); 16 KiB a subscriber.
const twccRing = 2048

// record numbers a packet of size bytes sent at now (nanotime) and returns
// the sequence number for its header extension.
func (h *twccHistory) record(now int64, size int) uint16 {
	seq := h.next.Add(1) - 1
	h.ring[seq&(twccRing-1)].Store(uint64(uint16(seq))<<48 | uint64(uint16(size))<<32 | uint64(uint32(now/1000)))
	return uint16(seq)
}

// lookup returns the send time and size of the packet whose on-wire sequence
// number is seq16, if it is still in the ring. now (nanotime) restores the
// send time's high bits.
func (h *twccHistory) lookup(now int64, seq16 uint16) (sent int64, size int, ok bool) {
	last := h.next.Load() - 1
	// Unwrap against the newest sequence number: feedback is about the past.
	back := uint16(last) - seq16
	if uint32(back) >= twccRing || uint32(back) > last {
		return 0, 0, false
	}
	v := h.ring[(last-uint32(back))&(twccRing-1)].Load()
	if v == 0 || uint16(v>>48) != seq16 {
		return 0, 0, false // not written yet, or overwritten by a newer packet
	}
	age := uint32(now/1000) - uint32(v) // µs, modulo 2^32
	return now - int64(age)*1000, int(uint16(v >> 32)), true
}

// acks decodes one TWCC feedback packet into acks (appended to out, in
// sequence order). Packets no longer in the history get sent = 0, which the
// estimator ignores.
func (h *twccHistory) acks(now int64, fb *rtcp.TransportLayerCC, out []ack) []ack {
	const refUnit = 64_000_000 // reference time unit, 64 ms in ns
	arrival := int64(fb.ReferenceTime) * refUnit
	seq := fb.BaseSequenceNumber
	remaining := int(fb.PacketStatusCount)
	di := 0
	emit := func(status uint16) {
		a := ack{}
		a.sent, a.size, _ = h.lookup(now, seq)
		switch status {
		case rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketReceivedLargeDelta:
			if di < len(fb.RecvDeltas) && fb.RecvDeltas[di] != nil {
				arrival += fb.RecvDeltas[di].Delta * 1000 // µs → ns
				di++
				a.arrived = arrival
				a.received = true
			} else {
				a.sent = 0 // malformed: a received packet without its delta
			}
		case rtcp.TypeTCCPacketReceivedWithoutDelta:
			a.sent = 0 // received, but no time to learn from
		}
		out = append(out, a)
		seq++
		remaining--
	}
	for _, c := range fb.PacketChunks {
		if remaining <= 0 {
			break
		}
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for i := 0; i < int(c.RunLength) && remaining > 0; i++ {
				emit(c.PacketStatusSymbol)
			}
		case *rtcp.StatusVectorChunk:
			for _, s := range c.SymbolList {
				if remaining <= 0 {
					break
				}
				if c.SymbolSize == rtcp.TypeTCCSymbolSizeOneBit && s == 1 {
					s = rtcp.TypeTCCPacketReceivedSmallDelta
				}
				emit(s)
			}
		}
	}
	return out
}
