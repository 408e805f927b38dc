//go:build linux

package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/control"
)

// BGPOptions shape the vipd config of a routed lab's LBs in BGP mode.
type BGPOptions struct {
	// HoldTime and DrainTime are [bgp] hold_time and drain_time; empty
	// keeps vipd's defaults (9s, 5s).
	HoldTime, DrainTime string
	// BFD turns on bfd with BFDInterval (default 100ms) on every peer.
	BFD         bool
	BFDInterval string
	// Extra is appended to every node's config.
	Extra string
}

// BGPConfig is the vipd config every LB of r shares: each LB in its own
// ASN (LBASN) peering with the router on its link, the VIP announced by
// all, frontends on 6443 and 50000 following it, the stand-in control
// planes as servers with fast TCP checks.
func (r *Routed) BGPConfig(o BGPOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[bgp]\nasn = %d\nvips = [%q]\n", LBASN(0), r.VIP.String())
	if o.HoldTime != "" {
		fmt.Fprintf(&b, "hold_time = %q\n", o.HoldTime)
	}
	if o.DrainTime != "" {
		fmt.Fprintf(&b, "drain_time = %q\n", o.DrainTime)
	}
	for i, lb := range r.LBs {
		fmt.Fprintf(&b, "\n[[bgp.peer]]\naddress = %q\nasn = %d\nnodes = [%q]\n", r.Gateways[i], r.ASN, lb.Name)
		if o.BFD {
			iv := o.BFDInterval
			if iv == "" {
				iv = "100ms"
			}
			fmt.Fprintf(&b, "bfd = true\nbfd_interval = %q\n", iv)
		}
	}
	for i, lb := range r.LBs {
		if i > 0 {
			fmt.Fprintf(&b, "\n[[bgp.node]]\nname = %q\nasn = %d\n", lb.Name, LBASN(i))
		}
	}
	for _, lb := range r.LBs {
		fmt.Fprintf(&b, "\n[[node]]\nname = %q\naddress = %q\n", lb.Name, lb.Addr)
	}
	var k8s, talos []string
	for _, cp := range r.CPs {
		k8s = append(k8s, fmt.Sprintf("{ name = %q, address = \"%s:6443\" }", cp.Name, cp.Addr))
		talos = append(talos, fmt.Sprintf("{ name = %q, address = \"%s:50000\" }", cp.Name, cp.Addr))
	}
	check := `{ type = "tcp", interval = "500ms", timeout = "300ms", rise = 1, fall = 2 }`
	fmt.Fprintf(&b, "\n[[frontend]]\nname = \"kubernetes\"\nport = 6443\nvip = %q\nbackend = \"kube-apiserver\"\n", r.VIP)
	fmt.Fprintf(&b, "\n[[frontend]]\nname = \"talos\"\nport = 50000\nvip = %q\nbackend = \"talos\"\n", r.VIP)
	fmt.Fprintf(&b, "\n[[backend]]\nname = \"kube-apiserver\"\nservers = [%s]\ncheck = %s\n", strings.Join(k8s, ", "), check)
	fmt.Fprintf(&b, "\n[[backend]]\nname = \"talos\"\nservers = [%s]\ncheck = %s\n", strings.Join(talos, ", "), check)
	b.WriteString(o.Extra)
	return b.String()
}

// StartBGPNodes starts one vipd per LB with BGPConfig(o), each with its
// own control socket. It first takes the VIP off the LBs' loopback (where
// NewRouted put it for the bare speaker tests): vipd puts it there itself
// while it announces.
func (r *Routed) StartBGPNodes(t testing.TB, o BGPOptions) []*Node {
	t.Helper()
	base := r.BGPConfig(o)
	var out []*Node
	for _, lb := range r.LBs {
		exec.Command("ip", "-n", lb.NS, "addr", "del", r.VIP.String()+"/32", "dev", "lo").Run()
		sock := filepath.Join(r.Dir(), lb.Name+".sock")
		cfg := filepath.Join(r.Dir(), lb.Name+"-bgp.toml")
		body := base + fmt.Sprintf("\n[control]\nsocket = %q\n", sock)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, r.StartNode(lb, lb.Name, cfg, sock))
	}
	return out
}

// HasLoopback reports whether addr is on h's loopback.
func (h *Host) HasLoopback(addr string) bool {
	out, err := exec.Command("ip", "-n", h.NS, "-o", "addr", "show", "dev", "lo").Output()
	return err == nil && strings.Contains(string(out), " "+addr+"/")
}

// BGPVIP is the node's first BGP VIP as its status shows it.
func (n *Node) BGPVIP() (control.BGPVIP, error) {
	st, err := n.Status()
	if err != nil {
		return control.BGPVIP{}, err
	}
	if st.BGP == nil || len(st.BGP.VIPs) == 0 {
		return control.BGPVIP{}, fmt.Errorf("%s: no bgp section in status", n.Name)
	}
	return st.BGP.VIPs[0], nil
}

// AwaitBGPVIP waits until the node reports its VIP in state (announced,
// draining, withdrawn) with a reason containing why.
func (n *Node) AwaitBGPVIP(state, why string, timeout time.Duration) control.BGPVIP {
	n.t.Helper()
	var last control.BGPVIP
	err := WaitFor(timeout, func() error {
		v, err := n.BGPVIP()
		if err != nil {
			return err
		}
		last = v
		if v.State != state || !strings.Contains(v.Reason, why) {
			return fmt.Errorf("%s: VIP %s %s (%s), want %s (%s)", n.Name, v.VIP, v.State, v.Reason, state, why)
		}
		return nil
	})
	if err != nil {
		n.t.Fatalf("%v\n--- %s log ---\n%s", err, n.Name, n.Log())
	}
	return last
}

// CLI runs the vipd binary's client command args against the node's
// socket (in the node's namespace) and returns its output.
func (n *Node) CLI(args ...string) (string, error) {
	argv := append([]string{"netns", "exec", n.Host.NS, Bin}, args...)
	argv = append(argv, "--socket", n.Socket)
	out, err := exec.Command("ip", argv...).CombinedOutput()
	return string(out), err
}
