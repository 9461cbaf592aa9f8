package web_test

import (
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opscenter/opscenter/store"
)

// TestReportMomentLinks: the printable report links each incident to its moment
// on the video (the desk's player at the incident's system time) for staff who may
// watch the record, and a district's report, whose reader may not, has no link.
func TestReportMomentLinks(t *testing.T) {
	f := newScopeFixture(t)
	path := "/api/v1/sessions/" + f.sess.ID + "/report.html"
	_, raw := f.lead.Do("GET", path, nil, nil, 200)
	page := string(raw)
	for _, inc := range []store.Incident{f.incA, f.incB} {
		m := regexp.MustCompile(`<a class="moment" href="([^"]*)" data-incident="` + inc.ID + `">`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no link to the moment of incident %s", inc.ID)
		}
		href := html.UnescapeString(m[1])
		frag, ok := strings.CutPrefix(href, "/desk#player?")
		if !ok {
			t.Fatalf("incident %s links to %q, want the desk's player", inc.ID, href)
		}
		q, err := url.ParseQuery(frag)
		if err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339Nano, q.Get("at"))
		if q.Get("session") != f.sess.ID || err != nil || !at.Equal(inc.CreatedAt) {
			t.Fatalf("incident %s (recorded %s) links to %q", inc.ID, inc.CreatedAt.Format(time.RFC3339Nano), href)
		}
	}
	_, raw = f.dutyA.Do("GET", path, nil, nil, 200)
	if strings.Contains(string(raw), `class="moment"`) {
		t.Fatal("a district's report links to the video, which its reader may not see")
	}
}
