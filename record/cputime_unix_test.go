//go:build unix

package record

import (
	"syscall"
	"time"
)

// processCPU is the process's user + system CPU time so far: benchmarks
// report CPU per op, which on a shared machine is steadier than wall time and
// includes every goroutine's share.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
