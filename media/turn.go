package media

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST credentials are defined with HMAC-SHA1
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// The TURN REST credential scheme lives here because both sides use it: the
// engine's TURN server (package sfu) checks passwords, signaling hands
// credentials to clients in welcome and in WHIP/WHEP Link headers.

// TURNCredentials returns REST-style TURN credentials valid for ttl, for the
// configured Secret: username "<expiry unix>:<id>", password
// base64(HMAC-SHA1(secret, username)). Use them in the client's iceServers
// together with TURNURLs.
func TURNCredentials(secret, id string, ttl time.Duration) (username, password string) {
	username = fmt.Sprintf("%d", time.Now().Add(ttl).Unix())
	if id != "" {
		username += ":" + strings.ReplaceAll(id, ":", "_")
	}
	return username, TURNPassword(secret, username)
}

// TURNPassword is the REST-style password of username for secret:
// base64(HMAC-SHA1(secret, username)). The embedded TURN server checks
// it, and TURNCredentials hands it out.
func TURNPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
