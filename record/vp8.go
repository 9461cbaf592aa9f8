package record

import "github.com/pion/rtp/codecs"

// vp8Frames reassembles VP8 frames from in-order RTP payloads. It never passes
// on a frame that is incomplete or whose references may be missing: after a
// loss it waits for a keyframe, unless the VP8 PictureID proves that no frame
// was lost (the hole was padding, or a discardable frame).
type vp8Frames struct {
	desc      codecs.VP8Packet
	buf       []byte
	inFrame   bool
	ts        uint32
	picID     int32 // of the frame being assembled; -1 if none
	lastPicID int32 // of the last complete frame; -1 if unknown
	picMask   int32
	lastMask  int32
	gap       bool // packets were lost since the last complete frame
	waitKey   bool
	skipping  bool // dropping the tail of a headless frame
	skipTS    uint32
	width     int
	height    int
}

func newVP8Frames() *vp8Frames {
	return &vp8Frames{picID: -1, lastPicID: -1, waitKey: true, buf: make([]byte, 0, 64<<10)}
}

// vp8Result is what one packet produced.
type vp8Result struct {
	frame   []byte // a whole frame, valid until the next call
	key     bool
	dropped int  // frames thrown away (broken, or not decodable without a keyframe)
	askKey  bool // waitKey became true
}

func (v *vp8Frames) add(payload []byte, ts uint32, marker bool, lost int) (res vp8Result) {
	if lost > 0 {
		v.gap = true
		if v.inFrame {
			v.inFrame = false
			res.dropped++
			if v.desc.N == 1 && v.picID >= 0 {
				// Nothing refers to a discardable frame: skip it, keep going.
				v.lastPicID, v.lastMask = v.picID, v.picMask
			} else {
				res.askKey = v.setWait()
			}
		}
	}
	if len(payload) == 0 {
		return res // padding
	}
	if _, err := v.desc.Unmarshal(payload); err != nil {
		if v.inFrame {
			v.inFrame = false
			res.dropped++
		}
		res.askKey = v.setWait() || res.askKey
		return res
	}
	if v.desc.S == 1 && v.desc.PID == 0 {
		if v.inFrame { // the previous frame never ended
			res.dropped++
			res.askKey = v.setWait() || res.askKey
		}
		if v.gap {
			v.gap = false
			if !v.continues() {
				res.askKey = v.setWait() || res.askKey
			}
		}
		v.inFrame, v.ts, v.buf, v.skipping = true, ts, v.buf[:0], false
		v.picID = -1
		if v.desc.I == 1 {
			v.picID = int32(v.desc.PictureID)
			v.picMask = 0x7F
			if payload[2]&0x80 != 0 {
				v.picMask = 0x7FFF
			}
		}
	} else if !v.inFrame {
		// The rest of a frame whose start was lost: count it once.
		if !v.skipping || ts != v.skipTS {
			v.skipping, v.skipTS = true, ts
			res.dropped++
		}
		return res
	} else if ts != v.ts {
		v.inFrame = false
		res.dropped++
		res.askKey = v.setWait() || res.askKey
		return res
	}
	v.buf = append(v.buf, v.desc.Payload...)
	if !marker {
		return res
	}
	v.inFrame = false
	v.lastPicID, v.lastMask = v.picID, v.picMask
	key := len(v.buf) >= 10 && v.buf[0]&1 == 0
	if key {
		if w, h, ok := vp8KeyframeSize(v.buf); ok {
			v.width, v.height = w, h
			v.waitKey = false
		} else {
			key = false
		}
	}
	if v.waitKey {
		res.dropped++
		return res
	}
	res.frame, res.key = v.buf, key
	return res
}

// continues reports whether the frame starting now directly follows the last
// complete one, so a preceding hole lost no frame.
func (v *vp8Frames) continues() bool {
	if v.desc.I != 1 || v.lastPicID < 0 {
		return false
	}
	return int32(v.desc.PictureID) == (v.lastPicID+1)&v.lastMask
}

func (v *vp8Frames) setWait() bool {
	if v.waitKey {
		return false
	}
	v.waitKey = true
	return true
}

// vp8KeyframeSize reads width and height from a VP8 keyframe's 10-byte header
// (RFC 6386 9.1): a 3-byte frame tag, the start code 9d 01 2a, then 14-bit
// width and height, each with 2 scaling bits.
func vp8KeyframeSize(b []byte) (w, h int, ok bool) {
	if len(b) < 10 || b[0]&1 != 0 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
		return 0, 0, false
	}
	w = int(uint16(b[6])|uint16(b[7])<<8) & 0x3FFF
	h = int(uint16(b[8])|uint16(b[9])<<8) & 0x3FFF
	return w, h, w > 0 && h > 0
}
