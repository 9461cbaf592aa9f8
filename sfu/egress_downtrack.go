package sfu

import (
	"strings"
	"sync/atomic"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// downTrack is our webrtc.TrackLocal: it records what Bind negotiated (SSRC,
// payload type, writer) so the slot writer can build headers itself.
type downTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	codec        webrtc.RTPCodecCapability
	binding      atomic.Pointer[binding]
}

type binding struct {
	id   string
	ssrc uint32
	pt   uint8
	twcc uint8 // negotiated id of the transport-wide sequence number extension (0: none)
	w    webrtc.TrackLocalWriter
}

func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, d.codec.MimeType) {
			var twcc uint8
			for _, x := range ctx.HeaderExtensions() {
				if x.URI == sdp.TransportCCURI {
					twcc = uint8(x.ID)
				}
			}
			d.binding.Store(&binding{id: ctx.ID(), ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType), twcc: twcc, w: ctx.WriteStream()})
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (d *downTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	if b := d.binding.Load(); b != nil && b.id == ctx.ID() {
		d.binding.Store(nil)
	}
	return nil
}

func (d *downTrack) ID() string                       { return d.id }
func (d *downTrack) RID() string                      { return "" }
func (d *downTrack) StreamID() string                 { return d.streamID }
func (d *downTrack) Kind() webrtc.RTPCodecType        { return d.kind }
func (d *downTrack) Codec() webrtc.RTPCodecCapability { return d.codec }
