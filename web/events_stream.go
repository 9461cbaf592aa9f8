package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/store"
)

// streamEvents serves the audit log as Server-Sent Events. A reader that reconnects
// with Last-Event-ID (or ?after=) gets every event after that id, then live ones; ids
// are gap-free and in commit order, so nothing is skipped. A district-scoped reader
// gets only what concerns its district (eventView); its ids then have gaps.
func (s *Server) streamEvents(c *gin.Context) {
	after, err := resumeID(c)
	if err != nil {
		fail(c, http.StatusBadRequest, "invalid", "Last-Event-ID must be a non-negative integer", "Last-Event-ID")
		return
	}
	ctx := c.Request.Context()
	p := principal(c)
	// Subscribe before the backfill, so nothing commits unseen in between.
	sub := s.Hub.Subscribe(1024)
	defer sub.Close()

	w := c.Writer
	startEventStream(w, 2*time.Second)

	for {
		evs, err := s.Store.EventsAfter(ctx, after, 500)
		if err != nil {
			s.Log.Warn("event stream backfill", "err", err)
			return // the client reconnects with its Last-Event-ID
		}
		for _, e := range evs {
			after = e.ID
			e, visible := s.eventView(ctx, p, e)
			if !visible {
				continue // another district's, for a district-scoped reader
			}
			if writeEvent(w, e) != nil {
				return
			}
		}
		w.Flush()
		if len(evs) < 500 {
			break
		}
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.C:
			if !ok {
				return // cut off as too slow, or shutting down: the client resumes
			}
			if e.ID <= after {
				continue
			}
			after = e.ID
			e, visible := s.eventView(ctx, p, e)
			if !visible {
				continue // another district's, for a district-scoped reader
			}
			if writeEvent(w, e) != nil {
				return
			}
			w.Flush()
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			w.Flush()
		}
	}
}

func resumeID(c *gin.Context) (int64, error) {
	v := c.GetHeader("Last-Event-ID")
	if v == "" {
		v = c.Query("after")
	}
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("bad resume id %q", v)
	}
	return id, nil
}

func writeEvent(w gin.ResponseWriter, e store.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Action, b)
	return err
}

// eventsHead returns the newest event id. A console reads it before loading lists,
// then streams from it: nothing is missed and the log is not replayed from the start.
func (s *Server) eventsHead(c *gin.Context) {
	id, err := s.Store.LastEventID(c.Request.Context())
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"last_event_id": id})
}

// startEventStream begins a Server-Sent Events answer: its headers (no caching,
// no proxy buffering) and the browser's reconnect delay.
func startEventStream(w gin.ResponseWriter, retry time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: %d\n\n", retry.Milliseconds())
	w.Flush()
}
