package daemon

import (
	"fmt"
	"testing"

	"github.com/vipd/vipd/internal/control"
)

func servers(states ...string) []control.Server {
	var out []control.Server
	for i, s := range states {
		out = append(out, control.Server{Name: fmt.Sprintf("cp%d", i+1), State: s})
	}
	return out
}

func TestStatusLine(t *testing.T) {
	for _, tc := range []struct {
		st   control.Status
		want string
	}{
		{control.Status{
			Instances: []control.Instance{{State: "MASTER", VRID: 51, Priority: 150, EffectivePriority: 150}},
			Backends:  []control.Backend{{Name: "kube-apiserver", Servers: servers("UP", "UP", "UP")}},
		}, "MASTER vrid 51, 3/3 servers up"},
		{control.Status{
			Instances: []control.Instance{{State: "BACKUP", VRID: 51, Priority: 150, EffectivePriority: 90, MasterAddr: "192.168.30.22"}},
			Backends: []control.Backend{
				{Name: "kube-apiserver", Servers: servers("UP", "DOWN", "DRAIN")},
				{Name: "talos", Servers: servers("UP", "UP", "UP")},
			},
		}, "BACKUP vrid 51 (priority 90 of 150) (master 192.168.30.22), kube-apiserver 1/3 up, talos 3/3 up"},
		{control.Status{
			Backends: []control.Backend{{Name: "kube-apiserver", Servers: servers("UP", "MAINT")}},
		}, "single LB, 1/2 servers up"},
	} {
		if got := statusLine(tc.st); got != tc.want {
			t.Errorf("statusLine = %q\n                want %q", got, tc.want)
		}
	}
}
