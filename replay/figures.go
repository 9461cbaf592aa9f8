package replay

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/opscenter/opscenter/internal/harness"
)

// Figures are the server's and the endpoints' figures over the run.
type Figures struct {
	Seconds       float64 // real duration of the play
	ServerCores   float64 // server CPU seconds per second
	ServerRSSMiB  float64
	ServerPeakMiB float64
	Forwarded     uint64 // packets the media plane forwarded
	Dropped       uint64 // packets it dropped
	Received      int    // packets the media endpoints received
	SeqGaps       int    // sequence discontinuities they saw
	Loss          float64
	Joined        int64
	JoinFailed    int64
	MediaFailed   int64 // media endpoints with no media path within a minute of joining
	JoinP50       time.Duration
	JoinP99       time.Duration
}

func (r *runner) figures(ctx context.Context) Figures {
	f := Figures{Seconds: time.Since(r.started).Seconds(), Joined: r.eps.joined.Load(), JoinFailed: r.eps.failed.Load(),
		MediaFailed: r.eps.mediaFailed.Load()}
	if ps, err := harness.ReadProc(r.srv.PID); err == nil {
		f.ServerCores = (r.cpuBefore + ps.CPU - r.procStart.CPU).Seconds() / f.Seconds
		f.ServerRSSMiB, f.ServerPeakMiB = float64(ps.RSS)/(1<<20), float64(ps.PeakR)/(1<<20)
	}
	if fs, err := r.srv.Forward(ctx); err == nil {
		f.Forwarded, f.Dropped = r.fwdBefore+fs.Packets, r.droppedBefore+fs.Dropped
	}
	r.eps.mu.Lock()
	for code, c := range r.eps.clients {
		if !r.mediaCodes[code] {
			continue
		}
		for _, s := range c.Recorder().Slots() {
			f.Received += s.Packets
			f.SeqGaps += s.SeqGaps
		}
	}
	r.eps.mu.Unlock()
	if f.Received > 0 {
		f.Loss = float64(f.SeqGaps) / float64(f.Received)
	}
	snap := r.eps.joins.Snap()
	f.JoinP50, f.JoinP99 = snap.Quantile(0.5), snap.Quantile(0.99)
	return f
}

// Print writes the figures and the checks, one per line.
func (res *Result) Print(w io.Writer) {
	f := res.Figures
	fmt.Fprintf(w, "figures: %.0f s; server %.2f cores, RSS %.0f MiB (peak %.0f); forwarded %d packets (%d dropped); "+
		"endpoints received %d packets, %d gaps (loss %.4f); joined %d (%d failed, %d without media), join p50 %v p99 %v\n",
		f.Seconds, f.ServerCores, f.ServerRSSMiB, f.ServerPeakMiB, f.Forwarded, f.Dropped, f.Received, f.SeqGaps, f.Loss,
		f.Joined, f.JoinFailed, f.MediaFailed, f.JoinP50.Round(time.Millisecond), f.JoinP99.Round(time.Millisecond))
	for _, c := range res.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, c.Name, c.Detail)
	}
}
