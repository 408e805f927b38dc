package child

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ambientOf reads a CapAmb line from a /proc status file's text.
func ambientOf(t *testing.T, status string) uint64 {
	t.Helper()
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "CapAmb:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no CapAmb in %q", status)
	return 0
}

// The successor of a hitless restart gets the capabilities the unit gave
// vipd as ambient ones (here CAP_NET_RAW, made inheritable as systemd's
// AmbientCapabilities= does), and the thread that started it is cleared
// again: a hook started afterwards gets none.
func TestSuccessorPassesCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: needs root")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var saved [2]unix.CapUserData
	if err := unix.Capget(&hdr, &saved[0]); err != nil {
		t.Fatal(err)
	}
	set := saved
	set[0].Inheritable |= 1 << capNetRaw
	if err := unix.Capset(&hdr, &set[0]); err != nil {
		t.Fatal(err)
	}
	defer unix.Capset(&hdr, &saved[0])

	var out bytes.Buffer
	cmd := exec.Command("cat", "/proc/self/status")
	cmd.Stdout = &out
	if err := Successor(cmd.Run); err != nil {
		t.Fatal(err)
	}
	if amb := ambientOf(t, out.String()); amb&(1<<capNetRaw) == 0 {
		t.Errorf("successor's ambient set %#x lacks CAP_NET_RAW", amb)
	}
	self, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Fatal(err)
	}
	if amb := ambientOf(t, string(self)); amb != 0 {
		t.Errorf("the starting thread's ambient set is %#x afterwards, want empty", amb)
	}
	out.Reset()
	cmd = exec.Command("cat", "/proc/self/status")
	cmd.Stdout = &out
	if err := Start(cmd); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if amb := ambientOf(t, out.String()); amb != 0 {
		t.Errorf("a hook's ambient set is %#x, want empty", amb)
	}
}
