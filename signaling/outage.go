package signaling

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/opscenter/opscenter/store"
	"github.com/opscenter/opscenter/wire"
)

// Outage incidents (DESIGN.md, "The situation picture": "an incident that opens
// by itself when an endpoint stays offline during a session").
//
// An endpoint whose media path was up (online: connected or degraded) goes
// offline while a session is in progress: an outage starts, remembered with the
// time the link was lost (the first loss the server saw, or the clean close). If
// it has not come back online OutageIncidentAfter after going offline, an
// incident (communications, high) is written through the store as the system,
// under an id derived from the session, the code and the loss time to the
// second, so a retry, a restart or a second process writes it once. When the
// endpoint is online again, a timeline entry records the return and the
// outage's length. A return within the threshold writes nothing. Outages are
// part of the live state file, so a restart keeps them; an endpoint that was
// online when the process stopped and does not come back after the restart gets
// its outage too (lost at the state file's last save, offline from the restore).
//
// The command room (22) is included: its device is an endpoint like any other;
// while a leader's console publishes the program, 22 counts as online.

// OutageActor is the audit actor of automatic incidents and their entries.
const OutageActor = "system"

// DefaultOutageIncidentAfter is live.outage_incident_after's default.
const DefaultOutageIncidentAfter = 60 * time.Second

// outageNS is the UUIDv5 namespace of outage incident ids (fixed forever: the
// ids of incidents already written depend on it).
var outageNS = uuid.MustParse("6f1d0c4e-2b8a-5e43-9a51-0c3e7d9b2a10")

// vnZone is Vietnam's time (UTC+7, no daylight saving), for the texts.
var vnZone = time.FixedZone("ICT", 7*3600)

// Outage is one endpoint's loss of link during a session, kept in the live
// state until its incident and return entry are written (or it is dropped).
type Outage struct {
	Code      string    `json:"code"`
	SessionID string    `json:"session_id"`
	LostAt    time.Time `json:"lost_at"`    // the link was lost (to the second)
	OfflineAt time.Time `json:"offline_at"` // presence became offline (the threshold counts from here)
	// Opening: the threshold passed in the session with the endpoint offline; the
	// incident is to be written (retried while PostgreSQL is away).
	Opening bool `json:"opening,omitempty"`
	// Opened: the incident is written (IncidentID).
	Opened     bool      `json:"opened,omitempty"`
	ReturnedAt time.Time `json:"returned_at,omitzero"` // online again (to the second)
}

// IncidentID is the outage's deterministic incident id.
func (o Outage) IncidentID() string {
	return OutageIncidentID(o.SessionID, o.Code, o.LostAt)
}

// OutageIncidentID is UUIDv5(session id | code | loss time in UTC to the second).
func OutageIncidentID(sessionID, code string, lostAt time.Time) string {
	key := sessionID + "|" + code + "|" + lostAt.UTC().Truncate(time.Second).Format(time.RFC3339)
	return uuid.NewSHA1(outageNS, []byte(key)).String()
}

func (o Outage) returnEntryID() string {
	return uuid.NewSHA1(outageNS, []byte(o.IncidentID()+"|returned")).String()
}

func isOnline(st string) bool { return st == wire.StateConnected || st == wire.StateDegraded }

// outageTransition follows an endpoint's presence from prev to next for
// outages. Called with mu held, from publishPresence.
func (r *Room) outageTransition(m *member, prev, next string, now time.Time) {
	if isOnline(next) && m.mediaUp {
		if !m.wasOnline {
			m.wasOnline = true
			for i := range r.outages {
				if o := &r.outages[i]; o.Code == m.code && o.ReturnedAt.IsZero() {
					o.ReturnedAt = now.UTC().Truncate(time.Second)
					r.onState()
				}
			}
		}
		return
	}
	if next != wire.StateOffline || prev == wire.StateOffline {
		return
	}
	was := m.wasOnline
	m.wasOnline = false
	if !was || r.sessionID == "" {
		return
	}
	lost := m.mediaLostAt
	if lost.IsZero() || (!m.wsLostAt.IsZero() && m.wsLostAt.Before(lost)) {
		lost = m.wsLostAt
	}
	if lost.IsZero() || lost.After(now) {
		lost = now
	}
	r.outages = append(r.outages, Outage{Code: m.code, SessionID: r.sessionID,
		LostAt: lost.UTC().Truncate(time.Second), OfflineAt: now.UTC()})
	r.log.Info("outage: link lost", "code", m.code, "lost_at", lost.UTC(), "session", r.sessionID)
	r.onState()
}

// outageStep decides, at now, what each outage needs: it drops outages that
// ended within the threshold or whose session ended first, marks those past
// the threshold as opening, and returns the ones with store work to do.
func (r *Room) outageStep(now time.Time, after time.Duration) []Outage {
	r.mu.Lock()
	defer r.mu.Unlock()
	var work []Outage
	keep := r.outages[:0]
	changed := false
	for _, o := range r.outages {
		due := o.OfflineAt.Add(after)
		if !o.Opening && !o.Opened {
			cmdBack := o.Code == r.root && isOnline(r.effective(r.root)) // a console publishes the program
			switch {
			case cmdBack || (!o.ReturnedAt.IsZero() && o.ReturnedAt.Before(due)): // back within the threshold: not an incident
				r.log.Info("outage: back within the threshold", "code", o.Code, "lost_at", o.LostAt)
				changed = true
				continue
			case o.ReturnedAt.IsZero() && now.Before(due):
				keep = append(keep, o)
				continue
			case o.SessionID != r.sessionID: // the session ended before the threshold
				changed = true
				continue
			}
			o.Opening, changed = true, true
		}
		if o.Opened && o.ReturnedAt.IsZero() && o.SessionID != r.sessionID && r.sessionID != "" {
			changed = true // a new session: no return entry for an older one's outage
			continue
		}
		keep = append(keep, o)
		if !o.Opened || !o.ReturnedAt.IsZero() {
			work = append(work, o)
		}
	}
	clear(r.outages[len(keep):])
	r.outages = keep
	if changed {
		r.onState()
	}
	return work
}

