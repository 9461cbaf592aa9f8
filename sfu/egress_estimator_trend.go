package sfu

import (
	"math"
)

// The estimator's delay-based overuse detector (egress_estimator.go):
// packets are grouped into send bursts, and the slope of the one-way delay
// variation over the last groups (a trendline) is compared with an adaptive
// threshold.

type estUsage uint8

const (
	estNormal estUsage = iota
	estOveruse
	estUnderuse
)

func (u estUsage) String() string {
	switch u {
	case estOveruse:
		return "overuse"
	case estUnderuse:
		return "underuse"
	}
	return "normal"
}

// estGroup is a burst of packets sent within estGroupSpan of its first one.
type estGroup struct {
	firstSent, lastSent int64
	lastArrival         int64 // latest arrival in the group: when the burst was fully received
	valid               bool
}

type estPoint struct{ x, y float64 } // arrival ms since the first delta, smoothed delay ms

// onPacket adds a received packet to the current send group; when the
// packet starts a new group the current one is complete and is compared
// with the previous complete group.
func (e *estimator) onPacket(sent, arrived int64) {
	g := &e.cur
	switch {
	case !g.valid:
		*g = estGroup{firstSent: sent, lastSent: sent, lastArrival: arrived, valid: true}
		return
	case sent < g.firstSent:
		return // sent before the current group: out of order, as libwebrtc drops it
	case sent-g.firstSent <= estGroupSpan:
		g.lastSent = max(g.lastSent, sent)
		g.lastArrival = max(g.lastArrival, arrived)
		return
	}
	if e.prev.valid {
		sendDelta := e.cur.lastSent - e.prev.lastSent
		arrDelta := e.cur.lastArrival - e.prev.lastArrival
		switch {
		case arrDelta-sendDelta >= estClockJump || arrDelta-sendDelta <= -estClockJump:
			// A receiver clock jump (or a long outage) says nothing about
			// queueing: forget the groups, keep the filter.
			e.prev = estGroup{}
			e.reordered = 0
		case arrDelta < 0:
			// The current group arrived before the previous one: its delta
			// would be meaningless. Drop the group and measure the next one
			// against prev, unless the receiver clock really went back.
			e.reordered++
			if e.reordered >= estReorderedReset {
				e.prev = e.cur
				e.reordered = 0
			}
		default:
			e.reordered = 0
			e.updateTrend(float64(arrDelta-sendDelta)/float64(estMs), float64(sendDelta)/float64(estMs), e.cur.lastArrival)
			e.prev = e.cur
		}
	} else {
		e.prev = e.cur
	}
	e.cur = estGroup{firstSent: sent, lastSent: sent, lastArrival: arrived, valid: true}
}

// updateTrend is libwebrtc's TrendlineEstimator::UpdateTrendline: the slope
// of the smoothed accumulated delay over the last estTrendWindow groups says
// whether queues are building (positive), draining (negative) or stable.
func (e *estimator) updateTrend(deltaMs, sendDeltaMs float64, arrival int64) {
	e.numDeltas = min(e.numDeltas+1, estMaxNumDeltas)
	if !e.haveFirst {
		e.firstArrival, e.haveFirst = arrival, true
	}
	e.accDelay += deltaMs
	e.smoothDelay = estSmoothing*e.smoothDelay + (1-estSmoothing)*e.accDelay
	x := float64(arrival-e.firstArrival) / float64(estMs)
	e.hist[(e.histHead+e.histN)%estTrendWindow] = estPoint{x, e.smoothDelay}
	if e.histN < estTrendWindow {
		e.histN++
	} else {
		e.histHead = (e.histHead + 1) % estTrendWindow
	}
	trend := e.prevTrend
	if e.histN == estTrendWindow {
		if s, ok := e.slope(); ok {
			trend = s
		}
	}
	e.detect(trend, sendDeltaMs, x)
}

// slope is the least-squares slope of the history (ms of delay per ms).
func (e *estimator) slope() (float64, bool) {
	var sx, sy float64
	for i := 0; i < e.histN; i++ {
		p := e.hist[i]
		sx += p.x
		sy += p.y
	}
	n := float64(e.histN)
	mx, my := sx/n, sy/n
	var num, den float64
	for i := 0; i < e.histN; i++ {
		p := e.hist[i]
		num += (p.x - mx) * (p.y - my)
		den += (p.x - mx) * (p.x - mx)
	}
	if den == 0 {
		return 0, false
	}
	return num / den, true
}

// detect compares the modified trend with the adaptive threshold. Overuse
// needs more than estOverusingMs over it across at least two groups and a
// trend that is not already falling, so single delay spikes are ignored.
func (e *estimator) detect(trend, tsDeltaMs, nowMs float64) {
	if e.numDeltas < 2 {
		e.usage = estNormal
		return
	}
	mod := float64(min(e.numDeltas, estMinNumDeltas)) * trend * estTrendGain
	e.modTrend = mod
	switch {
	case mod > e.threshold:
		if e.overMs < 0 {
			e.overMs = tsDeltaMs / 2
		} else {
			e.overMs += tsDeltaMs
		}
		e.overCount++
		if e.overMs > estOverusingMs && e.overCount > 1 && trend >= e.prevTrend {
			e.overMs, e.overCount = 0, 0
			e.usage = estOveruse
		}
	case mod < -e.threshold:
		e.overMs, e.overCount = -1, 0
		e.usage = estUnderuse
	default:
		e.overMs, e.overCount = -1, 0
		e.usage = estNormal
	}
	e.prevTrend = trend
	e.updateThreshold(mod, nowMs)
}

// updateThreshold adapts the threshold towards |trend| (fast down, slow up),
// so the detector neither starves against TCP flows nor fires on jitter.
// Outliers far above the threshold are not followed.
func (e *estimator) updateThreshold(mod, nowMs float64) {
	if !e.haveThreshTime {
		e.lastThreshMs, e.haveThreshTime = nowMs, true
	}
	a := math.Abs(mod)
	if a > e.threshold+estMaxAdaptOffset {
		e.lastThreshMs = nowMs
		return
	}
	k := estKUp
	if a < e.threshold {
		k = estKDown
	}
	dt := math.Min(math.Max(nowMs-e.lastThreshMs, 0), estMaxThreshStep)
	e.threshold += k * (a - e.threshold) * dt
	e.threshold = math.Min(math.Max(e.threshold, estThresholdMin), estThresholdMax)
	e.lastThreshMs = nowMs
}
