package sfu

import "encoding/binary"

// vp8Info is what the forwarding path needs to know about a VP8 RTP payload.
type vp8Info struct {
	start    bool // S bit with partition index 0: first packet of a frame
	keyframe bool // start && P bit clear in the payload header
	width    int  // from the keyframe header (0 if not a keyframe)
	height   int
}

// parseVP8 parses the VP8 payload descriptor (RFC 7741 section 4.2) and, for
// the first packet of a frame, the payload header (section 4.3) and the
// keyframe header (RFC 6386 section 9.1). It never panics on short input.
func parseVP8(p []byte) (info vp8Info, ok bool) {
	if len(p) < 1 {
		return info, false
	}
	i := 1
	x := p[0]&0x80 != 0
	s := p[0]&0x10 != 0
	pid := p[0] & 0x07
	if x {
		if len(p) < 2 {
			return info, false
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: PictureID
			if len(p) < i+1 {
				return info, false
			}
			if p[i]&0x80 != 0 { // M: 15-bit picture id
				i += 2
			} else {
				i++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/Y/KEYIDX
			i++
		}
	}
	if len(p) < i {
		return info, false
	}
	info.start = s && pid == 0
	if !info.start {
		return info, true
	}
	h := p[i:]
	if len(h) < 3 {
		return info, false
	}
	info.keyframe = h[0]&0x01 == 0
	if !info.keyframe {
		return info, true
	}
	if len(h) < 10 || h[3] != 0x9d || h[4] != 0x01 || h[5] != 0x2a {
		// A keyframe without a valid start code: report it as a keyframe
		// without dimensions rather than rejecting the packet.
		return info, true
	}
	info.width = int(binary.LittleEndian.Uint16(h[6:8]) & 0x3fff)
	info.height = int(binary.LittleEndian.Uint16(h[8:10]) & 0x3fff)
	return info, true
}
