package web_test

import (
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/opscenter/opscenter/internal/app/apptest"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var assetRef = regexp.MustCompile(`(?:src|href)="(/static/[0-9a-f]+/[^"]+)"`)

// TestAppPagesAndAssetCaching checks that each app page is served uncached with a
// strict CSP, and that its hashed assets are immutable and of the right type.
func TestAppPagesAndAssetCaching(t *testing.T) {
	a := apptest.Start(t, nil)
	for _, page := range []string{"/join", "/login", "/console", "/desk"} {
		resp, body := get(t, a.URL()+page)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", page, resp.StatusCode)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q, want no-cache", page, cc)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", page, csp)
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: Content-Type %q", page, resp.Header.Get("Content-Type"))
		}
		if strings.Contains(body, "{{static}}") {
			t.Errorf("%s: placeholder left in page", page)
		}
		refs := assetRef.FindAllStringSubmatch(body, -1)
		if len(refs) < 2 {
			t.Fatalf("%s: want a stylesheet and a script, found %v", page, refs)
		}
		for _, m := range refs {
			ar, _ := get(t, a.URL()+m[1])
			if ar.StatusCode != 200 {
				t.Errorf("%s → %s: status %d", page, m[1], ar.StatusCode)
			}
			if cc := ar.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
				t.Errorf("%s: Cache-Control %q", m[1], cc)
			}
			want := "text/css"
			if strings.HasSuffix(m[1], ".js") {
				want = "text/javascript"
			}
			if !strings.HasPrefix(ar.Header.Get("Content-Type"), want) {
				t.Errorf("%s: Content-Type %q, want %s", m[1], ar.Header.Get("Content-Type"), want)
			}
		}
	}

	// An old hash gets the current file, but uncached; a missing file is a 404, and
	// the page templates are not assets.
	resp, _ := get(t, a.URL()+"/static/0000000000000000/js/api.js")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("old hash: status %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	for _, p := range []string{"/static/0/js/nope.js", "/static/0/pages/join.html", "/static/0/../apps.go"} {
		if resp, _ := get(t, a.URL()+p); resp.StatusCode != 404 {
			t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
		}
	}
	// The root sends people to the login page.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := c.Get(a.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusFound || r.Header.Get("Location") != "/login" {
		t.Errorf("/: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
}

var (
	importRe = regexp.MustCompile(`(?m)^\s*import\s[^'"]*['"](\./[^'"]+)['"]`)
	inlineRe = regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|\sstyle=|\son[a-z]+=`)
)

// TestStaticModulesResolve checks, without a browser, that every relative module
// import names a file that exists, and that no page has inline script, style or
// event handler attributes (the CSP would block them).
func TestStaticModulesResolve(t *testing.T) {
	root := "static"
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch filepath.Ext(p) {
		case ".js":
			for _, m := range importRe.FindAllStringSubmatch(string(b), -1) {
				if _, err := os.Stat(filepath.Join(filepath.Dir(p), m[1])); err != nil {
					t.Errorf("%s imports %s: %v", p, m[1], err)
				}
			}
		case ".html":
			if m := inlineRe.FindString(string(b)); m != "" {
				t.Errorf("%s: inline code or style %q", p, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
