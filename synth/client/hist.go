package client

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Hist is a lock-free log-linear histogram of durations (8 sub-buckets per
// power of two, 1 µs .. ~68 s). Record is allocation-free.
type Hist struct {
	b     [histBuckets]atomic.Uint64
	count atomic.Uint64
}

const (
	histSub     = 8
	histMinLog  = 10 // ~1 µs
	histMaxLog  = 36 // ~68 s
	histBuckets = (histMaxLog-histMinLog)*histSub + 1
)

func histBucket(ns int64) int {
	if ns < 1<<histMinLog {
		return 0
	}
	u := uint64(ns)
	lg := 63 - bits.LeadingZeros64(u)
	if lg >= histMaxLog {
		return histBuckets - 1
	}
	return (lg-histMinLog)*histSub + int(u>>(lg-3))&(histSub-1) + 1
}

func histUpper(i int) time.Duration {
	if i == 0 {
		return 1 << histMinLog
	}
	i--
	lg := i/histSub + histMinLog
	return time.Duration(float64(uint64(1)<<lg) * (1 + float64(i%histSub+1)/histSub))
}

// Record adds one observation.
func (h *Hist) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.b[histBucket(int64(d))].Add(1)
	h.count.Add(1)
}

// HistSnap is a copy of a Hist's counts.
type HistSnap [histBuckets]uint64

// Snap copies the counts.
func (h *Hist) Snap() HistSnap {
	var s HistSnap
	for i := range s {
		s[i] = h.b[i].Load()
	}
	return s
}

// Sub returns s - o (the observations between two snapshots).
func (s HistSnap) Sub(o HistSnap) HistSnap {
	for i := range s {
		s[i] -= o[i]
	}
	return s
}

// Count is the number of observations.
func (s HistSnap) Count() uint64 {
	var n uint64
	for _, c := range s {
		n += c
	}
	return n
}

// Quantile returns the upper bound of the bucket holding quantile q (0 if empty).
func (s HistSnap) Quantile(q float64) time.Duration {
	total := s.Count()
	if total == 0 {
		return 0
	}
	rank := uint64(q * float64(total))
	var cum uint64
	for i, c := range s {
		cum += c
		if cum > rank {
			return histUpper(i)
		}
	}
	return histUpper(histBuckets - 1)
}
