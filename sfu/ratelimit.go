package sfu

import (
	"sync/atomic"
	"time"
)

// rateLimiter lets one event through per interval. It is lock-free and safe
// for concurrent use (many subscribers may ask for a PLI on one layer).
type rateLimiter struct {
	last atomic.Int64 // unix nanos of the last allowed event, 0 = never
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

func nanotime() int64 { return time.Now().UnixNano() }
