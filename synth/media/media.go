// Package media generates synthetic RTP media for tests and load generation:
// VP8-shaped video (valid payload descriptors, keyframe headers with the
// layer's real size, periodic and on-demand keyframes) and Opus-sized audio
// (with an RFC 6464 audio-level extension). Every packet payload carries a
// Marker (endpoint code, rid, send time) so a receiver can tell the source by
// payload rather than by SSRC. The payload is not decodable video or audio.
package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// MarkerSize is the size of the marker embedded in every payload.
const MarkerSize = 32

var magic = [4]byte{'O', 'P', 'S', 'M'}

// Marker identifies the source of a synthetic packet.
type Marker struct {
	Kind   byte   // 'v' video, 'a' audio
	Code   string // endpoint code (up to 10 bytes)
	RID    string // simulcast rid ("" or one byte: q, h, f)
	SentAt time.Time
	Frame  uint32 // frame (video) or packet (audio) counter
	Index  uint16 // packet index within the frame
}

// PutMarker writes m into b (len >= MarkerSize) and returns MarkerSize.
func PutMarker(b []byte, m Marker) int {
	_ = b[MarkerSize-1]
	copy(b[0:4], magic[:])
	b[4] = m.Kind
	b[5] = 0
	if m.RID != "" {
		b[5] = m.RID[0]
	}
	clear(b[6:16])
	copy(b[6:16], m.Code)
	binary.BigEndian.PutUint64(b[16:24], uint64(m.SentAt.UnixNano()))
	binary.BigEndian.PutUint32(b[24:28], m.Frame)
	binary.BigEndian.PutUint16(b[28:30], m.Index)
	b[30], b[31] = 0, 0
	return MarkerSize
}

func readMarker(b []byte) (Marker, bool) {
	if len(b) < MarkerSize || !bytes.Equal(b[0:4], magic[:]) {
		return Marker{}, false
	}
	m := Marker{Kind: b[4]}
	if b[5] != 0 {
		m.RID = string(b[5:6])
	}
	code := b[6:16]
	if i := bytes.IndexByte(code, 0); i >= 0 {
		code = code[:i]
	}
	m.Code = string(code)
	m.SentAt = time.Unix(0, int64(binary.BigEndian.Uint64(b[16:24])))
	m.Frame = binary.BigEndian.Uint32(b[24:28])
	m.Index = binary.BigEndian.Uint16(b[28:30])
	return m, true
}

// ParseMarker finds the marker in a synthetic audio payload or VP8 payload.
func ParseMarker(payload []byte) (Marker, bool) {
	if m, ok := readMarker(payload); ok {
		return m, true
	}
	off, start, key, ok := vp8Headers(payload)
	if !ok {
		return Marker{}, false
	}
	if start {
		off += 3
		if key {
			off += 7
		}
	}
	if off > len(payload) {
		return Marker{}, false
	}
	return readMarker(payload[off:])
}

// SentAt returns the send time in the marker of a whole RTP packet (header
// included) without allocating: the load generator calls it for every packet
// it receives. It looks for the marker in the first 64 bytes of the payload,
// past the VP8 descriptor and keyframe header.
func SentAt(pkt []byte) (time.Time, bool) {
	if len(pkt) < 12 {
		return time.Time{}, false
	}
	off := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 && len(pkt) >= off+4 {
		off += 4 + 4*int(binary.BigEndian.Uint16(pkt[off+2:off+4]))
	}
	if off >= len(pkt) {
		return time.Time{}, false
	}
	p := pkt[off:]
	if len(p) > 64 {
		p = p[:64]
	}
	i := bytes.Index(p, magic[:])
	if i < 0 || len(p) < i+24 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(p[i+16:i+24]))), true
}

