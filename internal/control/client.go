package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
)

// Client talks to a running vipd over its unix socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{
		Socket: path,
		hc: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			DisableKeepAlives: true,
		}},
	}
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// Drill runs a failover drill on the daemon (which must be MASTER).
func (c *Client) Drill(ctx context.Context, req DrillRequest) (DrillResult, error) {
	var res DrillResult
	err := c.do(ctx, http.MethodPost, "/v1/drill", req, &res)
	return res, err
}

// Server changes a server's administrative state.
func (c *Client) Server(ctx context.Context, req ServerRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/server", req, nil)
}

// DrainSelf drains this node's BGP announcement (vipd drain self), or
// undoes it; a drain answers once every VIP is withdrawn.
func (c *Client) DrainSelf(ctx context.Context, req DrainRequest) (DrainResult, error) {
	var res DrainResult
	err := c.do(ctx, http.MethodPost, "/v1/drain-self", req, &res)
	return res, err
}

// Reload asks the daemon to re-read its config file.
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var res ReloadResult
	err := c.do(ctx, http.MethodPost, "/v1/reload", struct{}{}, &res)
	return res, err
}

// Restart asks the daemon to hand itself over to the binary on disk
// (vipd restart). It answers once the new process runs, or once the old
// one rolled back (an error that says why).
func (c *Client) Restart(ctx context.Context) (RestartResult, error) {
	var res RestartResult
	err := c.do(ctx, http.MethodPost, "/v1/restart", struct{}{}, &res)
	return res, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vipd"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.explain(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("vipd: %s", e.Error)
		}
		return fmt.Errorf("vipd: %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// explain turns a dial failure into advice.
func (c *Client) explain(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("no vipd control socket at %s: is vipd running (systemctl status vipd)? use -c FILE or --socket PATH", c.Socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("vipd is not answering on %s (stale socket?): %w", c.Socket, err)
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES):
		return fmt.Errorf("permission denied on %s: run as root or as a member of the socket's group ([control] group)", c.Socket)
	}
	return err
}
