//go:build !race

package uplink_test

// raceSlow scales the media delay bounds (1 without the race detector).
const raceSlow = 1
