package web

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/opscenter/opscenter/store"
)

// FuzzDecode feeds arbitrary bodies to the strict JSON decoder used by every write:
// it must never panic, and every failure must be a client error (400 or 413) that
// says what is wrong, never a 500.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"id":"6f1c7e0e-0a53-4a6f-9e57-0a7e1b1f2c3d","title":"Bầu cử","planned_start":"2021-05-23T06:30:00+07:00","planned_end":"2021-05-23T19:00:00+07:00"}`,
		`{"title":`, ``, `null`, `[]`, `{"x":1}`, `{"title":5}`, `{"planned_start":"tomorrow"}`, `{} {}`,
		"{\"title\":\"\xff\xfe\"}", `{"title":"\u0000"}`, `{"id":"a","id":"b"}`, `{"planned_start":"2021-13-45T99:00:00Z"}`,
	} {
		f.Add([]byte(s))
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{}
	s.Config.HTTP.MaxBodyBytes = 4096
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest("POST", "/api/v1/sessions", bytes.NewReader(body))
		c.Request.Body = http.MaxBytesReader(w, c.Request.Body, s.Config.HTTP.MaxBodyBytes)
		var in store.NewSession
		err := decode(c, &in)
		if err == nil {
			return
		}
		var de *decodeError
		if !errors.As(err, &de) {
			t.Fatalf("non-decode error %T %v", err, err)
		}
		if de.status != http.StatusBadRequest && de.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d for %q", de.status, body)
		}
		if de.msg == "" || de.code == "" {
			t.Fatalf("error without a message: %+v", de)
		}
	})
}
