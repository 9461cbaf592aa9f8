package harness

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/google/uuid"
)

// CLI runs the server's own admin command (opscenter ARGS) against its
// database, with stdin; it returns the standard output.
func (s *Server) CLI(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, s.bin, args...)
	c.Env = s.env
	c.Dir = s.dir
	c.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("opscenter %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// credentials: join tokens for every endpoint and a leader (and an admin)
// through the CLI, their logins and a live session through the API.
func (s *Server) credentials(ctx context.Context, o Options) error {
	out, err := s.CLI(ctx, "", "endpoint", "token", "--all", "--rotate")
	if err != nil {
		return err
	}
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(rows) < 2 {
		return fmt.Errorf("endpoint token CSV: %v (%d rows)", err, len(rows))
	}
	s.Tokens = map[string]string{}
	for _, r := range rows[1:] {
		_, tok, ok := strings.Cut(r[4], "#t=")
		if !ok {
			return fmt.Errorf("join url without token: %q", r[4])
		}
		s.Tokens[r[0]] = tok
		s.Codes = append(s.Codes, r[0])
	}
	if s.StaffTok, err = s.user(ctx, "bench", "leader"); err != nil {
		return err
	}
	if o.Admin {
		if s.AdminTok, err = s.user(ctx, "bench-admin", "admin"); err != nil {
			return err
		}
	}
	if o.NoSession {
		return nil
	}
	id := uuid.NewString()
	now := time.Now().UTC()
	if err := s.API(ctx, "POST", "/api/v1/sessions", s.StaffTok, map[string]string{"id": id, "title": "harness",
		"planned_start": now.Format(time.RFC3339), "planned_end": now.Add(12 * time.Hour).Format(time.RFC3339)}, nil); err != nil {
		return err
	}
	if err := s.API(ctx, "POST", "/api/v1/sessions/"+id+"/start", s.StaffTok, nil, nil); err != nil {
		return err
	}
	s.SessionID = id
	return nil
}

// user creates a staff account through the CLI and logs it in.
func (s *Server) user(ctx context.Context, name, role string) (string, error) {
	pw := "harness-" + uuid.NewString()
	if _, err := s.CLI(ctx, pw+"\n", "user", "add", "--username", name, "--role", role); err != nil {
		return "", err
	}
	var login struct{ Token string }
	if err := s.API(ctx, "POST", "/api/v1/auth/login", "", map[string]string{"username": name, "password": pw}, &login); err != nil {
		return "", fmt.Errorf("login %s: %w", name, err)
	}
	return login.Token, nil
}

// API sends a JSON request to the server (with a bearer token, if any) and
// decodes a 2xx answer into out (if not nil).
func (s *Server) API(ctx context.Context, method, path, bearer string, body, out any) error {
	return API(ctx, s.URL, method, path, bearer, body, out)
}

// API sends a JSON request to the opscenter at base (a server the harness did
// not start, too) and decodes a 2xx answer into out (if not nil).
func API(ctx context.Context, base, method, path, bearer string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := do(ctx, method, base+path, bearer, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// do sends one request (JSON when it has a body) with a bearer token, if any.
func do(ctx context.Context, method, url, bearer string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return http.DefaultClient.Do(req)
}

// writeRoster writes a synthetic roster: the command room 22, 13 districts
// and n communes (codes 9xxxx), for fanout runs beyond the real 177 communes.
func writeRoster(file string, n int) error {
	var b strings.Builder
	b.WriteString("code\tname\tkind\tunit_type\tparent_code\n")
	b.WriteString("22\tTỉnh Quảng Ninh\tprovince\tTỉnh\t\n")
	for d := 0; d < 13; d++ {
		fmt.Fprintf(&b, "%d\tHuyện tổng hợp %d\tdistrict\tHuyện\t22\n", 901+d, d+1)
	}
	for c := 0; c < n; c++ {
		fmt.Fprintf(&b, "9%04d\tXã tổng hợp %d\tcommune\tXã\t%d\n", c+1, c+1, 901+c%13)
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}
