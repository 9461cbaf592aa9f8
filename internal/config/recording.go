package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Recording configures the video record: the program and the floor, written as
// forwarded into WebM files under Dir and indexed in PostgreSQL.
type Recording struct {
	Enabled bool   `yaml:"enabled"`
	Dir     string `yaml:"dir"`
	// Keep deletes files older than this (by their end); 0 or empty keeps them
	// forever.
	Keep Retention `yaml:"keep"`
	// MinFree: below this many free bytes on Dir's file system no recording
	// starts, running ones are stopped, and the disk-low alert is raised.
	MinFree ByteSize `yaml:"min_free"`
	// PrivateLine records the private line too (off: it is private).
	PrivateLine bool `yaml:"private_line"`
}

func (r Recording) validate() error {
	if r.Enabled && strings.TrimSpace(r.Dir) == "" {
		return errors.New("recording.dir is empty")
	}
	if r.Keep < 0 {
		return errors.New("recording.keep must not be negative (0 keeps recordings forever)")
	}
	if r.MinFree < 0 {
		return errors.New("recording.min_free must not be negative")
	}
	return nil
}

// Retention is how long recordings are kept: a Go duration ("2160h"), a number
// of days ("90d"), or 0 / empty for forever.
type Retention time.Duration

// Duration is r as a time.Duration (0: forever).
func (r Retention) Duration() time.Duration { return time.Duration(r) }

// UnmarshalText parses a retention (environment variables).
func (r *Retention) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	switch {
	case s == "" || s == "0" || s == "forever":
		*r = 0
		return nil
	case strings.HasSuffix(s, "d"):
		days, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64)
		if err != nil {
			return fmt.Errorf("retention %q: want a duration such as 2160h or 90d", s)
		}
		*r = Retention(days * float64(24*time.Hour))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("retention %q: want a duration such as 2160h or 90d", s)
	}
	*r = Retention(d)
	return nil
}

// UnmarshalYAML accepts what UnmarshalText does.
func (r *Retention) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a retention is a duration such as 2160h or 90d", n.Line)
	}
	if err := r.UnmarshalText([]byte(n.Value)); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// ByteSize is a number of bytes, written as an integer or with a unit: "2GiB",
// "500MB", "1.5G" (K, M, G, T are powers of 1024 with or without "i"; KB, MB, GB,
// TB are powers of 1000).
type ByteSize int64

// UnmarshalText parses a size (environment variables).
func (b *ByteSize) UnmarshalText(text []byte) error {
	n, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = n
	return nil
}

// UnmarshalYAML accepts an integer or a size with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a size is a number of bytes or a string such as 2GiB", n.Line)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseByteSize parses "2147483648", "2GiB", "2G", "500MB", "0".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') && s[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(s[:i]), strings.ToUpper(strings.TrimSpace(s[i:]))
	mult := map[string]float64{
		"": 1, "B": 1,
		"K": 1 << 10, "KI": 1 << 10, "KIB": 1 << 10, "KB": 1e3,
		"M": 1 << 20, "MI": 1 << 20, "MIB": 1 << 20, "MB": 1e6,
		"G": 1 << 30, "GI": 1 << 30, "GIB": 1 << 30, "GB": 1e9,
		"T": 1 << 40, "TI": 1 << 40, "TIB": 1 << 40, "TB": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s, unit)
	}
	if unit == "" {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("size %q: %w", s, err)
		}
		return ByteSize(n), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q: not a size", s)
	}
	return ByteSize(f * mult), nil
}
