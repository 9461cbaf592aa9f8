package uplink

// The parent's floor comes down with its program. While the node's program
// source is the parent and the parent's session has a floor (one of its units
// speaking to all, which the parent forwards to this node's uplink as to any
// endpoint), the uplink republishes what it receives on its floor slots into
// the node, in process, through the node's ingest as the relayed floor
// (signaling.Service.StartRelayFloor). The node routes it to its endpoints as
// their floor while it has no floor of its own: a floor given at the node
// wins. When the parent's floor ends, or the node takes its own program back,
// the publication ends and the node's floor slots fall silent.
//
// The parent's floor holder is followed from the parent's messages (welcome
// and floor), on the protocol client's reader; starting and ending the
// publication (a WHIP exchange) runs on its own goroutine, runFloorRelay.

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/wire"
)

// floorRetry is the wait before trying again a relay that could not start.
const floorRetry = time.Second

// floorRelay is the state of the parent's floor at this node.
type floorRelay struct {
	kick  chan struct{}         // capacity 1: reconcile (runFloorRelay)
	relay atomic.Pointer[relay] // the parent's floor into the node; nil: none

	mu     sync.Mutex // a leaf: nothing else is taken while it is held
	holder string     // the parent's floor holder as last told, "" for nobody
}

// ParentFloor is the parent's floor holder as last told ("" for nobody or
// while the link is down), and whether the node relays it now.
func (u *Uplink) ParentFloor() (code string, relayed bool) {
	u.floor.mu.Lock()
	defer u.floor.mu.Unlock()
	return u.floor.holder, u.floor.relay.Load() != nil
}

// kickFloor asks runFloorRelay to reconcile (never blocks).
func (u *Uplink) kickFloor() {
	select {
	case u.floor.kick <- struct{}{}:
	default:
	}
}

// setParentFloor records the parent's floor holder.
func (u *Uplink) setParentFloor(code string) {
	u.floor.mu.Lock()
	changed := u.floor.holder != code
	u.floor.holder = code
	u.floor.mu.Unlock()
	if changed {
		u.log.Info("uplink: the parent's floor", "holder", code)
		u.kickFloor()
	}
}

// onMessage is the protocol client's message hook: it follows the parent's
// floor (the welcome's snapshot on every connection, then floor messages).
func (u *Uplink) onMessage(env wire.Envelope) {
	var holder *string
	switch env.Type {
	case wire.TypeWelcome:
		var w wire.WelcomeMsg
		if err := json.Unmarshal(env.Payload, &w); err != nil {
			u.log.Warn("uplink: the parent's welcome", "err", err)
			return
		}
		if w.Code != u.cfg.Code {
			break // another unit's link: the uplink leaves at once (dial)
		}
		holder = w.State.Floor
	case wire.TypeFloor:
		var m wire.FloorMsg
		if err := json.Unmarshal(env.Payload, &m); err != nil {
			u.log.Warn("uplink: the parent's floor message", "err", err)
			return
		}
		holder = m.Code
	default:
		return
	}
	code := ""
	if holder != nil {
		code = *holder
	}
	u.setParentFloor(code)
}

// runFloorRelay starts and ends the floor relay until Close.
func (u *Uplink) runFloorRelay() {
	defer u.wg.Done()
	for {
		select {
		case <-u.ctx.Done():
			if r := u.floor.relay.Swap(nil); r != nil {
				r.close()
			}
			return
		case <-u.floor.kick:
			u.reconcileFloor()
		}
	}
}

// reconcileFloor relays the parent's floor while the node's program is the
// parent's and the parent has a floor that is not this node itself (the parent
// never sends a unit its own floor). Only runFloorRelay calls it.
func (u *Uplink) reconcileFloor() {
	holder, _ := u.ParentFloor()
	want := u.relay.Load() != nil && holder != "" && holder != u.cfg.Code
	cur := u.floor.relay.Load()
	switch {
	case want && cur == nil:
		r, err := u.startRelay(u.cfg.PublishFloor, "uplink-floor-"+u.cfg.Code, signaling.SlotFloorVideo)
		if err != nil {
			u.log.Warn("uplink: cannot relay the parent's floor", "holder", holder, "err", err, "retry_in", floorRetry)
			time.AfterFunc(floorRetry, u.kickFloor)
			return
		}
		u.floor.relay.Store(r)
		if c := u.Client(); c != nil {
			_ = c.RequestKeyframe(signaling.SlotFloorVideo) // the node's endpoints start at once
		}
		u.log.Info("uplink: relaying the parent's floor", "holder", holder)
	case !want && cur != nil:
		u.floor.relay.Store(nil)
		cur.close()
		u.log.Info("uplink: the parent's floor relay ended")
	}
}
