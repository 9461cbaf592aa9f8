package sfu

import (
	"strings"
	"testing"
	"time"
)

// TestNanotimeMonotonic: the media clock is Go's monotonic clock, not the
// wall clock: it never decreases, it is never 0 ("never" for the limiters),
// it advances exactly like a monotonic time.Since, and the times it hands to
// signaling carry a monotonic reading, so a wall clock step (NTP) moves
// neither PLI limiting, TWCC send times and the estimator, nor "last RTP"
// and "last RTCP" ages (Sub of two monotonic readings ignores the wall).
func TestNanotimeMonotonic(t *testing.T) {
	if !strings.Contains(monoBase.String(), "m=") {
		t.Fatalf("monoBase %v has no monotonic reading", monoBase)
	}
	start, t0 := nanotime(), time.Now()
	if start <= 0 {
		t.Fatalf("nanotime() = %d, want > 0", start)
	}
	prev := start
	for i := 0; i < 100_000; i++ {
		n := nanotime()
		if n < prev {
			t.Fatalf("nanotime went back: %d after %d", n, prev)
		}
		prev = n
	}
	time.Sleep(20 * time.Millisecond)
	d, want := time.Duration(nanotime()-start), time.Since(t0)
	if diff := d - want; diff < -5*time.Millisecond || diff > 5*time.Millisecond {
		t.Errorf("nanotime advanced %v, monotonic clock %v", d, want)
	}
	mt := monoTime(nanotime())
	if !strings.Contains(mt.String(), "m=") {
		t.Errorf("monoTime %v has no monotonic reading", mt)
	}
	if age := time.Since(mt); age < 0 || age > 50*time.Millisecond {
		t.Errorf("monoTime(nanotime()) is %v old", age)
	}
}

// TestRateLimiterInjectedClock: the PLI limiter only compares the readings
// it is given (nanotime in production), so it works from any epoch and a
// reading taken right at start (small values) is not "never".
func TestRateLimiterInjectedClock(t *testing.T) {
	var l rateLimiter
	base := monoOffset // the first nanotime reading after start
	if !l.allow(base, 500*time.Millisecond) {
		t.Fatal("first event refused")
	}
	if l.allow(base+int64(100*time.Millisecond), 500*time.Millisecond) {
		t.Fatal("second event within the interval allowed")
	}
	if !l.allow(base+int64(600*time.Millisecond), 500*time.Millisecond) {
		t.Fatal("event after the interval refused")
	}
}
