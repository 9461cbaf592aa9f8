package web

// The press wall ("màn hình phòng báo chí"): the press room's screens show the
// program, the floor, the turnout board and the clock, and nothing internal. A
// wall link (opscenter wall token NAME) opens /wall; the page exchanges it here
// for a cookie, then reads its live feed and views the program over WHEP. A wall
// principal passes no other route: need(anyone) and the capabilities refuse it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/signaling"
	"github.com/opscenter/opscenter/store"
)

// wallSessionTTL is how long a wall's cookie lasts: a screen runs unattended for
// days, and revoking or reissuing the wall ends it at once anyway.
const wallSessionTTL = 30 * 24 * time.Hour

// The feed sends a fresh state at most this often after changes, and at least
// this often without (turnout's stale flags move with the clock).
const (
	wallFeedMinGap   = time.Second
	wallFeedRefresh  = 30 * time.Second
	wallFeedKeepBeat = 15 * time.Second
)

// WallURL is a wall link: the secret in the fragment, kept out of server logs.
func WallURL(publicURL, token string) string {
	return publicURL + "/wall#t=" + token
}

func (s *Server) wallRoutes(api *gin.RouterGroup) {
	api.GET("/wall/feed", s.need(wallReader), s.wallFeed)
}

// wallReader admits a wall, and the staff who may read the whole province (an
// observer "reads the wall"). District-scoped staff see their district only, and
// the wall is the province's.
func wallReader(p auth.Principal) bool { return p.IsWall() || unscopedStaff(p) }

// resolve maps a credential to its principal: staff or endpoint first, then a wall.
func (s *Server) resolve(ctx context.Context, tok string) (auth.Principal, error) {
	p, err := s.Store.Resolve(ctx, tok)
	if errors.Is(err, store.ErrNotFound) {
		return s.Store.ResolveWall(ctx, tok)
	}
	return p, err
}

