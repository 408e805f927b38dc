package control

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// plainService is a Service without DrainSelf.
type plainService struct{}

func (plainService) Status() Status { return Status{Node: "lb1"} }
func (plainService) Drill(context.Context, DrillRequest) (DrillResult, error) {
	return DrillResult{}, nil
}
func (plainService) Server(context.Context, ServerRequest) error  { return nil }
func (plainService) Reload(context.Context) (ReloadResult, error) { return ReloadResult{}, nil }

// drainService is a Service that can drain itself (BGP mode).
type drainService struct {
	plainService
	got []DrainRequest
}

func (s *drainService) DrainSelf(_ context.Context, req DrainRequest) (DrainResult, error) {
	s.got = append(s.got, req)
	return DrainResult{Drained: !req.Undo, VIPs: []BGPVIP{{VIP: "192.168.40.10", State: "withdrawn"}}}, nil
}

// The drain-self route exists only for a Service that implements it, is a
// mutating route (root here), and its body is decoded strictly like the
// others'.
func TestDrainSelfRoute(t *testing.T) {
	svc := &drainService{}
	h := (&API{Service: svc}).Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, asRoot(httptest.NewRequest(http.MethodPost, "/v1/drain-self", strings.NewReader(`{"undo":true}`))))
	if rec.Code != 200 || len(svc.got) != 1 || !svc.got[0].Undo || !strings.Contains(rec.Body.String(), `"vip": "192.168.40.10"`) {
		t.Errorf("drain-self: %d %s, got %+v", rec.Code, rec.Body, svc.got)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, asRoot(httptest.NewRequest(http.MethodPost, "/v1/drain-self", strings.NewReader(`{"undo":true,"x":1}`))))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("unknown field: %d, want 400", rec.Code)
	}
	rec = httptest.NewRecorder()
	(&API{Service: plainService{}}).Handler().ServeHTTP(rec, asRoot(httptest.NewRequest(http.MethodPost, "/v1/drain-self", strings.NewReader(`{}`))))
	if rec.Code != http.StatusNotFound {
		t.Errorf("a Service without DrainSelf: %d, want 404", rec.Code)
	}
}

// Draining changes the node: without the caller's credentials it is
// refused like every mutating route.
func TestDrainSelfNeedsCredentials(t *testing.T) {
	svc := &drainService{}
	rec := httptest.NewRecorder()
	(&API{Service: svc}).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/drain-self", strings.NewReader(`{}`)))
	if rec.Code != http.StatusForbidden || len(svc.got) != 0 {
		t.Errorf("without credentials: %d, service called %d times", rec.Code, len(svc.got))
	}
}
