package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"
)

// The browser apps live in static/: plain ES modules, CSS and one HTML page per app.
// Assets are served under /static/<hash>/, where hash covers every asset, so a page
// always loads one consistent set and browsers may cache assets for a year. Modules
// import each other by relative path and so stay inside the same hashed folder.
//
//go:embed static
var staticFiles embed.FS

// appPages maps each app's URL to its HTML file under static/pages.
var appPages = map[string]string{
	"/join":    "join.html",
	"/login":   "login.html",
	"/console": "console.html",
	"/desk":    "desk.html",
	"/wall":    "wall.html",
}

// staticPlaceholder is replaced in pages by the hashed asset prefix.
const staticPlaceholder = "{{static}}"

// contentSecurityPolicy allows only this origin's scripts, styles and sockets, and
// media from getUserMedia/WebRTC (blob:/mediastream:). No inline script or style.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; " +
	"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// appAssets is the embedded app bundle, with its hash and rendered pages.
type appAssets struct {
	files fs.FS             // rooted at static/
	hash  string            // content hash of every asset
	pages map[string][]byte // URL path → HTML with hashed asset URLs
}

// loadAppAssets hashes the bundle and renders the pages. It fails only if the
// embedded files are broken, which is a build error.
func loadAppAssets(files fs.FS) (*appAssets, error) {
	var names []string
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasPrefix(p, "pages/") {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(files, n)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	a := &appAssets{files: files, hash: hex.EncodeToString(h.Sum(nil))[:16], pages: map[string][]byte{}}
	prefix := []byte("/static/" + a.hash)
	for route, file := range appPages {
		b, err := fs.ReadFile(files, "pages/"+file)
		if err != nil {
			return nil, err
		}
		a.pages[route] = bytes.ReplaceAll(b, []byte(staticPlaceholder), prefix)
	}
	return a, nil
}

// appRoutes serves the embedded browser apps (/join, /login, /console, /desk, /wall).
func (s *Server) appRoutes() {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the folder
	}
	a, err := loadAppAssets(sub)
	if err != nil {
		panic(fmt.Sprintf("embedded apps: %v", err))
	}
	for route := range appPages {
		s.engine.GET(route, a.page)
	}
	s.engine.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/login") })
	s.engine.GET("/static/:hash/*file", a.asset)
}

// securityHeaders are set on every page and asset.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
}

func (a *appAssets) page(c *gin.Context) {
	securityHeaders(c)
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "text/html; charset=utf-8", a.pages[c.FullPath()])
}

// asset serves one file. With the current hash it may be cached for a year; an old
// hash (a page loaded before a deploy) still gets the current file, uncached.
func (a *appAssets) asset(c *gin.Context) {
	name := strings.TrimPrefix(path.Clean(c.Param("file")), "/")
	if name == "" || strings.HasPrefix(name, "pages/") || !fs.ValidPath(name) {
		fail(c, http.StatusNotFound, "not_found", "no such asset", "")
		return
	}
	b, err := fs.ReadFile(a.files, name)
	if err != nil {
		fail(c, http.StatusNotFound, "not_found", "no such asset", "")
		return
	}
	securityHeaders(c)
	if c.Param("hash") == a.hash {
		c.Header("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		c.Header("Cache-Control", "no-cache")
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	case ".json":
		ctype = "application/json"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	c.Header("ETag", `"`+a.hash+`"`)
	if c.GetHeader("If-None-Match") == `"`+a.hash+`"` {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, ctype, b)
}
