//go:build linux

package netcfg

// Errors without CAP_NET_ADMIN and CAP_NET_RAW.

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPermissionErrors runs the operations as root without capabilities
// and checks that callers can recognise the failure with os.ErrPermission.
func TestPermissionErrors(t *testing.T) {
	l := newLab(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("SKIP: needs setpriv (util-linux)")
	}
	runHelper(t, l.nsA, "Permission", l.env(), setpriv, "--bounding-set=-all", "--inh-caps=-all")
}

func TestHelperPermission(t *testing.T) {
	isHelper(t)
	ifname := env(t, "NC_IF_A")
	vip := netip.PrefixFrom(labAddr(t, 100), 32)
	a, err := NewAddresses()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	err = a.AddVIP(ifname, vip)
	if !errors.Is(err, os.ErrPermission) || !strings.HasPrefix(err.Error(), fmt.Sprintf("netcfg: add %s on %s: ", vip, ifname)) {
		t.Errorf("AddVIP without CAP_NET_ADMIN = %v, want wrapped os.ErrPermission", err)
	}
	if _, err := ListenVRRP(VRRPConfig{Interface: ifname}); !errors.Is(err, os.ErrPermission) {
		t.Errorf("ListenVRRP without CAP_NET_RAW = %v, want wrapped os.ErrPermission", err)
	}
	if _, err := NewAnnouncer(ifname); !errors.Is(err, os.ErrPermission) {
		t.Errorf("NewAnnouncer without CAP_NET_RAW = %v, want wrapped os.ErrPermission", err)
	}
	t.Logf("AddVIP: %v", err)
}
