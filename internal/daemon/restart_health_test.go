package daemon

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/health"
	"github.com/vipd/vipd/internal/config"
)

// prioRecorder is a runner as the trackers see it.
type prioRecorder struct{ got []string }

func (p *prioRecorder) SetPriority(prio uint8, fault bool, _ string) {
	p.got = append(p.got, fmt.Sprintf("%d %v", prio, fault))
}

// The new process of a restart starts its trackers from the old one's
// verdicts: the first priority its runner gets is the one the old one
// advertised (a failing tracker stays failing), not the configured one a
// fresh start assumes until the first result.
func TestTrackersRestoreVerdicts(t *testing.T) {
	cfg, err := config.Parse("vipd.toml", []byte(baseConfig(`
[[track]]
name = "two"
type = "backends"
frontend = "kubernetes"
min_healthy = 1
weight = -20
`)))
	if err != nil {
		t.Fatal(err)
	}
	node, _ := cfg.SelectNode("lb1", "", nil)
	old := newTrackers(cfg, node, nopLog, func() {})
	old.set("two", false, "0 healthy servers behind kubernetes (need 1)")
	saved := old.saved()

	for _, tc := range []struct {
		name    string
		restore bool
		want    []string
	}{
		{"restored", true, []string{"130 false"}},
		{"fresh", false, []string{"150 false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trk := newTrackers(cfg, node, nopLog, func() {})
			if tc.restore {
				trk.restore(saved)
			}
			var r prioRecorder
			trk.attach(cfg.Instances[0].Name, &r)
			if diff := cmp.Diff(tc.want, r.got); diff != "" {
				t.Errorf("priorities handed to the runner (-want +got):\n%s", diff)
			}
		})
	}
}

// Health checks start from the old process's rise/fall state, and the
// proxy learns at once which servers were DOWN.
func TestHealthSeed(t *testing.T) {
	cfg, err := config.Parse("vipd.toml", []byte(baseConfig("")))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Backends[0].Check = config.Check{Type: config.CheckTCP}
	checks, err := plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	px := &healthProxy{fakeProxy: fakeProxy{listening: map[string]bool{}}}
	h := newHealthChecks(nopLog, px, newTrackers(cfg, &cfg.Nodes[0], nopLog, func() {}), func() {})
	h.apply(checks)
	var name string
	for n := range checks {
		name = n
	}
	h.seed([]checkSaved{{Name: name, Status: "DOWN", Streak: 1}, {Name: "server gone/x", Status: "UP"}})
	if got := checks[name].checker.Seed; got != (health.Seed{Status: health.Down, Streak: 1}) {
		t.Errorf("seed %+v, want DOWN with a streak of 1", got)
	}
	if diff := cmp.Diff([]string{"kube-apiserver/192.0.2.31 false"}, px.health); diff != "" {
		t.Errorf("proxy told (-want +got):\n%s", diff)
	}
}

// healthProxy records SetHealth.
type healthProxy struct {
	fakeProxy
	health []string
}

func (p *healthProxy) SetHealth(b, s string, up bool) {
	p.health = append(p.health, fmt.Sprintf("%s/%s %v", b, s, up))
}
