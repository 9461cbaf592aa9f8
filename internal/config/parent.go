package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Parent names this node's parent in the tree of nodes (DESIGN.md, "Beyond one
// machine"): the node joins the parent's session as the endpoint of its own
// root code, with the join link the parent issued for that code. Empty URL: a
// root node, no uplink.
type Parent struct {
	// URL is the parent's public URL (its http.public_url).
	URL string `yaml:"url"`
	// JoinLink is the link the parent issued for this node's root code
	// ({url}/join#t=TOKEN); a bare token is accepted too. It lets the uplink act
	// as that one endpoint and nothing else.
	JoinLink string `yaml:"join_link"`
	// ReconnectMin and ReconnectMax bound the uplink's back-off; it never gives up.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// SyncInterval is how often the uplink compares, with the parent, the
	// node's own turnout figure and the directives and their receipts.
	SyncInterval time.Duration `yaml:"sync_interval"`
}

// Enabled reports whether this node has a parent.
func (p Parent) Enabled() bool { return p.URL != "" }

// Token is the credential inside JoinLink: the t= of its fragment, or the
// whole value when it is a bare token.
func (p Parent) Token() string {
	l := strings.TrimSpace(p.JoinLink)
	_, frag, ok := strings.Cut(l, "#")
	if !ok {
		return l
	}
	for _, kv := range strings.Split(frag, "&") {
		if v, ok := strings.CutPrefix(kv, "t="); ok {
			if u, err := url.QueryUnescape(v); err == nil {
				return u
			}
			return v
		}
	}
	return ""
}

func (p Parent) validate() error {
	if !p.Enabled() {
		if p.JoinLink != "" {
			return errors.New("parent.join_link without parent.url")
		}
		return nil
	}
	if u, err := url.Parse(p.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("parent.url %q is not an absolute http(s) URL", p.URL)
	}
	if p.Token() == "" {
		return errors.New("parent.join_link is empty (the parent's join link for this node's code)")
	}
	if p.ReconnectMin <= 0 || p.ReconnectMax < p.ReconnectMin {
		return errors.New("parent.reconnect_min must be positive and at most parent.reconnect_max")
	}
	if p.SyncInterval <= 0 {
		return errors.New("parent.sync_interval must be positive")
	}
	return nil
}
