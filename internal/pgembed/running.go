package pgembed

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// postmaster describes the server named by a data folder's postmaster.pid.
type postmaster struct {
	pid, ppid, port int
	socketDir       string
}

func readPostmaster(dir string) (postmaster, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return postmaster{}, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 5 {
		return postmaster{}, false
	}
	var pm postmaster
	pm.pid, _ = strconv.Atoi(strings.TrimSpace(lines[0]))
	pm.port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	pm.socketDir = strings.TrimSpace(lines[4])
	if !alive(pm.pid) {
		return postmaster{}, false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pm.pid))
	if err == nil {
		// Fields after the ")" that ends the command name: state, ppid, ...
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
			f := strings.Fields(string(stat[i+1:]))
			if len(f) > 1 {
				pm.ppid, _ = strconv.Atoi(f[1])
			}
		}
	}
	return pm, true
}

// RunningDSN returns a DSN for a server already running on the data folder that
// serve would use (so admin commands work beside a running opscenter), or "".
func RunningDSN(dataDir, fallbackDir, db string) string {
	for _, d := range []string{dataDir, fallbackDir} {
		if d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		if pm, ok := readPostmaster(abs); ok && pm.port > 0 {
			return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", pm.socketDir, pm.port, superuser, db)
		}
	}
	return ""
}

// alive reports whether pid runs; a zombie (exited, not yet reaped by its new parent)
// does not count.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no /proc: trust kill(0)
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
