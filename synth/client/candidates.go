package client

import (
	"strings"

	"github.com/pion/webrtc/v3"
)

// mapCandidate applies Options.MapRemoteCandidate to one server candidate.
func (c *Client) mapCandidate(ci webrtc.ICECandidateInit) (webrtc.ICECandidateInit, bool) {
	if c.opts.MapRemoteCandidate == nil {
		return ci, true
	}
	return c.opts.MapRemoteCandidate(ci)
}

// mapSDP applies Options.MapRemoteCandidate to every a=candidate line of a
// server SDP, with the m-section's mid and index; dropped candidates are removed.
func (c *Client) mapSDP(sdp string) string {
	if c.opts.MapRemoteCandidate == nil || !strings.Contains(sdp, "a=candidate:") {
		return sdp
	}
	eol := "\r\n"
	if !strings.Contains(sdp, eol) {
		eol = "\n"
	}
	lines := strings.Split(sdp, eol)
	out := make([]string, 0, len(lines))
	mline := -1
	mid := ""
	for _, ln := range lines {
		switch {
		case strings.HasPrefix(ln, "m="):
			mline++
			mid = ""
		case strings.HasPrefix(ln, "a=mid:"):
			mid = strings.TrimPrefix(ln, "a=mid:")
		case strings.HasPrefix(ln, "a=candidate:"):
			ci := webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(ln, "a=")}
			if mid != "" {
				m := mid
				ci.SDPMid = &m
			}
			if mline >= 0 {
				i := uint16(mline)
				ci.SDPMLineIndex = &i
			}
			mapped, keep := c.opts.MapRemoteCandidate(ci)
			if !keep {
				continue
			}
			ln = "a=" + strings.TrimPrefix(mapped.Candidate, "a=")
		}
		out = append(out, ln)
	}
	return strings.Join(out, eol)
}
