package pgembed

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// chooseDir returns dir as an absolute path, or the fallback when some parent of dir
// cannot be traversed by u (a checkout under /root with mode 0700, for example).
func chooseDir(dir, fallback string, u *user.User) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	if traversable(filepath.Dir(abs), u) {
		return abs, nil
	}
	if fallback == "" {
		return "", fmt.Errorf("a parent of %s is not traversable by user %s, and no fallback is set", abs, u.Username)
	}
	fb, err := filepath.Abs(fallback)
	if err != nil {
		return "", fmt.Errorf("fallback dir: %w", err)
	}
	return fb, nil
}

// traversable reports whether u can reach p: every existing ancestor grants it
// search (x) permission. Ancestors that do not exist yet will be created by us.
func traversable(p string, u *user.User) bool {
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for {
		fi, err := os.Stat(p)
		if err == nil {
			st := fi.Sys().(*syscall.Stat_t)
			mode := fi.Mode().Perm()
			ok := mode&0o001 != 0 ||
				(int(st.Uid) == uid && mode&0o100 != 0) ||
				(int(st.Gid) == gid && mode&0o010 != 0)
			if !ok {
				return false
			}
		}
		parent := filepath.Dir(p)
		if parent == p {
			return true
		}
		p = parent
	}
}

// prepareDir creates the data folder, owned by the server's user, mode 0700.
func (s *Server) prepareDir(u *user.User) error {
	// Parents we create must stay traversable by the server's user.
	if err := os.MkdirAll(filepath.Dir(s.dir), 0o755); err != nil {
		return fmt.Errorf("create data dir parent: %w", err)
	}
	if err := os.Mkdir(s.dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("create data dir: %w", err)
	}
	if os.Geteuid() == 0 {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return fmt.Errorf("chown data dir: %w", err)
		}
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return fmt.Errorf("chmod data dir: %w", err)
	}
	return nil
}
