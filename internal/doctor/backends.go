package doctor

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/vipd/vipd/health"
)

// checkBackends runs every server's configured check once from this node,
// as the daemon's health checks would (the probes come from its plan). A
// failing server is a warning; a backend with no server passing is an
// error: its frontend would forward to nothing.
func checkBackends(ctx context.Context, servers []Server) []Finding {
	results := make([]health.Result, len(servers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, s := range servers {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			timeout := s.Timeout
			if timeout <= 0 {
				timeout = health.DefaultTimeout
			}
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			results[i] = s.Probe(pctx)
		})
	}
	wg.Wait()
	passing := map[string]int{}
	for i, s := range servers {
		if results[i].OK {
			passing[s.Backend]++
		}
	}
	var out []Finding
	for i, s := range servers {
		r := results[i]
		if r.OK {
			continue
		}
		sev := SevWarning
		seen := fmt.Sprintf("%s/%s (%s): the %s check fails from this node: %s", s.Backend, s.Name, s.Addr, s.Check, detail(r))
		if passing[s.Backend] == 0 {
			sev = SevError
			seen += fmt.Sprintf("; no server of %s passes, so its frontends would forward to nothing", s.Backend)
		}
		out = append(out, finding(CheckBackends, sev, "", seen, backendFix(s, r)))
	}
	return out
}

func detail(r health.Result) string {
	if r.Detail != "" {
		return r.Detail
	}
	if r.Err != nil {
		return r.Err.Error()
	}
	return "failed"
}

// backendFix says where to look, by what the probe saw.
func backendFix(s Server, r health.Result) string {
	d := strings.ToLower(detail(r))
	switch {
	case strings.Contains(d, "refused"):
		return fmt.Sprintf("nothing listens on %s: start the server (kube-apiserver, apid), or correct the address in [[backend]] %q", s.Addr, s.Backend)
	case strings.Contains(d, "timeout"), strings.Contains(d, "timed out"), strings.Contains(d, "no route"), strings.Contains(d, "unreachable"):
		return fmt.Sprintf("%s does not answer from this node: check the route and the firewalls between them", s.Addr)
	case strings.Contains(d, "x509"), strings.Contains(d, "certificate"), strings.Contains(d, "tls"):
		return fmt.Sprintf("the TLS handshake fails: give the check the cluster's CA (ca = \"/etc/kubernetes/pki/ca.crt\") and an sni the certificate names, in [[backend]] %q", s.Backend)
	case strings.Contains(d, "http "):
		return fmt.Sprintf("the server answers but is not ready: look at its logs (kube-apiserver's /readyz lists the failing parts), or correct path / expect_status in [[backend]] %q", s.Backend)
	}
	return fmt.Sprintf("check %s from this node by hand, and the check settings of [[backend]] %q", s.Addr, s.Backend)
}
