// Package auth holds who may do what: principals, roles and their capabilities,
// password hashing and secret tokens. Roles are enforced on the server with these.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// Role is a staff role.
type Role string

// The staff roles, from most to least powerful.
const (
	RoleAdmin    Role = "admin"
	RoleLeader   Role = "leader"
	RoleDuty     Role = "duty"
	RoleObserver Role = "observer"
)

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleLeader, RoleDuty, RoleObserver:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want admin, leader, duty or observer)", s)
}

// Capability is something a request may need.
type Capability int

// Capabilities, following the roles table in DESIGN.md.
const (
	CapRead       Capability = iota // read the wall, the log, the report, the event stream
	CapWriteLog                     // write incidents, issue directives, acknowledge on behalf
	CapRunSession                   // start/end, floor, mute, private line, roll call
	CapAdmin                        // manage users and endpoint links
)

var roleCaps = map[Role][]Capability{
	RoleAdmin:    {CapRead, CapWriteLog, CapRunSession, CapAdmin},
	RoleLeader:   {CapRead, CapWriteLog, CapRunSession},
	RoleDuty:     {CapRead, CapWriteLog},
	RoleObserver: {CapRead},
}

// Principal is who a request acts as: a staff member, one endpoint, or a press
// wall.
type Principal struct {
	UserID       int64  `json:"user_id,omitempty"`
	Username     string `json:"username,omitempty"`
	Role         Role   `json:"role,omitempty"`
	EndpointCode string `json:"endpoint_code,omitempty"`
	// District, for district-scoped staff ("phân quyền điều hành"), is the district
	// code the account is limited to: that district and its communes. Empty means
	// the whole province.
	District string `json:"district,omitempty"`
	// Wall names a press wall's link: it receives the program, the floor, turnout
	// and session state, and may do nothing else (no capability, no scope, never an
	// endpoint).
	Wall string `json:"wall,omitempty"`
}

// IsWall reports whether the principal is a press wall's link.
func (p Principal) IsWall() bool { return p.Wall != "" }

// IsEndpoint reports whether the principal is an endpoint's join credential.
func (p Principal) IsEndpoint() bool { return p.EndpointCode != "" }

// Scoped reports whether the principal is staff limited to one district.
func (p Principal) Scoped() bool { return !p.IsEndpoint() && !p.IsWall() && p.District != "" }

// InScope reports whether the unit code is within what the principal may see and
// act on. Unscoped staff reach every unit; district-scoped staff their district and
// the units whose parent it is (parentOf returns a code's parent, "" when unknown);
// an endpoint only itself; a wall none (it reads the province's roll-up only).
func (p Principal) InScope(code string, parentOf func(string) string) bool {
	switch {
	case p.IsWall():
		return false
	case p.IsEndpoint():
		return code == p.EndpointCode
	case !p.Scoped():
		return true
	case code == "":
		return false
	case code == p.District:
		return true
	}
	return parentOf != nil && parentOf(code) == p.District
}

// Can reports whether a staff principal has capability c. Endpoints and walls have
// none of the staff capabilities; what they may do is checked per route (only as themselves).
// District-scoped staff never run the session nor administer: session control
// stays with the province, whatever the role.
func (p Principal) Can(c Capability) bool {
	if p.IsEndpoint() || p.IsWall() {
		return false
	}
	if p.Scoped() && (c == CapRunSession || c == CapAdmin) {
		return false
	}
	for _, x := range roleCaps[p.Role] {
		if x == c {
			return true
		}
	}
	return false
}

// Actor names the principal in the audit log: "user:NAME", "endpoint:CODE" or
// "wall:NAME".
func (p Principal) Actor() string {
	if p.IsEndpoint() {
		return "endpoint:" + p.EndpointCode
	}
	if p.IsWall() {
		return "wall:" + p.Wall
	}
	return "user:" + p.Username
}

// ErrBadPassword means the password did not match.
var ErrBadPassword = errors.New("wrong username or password")

// HashPassword hashes with bcrypt at its default cost.
func HashPassword(pw string) (string, error) {
	if len(pw) < 10 {
		return "", errors.New("password must have at least 10 characters")
	}
	if len(pw) > 72 {
		return "", errors.New("password must have at most 72 bytes (bcrypt's limit)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword compares in constant time.
func CheckPassword(hash, pw string) error {
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)); err != nil {
		return ErrBadPassword
	}
	return nil
}

// NewToken returns a random URL-safe secret with 256 bits of entropy.
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the OS has no entropy: nothing is safe
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewPassword returns a generated password for demo and bootstrap accounts.
func NewPassword() string { return NewToken()[:20] }

// HashToken is what the database keeps of a token: only its SHA-256.
func HashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p; the web layer sets it once per request.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the request's principal, if it was authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}
