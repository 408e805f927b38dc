//go:build linux

package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// LBNode is one vipd node in a generated config.
type LBNode struct {
	Name     string
	Host     *Host
	Priority int
}

// PairOptions shape a generated HA config.
type PairOptions struct {
	VRID           int
	VIP            netip.Addr
	AdvertInterval string // default "200ms"
	Unicast        bool
	Preempt        *bool
	PreemptDelay   string
	Checksum       string
	Version        int    // [vrrp] version; 0 leaves vipd's default (3)
	AuthPass       string // [vrrp] auth_pass (VRRPv2 PASS)
	VRRPExtra      string // appended verbatim inside [vrrp] (liveness_port = 0)
	Extra          string // appended verbatim (tracks, frontends, backends)
	// Backends are stand-in control planes; when empty, the frontend
	// forwards to a port nobody listens on (connect success to the VIP is
	// what VRRP tests measure).
	Backends []*Host
	Check    string // check inline table; default tcp
	NoFront  bool
	HTTP     string // [http] listen
	// PerNode, when set, adds text to one node's copy of the config.
	PerNode func(name string) string
	// Bin is the vipd binary the nodes run; default the one under test
	// (Bin). User, when not 0, runs them as that uid/gid with only the
	// binary's file capabilities (RunAs), as the container image does.
	Bin  string
	User int
	// Setup, when set, is called with each node before it starts (to set
	// its Env or NoFile).
	Setup func(*Node)
}

// WriteConfig renders a config shared by every node and returns its path.
func (l *Lab) WriteConfig(t testing.TB, o PairOptions, nodes []LBNode) string {
	t.Helper()
	if o.VRID == 0 {
		o.VRID = 51
	}
	if o.AdvertInterval == "" {
		o.AdvertInterval = "200ms"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[vrrp]\nvrid = %d\ninterface = \"eth0\"\nvips = [\"%s/32\"]\nadvert_interval = %q\n", o.VRID, o.VIP, o.AdvertInterval)
	if o.Unicast {
		b.WriteString("unicast = true\n")
	}
	if o.Preempt != nil {
		fmt.Fprintf(&b, "preempt = %v\n", *o.Preempt)
	}
	if o.PreemptDelay != "" {
		fmt.Fprintf(&b, "preempt_delay = %q\n", o.PreemptDelay)
	}
	if o.Checksum != "" {
		fmt.Fprintf(&b, "checksum = %q\n", o.Checksum)
	}
	if o.Version != 0 {
		fmt.Fprintf(&b, "version = %d\n", o.Version)
	}
	if o.AuthPass != "" {
		fmt.Fprintf(&b, "auth_pass = %q\n", o.AuthPass)
	}
	if o.VRRPExtra != "" {
		b.WriteString(strings.TrimRight(o.VRRPExtra, "\n") + "\n")
	}
	for _, n := range nodes {
		fmt.Fprintf(&b, "\n[[node]]\nname = %q\naddress = %q\npriority = %d\n", n.Name, n.Host.Addr, n.Priority)
	}
	if !o.NoFront {
		servers := []string{fmt.Sprintf("%q", netip.AddrPortFrom(l.Addr(250), 6443))}
		if len(o.Backends) > 0 {
			servers = nil
			for _, h := range o.Backends {
				servers = append(servers, fmt.Sprintf("{ name = %q, address = \"%s:6443\" }", h.Name, h.Addr))
			}
		}
		check := o.Check
		if check == "" {
			check = `{ type = "tcp", interval = "500ms", timeout = "300ms", rise = 1, fall = 2 }`
		}
		fmt.Fprintf(&b, "\n[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\n")
		fmt.Fprintf(&b, "\n[[backend]]\nname = \"kube-apiserver\"\nservers = [%s]\ncheck = %s\n", strings.Join(servers, ", "), check)
	}
	b.WriteString(o.Extra)
	if o.HTTP != "" {
		fmt.Fprintf(&b, "\n[http]\nlisten = %q\n", o.HTTP)
	}
	path := filepath.Join(l.Dir(), fmt.Sprintf("vipd-%d.toml", labSeq.Load()))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// StartPair writes the config and starts one vipd per node, each with its
// own control socket (the [control] socket is overridden per node through a
// per-node copy of the file).
func (l *Lab) StartNodes(t testing.TB, o PairOptions, nodes []LBNode) []*Node {
	t.Helper()
	base := l.WriteConfig(t, o, nodes)
	data, _ := os.ReadFile(base)
	bin := o.Bin
	if bin == "" {
		bin = Bin
	}
	if o.User != 0 {
		l.shareDir(o.User)
	}
	var out []*Node
	for _, n := range nodes {
		sock := filepath.Join(l.Dir(), n.Name+".sock")
		cfg := filepath.Join(l.Dir(), n.Name+".toml")
		body := string(data) + fmt.Sprintf("\n[control]\nsocket = %q\n", sock)
		if o.PerNode != nil {
			body += o.PerNode(n.Name)
		}
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, l.startNode(n.Host, n.Name, cfg, sock, bin, o.User, o.Setup))
	}
	return out
}

// N is shorthand for an LBNode.
func N(name string, h *Host, priority int) LBNode {
	return LBNode{Name: name, Host: h, Priority: priority}
}
