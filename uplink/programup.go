package uplink

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/synth/client"
)

// Up: the node's program is what the parent sees from this unit (its tile,
// and the floor when the parent gives it). A WHEP viewer of the node's own
// program (the node's ingest path, in-process) feeds the uplink client's
// publisher leg (client.Source); the parent's keyframe requests go back to the
// node's program publisher as the viewer's PLIs.

// ViewFunc starts a WHEP viewer of this node's program (signaling.Service.
// StartWHEP): it returns the answer and a function that ends the viewer.
type ViewFunc func(offer string) (answer string, stop func(), err error)

// programUp is the node's program on its way to the parent.
type programUp struct {
	src      *client.Source
	videoSSR atomic.Uint32 // SSRC of the viewer's program video (for PLIs)
	pc       atomic.Pointer[webrtc.PeerConnection]
	lastPLI  atomic.Int64
}

// runProgramUp keeps a WHEP viewer of the node's program while the uplink runs,
// starting a new one when the old one fails.
func (u *Uplink) runProgramUp(p *programUp) {
	defer u.wg.Done()
	for u.ctx.Err() == nil {
		stop, failed, err := u.viewProgram(p)
		if err != nil {
			u.log.Warn("uplink: cannot view the node's program", "err", err)
		} else {
			select {
			case <-u.ctx.Done():
			case <-failed:
				u.log.Warn("uplink: the view of the node's program failed; starting a new one")
			}
			stop()
		}
		select {
		case <-u.ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// viewProgram starts one viewer; failed closes when its media path fails.
func (u *Uplink) viewProgram(p *programUp) (stop func(), failed <-chan struct{}, err error) {
	api, err := nodeAPI()
	if err != nil {
		return nil, nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, nil, err
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			_ = pc.Close()
			return nil, nil, err
		}
	}
	fail := make(chan struct{})
	var once atomic.Bool
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed && !once.Swap(true) {
			close(fail)
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		write := p.src.WriteAudio
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			p.videoSSR.Store(uint32(tr.SSRC()))
			write = p.src.WriteVideo
			p.keyframe() // the parent's viewers start at once
		}
		buf := make([]byte, 1500)
		var pkt rtp.Packet
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			if pkt.Unmarshal(buf[:n]) == nil {
				_ = write(&pkt) // not attached (the uplink is reconnecting): dropped
			}
		}
	})
	offer, err := gatherOffer(pc)
	if err != nil {
		_ = pc.Close()
		return nil, nil, err
	}
	answer, end, err := u.cfg.ViewProgram(offer)
	if err != nil {
		_ = pc.Close()
		return nil, nil, fmt.Errorf("WHEP at the node: %w", err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		end()
		_ = pc.Close()
		return nil, nil, err
	}
	p.pc.Store(pc)
	return func() {
		p.pc.CompareAndSwap(pc, nil)
		end()
		_ = pc.Close()
	}, fail, nil
}

// keyframe asks the node's program publisher for a keyframe (at most every
// 500 ms): the parent asked, or a new view began.
func (p *programUp) keyframe() {
	now := time.Now().UnixNano()
	if last := p.lastPLI.Load(); now-last < int64(500*time.Millisecond) || !p.lastPLI.CompareAndSwap(last, now) {
		return
	}
	pc, ssrc := p.pc.Load(), p.videoSSR.Load()
	if pc != nil && ssrc != 0 {
		_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	}
}