// wallAuth exchanges a wall link's secret (the URL fragment) for the wall's
// HttpOnly cookie, as /auth/join does for an endpoint.
func (s *Server) wallAuth(c *gin.Context) {
	var in joinRequest
	if err := decode(c, &in); err != nil {
		s.failErr(c, err)
		return
	}
	now := s.limiter.now()
	// Its own key: a wall's guesses neither spend nor share a login's allowance.
	key := "wall-ip:" + c.ClientIP()
	if wait := s.limiter.blocked(key, now); wait > 0 {
		c.Header("Retry-After", fmt.Sprint(int(math.Ceil(wait.Seconds()))))
		fail(c, http.StatusTooManyRequests, "rate_limited", "too many bad links; wait and try again", "")
		return
	}
	tok, p, err := s.Store.ExchangeWallToken(c.Request.Context(), in.Token, wallSessionTTL)
	if errors.Is(err, store.ErrNotFound) {
		s.limiter.fail(key, now)
		fail(c, http.StatusUnauthorized, "bad_link", "this wall link is not valid (it may have been revoked or replaced)", "token")
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	s.setCookie(c, wallCookie, tok, wallSessionTTL)
	c.JSON(http.StatusOK, gin.H{"expires_at": time.Now().Add(wallSessionTTL), "principal": p})
}

// WallState is what a wall shows besides video: the session and the turnout
// roll-up. It carries no audit event, no incident and no directive.
type WallState struct {
	At      time.Time    `json:"at"` // the server's clock, so a wall can correct its own
	Session *WallSession `json:"session"`
	Turnout WallTurnout  `json:"turnout"`
}

// WallSession is the session a wall shows: the one in progress, else the latest.
type WallSession struct {
	Title        string     `json:"title"`
	State        string     `json:"state"` // planned, in_progress or ended
	PlannedStart time.Time  `json:"planned_start"`
	PlannedEnd   time.Time  `json:"planned_end"`
	ActualStart  *time.Time `json:"actual_start"`
	ActualEnd    *time.Time `json:"actual_end"`
	// Floor is who speaks now (nil for nobody): a name the press may print.
	Floor *WallUnit `json:"floor"`
}

// WallUnit names a unit of the roster.
type WallUnit struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// WallTurnout is the province's figure, its districts and its curve.
type WallTurnout struct {
	At        time.Time                  `json:"at"`
	Province  *store.TurnoutUnit         `json:"province"`
	Districts []store.TurnoutUnit        `json:"districts"`
	Series    []store.TurnoutSeriesPoint `json:"series"`
}

// wallState reads the wall's state now.
func (s *Server) wallState(ctx context.Context) (WallState, error) {
	out := WallState{At: time.Now().UTC(), Turnout: WallTurnout{Districts: []store.TurnoutUnit{}, Series: []store.TurnoutSeriesPoint{}}}
	top, err := s.Store.Turnout(ctx, store.TurnoutQuery{StaleAfter: s.staleAfter()})
	if err != nil {
		return out, fmt.Errorf("wall: province turnout: %w", err)
	}
	out.Turnout.At = top.At
	if len(top.Units) == 0 {
		return out, nil // no roster loaded
	}
	prov := top.Units[0]
	out.Turnout.Province = &prov
	kids, err := s.Store.Turnout(ctx, store.TurnoutQuery{Parent: prov.Code, StaleAfter: s.staleAfter()})
	if err != nil {
		return out, fmt.Errorf("wall: district turnout: %w", err)
	}
	out.Turnout.Districts = kids.Units
	if top.SessionID == nil {
		return out, nil
	}
	sess, err := s.Store.GetSession(ctx, *top.SessionID)
	if err != nil {
		return out, fmt.Errorf("wall: session: %w", err)
	}
	ws := &WallSession{Title: sess.Title, State: "planned", PlannedStart: sess.PlannedStart, PlannedEnd: sess.PlannedEnd,
		ActualStart: sess.ActualStart, ActualEnd: sess.ActualEnd}
	switch {
	case sess.ActualEnd != nil:
		ws.State = "ended"
	case sess.ActualStart != nil:
		ws.State = "in_progress"
	}
	out.Session = ws
	if code := s.Presence.Floor(); code != "" && ws.State == "in_progress" {
		e, err := s.Store.GetEndpoint(ctx, code)
		if err != nil {
			return out, fmt.Errorf("wall: floor holder %s: %w", code, err)
		}
		ws.Floor = &WallUnit{Code: e.Code, Name: e.Name}
	}
	if sess.ActualStart != nil {
		ser, err := s.Store.Series(ctx, prov.Code, sess.ID, 15*time.Minute, time.Now())
		if err != nil {
			return out, fmt.Errorf("wall: turnout curve: %w", err)
		}
		out.Turnout.Series = ser.Points
	}
	return out, nil
}

// stillValid reports whether the request's credential still resolves. The hub
// may deliver a wall's own earlier event (its link issued just before the feed
// opened), so an event alone does not end a feed.
func (s *Server) stillValid(ctx context.Context, r *http.Request) bool {
	tok, _ := credential(r)
	_, err := s.resolve(ctx, tok)
	return err == nil
}

// wallChanges reports whether an audit action may change what a wall shows.
func wallChanges(action string) bool {
	return strings.HasPrefix(action, "turnout.") || strings.HasPrefix(action, "session.") ||
		strings.HasPrefix(action, "floor.")
}

// wallFeed serves the wall's live feed as Server-Sent Events: "state" events,
// each a whole WallState, sent at once, after each change of turnout or of the
// session (coalesced), and every 30 s. Only the state is sent, never the audit
// event that changed it. A feed that fails ends; the page reconnects.
func (s *Server) wallFeed(c *gin.Context) {
	ctx := c.Request.Context()
	p := principal(c)
	// Subscribe before the first state, so no change between them is missed.
	sub := s.Hub.Subscribe(256)
	defer sub.Close()

	w := c.Writer
	startEventStream(w, 3*time.Second)

	var last time.Time
	send := func() bool {
		st, err := s.wallState(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.Log.Warn("wall feed", "err", err)
			}
			return false
		}
		b, err := json.Marshal(st)
		if err != nil {
			s.Log.Error("wall feed: marshal", "err", err)
			return false
		}
		if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", b); err != nil {
			return false
		}
		w.Flush()
		last = time.Now()
		return true
	}
	if !send() {
		return
	}
	refresh := time.NewTicker(wallFeedRefresh)
	defer refresh.Stop()
	beat := time.NewTicker(wallFeedKeepBeat)
	defer beat.Stop()
	var pending <-chan time.Time // set while a change waits for the gap
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.C:
			if !ok {
				return // cut off as too slow, or shutting down: the page reconnects
			}
			if p.IsWall() && e.Entity == "wall" && e.EntityID == p.Wall && !s.stillValid(ctx, c.Request) {
				// Revoked or reissued: this screen's credential is gone. End its
				// video too; the page's reconnect then meets a 401.
				s.endWallViewers(p.Wall)
				return
			}
			if wallChanges(e.Action) && pending == nil {
				pending = time.After(max(0, wallFeedMinGap-time.Since(last)))
			}
		case <-pending:
			pending = nil
			if !send() {
				return
			}
		case <-refresh.C:
			if !send() {
				return
			}
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			w.Flush()
		}
	}
}

// wallViewers keeps each wall's WHEP sessions, so that revoking or reissuing the
// wall also stops the video of its screens, not only their feed.
type wallViewers struct {
	mu sync.Mutex
	m  map[string]map[*signaling.IngestSession]struct{}
}

// track records a WHEP session made by a wall, and forgets the wall's ended ones.
func (s *Server) trackWallViewer(p auth.Principal, m *signaling.IngestSession) {
	if !p.IsWall() {
		return
	}
	v := &s.wallViewers
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[string]map[*signaling.IngestSession]struct{}{}
	}
	set := v.m[p.Wall]
	if set == nil {
		set = map[*signaling.IngestSession]struct{}{}
		v.m[p.Wall] = set
	}
	for old := range set {
		if _, live := s.Ingest.Ingest(signaling.IngestWHEP, old.ID()); !live {
			delete(set, old)
		}
	}
	set[m] = struct{}{}
}

// endWallViewers closes every WHEP session of the wall name.
func (s *Server) endWallViewers(name string) {
	v := &s.wallViewers
	v.mu.Lock()
	set := v.m[name]
	delete(v.m, name)
	v.mu.Unlock()
	for m := range set {
		m.Close()
	}
}
