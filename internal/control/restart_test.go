package control

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// restartService is a Service that can restart itself.
type restartService struct {
	plainService
	calls int
	res   RestartResult
	err   error
}

func (s *restartService) Restart(context.Context) (RestartResult, error) {
	s.calls++
	return s.res, s.err
}

// The restart route exists only for a Service that implements it, needs
// the caller's credentials like every mutating route, answers the result
// (a rollback too: its outcome says so) and maps a refusal to 409.
func TestRestartRoute(t *testing.T) {
	svc := &restartService{res: RestartResult{Outcome: RestartHandedOver, OldPID: 10, NewPID: 11}}
	h := (&API{Service: svc}).Handler()
	post := func(root bool) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/restart", strings.NewReader(`{}`))
		if root {
			req = asRoot(req)
		}
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := post(true); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"outcome": "handed-over"`) || !strings.Contains(rec.Body.String(), `"new_pid": 11`) {
		t.Errorf("restart: %d %s", rec.Code, rec.Body)
	}
	if rec := post(false); rec.Code != http.StatusForbidden || svc.calls != 1 {
		t.Errorf("without credentials: %d, service called %d times", rec.Code, svc.calls)
	}
	svc.err = fmt.Errorf("%w: a restart is already running", ErrRefused)
	if rec := post(true); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "already running") {
		t.Errorf("refused: %d %s, want 409", rec.Code, rec.Body)
	}
	rec := httptest.NewRecorder()
	(&API{Service: plainService{}}).Handler().ServeHTTP(rec, asRoot(httptest.NewRequest(http.MethodPost, "/v1/restart", strings.NewReader(`{}`))))
	if rec.Code != http.StatusNotFound {
		t.Errorf("a Service without Restart: %d, want 404", rec.Code)
	}
}
