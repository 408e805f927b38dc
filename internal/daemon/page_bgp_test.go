package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/control"
)

// TestPageBGP: a BGP node's page says, in words, which VIPs are announced
// and why not, and how each session with a router is.
func TestPageBGP(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	st := control.Status{Node: "lb1", Mode: "bgp", Started: now.Add(-time.Hour), Instances: []control.Instance{}, BGP: bgpStatusSample()}
	st.BGP.Sessions[1].LastError = "<script>alert(1)</script>"
	page := getPage(t, httpSource{status: func() control.Status { return st }}, "/")
	text := visibleText(page)
	for _, want := range []string{
		"vipd · lb1 DRAINING",
		"VIP 192.168.40.10, 192.168.40.11",
		"every node that announces it (BGP: the routers spread clients over them)",
		"BGP · AS 64512 · router id 10.1.0.21",
		"Drained by the operator (vipd drain self)",
		"192.168.40.10 DRAINING",
		"1 router kubernetes drained by the operator (vipd drain self)",
		"192.168.40.11 WITHDRAWN",
		"talos backends: 0 of 3 healthy behind talos (need 1)",
		"10.1.0.1 64500 ESTABLISHED 42.0s 9 s 1 sent · 3 received 2 up",
		"10.1.0.2 64500 ACTIVE",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q\n%s", want, text)
		}
	}
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("a session's last error reached the page unescaped")
	}
}

func TestBGPHeadline(t *testing.T) {
	b := func(states ...string) *control.BGP {
		out := &control.BGP{}
		for _, s := range states {
			out.VIPs = append(out.VIPs, control.BGPVIP{VIP: "v", State: s})
		}
		return out
	}
	for want, in := range map[string]*control.BGP{
		"ANNOUNCED": b("announced", "announced"),
		"WITHDRAWN": b("withdrawn"),
		"DRAINING":  b("announced", "draining"),
		"PARTIAL":   b("announced", "withdrawn"),
	} {
		if got, _ := bgpHeadline(in); got != want {
			t.Errorf("%+v: %s, want %s", in.VIPs, got, want)
		}
	}
}

func TestBGPStatusLine(t *testing.T) {
	st := control.Status{Instances: []control.Instance{}, BGP: bgpStatusSample()}
	if got := statusLine(st); !strings.HasPrefix(got, "BGP 0/2 VIPs announced, 1/2 sessions up (drained)") {
		t.Errorf("status line %q", got)
	}
}
