package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// ForwardStats mirrors sfu.ForwardStats as served on /sfu/forward.
type ForwardStats struct {
	Packets      uint64    `json:"packets"`
	Bytes        uint64    `json:"bytes"`
	Dropped      uint64    `json:"dropped"`
	DelayCount   uint64    `json:"delay_count"`
	DelayBounds  []float64 `json:"delay_bounds"`
	DelayBuckets []uint64  `json:"delay_buckets"`
}

// Forward fetches the server's forwarding counters.
func (s *Server) Forward(ctx context.Context) (ForwardStats, error) {
	var f ForwardStats
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := do(ctx, "GET", s.DebugURL+"/sfu/forward", "", nil)
	if err != nil {
		return f, err
	}
	defer resp.Body.Close()
	return f, json.NewDecoder(resp.Body).Decode(&f)
}

// Profile fetches a CPU profile of d from the server into file.
func (s *Server) Profile(ctx context.Context, d time.Duration, file string) error {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	return Download(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.DebugURL, int(d.Seconds())), "", file)
}

// HeapProfile fetches the server's heap profile into file.
func (s *Server) HeapProfile(ctx context.Context, file string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return Download(ctx, s.DebugURL+"/debug/pprof/heap", "", file)
}

// Download GETs url (with a bearer token, if any) into file; a status other
// than 200 is an error and leaves no file.
func Download(ctx context.Context, url, bearer, file string) error {
	resp, err := do(ctx, "GET", url, bearer, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ProcStat is a process's CPU time and memory from /proc.
type ProcStat struct {
	CPU   time.Duration // utime + stime
	RSS   int64         // bytes
	PeakR int64         // VmHWM bytes
}

// ReadProc reads /proc/PID/stat and /proc/PID/status (pid 0 = self).
func ReadProc(pid int) (ProcStat, error) {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	var st ProcStat
	b, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return st, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return st, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st.CPU = time.Duration(ut+stt) * time.Second / 100 // USER_HZ is 100 on Linux
	sb, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return st, err
	}
	for _, l := range strings.Split(string(sb), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			st.RSS = kb << 10
		case "VmHWM":
			st.PeakR = kb << 10
		}
	}
	return st, nil
}