// outageDone records the store's progress on an outage: opened, or (returned
// entry written, or given up) removed.
func (r *Room) outageDone(o Outage, opened, remove bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.outages {
		p := &r.outages[i]
		if p.Code != o.Code || !p.LostAt.Equal(o.LostAt) || p.SessionID != o.SessionID {
			continue
		}
		if remove {
			r.outages = append(r.outages[:i], r.outages[i+1:]...)
		} else if opened {
			p.Opened = true
		}
		r.onState()
		return
	}
}

// outageLoop writes outage incidents and return entries off the presence loop:
// PostgreSQL is never called with the room locked, and while it is away the
// work waits in the live state and is retried.
func (s *Service) outageLoop() {
	defer s.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	var lastWarn time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		for _, o := range s.room.outageStep(time.Now(), s.cfg.OutageIncidentAfter) {
			if err := s.outageWrite(o); err != nil {
				if store.IsUnavailable(err) && s.ctx.Err() == nil {
					if time.Since(lastWarn) > 10*time.Second {
						lastWarn = time.Now()
						s.log.Warn("signaling: outage incident waits for the database", "code", o.Code, "err", err)
					}
					break // retried on the next tick
				}
				if s.ctx.Err() != nil {
					return
				}
				s.log.Error("signaling: outage incident not written; given up", "code", o.Code,
					"incident", o.IncidentID(), "err", err)
				s.room.outageDone(o, false, true)
			}
		}
	}
}

// outageWrite does the store work one outage needs now.
func (s *Service) outageWrite(o Outage) error {
	id := o.IncidentID()
	if !o.Opened {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		in, created, err := s.store.CreateIncident(ctx, OutageActor, s.outageIncident(o))
		cancel()
		switch {
		case errors.Is(err, store.ErrConflict):
			// Written under this id with another text (a renamed unit, another
			// version of opscenter): the outage has its incident.
			s.log.Warn("signaling: outage incident exists with another text", "code", o.Code, "incident", id)
		case err != nil:
			return fmt.Errorf("create incident: %w", err)
		default:
			s.log.Info("signaling: outage incident", "code", o.Code, "incident", in.ID, "created", created,
				"occurred_at", in.OccurredAt, "offline_for", time.Since(o.OfflineAt).Round(time.Millisecond))
		}
		s.room.outageDone(o, true, false)
		o.Opened = true
	}
	if o.ReturnedAt.IsZero() {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	_, created, err := s.store.AddIncidentUpdate(ctx, OutageActor, "", id, store.NewIncidentUpdate{
		ID: o.returnEntryID(), Body: outageReturnText(o)})
	cancel()
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		err = nil // the incident is gone, or the entry is written with another text: nothing more to note
	}
	if err != nil {
		return fmt.Errorf("return entry: %w", err)
	}
	s.log.Info("signaling: outage ended", "code", o.Code, "incident", id, "created", created,
		"length", o.ReturnedAt.Sub(o.LostAt))
	s.room.outageDone(o, false, true)
	return nil
}

// outageIncident is the incident of an outage. Everything in it is derived
// from the outage alone (never from the clock or the config), so every retry
// sends the same request and the store's idempotent create writes it once.
func (s *Service) outageIncident(o Outage) store.NewIncident {
	name := s.names[o.Code]
	if name == "" {
		name = o.Code
	}
	lost := o.LostAt.UTC().Truncate(time.Second)
	return store.NewIncident{
		ID:           o.IncidentID(),
		SessionID:    o.SessionID,
		EndpointCode: o.Code,
		Category:     "communications",
		Severity:     "high",
		Title:        "Mất kết nối: " + name,
		Body: fmt.Sprintf("Tự động ghi nhận: điểm cầu %s (mã %s) mất kết nối lúc %s và không kết nối lại trong thời gian quy định.",
			name, o.Code, lost.In(vnZone).Format("15:04:05 02/01/2006")),
		OccurredAt: &lost,
	}
}

// outageReturnText is the return entry: when, and how long the outage lasted.
func outageReturnText(o Outage) string {
	return fmt.Sprintf("Đã kết nối lại lúc %s; thời gian mất kết nối: %s.",
		o.ReturnedAt.In(vnZone).Format("15:04:05 02/01/2006"), viDuration(o.ReturnedAt.Sub(o.LostAt)))
}

// viDuration writes a duration in Vietnamese: "1 giờ 5 phút 3 giây".
func viDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 0 {
		d = 0
	}
	h, m, sec := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	out := ""
	if h > 0 {
		out += fmt.Sprintf("%d giờ ", h)
	}
	if h > 0 || m > 0 {
		out += fmt.Sprintf("%d phút ", m)
	}
	return out + fmt.Sprintf("%d giây", sec)
}
