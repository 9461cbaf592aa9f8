//go:build !unix

package sfu

// processCPU is not measured here (see ingress_spread_cpu_unix_test.go).
func processCPU() int64 { return 0 }
