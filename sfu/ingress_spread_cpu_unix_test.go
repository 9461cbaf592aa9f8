//go:build unix

package sfu

import "syscall"

// processCPU is the process's user plus system CPU time in ns, so that a
// benchmark can report what splitting costs in CPU, not only in wall time.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
