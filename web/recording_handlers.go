package web

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/recording"
	"github.com/opscenter/opscenter/store"
)

// recordingRoutes registers the video record's routes. They are for unscoped staff
// only: to an endpoint (or anyone else) they do not exist (404), so an endpoint
// never learns of, let alone sees, another's video.
func (s *Server) recordingRoutes(api *gin.RouterGroup) {
	api.GET("/recordings", s.needStaff, s.listRecordings)
	api.GET("/recordings/:id", s.needStaff, s.getRecording)
	api.GET("/recordings/:id/media", s.needStaff, s.recordingMedia)
	api.HEAD("/recordings/:id/media", s.needStaff, s.recordingMedia)
	api.GET("/sessions/:id/markers.vtt", s.needStaff, s.markersVTT)
}

// unscopedStaff admits staff who may read the log, not limited to a district:
// the program and the floor show every district, so district-scoped staff are
// refused too (404).
func unscopedStaff(p auth.Principal) bool {
	return !p.IsEndpoint() && !p.Scoped() && p.Can(auth.CapRead)
}

// needStaff is need(unscopedStaff), answering 404 rather than 403 to anyone else
// with a credential.
func (s *Server) needStaff(c *gin.Context) {
	p, authed := auth.FromContext(c.Request.Context())
	if !authed {
		fail(c, http.StatusUnauthorized, "unauthorized", "log in or present a join link", "")
		return
	}
	if !unscopedStaff(p) {
		fail(c, http.StatusNotFound, "not_found", "no such route", "")
		return
	}
	c.Next()
}

func (s *Server) listRecordings(c *gin.Context) {
	list, err := s.Store.ListRecordings(c.Request.Context(), c.Query("session"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"recordings": list})
}

func (s *Server) getRecording(c *gin.Context) {
	r, err := s.Store.GetRecording(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

// recordingMedia serves a finished file, with Range requests (206), If-Range and
// conditional GETs on its SHA-256 as ETag, so a player can seek.
func (s *Server) recordingMedia(c *gin.Context) {
	r, err := s.Store.GetRecording(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	switch r.State {
	case "open":
		fail(c, http.StatusConflict, "recording_open", "the recording is still being written", "")
		return
	case "deleted":
		fail(c, http.StatusGone, "deleted", "the file was deleted ("+r.Note+")", "")
		return
	}
	dir, err := filepath.Abs(s.Config.Recording.Dir)
	path := recording.Resolve(dir, r.Path)
	if err != nil || path == "" {
		s.failErr(c, fmt.Errorf("recording %s: bad path %q: %v", r.ID, r.Path, err))
		return
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		fail(c, http.StatusNotFound, "file_missing", "the recording is indexed but its file is missing", "")
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.failErr(c, err)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "video/webm")
	h.Set("Cache-Control", "private, no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", fmt.Sprintf(`inline; filename="%s"`, filepath.Base(path)))
	if r.SHA256 != nil {
		h.Set("ETag", `"`+*r.SHA256+`"`)
	}
	http.ServeContent(c.Writer, c.Request, filepath.Base(path), st.ModTime(), f)
}

// markerCue is how long each marker shows.
const markerCue = 5 * time.Second

// markersVTT serves the session's duty log as WebVTT: one cue per incident,
// directive and floor change, at the record's system time as an offset from the
// session's actual start (or, with ?recording=ID, from that file's start,
// keeping only the cues within it).
func (s *Server) markersVTT(c *gin.Context) {
	ctx := c.Request.Context()
	sess, err := s.Store.GetSession(ctx, c.Param("id"))
	if err != nil {
		s.failErr(c, err)
		return
	}
	if sess.ActualStart == nil {
		fail(c, http.StatusConflict, "not_started", "the session has not started: its markers have no time 0", "")
		return
	}
	base, end := *sess.ActualStart, time.Time{}
	if id := c.Query("recording"); id != "" {
		r, err := s.Store.GetRecording(ctx, id)
		if err != nil || r.SessionID != sess.ID {
			fail(c, http.StatusNotFound, "not_found", "no such recording in this session", "recording")
			return
		}
		base = r.StartedAt
		if r.EndedAt != nil {
			end = *r.EndedAt
		}
	}
	ms, err := s.Store.SessionMarkers(ctx, sess.ID)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.Header("Cache-Control", "private, no-cache")
	c.Data(http.StatusOK, "text/vtt; charset=utf-8", []byte(buildVTT(ms, base, end)))
}

// buildVTT writes the markers as a WebVTT file. Cues at or after end (if not
// zero), or before base when end is set, are left out; without end, a record
// made before base is put at 0.
func buildVTT(ms []store.Marker, base, end time.Time) string {
	var b strings.Builder
	b.WriteString("WEBVTT\n")
	for _, m := range ms {
		off := m.At.Sub(base)
		if !end.IsZero() && (off < 0 || !m.At.Before(end)) {
			continue
		}
		if off < 0 {
			off = 0
		}
		b.WriteString("\n")
		b.WriteString(vttID(m.ID)) // the record's own id: incident or directive UUID, event id
		b.WriteString("\n")
		b.WriteString(vttTime(off) + " --> " + vttTime(off+markerCue) + "\n")
		for _, line := range markerLines(m) {
			b.WriteString(vttText(line))
			b.WriteString("\n")
		}
	}
	return b.String()
}

func markerLines(m store.Marker) []string {
	var lines []string
	switch m.Kind {
	case "incident":
		head := "Incident " + m.Code
		if m.Name != "" {
			head += " " + m.Name
		}
		lines = append(lines, head+": "+m.Title, m.Detail)
		if m.OccurredAt != nil {
			lines = append(lines, "occurred_at "+m.OccurredAt.UTC().Format(time.RFC3339))
		}
	case "directive":
		head := "Directive"
		if m.Code != "" {
			head += " to " + m.Code
		}
		lines = append(lines, head+": "+m.Title, "issued by "+m.Detail)
	default:
		lines = append(lines, "Floor: "+m.Title, "by "+m.Detail)
	}
	lines = append(lines, "system time "+m.At.UTC().Format(time.RFC3339Nano))
	return lines
}

// vttTime formats an offset as HH:MM:SS.mmm (hours may exceed two digits).
func vttTime(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// vttText makes one line of cue text safe: no line breaks (a blank line would
// end the cue), and &, < and > escaped, so neither markup nor "-->" can appear.
func vttText(s string) string {
	s = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)), " ")
	if s == "" {
		s = "-"
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// vttID makes a cue identifier: one line, without "-->".
func vttID(s string) string {
	s = strings.Join(strings.Fields(s), "_")
	return strings.ReplaceAll(s, "-->", "_")
}
