package web_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/internal/app/apptest"
	"github.com/opscenter/opscenter/internal/config"
	"github.com/opscenter/opscenter/recording"
	"github.com/opscenter/opscenter/store"
)

// recordVP8 writes a few seconds of made-up VP8 (a keyframe each second) into a
// recording of the running app and closes it.
func recordVP8(t *testing.T, a *apptest.App, sessionID string) store.Recording {
	t.Helper()
	if a.Recordings == nil {
		t.Fatal("the app has no recording manager")
	}
	h, err := a.Recordings.Start(context.Background(), sessionID, recording.Program, "22")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	pz := rtp.NewPacketizer(1200, 96, 1, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewFixedSequencer(0), 90000)
	for i := 0; i < 70; i++ {
		fr := make([]byte, 3000)
		if i%30 == 0 {
			fr = make([]byte, 20000)
		}
		rng.Read(fr)
		if i%30 == 0 {
			copy(fr, []byte{0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01})
		} else {
			fr[0] |= 1
		}
		for _, p := range pz.Packetize(fr, 3000) {
			if err := h.Recorder().WriteVideoRTP(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	row, err := h.Close()
	if err != nil {
		t.Fatal(err)
	}
	return row
}

func TestRecordingAPI(t *testing.T) {
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	obs := a.User("obs", auth.RoleObserver)
	coTo := a.Endpoint("07192")
	anon := a.Anon()
	sess := startSession(t, lead)
	rec := recordVP8(t, a, sess.ID)
	file, err := os.ReadFile(a.Recordings.Path(rec))
	if err != nil {
		t.Fatal(err)
	}

	var list struct{ Recordings []store.Recording }
	obs.Do("GET", "/api/v1/recordings?session="+sess.ID, nil, &list, 200)
	if len(list.Recordings) != 1 || list.Recordings[0].ID != rec.ID || *list.Recordings[0].Size != int64(len(file)) {
		t.Fatalf("list %+v", list)
	}
	obs.Do("GET", "/api/v1/recordings?session="+uuid.NewString(), nil, &list, 200)
	if len(list.Recordings) != 0 {
		t.Fatalf("another session's list %+v", list)
	}
	obs.Do("GET", "/api/v1/recordings?session=nope", nil, nil, 400)

	media := "/api/v1/recordings/" + rec.ID + "/media"
	get := func(c *apptest.Client, rng string) *http.Response {
		req, _ := http.NewRequest("GET", c.Base+media, nil)
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := get(obs, "")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/webm" || !bytes.Equal(body, file) ||
		resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("ETag") != `"`+*rec.SHA256+`"` {
		t.Fatalf("whole file: %d %v, %d bytes of %d", resp.StatusCode, resp.Header, len(body), len(file))
	}
	resp = get(lead, "bytes=1000-1999")
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 206 || !bytes.Equal(body, file[1000:2000]) ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(file)) {
		t.Fatalf("range: %d %v, %d bytes", resp.StatusCode, resp.Header, len(body))
	}
	resp = get(lead, "bytes=-100")
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 206 || !bytes.Equal(body, file[len(file)-100:]) {
		t.Fatalf("suffix range: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp := get(lead, fmt.Sprintf("bytes=%d-", len(file)+10)); resp.StatusCode != 416 {
		t.Fatalf("unsatisfiable range: %d", resp.StatusCode)
	}

	req, _ := http.NewRequest("HEAD", obs.Base+media, nil)
	req.Header.Set("Authorization", "Bearer "+obs.Token)
	if resp, err := obs.HTTP.Do(req); err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(file)) {
		t.Fatalf("HEAD: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// An endpoint never sees the record, not even that it exists.
	for _, path := range []string{"/api/v1/recordings?session=" + sess.ID, "/api/v1/recordings/" + rec.ID, media,
		"/api/v1/sessions/" + sess.ID + "/markers.vtt"} {
		coTo.Do("GET", path, nil, nil, 404)
		anon.Do("GET", path, nil, nil, 401)
	}
	obs.Do("GET", "/api/v1/recordings/"+uuid.NewString()+"/media", nil, nil, 404)

	// A file gone from disk is 404 file_missing; a deleted recording is 410.
	if err := os.Remove(a.Recordings.Path(rec)); err != nil {
		t.Fatal(err)
	}
	var e apiErr
	obs.Do("GET", media, nil, &e, 404)
	if e.Error != "file_missing" {
		t.Fatalf("missing file: %+v", e)
	}
	if _, err := a.Store.MarkDeleted(context.Background(), "system", rec.ID, "retention"); err != nil {
		t.Fatal(err)
	}
	obs.Do("GET", media, nil, nil, 410)
}

func TestMarkersVTT(t *testing.T) {
	ctx := context.Background()
	a := apptest.Start(t, nil)
	lead := a.User("lead", auth.RoleLeader)
	duty := a.User("duty", auth.RoleDuty)
	obs := a.User("obs", auth.RoleObserver)

	start := time.Now()
	var unstarted store.Session
	lead.Do("POST", "/api/v1/sessions", map[string]any{"id": uuid.NewString(), "title": "later",
		"planned_start": start.Add(24 * time.Hour), "planned_end": start.Add(30 * time.Hour)}, &unstarted, 201)
	obs.Do("GET", "/api/v1/sessions/"+unstarted.ID+"/markers.vtt", nil, nil, 409)
	obs.Do("GET", "/api/v1/sessions/"+uuid.NewString()+"/markers.vtt", nil, nil, 404)

	sess := startSession(t, lead)
	occurred := time.Now().Add(-5 * time.Minute).UTC().Truncate(time.Second)
	body := incidentBody("07192", "Cử tri sốt --> cách ly <b>ngay</b> & báo cáo\n\nWEBVTT")
	body["occurred_at"] = occurred
	var inc store.Incident
	duty.Do("POST", "/api/v1/incidents", body, &inc, 201)
	time.Sleep(20 * time.Millisecond)
	var dir store.Directive
	lead.Do("POST", "/api/v1/directives", map[string]any{"id": uuid.NewString(), "text": "Cách ly --> ngay",
		"targets": map[string]any{"endpoints": []string{"07192"}}}, &dir, 201)
	floorID, err := a.Store.RecordEvent(ctx, store.Event{Actor: "user:lead", Action: "floor.given", Entity: "endpoint",
		EntityID: "07192", SessionID: &sess.ID})
	if err != nil {
		t.Fatal(err)
	}

	_, raw := obs.Do("GET", "/api/v1/sessions/"+sess.ID+"/markers.vtt", nil, nil, 200)
	vtt := string(raw)
	t.Logf("%s", vtt)
	if !strings.HasPrefix(vtt, "WEBVTT\n\n") {
		t.Fatalf("header: %q", vtt)
	}
	cues := strings.Split(strings.TrimPrefix(vtt, "WEBVTT\n\n"), "\n\n")
	if len(cues) != 3 {
		t.Fatalf("%d cues, want 3 (incident, directive, floor)", len(cues))
	}
	timing := regexp.MustCompile(`^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$`)
	wantIDs := []string{inc.ID, dir.ID, fmt.Sprint(floorID)}
	sysTimes := []time.Time{inc.CreatedAt, dir.CreatedAt}
	for i, cue := range cues {
		lines := strings.Split(strings.TrimRight(cue, "\n"), "\n")
		if lines[0] != wantIDs[i] {
			t.Errorf("cue %d id %q, want %q", i, lines[0], wantIDs[i])
		}
		m := timing.FindStringSubmatch(lines[1])
		if m == nil {
			t.Fatalf("cue %d timing %q", i, lines[1])
		}
		h, _ := strconv.Atoi(m[1]) // not Sscan: "037" would be octal
		mi, _ := strconv.Atoi(m[2])
		s, _ := strconv.Atoi(m[3])
		ms, _ := strconv.Atoi(m[4])
		off := time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second + time.Duration(ms)*time.Millisecond
		if i < len(sysTimes) {
			want := sysTimes[i].Sub(*sess.ActualStart).Truncate(time.Millisecond)
			if off != want {
				t.Errorf("cue %d at %v, want the system time's offset %v", i, off, want)
			}
		}
		for _, l := range lines[2:] {
			if strings.Contains(l, "-->") || strings.Contains(l, "<b>") || l == "" || l == "WEBVTT" {
				t.Errorf("cue %d text not escaped: %q", i, l)
			}
		}
	}
	if !strings.Contains(cues[0], "occurred_at "+occurred.Format(time.RFC3339)) ||
		!strings.Contains(cues[0], "--&gt; cách ly &lt;b&gt;ngay&lt;/b&gt; &amp; báo cáo WEBVTT") {
		t.Errorf("incident cue: %q", cues[0])
	}

	// Relative to one recording: offsets from its start, only cues within it.
	rec := recordVP8(t, a, sess.ID)
	_, raw = obs.Do("GET", "/api/v1/sessions/"+sess.ID+"/markers.vtt?recording="+rec.ID, nil, nil, 200)
	if strings.TrimSpace(string(raw)) != "WEBVTT" {
		t.Fatalf("markers within a later recording: %q", raw)
	}
	obs.Do("GET", "/api/v1/sessions/"+sess.ID+"/markers.vtt?recording="+uuid.NewString(), nil, nil, 404)
}

// TestRecordingDiskLowAlert starts the app with less free space than
// recording.min_free: no recording starts, the gauge is 1, and the consoles get
// a recording.disk_low event on the audit stream. The rest of the app runs.
func TestRecordingDiskLowAlert(t *testing.T) {
	a := apptest.Start(t, func(c *config.Config) { c.Recording.MinFree = 1 << 60 })
	lead := a.User("lead", auth.RoleLeader)
	sess := startSession(t, lead) // the session runs without the record
	if _, err := a.Recordings.Start(context.Background(), sess.ID, recording.Program, "22"); !errors.Is(err, recording.ErrDiskLow) {
		t.Fatalf("start with the disk low: %v", err)
	}
	evs, err := a.Store.EventsAfter(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		found = found || e.Action == "recording.disk_low" && strings.Contains(string(e.After), "min_free_bytes")
	}
	if !found {
		t.Fatal("no recording.disk_low event for the consoles")
	}
	resp, err := http.Get(a.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "\nopscenter_recording_disk_low 1\n") {
		t.Fatalf("metrics: no opscenter_recording_disk_low 1")
	}
}