// vp8Headers parses the VP8 payload descriptor; it returns the offset of the
// VP8 payload, whether the packet starts a frame, and whether it is a keyframe.
func vp8Headers(p []byte) (off int, start, key bool, ok bool) {
	if len(p) < 1 {
		return 0, false, false, false
	}
	i := 1
	if p[0]&0x80 != 0 {
		if len(p) < 2 {
			return 0, false, false, false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 {
			if len(p) < 3 {
				return 0, false, false, false
			}
			if p[2]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 {
			i++
		}
		if x&0x30 != 0 {
			i++
		}
	}
	if i > len(p) {
		return 0, false, false, false
	}
	start = p[0]&0x10 != 0 && p[0]&0x07 == 0
	if start {
		if i >= len(p) {
			return 0, false, false, false
		}
		key = p[i]&0x01 == 0
	}
	return i, start, key, true
}

// ParseVP8Keyframe returns the frame size from a packet that starts a VP8
// keyframe; ok is false for any other packet.
func ParseVP8Keyframe(payload []byte) (w, h int, ok bool) {
	off, start, key, ok := vp8Headers(payload)
	if !ok || !start || !key || len(payload) < off+10 {
		return 0, 0, false
	}
	k := payload[off:]
	if k[3] != 0x9d || k[4] != 0x01 || k[5] != 0x2a {
		return 0, 0, false
	}
	return int(binary.LittleEndian.Uint16(k[6:8]) & 0x3fff), int(binary.LittleEndian.Uint16(k[8:10]) & 0x3fff), true
}

// VideoConfig configures a synthetic VP8 layer.
type VideoConfig struct {
	Code             string
	RID              string
	Width, Height    int
	FPS              int           // default 30
	Bitrate          int           // bit/s, default 500k
	KeyframeInterval time.Duration // default 3s; <0 = only on request
	PayloadType      uint8         // default 96
	SSRC             uint32
	MTU              int // max payload size, default 1200
}

// Video generates one VP8 layer. NextFrame is not safe for concurrent use;
// RequestKeyframe is.
type Video struct {
	cfg      VideoConfig
	seq      uint16
	ts       uint32
	picID    uint16
	frame    uint32
	lastKey  time.Time
	forceKey atomic.Bool
	buf      [1500]byte
	pkt      rtp.Packet
}

// NewVideo returns a generator; the first frame is a keyframe.
func NewVideo(cfg VideoConfig) *Video {
	if cfg.FPS <= 0 {
		cfg.FPS = 30
	}
	if cfg.Bitrate <= 0 {
		cfg.Bitrate = 500_000
	}
	if cfg.KeyframeInterval == 0 {
		cfg.KeyframeInterval = 3 * time.Second
	}
	if cfg.PayloadType == 0 {
		cfg.PayloadType = 96
	}
	if cfg.MTU <= 0 || cfg.MTU > 1400 {
		cfg.MTU = 1200
	}
	v := &Video{cfg: cfg, seq: uint16(cfg.SSRC), ts: cfg.SSRC * 7, picID: uint16(cfg.SSRC) & 0x7fff}
	v.forceKey.Store(true)
	return v
}

// Config returns the generator's configuration (with defaults applied).
func (v *Video) Config() VideoConfig { return v.cfg }

// RequestKeyframe makes the next frame a keyframe (e.g. on PLI).
func (v *Video) RequestKeyframe() { v.forceKey.Store(true) }

// NextFrame generates one frame at time now and calls emit for each packet.
// The packet and its payload are reused: emit must not keep them.
func (v *Video) NextFrame(now time.Time, emit func(*rtp.Packet) error) error {
	key := v.forceKey.Swap(false) ||
		(v.cfg.KeyframeInterval > 0 && now.Sub(v.lastKey) >= v.cfg.KeyframeInterval)
	if key {
		v.lastKey = now
	}
	size := v.cfg.Bitrate / 8 / v.cfg.FPS
	if key {
		size *= 3
	}
	const desc = 4 // X, I, 15-bit picture id
	hdr := 3
	if key {
		hdr = 10
	}
	room := v.cfg.MTU - desc - MarkerSize
	total := size + hdr
	n := (total + room - 1) / room
	if n < 1 {
		n = 1
	}
	per := total/n + 1
	v.frame++
	v.picID = (v.picID + 1) & 0x7fff
	p := &v.pkt
	for i := 0; i < n; i++ {
		b := v.buf[:]
		b[0] = 0x80
		if i == 0 {
			b[0] |= 0x10
		}
		b[1] = 0x80
		b[2] = 0x80 | byte(v.picID>>8)
		b[3] = byte(v.picID)
		o := desc
		if i == 0 {
			tag := uint32(0x10) | uint32(size&0x7ffff)<<5 // show_frame, first partition size
			if !key {
				tag |= 1
			}
			b[o], b[o+1], b[o+2] = byte(tag), byte(tag>>8), byte(tag>>16)
			o += 3
			if key {
				b[o], b[o+1], b[o+2] = 0x9d, 0x01, 0x2a
				binary.LittleEndian.PutUint16(b[o+3:], uint16(v.cfg.Width&0x3fff))
				binary.LittleEndian.PutUint16(b[o+5:], uint16(v.cfg.Height&0x3fff))
				o += 7
			}
		}
		o += PutMarker(b[o:], Marker{Kind: 'v', Code: v.cfg.Code, RID: v.cfg.RID, SentAt: now, Frame: v.frame, Index: uint16(i)})
		end := desc + MarkerSize + per
		if end > v.cfg.MTU {
			end = v.cfg.MTU
		}
		if end < o {
			end = o
		}
		for j := o; j < end; j++ {
			b[j] = byte(j)
		}
		v.seq++
		p.Header = rtp.Header{
			Version:        2,
			PayloadType:    v.cfg.PayloadType,
			SequenceNumber: v.seq,
			Timestamp:      v.ts,
			SSRC:           v.cfg.SSRC,
			Marker:         i == n-1,
			Extensions:     p.Header.Extensions[:0],
		}
		p.Payload = b[:end]
		if err := emit(p); err != nil {
			return err
		}
	}
	v.ts += uint32(90000 / v.cfg.FPS)
	return nil
}

// Run generates frames at the configured rate until ctx ends or emit fails.
func (v *Video) Run(ctx context.Context, emit func(*rtp.Packet) error) error {
	tk := time.NewTicker(time.Second / time.Duration(v.cfg.FPS))
	defer tk.Stop()
	for {
		if err := v.NextFrame(time.Now(), emit); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
	}
}

// AudioConfig configures synthetic Opus-sized audio (50 packets/s).
type AudioConfig struct {
	Code        string
	PayloadType uint8  // default 111
	SSRC        uint32 //
	LevelExtID  uint8  // negotiated id of urn:ietf:params:rtp-hdrext:ssrc-audio-level; 0 = none
	Level       uint8  // initial dBov 1 (loud) .. 127 (silent); 0 = 127. SetLevel(0) is loudest.
	Size        int    // payload bytes, default 100
}

// Audio generates audio packets. SetLevel is safe for concurrent use.
type Audio struct {
	cfg   AudioConfig
	seq   uint16
	ts    uint32
	n     uint32
	level atomic.Uint32
	buf   [1500]byte
	ext   [1]byte
	pkt   rtp.Packet
}

// NewAudio returns an audio generator.
func NewAudio(cfg AudioConfig) *Audio {
	if cfg.PayloadType == 0 {
		cfg.PayloadType = 111
	}
	if cfg.Size < MarkerSize {
		cfg.Size = 100
	}
	if cfg.Size > 1200 {
		cfg.Size = 1200
	}
	a := &Audio{cfg: cfg, seq: uint16(cfg.SSRC), ts: cfg.SSRC * 3}
	if cfg.Level == 0 {
		cfg.Level = 127
	}
	a.level.Store(uint32(cfg.Level))
	return a
}

// SetLevel sets the audio level in dBov (0 = loudest, 127 = silence).
func (a *Audio) SetLevel(dBov uint8) { a.level.Store(uint32(dBov & 0x7f)) }

// NextPacket generates one 20 ms packet and calls emit with it (reused).
func (a *Audio) NextPacket(now time.Time, emit func(*rtp.Packet) error) error {
	a.n++
	b := a.buf[:a.cfg.Size]
	o := PutMarker(b, Marker{Kind: 'a', Code: a.cfg.Code, SentAt: now, Frame: a.n})
	for j := o; j < len(b); j++ {
		b[j] = byte(j)
	}
	a.seq++
	p := &a.pkt
	p.Header = rtp.Header{
		Version:        2,
		PayloadType:    a.cfg.PayloadType,
		SequenceNumber: a.seq,
		Timestamp:      a.ts,
		SSRC:           a.cfg.SSRC,
		Marker:         a.n == 1,
		Extensions:     p.Header.Extensions[:0],
	}
	if a.cfg.LevelExtID != 0 {
		lvl := byte(a.level.Load())
		if lvl < 127 {
			lvl |= 0x80 // voice activity
		}
		a.ext[0] = lvl
		_ = p.Header.SetExtension(a.cfg.LevelExtID, a.ext[:])
	}
	p.Payload = b
	a.ts += 960
	return emit(p)
}

// Run generates packets every 20 ms until ctx ends or emit fails.
func (a *Audio) Run(ctx context.Context, emit func(*rtp.Packet) error) error {
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	for {
		if err := a.NextPacket(time.Now(), emit); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
	}
}
