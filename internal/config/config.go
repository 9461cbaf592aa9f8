// Package config loads opscenter's YAML configuration: the embedded defaults, then an
// optional file, then OPSCENTER_* environment variables. Unknown keys are errors.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/opscenter/opscenter/configs"
)

// Config is the whole tree; each subsystem gets its own section.
type Config struct {
	HTTP      HTTP      `yaml:"http"`
	Database  Database  `yaml:"database"`
	Roster    Roster    `yaml:"roster"`
	Media     Media     `yaml:"media"`
	Live      Live      `yaml:"live"`
	Turnout   Turnout   `yaml:"turnout"`
	Recording Recording `yaml:"recording"`
	Metrics   Metrics   `yaml:"metrics"`
	Log       Log       `yaml:"log"`
	Standby   Standby   `yaml:"standby"`
	Parent    Parent    `yaml:"parent"`
}

// Metrics configures the Prometheus endpoint. It names endpoints and their
// presence, so it has a listener of its own, on loopback unless told otherwise.
type Metrics struct {
	// Addr is where /metrics is served; empty turns it off. Never the HTTP port.
	Addr string `yaml:"addr"`
	// Token, when set, is required as "Authorization: Bearer TOKEN" (for an Addr
	// that is not loopback).
	Token string `yaml:"token"`
}

// Turnout configures the turnout picture.
type Turnout struct {
	// StaleAfter flags a commune that has not reported for this long (measured from
	// the session's planned start before its first report).
	StaleAfter time.Duration `yaml:"stale_after"`
}

// Live configures the live session's local durability.
type Live struct {
	// StatePath is no longer used: the live state is in PostgreSQL, where a
	// standby can read it. Still accepted (with a warning) so old configs start.
	StatePath string `yaml:"state_path"`
	// OutageIncidentAfter: an endpoint that was online during a session and has
	// been offline this long gets a communications incident, opened by the system.
	OutageIncidentAfter time.Duration `yaml:"outage_incident_after"`
}

// HTTP configures the web server.
type HTTP struct {
	Addr           string        `yaml:"addr"`
	PublicURL      string        `yaml:"public_url"`
	TLSCert        string        `yaml:"tls_cert"`
	TLSKey         string        `yaml:"tls_key"`
	MaxBodyBytes   int64         `yaml:"max_body_bytes"`
	SessionTTL     time.Duration `yaml:"session_ttl"`
	AllowedOrigins []string      `yaml:"allowed_origins"`
}

// Database selects an external PostgreSQL (URL) or the embedded one (data dirs).
type Database struct {
	URL             string `yaml:"url"`
	DataDir         string `yaml:"data_dir"`
	FallbackDataDir string `yaml:"fallback_data_dir"`
	MaxConns        int32  `yaml:"max_conns"`
	// JournalPath is the on-disk queue of live-session audit events written while
	// PostgreSQL is unreachable; they are replayed in order when it returns.
	JournalPath string `yaml:"journal_path"`
}

// Roster says which dated roster to load at start.
type Roster struct {
	File         string `yaml:"file"`
	Date         string `yaml:"date"`
	ProvinceCode string `yaml:"province_code"`
}

// Media configures the SFU's network surface.
type Media struct {
	UDPPort         int      `yaml:"udp_port"`
	TCPPort         int      `yaml:"tcp_port"`
	PublicIPs       []string `yaml:"public_ips"`
	IncludeLoopback bool     `yaml:"include_loopback"`
	// NetworkTypes the server gathers ICE candidates on: udp4, udp6, tcp4, tcp6.
	NetworkTypes []string `yaml:"network_types"`
	// Interfaces, if not empty, restricts ICE candidates to these interface names.
	Interfaces []string `yaml:"interfaces"`
	TURN       TURN     `yaml:"turn"`
	// FanoutSpread splits a packet's fan-out across cores from twice this many
	// subscribers (sfu.Config.FanoutSpread); 0 is the engine's default (32),
	// negative keeps it on the reader alone.
	FanoutSpread int `yaml:"fanout_spread"`
}

// TURN configures the optional embedded TURN server.
type TURN struct {
	Enabled bool   `yaml:"enabled"`
	Port    int    `yaml:"port"`
	Realm   string `yaml:"realm"`
	// Secret signs short-lived TURN credentials handed out in welcome (REST
	// style). Empty with no username: a random secret per process.
	Secret string `yaml:"secret"`
	// Username and Password are a static long-term credential instead of Secret.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Default returns the embedded defaults.
func Default() (Config, error) {
	var c Config
	if err := decodeStrict(bytes.NewReader(configs.DefaultYAML), &c); err != nil {
		return c, fmt.Errorf("embedded defaults: %w", err)
	}
	return c, nil
}

// Load layers the file at path (if not empty) and then env over the defaults.
// env is passed in (normally os.Environ()) so tests never mutate the process environment.
func Load(path string, env []string) (Config, error) {
	c, err := Default()
	if err != nil {
		return c, err
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return c, fmt.Errorf("open config: %w", err)
		}
		defer f.Close()
		if err := decodeStrict(f, &c); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&c, env); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func decodeStrict(r io.Reader, c *Config) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Validate catches values that would only fail later, far from their cause.
func (c Config) Validate() error {
	if c.HTTP.Addr == "" {
		return errors.New("http.addr is empty")
	}
	if u, err := url.Parse(c.HTTP.PublicURL); err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("http.public_url %q is not an absolute URL", c.HTTP.PublicURL)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		return errors.New("http.tls_cert and http.tls_key go together")
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		return errors.New("http.max_body_bytes must be positive")
	}
	if c.HTTP.SessionTTL <= 0 {
		return errors.New("http.session_ttl must be positive")
	}
	if _, err := time.Parse("2006-01-02", c.Roster.Date); err != nil {
		return fmt.Errorf("roster.date: %w", err)
	}
	for _, p := range []int{c.Media.UDPPort, c.Media.TCPPort, c.Media.TURN.Port} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("port %d out of range", p)
		}
	}
	for _, nt := range c.Media.NetworkTypes {
		switch nt {
		case "udp4", "udp6", "tcp4", "tcp6":
		default:
			return fmt.Errorf("media.network_types: %q is not one of udp4, udp6, tcp4, tcp6", nt)
		}
	}
	if (c.Media.TURN.Username == "") != (c.Media.TURN.Password == "") {
		return errors.New("media.turn.username and media.turn.password go together")
	}
	if c.Metrics.Token != "" && len(c.Metrics.Token) < 16 {
		return errors.New("metrics.token: at least 16 characters")
	}
	if c.Live.OutageIncidentAfter <= 0 {
		return errors.New("live.outage_incident_after must be positive")
	}
	if c.Turnout.StaleAfter <= 0 {
		return errors.New("turnout.stale_after must be positive")
	}
	if c.Database.JournalPath == "" {
		return errors.New("database.journal_path is empty (the audit journal is required)")
	}
	if err := c.Recording.validate(); err != nil {
		return err
	}
	if err := c.validateStandby(); err != nil {
		return err
	}
	if err := c.Parent.validate(); err != nil {
		return err
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format %q: want text or json", c.Log.Format)
	}
	return nil
}
