package sfu

import (
	"math"
)

// The estimator's rate control (egress_estimator.go): the acknowledged
// bitrate, the link capacity seen at overuse, the AIMD controller driven by
// the overuse detector (egress_estimator_trend.go) and the loss-based cap.

// estLink estimates the link capacity seen at overuse, in kbit/s, with a
// normalised variance; it tells AIMD when it is close to the rate at which
// the link last congested (additive increase) or far from it (multiplicative).
type estLink struct {
	kbps, dev float64
	valid     bool
}

func (l *estLink) update(bps float64) {
	const alpha = 0.05
	s := bps / 1000
	if !l.valid {
		l.kbps, l.valid = s, true
	} else {
		l.kbps = (1-alpha)*l.kbps + alpha*s
	}
	norm := math.Max(l.kbps, 1)
	err := l.kbps - s
	l.dev = math.Min(math.Max((1-alpha)*l.dev+alpha*err*err/norm, 0.4), 2.5)
}

func (l *estLink) upper() float64 {
	if !l.valid {
		return math.Inf(1)
	}
	return (l.kbps + 3*math.Sqrt(l.kbps*l.dev)) * 1000
}

func (l *estLink) lower() float64 {
	if !l.valid {
		return 0
	}
	return math.Max(0, l.kbps-3*math.Sqrt(l.kbps*l.dev)) * 1000
}

// estAckedRate sums the bytes of received packets whose arrival lies within
// estAckedWindow of the latest arrival. A ring of packets rather than time
// buckets keeps it exact; the ring only grows to the packets of one window.
type estAckedRate struct {
	window  int64 // 0 = estAckedWindow
	at      []int64
	size    []int32
	head, n int
	bytes   int64
	first   int64 // earliest arrival since the last reset
	latest  int64
	started bool
}

func (r *estAckedRate) span() int64 {
	if r.window > 0 {
		return r.window
	}
	return estAckedWindow
}

func (r *estAckedRate) add(at int64, size int) {
	w := r.span()
	if !r.started || at < r.latest-estClockJump {
		// first packet, or the receiver clock went back: start over
		r.head, r.n, r.bytes = 0, 0, 0
		r.first, r.latest, r.started = at, at, true
	}
	if at <= r.latest-w {
		return // late (reordered) arrival that is already outside the window
	}
	if at > r.latest {
		r.latest = at
	}
	if r.n == len(r.at) {
		r.grow()
	}
	i := (r.head + r.n) % len(r.at)
	r.at[i], r.size[i] = at, int32(size)
	r.n++
	r.bytes += int64(size)
	for r.n > 0 && r.at[r.head] <= r.latest-w {
		r.bytes -= int64(r.size[r.head])
		r.head = (r.head + 1) % len(r.at)
		r.n--
	}
}

func (r *estAckedRate) grow() {
	c := 2 * len(r.at)
	if c == 0 {
		c = 256
	}
	at, size := make([]int64, c), make([]int32, c)
	for i := 0; i < r.n; i++ {
		j := (r.head + i) % len(r.at)
		at[i], size[i] = r.at[j], r.size[j]
	}
	r.at, r.size, r.head = at, size, 0
}

// bps is 0 until arrivals span a whole window: a shorter span would make
// the first packets of a stream look like a burst at a huge rate.
func (r *estAckedRate) bps() float64 {
	w := r.span()
	if !r.started || r.latest-r.first < w {
		return 0
	}
	return float64(r.bytes) * 8 * float64(estS) / float64(w)
}

// updateDelayRate runs the AIMD controller on the detector state. acked is
// the acknowledged bitrate, 0 if not yet known.
func (e *estimator) updateDelayRate(now int64, acked float64) {
	if e.usage != estOveruse {
		e.overSince = estNever
	}
	switch e.usage {
	case estOveruse:
		e.increasing = false
		if e.overSince == estNever {
			e.overSince = now
		}
		if got, sent := e.thruAcked.bps(), e.thruSent.bps(); (got == 0 || sent == 0 || got >= estThroughRatio*sent) && now-e.overSince < estOveruseHold {
			// The delay grew but what was sent got through at the rate it
			// was sent (or the rates are not known yet): a receiver that
			// stamps arrivals late, not a queue. Hold rather than cut, but
			// keep what got through as a floor (see increase); a queue
			// that keeps growing for estOveruseHold is real even when the
			// overshoot is small.
			if acked > e.delayBps && !e.link.valid {
				e.delayBps = acked
			}
			break
		}
		// The detector stays in overuse while queues keep growing; the
		// acked rate lags a sudden capacity drop, so allow a further
		// decrease every estReduceInterval (or at once when far too high).
		if now-e.lastDecrease >= estReduceInterval || (acked > 0 && acked < 0.5*e.delayBps) {
			e.decrease(now, acked)
		}
	case estUnderuse:
		// Queues are draining: hold until they are empty, or we would
		// refill them at once.
		e.increasing = false
	default:
		if !e.increasing {
			e.increasing = true
			e.lastChange = now // the time spent holding is not ramp-up time
		}
		e.increase(now, acked)
	}
	e.delayBps = e.clamp(e.delayBps)
}

