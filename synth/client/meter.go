package client

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/synth/media"
)

// Meter counts what many clients receive, for load measurement. With
// Options.Meter set, a client counts its received media here instead of
// recording it per slot and source (its Recorder stays empty): per packet it
// reads the RTP header and the marker's send time and updates atomics, with
// no allocation and no lock, so the generator measures the server, not itself.
type Meter struct {
	Packets  atomic.Uint64 // media packets received
	Bytes    atomic.Uint64 // RTP bytes received
	Expected atomic.Uint64 // sum over tracks of (highest - first + 1)
	Delay    Hist          // end to end: marker send time → receive
}

// meterTrack is one received track's sequence state.
type meterTrack struct {
	highest uint16
	have    bool
}

// count records one RTP packet (header included) received at now.
func (m *Meter) count(t *meterTrack, pkt []byte, now time.Time) {
	if len(pkt) < 12 {
		return
	}
	seq := binary.BigEndian.Uint16(pkt[2:4])
	if !t.have {
		t.have, t.highest = true, seq
		m.Expected.Add(1)
	} else if d := int16(seq - t.highest); d > 0 {
		t.highest = seq
		m.Expected.Add(uint64(d))
	}
	m.Packets.Add(1)
	m.Bytes.Add(uint64(len(pkt)))
	if sent, ok := media.SentAt(pkt); ok {
		m.Delay.Record(now.Sub(sent))
	}
}

// readTrack reads one received track until it ends, into the Meter when
// there is one, else into the Recorder by slot (the track id).
func (c *Client) readTrack(tr *webrtc.TrackRemote) {
	slot := tr.ID()
	buf := make([]byte, 1500)
	var p rtp.Packet
	m := c.opts.Meter
	var mt meterTrack
	first := true
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		if first && n >= 12 {
			first = false
			c.firstMedia.CompareAndSwap(0, now.UnixNano())
		}
		if m != nil {
			m.count(&mt, buf[:n], now)
			continue
		}
		if p.Unmarshal(buf[:n]) == nil {
			c.rec.add(slot, p.SequenceNumber, p.Payload, now)
			if f := c.opts.OnRTP; f != nil {
				f(slot, &p)
			}
		}
	}
}

// FirstMedia is when the first media packet arrived (zero: none yet), over
// every connection of the client.
func (c *Client) FirstMedia() time.Time {
	if ns := c.firstMedia.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
