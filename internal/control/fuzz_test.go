package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bodies to DecodeRequest for both
// request types: it must never panic, every error must wrap ErrInvalid,
// and whatever it accepts must survive a JSON round trip unchanged.
// Seeds: testdata/fuzz/FuzzDecodeRequest and the f.Add calls below.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"hard":true,"hold":2000000000}`,
		`{"backend":"talos","server":"cp1","action":"drain"}`,
		`{}`, ``, `null`, `[]`, `{"hard":"yes"}`, `{"hold":1e400}`,
		`{"unknown":1}`, `{"hard":true}{"hard":false}`, `{"backend":"a"} x`,
		`{"action":"\ud800"}`, `{"hold":-9223372036854775808}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(v any) {
			err := DecodeRequest(bytes.NewReader(body), v)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v does not wrap ErrInvalid", err)
				}
				return
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("accepted %q but cannot re-encode %+v: %v", body, v, err)
			}
			w := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := DecodeRequest(bytes.NewReader(b), w); err != nil {
				t.Fatalf("re-encoded %s rejected: %v", b, err)
			}
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("round trip changed %+v into %+v", v, w)
			}
		}
		check(&DrillRequest{})
		check(&ServerRequest{})
	})
}

// fakeService records calls; it never errors.
type fakeService struct {
	drills, servers int
	reloads         atomic.Int32
}

func (s *fakeService) Status() Status { return Status{Node: "lb1"} }
func (s *fakeService) Drill(context.Context, DrillRequest) (DrillResult, error) {
	s.drills++
	return DrillResult{From: "lb1", To: "lb2"}, nil
}
func (s *fakeService) Server(context.Context, ServerRequest) error { s.servers++; return nil }
func (s *fakeService) Reload(context.Context) (ReloadResult, error) {
	s.reloads.Add(1)
	return ReloadResult{}, nil
}

// TestHandlerRejectsBadBodies: malformed JSON, unknown fields, wrong
// types, trailing data and oversized bodies get 400 with a message that
// says what is wrong, and the service is never called.
func TestHandlerRejectsBadBodies(t *testing.T) {
	big := `{"backend":"` + strings.Repeat("a", maxBody+10) + `"}`
	cases := []struct {
		name, path, body, want string
	}{
		{"malformed drill", "/v1/drill", `{"hard":tru`, "request body"},
		{"malformed server", "/v1/server", `{backend: talos}`, "invalid character"},
		{"unknown field", "/v1/server", `{"backend":"talos","server":"cp1","action":"drain","force":true}`, `unknown field "force"`},
		{"wrong type", "/v1/drill", `{"hard":"yes"}`, "cannot unmarshal"},
		{"trailing data", "/v1/drill", `{"hard":true} {"hard":false}`, "trailing data"},
		{"oversized", "/v1/server", big, "request body"},
		// A valid object followed by padding past the size limit: the
		// part beyond maxBody is never looked at.
		{"oversized after a valid object", "/v1/server", `{"backend":"talos"}` + strings.Repeat(" ", maxBody) + `{"x":1}`, "request body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svc := &fakeService{}
			h := (&API{Service: svc}).Handler()
			rec := httptest.NewRecorder()
			req := asRoot(httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body)))
			h.ServeHTTP(rec, req)
			var e Error
			json.Unmarshal(rec.Body.Bytes(), &e)
			if rec.Code != http.StatusBadRequest {
				t.Errorf("status %d, want 400 (body %q)", rec.Code, trunc(rec.Body.String()))
			}
			if !strings.Contains(e.Error, c.want) {
				t.Errorf("error %q, want it to say %q", trunc(e.Error), c.want)
			}
			if svc.drills+svc.servers != 0 {
				t.Errorf("the service was called for a rejected body")
			}
		})
	}
	// A good body still works.
	svc := &fakeService{}
	rec := httptest.NewRecorder()
	(&API{Service: svc}).Handler().ServeHTTP(rec, asRoot(httptest.NewRequest(http.MethodPost, "/v1/server", strings.NewReader(`{"backend":"talos","server":"cp1","action":"drain"}`))))
	if rec.Code != http.StatusOK || svc.servers != 1 {
		t.Errorf("good request: %d %s, service calls %d", rec.Code, rec.Body, svc.servers)
	}
}

// asRoot gives a request the credentials of root, as the socket would.
func asRoot(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), credKey{}, peer{cred: &peerCred{}}))
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
