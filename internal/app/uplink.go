package app

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opscenter/opscenter/uplink"
)

// startUplink joins the parent node's session as this node's root code, when a
// parent is configured (DESIGN.md, beyond one machine).
func (a *App) startUplink(reg prometheus.Registerer) error {
	p := a.Config.Parent
	if !p.Enabled() {
		return nil
	}
	u, err := uplink.New(uplink.Config{URL: p.URL, Token: p.Token(), Code: a.Config.Roster.ProvinceCode,
		ReconnectMin: p.ReconnectMin, ReconnectMax: p.ReconnectMax}, a.Log, reg)
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	a.Uplink = u
	return nil
}