func (e *estimator) decrease(now int64, acked float64) {
	base := acked
	if base <= 0 {
		base = e.delayBps
	}
	nb := estBeta * base
	if acked > 0 && nb > e.delayBps && e.link.valid {
		nb = estBeta * e.link.kbps * 1000
	}
	if nb < e.delayBps { // never raise the rate on overuse
		e.delayBps = nb
	}
	if acked > 0 {
		if acked < e.link.lower() {
			e.link = estLink{dev: e.link.dev} // capacity changed: the old estimate would mislead
		}
		e.link.update(acked)
	}
	e.decreases++
	e.lastChange, e.lastDecrease = now, now
}

func (e *estimator) increase(now int64, acked float64) {
	if acked > 0 && acked > e.link.upper() {
		e.link = estLink{dev: e.link.dev} // well above the old capacity: ramp fast again
	}
	limit := math.Inf(1)
	if acked > 0 {
		// Do not run away above what is actually sent: an app-limited
		// stream would otherwise "prove" any rate.
		limit = 1.5*acked + 10_000
		// Far from any capacity seen at overuse, what got through without
		// queueing is a floor for the link: take it at once (libwebrtc's
		// probe result) instead of creeping up to it, or a probe of the next
		// layer never proves its cost in time. Near that capacity, keep
		// the headroom the last decrease made to drain the queue.
		if acked > e.delayBps && !e.link.valid {
			e.delayBps = acked
		}
	}
	if e.delayBps < limit {
		dt := float64(min(max(now-e.lastChange, 0), estMaxIncreaseStep)) / float64(estS)
		var inc float64
		if e.link.valid {
			// Near the capacity at which we last congested: about one
			// packet per response time.
			frame := e.delayBps / 30
			ppf := math.Max(math.Ceil(frame/estPacketBits), 1)
			inc = math.Max(frame/ppf/estResponseTime, estMinAddIncrease) * dt
		} else {
			inc = math.Max(e.delayBps*(math.Pow(estIncreaseFactor, dt)-1), estMinMultIncrease*dt)
		}
		e.delayBps = math.Min(e.delayBps+inc, limit)
	}
	e.lastChange = now
}

// updateLossRate accumulates loss counts until enough packets make the
// fraction meaningful, then applies the loss-based controller: back off on
// more than 10 % loss, recover slowly below 2 %, hold in between.
//
// One feedback holds only 5-20 packets at typical rates, where a single
// random loss reads as 5-20 %; even 20 packets of a 1 % loss link show more
// than 10 % about once in a thousand. Hence at least estLossMinPackets and
// estLossMinInterval per decision (libwebrtc uses 1 s for TWCC loss).
func (e *estimator) updateLossRate(now int64, total, lost int) {
	e.lossTotal += total
	e.lossLost += lost
	if e.lastLossUpdate == estNever {
		e.lastLossUpdate = now // the first interval starts with the first feedback
	}
	if e.lossTotal >= estLossMinPackets && now-e.lastLossUpdate >= estLossMinInterval {
		frac := float64(e.lossLost) / float64(e.lossTotal)
		e.lossTotal, e.lossLost = 0, 0
		e.lossFrac = frac
		switch {
		case frac > estLossHigh:
			if now-e.lastLossDecrease >= estLossDecreaseInterval {
				// From the effective rate, or a stale higher loss rate
				// would take several steps to bite.
				e.lossBps = math.Min(e.lossBps, e.delayBps) * (1 - 0.5*frac)
				e.lossLimited = true
				e.lastLossDecrease = now
			}
		case frac < estLossLow:
			if e.lossLimited {
				dt := float64(min(max(now-e.lastLossUpdate, 0), estS)) / float64(estS)
				e.lossBps *= math.Pow(estLossIncreaseFactor, dt)
			}
		}
		e.lastLossUpdate = now
	}
	// Until loss forces a decrease the loss-based rate does not limit:
	// it follows the delay-based rate instead of ramping (more slowly) on
	// its own, and a later decrease starts from the effective rate.
	if e.lossLimited && e.lossBps >= e.delayBps {
		e.lossLimited = false
	}
	if !e.lossLimited {
		e.lossBps = e.delayBps
	}
	e.lossBps = e.clamp(e.lossBps)
}
