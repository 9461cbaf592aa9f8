//go:build race

package uplink_test

// raceSlow scales the media delay bounds: the race detector makes the SFU's
// packet path several times slower.
const raceSlow = 8
