package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/control"
)

// serveHTTP runs the optional status listener ([http] listen).
func (d *Daemon) serveHTTP(ctx context.Context, h *config.HTTP) error {
	ln, err := net.Listen("tcp", h.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: d.httpHandler(h), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (d *Daemon) httpHandler(h *config.HTTP) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		control.WriteJSON(w, http.StatusOK, d.Status())
	})
	return mux
}
