package sfu

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// delayHist is a lock-free log-linear histogram of in-server forwarding
// delays (time from reading a packet off the publisher's track to writing it
// to a subscriber), in nanoseconds. Recording is two atomic adds; nothing
// allocates. Buckets: 4 sub-buckets per power of two from 1 µs to ~4 s.
type delayHist struct {
	buckets [delayBuckets]atomic.Uint64
	count   atomic.Uint64
	sum     atomic.Uint64 // ns
}

const (
	delaySub     = 4
	delayMinLog  = 10 // 1024 ns
	delayMaxLog  = 32 // ~4.3 s
	delayBuckets = (delayMaxLog-delayMinLog)*delaySub + 1
)

func delayBucket(ns int64) int {
	if ns < 1<<delayMinLog {
		return 0
	}
	u := uint64(ns)
	lg := 63 - bits.LeadingZeros64(u)
	if lg >= delayMaxLog {
		return delayBuckets - 1
	}
	sub := int(u>>(lg-2)) & (delaySub - 1)
	return (lg-delayMinLog)*delaySub + sub + 1
}

// bucketUpper is the upper bound (ns) of bucket i.
func bucketUpper(i int) float64 {
	if i == 0 {
		return 1 << delayMinLog
	}
	i--
	lg := i/delaySub + delayMinLog
	sub := i % delaySub
	return float64(uint64(1)<<lg) * (1 + float64(sub+1)/delaySub)
}

func (h *delayHist) record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.buckets[delayBucket(ns)].Add(1)
	h.count.Add(1)
	h.sum.Add(uint64(ns))
}

// ForwardStats is the engine-wide forwarding summary (since start).
type ForwardStats struct {
	Packets uint64 `json:"packets"` // packets written to subscribers (media + NACK answers)
	Bytes   uint64 `json:"bytes"`   // their payload bytes
	Dropped uint64 `json:"dropped"` // dropped because a subscriber's queue was full
	// Delay: read from the publisher → written to the subscriber, in the server.
	DelayCount uint64        `json:"delay_count"`
	DelayP50   time.Duration `json:"delay_p50"`
	DelayP99   time.Duration `json:"delay_p99"`
	DelayP999  time.Duration `json:"delay_p999"`
	DelayMean  time.Duration `json:"delay_mean"`
	// DelayBuckets are cumulative counts at DelayBounds (seconds), for
	// computing quantiles of a window from two snapshots.
	DelayBounds  []float64 `json:"delay_bounds"`
	DelayBuckets []uint64  `json:"delay_buckets"`
}

// ForwardStats returns the engine-wide forwarding counters and delay quantiles.
func (e *Engine) ForwardStats() ForwardStats {
	h := &e.fwdDelay
	st := ForwardStats{
		Packets: e.fwdPackets.Load(), Bytes: e.fwdBytes.Load(), Dropped: e.fwdDropped.Load(),
		DelayCount: h.count.Load(),
	}
	var counts [delayBuckets]uint64
	var cum uint64
	st.DelayBounds = make([]float64, delayBuckets)
	st.DelayBuckets = make([]uint64, delayBuckets)
	for i := range counts {
		counts[i] = h.buckets[i].Load()
		cum += counts[i]
		st.DelayBounds[i] = bucketUpper(i) / 1e9
		st.DelayBuckets[i] = cum
	}
	if cum > 0 {
		st.DelayMean = time.Duration(h.sum.Load() / max(h.count.Load(), 1))
		st.DelayP50 = time.Duration(quantile(counts[:], cum, 0.5))
		st.DelayP99 = time.Duration(quantile(counts[:], cum, 0.99))
		st.DelayP999 = time.Duration(quantile(counts[:], cum, 0.999))
	}
	return st
}

func quantile(counts []uint64, total uint64, q float64) float64 {
	rank := uint64(q * float64(total))
	var cum uint64
	for i, c := range counts {
		cum += c
		if cum > rank {
			return bucketUpper(i)
		}
	}
	return bucketUpper(len(counts) - 1)
}

// DownlinkLegs returns how many subscriber legs use the own SRTP output and
// how many fell back to Pion's writer.
func (e *Engine) DownlinkLegs() (own, pion int) {
	return int(e.legsOwn.Load()), int(e.legsPion.Load())
}

// Collector exposes ForwardStats to Prometheus (register it on the app's
// registry): opscenter_sfu_forwarded_packets_total, _bytes_total,
// _dropped_total, the histogram opscenter_sfu_forward_delay_seconds, the
// gauges opscenter_sfu_downlink_legs{path} and opscenter_sfu_own_srtp_available.
func (e *Engine) Collector() prometheus.Collector { return fwdCollector{e} }

type fwdCollector struct{ e *Engine }

var (
	descFwdPackets = prometheus.NewDesc("opscenter_sfu_forwarded_packets_total", "RTP packets written to subscribers.", nil, nil)
	descFwdBytes   = prometheus.NewDesc("opscenter_sfu_forwarded_bytes_total", "RTP payload bytes written to subscribers.", nil, nil)
	descFwdDropped = prometheus.NewDesc("opscenter_sfu_forward_dropped_total", "Packets dropped because a subscriber's queue was full.", nil, nil)
	descFwdDelay   = prometheus.NewDesc("opscenter_sfu_forward_delay_seconds", "In-server forwarding delay: publisher read to subscriber write.", nil, nil)
	descLegs       = prometheus.NewDesc("opscenter_sfu_downlink_legs", "Connected subscriber legs by output path: own_srtp (fast) or pion (fallback, about 1.6x the CPU).", []string{"path"}, nil)
	descOwnSRTP    = prometheus.NewDesc("opscenter_sfu_own_srtp_available", "1 when the startup check found the Pion internals the own SRTP output needs.", nil, nil)
)

func (c fwdCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFwdPackets
	ch <- descFwdBytes
	ch <- descFwdDropped
	ch <- descFwdDelay
	ch <- descLegs
	ch <- descOwnSRTP
}

func (c fwdCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.e.ForwardStats()
	ch <- prometheus.MustNewConstMetric(descFwdPackets, prometheus.CounterValue, float64(st.Packets))
	ch <- prometheus.MustNewConstMetric(descFwdBytes, prometheus.CounterValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descFwdDropped, prometheus.CounterValue, float64(st.Dropped))
	own, pion := c.e.DownlinkLegs()
	ch <- prometheus.MustNewConstMetric(descLegs, prometheus.GaugeValue, float64(own), "own_srtp")
	ch <- prometheus.MustNewConstMetric(descLegs, prometheus.GaugeValue, float64(pion), "pion")
	ok := 0.0
	if c.e.ownSRTPOK.Load() {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(descOwnSRTP, prometheus.GaugeValue, ok)
	b := make(map[float64]uint64, len(st.DelayBounds))
	for i, ub := range st.DelayBounds {
		b[ub] = st.DelayBuckets[i]
	}
	ch <- prometheus.MustNewConstHistogram(descFwdDelay, st.DelayCount, float64(c.e.fwdDelay.sum.Load())/1e9, b)
}
