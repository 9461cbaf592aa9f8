package config

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Standby configures a standby pair: two `opscenter serve` processes of one
// node sharing one PostgreSQL that neither owns. The one holding the node's
// advisory lock is active; the other answers /readyz and joins with 503 until
// the active one dies, then takes over (docs/operations.md, "A standby pair").
type Standby struct {
	// Enabled takes part in the election; database.url must be set (the
	// embedded database dies with its process).
	Enabled bool `yaml:"enabled"`
	// NodeURLs are the node's addresses in the order clients try them after
	// losing their connection; sent in welcome. Empty: http.public_url alone.
	NodeURLs []string `yaml:"node_urls"`
	// AdvertiseURL is this process's own address, recorded while it is active
	// so the standby can point joins to it. Empty: http.public_url.
	AdvertiseURL string `yaml:"advertise_url"`
	// PollInterval is how often the standby tries the lock and the active
	// checks its lock connection.
	PollInterval time.Duration `yaml:"poll_interval"`
}

// NodeURLsOrPublic is what welcome lists: node_urls, or the public URL.
func (c Config) NodeURLsOrPublic() []string {
	if len(c.Standby.NodeURLs) > 0 {
		return c.Standby.NodeURLs
	}
	return []string{c.HTTP.PublicURL}
}

// AdvertiseURLOrPublic is the address recorded while this process is active.
func (c Config) AdvertiseURLOrPublic() string {
	if c.Standby.AdvertiseURL != "" {
		return c.Standby.AdvertiseURL
	}
	return c.HTTP.PublicURL
}

func (c Config) validateStandby() error {
	for _, u := range append(append([]string{}, c.Standby.NodeURLs...), c.Standby.AdvertiseURL) {
		if p, err := url.Parse(u); u != "" && (err != nil || p.Scheme == "" || p.Host == "") {
			return fmt.Errorf("standby: %q is not an absolute URL", u)
		}
	}
	if !c.Standby.Enabled {
		return nil
	}
	if c.Database.URL == "" {
		return errors.New("standby.enabled needs database.url: a pair shares a PostgreSQL that neither process owns")
	}
	if c.Standby.PollInterval <= 0 {
		return errors.New("standby.poll_interval must be positive")
	}
	return nil
}
