//go:build !linux

package loadgen

import "time"

// ceilPlatform without sendmmsg: one WriteTo per datagram (as sfu's
// egress_sendmmsg_other.go). The ceiling is a Linux measurement; this
// keeps the package building elsewhere.
type ceilPlatform struct{}

func (p *ceilPlatform) init(*ceilingSender) error { return nil }

func (p *ceilPlatform) flush(s *ceilingSender) {
	for i := 0; i < s.n; i++ {
		s.calls.Add(1)
		s.writeOne(i)
	}
}

// processCPU is this process's CPU time from /proc when there is one.
func processCPU() time.Duration {
	ps, _ := harness.ReadProc(0)
	return ps.CPU
}
