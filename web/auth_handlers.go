package web

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/auth"
	"github.com/opscenter/opscenter/store"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string         `json:"token"`
	ExpiresAt time.Time      `json:"expires_at"`
	Principal auth.Principal `json:"principal"`
}

func (s *Server) login(c *gin.Context) {
	var in loginRequest
	if err := decode(c, &in); err != nil {
		s.failErr(c, err)
		return
	}
	now := s.limiter.now()
	keys := []string{"u:" + in.Username, "ip:" + c.ClientIP()}
	for _, k := range keys {
		if wait := s.limiter.blocked(k, now); wait > 0 {
			c.Header("Retry-After", fmt.Sprint(int(math.Ceil(wait.Seconds()))))
			fail(c, http.StatusTooManyRequests, "rate_limited", "too many failed logins; wait and try again", "")
			return
		}
	}
	ttl := s.Config.HTTP.SessionTTL
	tok, p, err := s.Store.Login(c.Request.Context(), in.Username, in.Password, ttl)
	if errors.Is(err, auth.ErrBadPassword) {
		for _, k := range keys {
			s.limiter.fail(k, now)
		}
		fail(c, http.StatusUnauthorized, "bad_credentials", "wrong username or password", "")
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	for _, k := range keys {
		s.limiter.succeed(k)
	}
	s.setCookie(c, staffCookie, tok, ttl)
	c.JSON(http.StatusOK, loginResponse{Token: tok, ExpiresAt: time.Now().Add(ttl), Principal: p})
}

type joinRequest struct {
	Token string `json:"token"`
}

// join exchanges a join link's secret (kept in the URL fragment, never in server
// logs) for an HttpOnly session cookie.
func (s *Server) join(c *gin.Context) {
	var in joinRequest
	if err := decode(c, &in); err != nil {
		s.failErr(c, err)
		return
	}
	now := s.limiter.now()
	key := "ip:" + c.ClientIP()
	if wait := s.limiter.blocked(key, now); wait > 0 {
		c.Header("Retry-After", fmt.Sprint(int(math.Ceil(wait.Seconds()))))
		fail(c, http.StatusTooManyRequests, "rate_limited", "too many bad join links; wait and try again", "")
		return
	}
	ttl := s.Config.HTTP.SessionTTL
	tok, p, err := s.Store.ExchangeJoinToken(c.Request.Context(), in.Token, ttl)
	if errors.Is(err, store.ErrNotFound) {
		s.limiter.fail(key, now)
		fail(c, http.StatusUnauthorized, "bad_link", "this join link is not valid (it may have been replaced)", "token")
		return
	}
	if err != nil {
		s.failErr(c, err)
		return
	}
	s.setCookie(c, endpointCookie, tok, ttl)
	ep, err := s.Store.GetEndpoint(c.Request.Context(), p.EndpointCode)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"token": tok, "expires_at": time.Now().Add(ttl), "principal": p, "endpoint": ep})
}

func (s *Server) logout(c *gin.Context) {
	if tok, viaCookie := credential(c.Request); tok != "" && viaCookie {
		if err := s.Store.Logout(c.Request.Context(), tok); err != nil {
			s.failErr(c, err)
			return
		}
	}
	s.setCookie(c, staffCookie, "", -1)
	s.setCookie(c, endpointCookie, "", -1)
	c.Status(http.StatusNoContent)
}

func (s *Server) me(c *gin.Context) {
	p := principal(c)
	out := gin.H{"principal": p}
	if p.IsEndpoint() {
		ep, err := s.Store.GetEndpoint(c.Request.Context(), p.EndpointCode)
		if err != nil {
			s.failErr(c, err)
			return
		}
		out["endpoint"] = ep
	}
	if p.Scoped() {
		// The district the account is limited to, so a console can title itself.
		ep, err := s.Store.GetEndpoint(c.Request.Context(), p.District)
		if err != nil {
			s.failErr(c, err)
			return
		}
		out["district"] = ep
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) setCookie(c *gin.Context, name, value string, ttl time.Duration) {
	ck := &http.Cookie{
		Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: s.Config.HTTP.TLSCert != "",
	}
	if ttl < 0 {
		ck.MaxAge = -1
	} else {
		ck.MaxAge = int(ttl.Seconds())
	}
	http.SetCookie(c.Writer, ck)
}
