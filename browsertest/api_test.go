package browsertest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// call sends a JSON request with a bearer token (a staff login token or an
// endpoint's join token) and decodes the answer into out.
func call(t testing.TB, method, url, token string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Origin", req.URL.Scheme+"://"+req.URL.Host)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// staffToken logs in through the API and returns the session token.
func staffToken(t testing.TB, base, user, pw string) string {
	t.Helper()
	var out struct{ Token string }
	if st := call(t, "POST", base+"/api/v1/auth/login", "", map[string]string{"username": user, "password": pw}, &out); st != 200 {
		t.Fatalf("login %s: status %d", user, st)
	}
	return out.Token
}
