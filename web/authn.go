package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
)

// Cookie names: staff, endpoint and wall sessions are kept apart so that a desk PC
// that opens a join link (or a wall link) does not lose its staff login.
const (
	staffCookie    = "ops_session"
	endpointCookie = "ops_endpoint"
	wallCookie     = "ops_wall"
)

// authenticate resolves the request's credential, if any, into a principal on the
// request context. Routes decide with need() whether one is required.
func (s *Server) authenticate(c *gin.Context) {
	tok, viaCookie := credential(c.Request)
	if tok == "" {
		c.Next()
		return
	}
	p, err := s.resolve(c.Request.Context(), tok)
	if errors.Is(err, store.ErrNotFound) && viaCookie {
		// A stale or revoked cookie must not lock the browser out of /login or of a
		// new join link: drop it and carry on as anonymous; need() decides the rest.
		for _, name := range []string{staffCookie, endpointCookie, wallCookie} {
			if ck, err := c.Request.Cookie(name); err == nil && ck.Value == tok {
				s.setCookie(c, name, "", -1)
			}
		}
		c.Next()
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		fail(c, http.StatusUnauthorized, "unauthorized", "the credential is unknown, expired or revoked", "")
		return
	}
	if err != nil {
		s.Log.Warn("resolve credential", "err", err)
		c.Header("Retry-After", "5")
		fail(c, http.StatusServiceUnavailable, "database_unavailable", "cannot check credentials right now; retry shortly", "")
		return
	}
	c.Set("viaCookie", viaCookie)
	c.Request = c.Request.WithContext(auth.WithPrincipal(c.Request.Context(), p))
	c.Next()
}

// credential picks the request's credential: a bearer token first; otherwise a
// cookie. A browser can hold both cookies (a leader who opens a join link in the
// browser where they are logged in), so the page says who it acts as with the
// query parameter as: "endpoint" takes only ops_endpoint (the join page), "staff"
// only ops_session (console, desk), "wall" only ops_wall (the press wall). Without
// it the staff cookie wins, then the endpoint's, then the wall's.
func credential(r *http.Request) (tok string, viaCookie bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t), false
		}
		return "", false
	}
	names := []string{staffCookie, endpointCookie, wallCookie}
	switch r.URL.Query().Get("as") {
	case "endpoint":
		names = []string{endpointCookie}
	case "staff":
		names = []string{staffCookie}
	case "wall":
		names = []string{wallCookie}
	}
	for _, name := range names {
		if ck, err := r.Cookie(name); err == nil && ck.Value != "" {
			return ck.Value, true
		}
	}
	return "", false
}

// checkOrigin refuses cross-site state changes (CSRF) and cross-site WebSocket
// upgrades for cookie-authenticated requests. SameSite=Strict already keeps the
// cookie off cross-site requests; this is the second lock. Bearer clients send no
// cookie and are not exposed to CSRF.
func (s *Server) checkOrigin(c *gin.Context) {
	r := c.Request
	safe := r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions
	isWS := strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
	_, viaCookie := credential(r)
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = r.Header.Get("Referer")
	}
	// Login and join set cookies: a browser always sends Origin on a POST, so check it
	// when present; API clients (no Origin, no cookie) are not exposed to CSRF.
	loginChecked := isCookieLogin(r) && origin != ""
	if (safe && !isWS) || (!viaCookie && !loginChecked) {
		c.Next()
		return
	}
	if origin == "" || !s.originAllowed(origin, r.Host) {
		fail(c, http.StatusForbidden, "bad_origin", "cross-site request refused", "")
		return
	}
	c.Next()
}

// isCookieLogin marks the routes that set cookies: they need the Origin check too.
func isCookieLogin(r *http.Request) bool {
	return r.URL.Path == "/api/v1/auth/login" || r.URL.Path == "/api/v1/auth/join" || r.URL.Path == "/api/v1/auth/wall"
}

func (s *Server) originAllowed(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if u.Host == host {
		return true
	}
	if pu, err := url.Parse(s.Config.HTTP.PublicURL); err == nil && pu.Host == u.Host {
		return true
	}
	for _, o := range s.Config.HTTP.AllowedOrigins {
		if ou, err := url.Parse(o); err == nil && ou.Host == u.Host {
			return true
		}
	}
	return false
}

// loginLimiter slows password guessing: after max failures within window for a
// username or a client address, further attempts wait out an exponential back-off.
//
// Its clock is a field, so that a test controls time instead of racing the wall
// clock (a slow -race run can outlast a one-second back-off).
type loginLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	fails  map[string]*failState
	clock  func() time.Time
}

type failState struct {
	n     int
	first time.Time
	until time.Time
}

// newLoginLimiter returns a limiter on the wall clock; now, if not nil, replaces it.
func newLoginLimiter(max int, window time.Duration, now func() time.Time) *loginLimiter {
	if now == nil {
		now = time.Now
	}
	return &loginLimiter{max: max, window: window, fails: map[string]*failState{}, clock: now}
}

// now is the limiter's current time.
func (l *loginLimiter) now() time.Time {
	l.mu.Lock()
	clock := l.clock
	l.mu.Unlock()
	return clock()
}

// setClock replaces the limiter's clock (tests).
func (l *loginLimiter) setClock(now func() time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clock = now
}

// blocked returns how long key must still wait.
func (l *loginLimiter) blocked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.fails[key]; f != nil && now.Before(f.until) {
		return f.until.Sub(now)
	}
	return 0
}

func (l *loginLimiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[key]
	if f == nil || now.Sub(f.first) > l.window && now.After(f.until) {
		f = &failState{first: now}
		l.fails[key] = f
	}
	f.n++
	if f.n >= l.max {
		backoff := time.Second << min(f.n-l.max, 8) // 1 s, 2 s, … up to about 4 min
		f.until = now.Add(backoff)
	}
	if len(l.fails) > 10000 { // bound memory under a spray of usernames
		for k, v := range l.fails {
			if now.Sub(v.first) > l.window && now.After(v.until) {
				delete(l.fails, k)
			}
		}
	}
}

func (l *loginLimiter) succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}
