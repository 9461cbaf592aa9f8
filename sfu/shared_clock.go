package sfu

import (
	"sync/atomic"
	"time"
)

// rateLimiter lets one event through per interval. It is lock-free and safe
// for concurrent use (many subscribers may ask for a PLI on one layer).
type rateLimiter struct {
	last atomic.Int64 // nanotime of the last allowed event, 0 = never
}

func (l *rateLimiter) allow(now int64, interval time.Duration) bool {
	for {
		last := l.last.Load()
		if last != 0 && now-last < int64(interval) {
			return false
		}
		if l.last.CompareAndSwap(last, now) {
			return true
		}
	}
}

// rateMeter measures a bit rate over ~500ms windows. add is called by a
// single goroutine (the one owning the stream); rate may be read by anyone.
type rateMeter struct {
	start int64
	bytes uint64
	rate  atomic.Int64
	last  atomic.Int64 // time of the last add
}

func (m *rateMeter) add(now int64, n int) {
	if m.start == 0 {
		m.start = now
	}
	m.bytes += uint64(n)
	if el := now - m.start; el >= int64(500*time.Millisecond) {
		m.rate.Store(int64(m.bytes * 8 * uint64(time.Second) / uint64(el)))
		m.bytes = 0
		m.start = now
	}
	m.last.Store(now)
}

// bitrate returns the last measured rate in bit/s, 0 if the stream is idle.
func (m *rateMeter) bitrate(now int64) int {
	if now-m.last.Load() > int64(2*time.Second) {
		return 0
	}
	return int(m.rate.Load())
}

// monoBase anchors nanotime. time.Since reads Go's monotonic clock, so an
// NTP step of the wall clock never stalls PLI limiting, TWCC send times or
// the estimator. Captured once at start, never changed.
var monoBase = time.Now()

// monoOffset keeps nanotime above 0, which several fields use for "never".
const monoOffset = int64(time.Second)

// nanotime is the media plane's clock: monotonic nanoseconds (not unix
// time). Wall time is used only where a peer needs it (RTCP NTP fields).
func nanotime() int64 { return int64(time.Since(monoBase)) + monoOffset }

// monoTime converts a nanotime reading to a time.Time that carries a
// monotonic reading, so Sub against time.Now() ignores wall clock steps.
func monoTime(ns int64) time.Time { return monoBase.Add(time.Duration(ns - monoOffset)) }
