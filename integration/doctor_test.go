package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/doctor"
)

// doctorListen is the listen window of every run here: 200 ms adverts and
// a status beacon a second, so a peer slowed by a loaded machine is still
// heard twice (1.5 s missed a beacon under a load average of 15).
const doctorListen = "2500ms"

// runDoctor runs `vipd doctor --listen 2.5s -o json` for node in h's
// namespace and returns the report and the exit status.
func runDoctor(t *testing.T, h *lab.Host, cfg, node string) (doctor.Report, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := h.Exec(ctx, lab.Bin, "doctor", "-c", cfg, "--node", node, "--listen", doctorListen, "-o", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("vipd doctor: %v\n%s", err, stderr.String())
	}
	var r doctor.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("vipd doctor -o json: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return r, code
}

// want is a finding expected: its check, severity and words.
type want struct {
	check, severity string
	seen            []string // substrings of Seen
	fix             string   // substring of Fix
}

// expect checks the exit status and that the findings are exactly the
// wanted ones (by check and severity), each with its words.
func expect(t *testing.T, what string, r doctor.Report, code, wantCode int, wants ...want) {
	t.Helper()
	dump := func() string {
		b, _ := json.MarshalIndent(r.Findings, "", "  ")
		return string(b)
	}
	if code != wantCode {
		t.Errorf("%s: exit %d, want %d; findings:\n%s", what, code, wantCode, dump())
	}
	var got, exp []string
	for _, f := range r.Findings {
		got = append(got, f.Check+"/"+f.Severity)
	}
	for _, w := range wants {
		exp = append(exp, w.check+"/"+w.severity)
		found := false
		for _, f := range r.Findings {
			if f.Check != w.check || f.Severity != w.severity || !strings.Contains(f.Fix, w.fix) {
				continue
			}
			ok := true
			for _, s := range w.seen {
				ok = ok && strings.Contains(f.Seen, s)
			}
			found = found || ok
		}
		if !found {
			t.Errorf("%s: no %s %s finding saying %q (fix %q); findings:\n%s", what, w.severity, w.check, w.seen, w.fix, dump())
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	slices.Sort(exp)
	exp = slices.Compact(exp)
	if !slices.Equal(got, exp) {
		t.Errorf("%s: findings by check %v, want %v:\n%s", what, got, exp, dump())
	}
}

// nsSysctl sets a sysctl inside a host's namespace.
func nsSysctl(t *testing.T, h *lab.Host, kv string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", h.NS, "sysctl", "-q", "-w", kv).CombinedOutput(); err != nil {
		t.Fatalf("sysctl %s in %s: %v: %s", kv, h.NS, err, out)
	}
}

// ipn runs `ip -n ns ARGS` for a subtest.
func ipn(t *testing.T, ns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
}

func macOf(t *testing.T, h *lab.Host) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", h.NS, "-j", "link", "show", "dev", h.If).Output()
	if err != nil {
		t.Fatal(err)
	}
	var ls []struct {
		Address string `json:"address"`
	}
	if json.Unmarshal(out, &ls) != nil || len(ls) != 1 {
		t.Fatalf("link of %s: %s", h.Name, out)
	}
	return ls[0].Address
}

// TestDoctor seeds one misconfiguration per check in the namespace lab,
// one at a time, and runs vipd doctor on lb1 for each: every one is found
// with its words and exit status; a clean lab, with vipd stopped or
// running on lb1, gives no finding at all, and doctor does not disturb the
// running vipd. The runs share one lab and go one after another.
func TestDoctor(t *testing.T) {
	lab.RequireKeepalived(t)
	lab.RequireNft(t)
	l := lab.NewLab(t)
	lb1, lb2 := l.AddHost("lb1", 11), l.AddHost("lb2", 12)
	cp1, ext := l.AddHost("cp1", 31), l.AddHost("ext", 40)
	vip := l.Addr(100)
	pki := lab.NewPKI(t, cp1.Addr)
	cp := lab.StartControlPlane(t, cp1, pki)
	// The recommended host setting (doctor notes anything else).
	for _, h := range []*lab.Host{lb1, lb2} {
		nsSysctl(t, h, "net.ipv4.conf.all.arp_announce=2")
	}
	check := fmt.Sprintf(`{ type = "https", path = "/readyz", ca = %q, interval = "500ms", timeout = "400ms", rise = 1, fall = 1 }`, pki.CA)
	base := l.WriteConfig(t, lab.PairOptions{VIP: vip, Backends: []*lab.Host{cp1}, Check: check},
		[]lab.LBNode{lab.N("lb1", lb1, 150), lab.N("lb2", lb2, 100)})
	body, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	nodeCfg := func(name, text string, mode os.FileMode) (path, sock string) {
		sock = filepath.Join(l.Dir(), name+".sock")
		path = filepath.Join(l.Dir(), name+".toml")
		if err := os.WriteFile(path, []byte(text+fmt.Sprintf("\n[control]\nsocket = %q\n", sock)), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, mode)
		return path, sock
	}
	// 0644: these files hold no secret, and a vipd user that another
	// test on this machine creates (packaging) must be able to read them.
	cfg1, sock1 := nodeCfg("lb1", string(body), 0o644)
	cfg2, sock2 := nodeCfg("lb2", string(body), 0o644)
	n2 := l.StartNode(lb2, "lb2", cfg2, sock2)
	n2.AwaitState("MASTER", 10*time.Second)

	r, code := runDoctor(t, lb1, cfg1, "lb1")
	expect(t, "clean lab, vipd stopped on lb1", r, code, 0)
	if t.Failed() {
		t.FailNow() // every seed below assumes a clean start
	}

	t.Run("backend fails its check", func(t *testing.T) {
		cp.SetMode(t, "500")
		defer cp.SetMode(t, "ok")
		r, code := runDoctor(t, lb1, cfg1, "lb1")
		expect(t, "readyz 500", r, code, 2, want{doctor.CheckBackends, doctor.SevError,
			[]string{"kube-apiserver/cp1", "https check fails from this node: HTTP 500", "no server of kube-apiserver passes"}, "not ready"})
	})

	t.Run("wildcard listener on 6443", func(t *testing.T) {
		self, _ := os.Executable()
		hold := lb1.Exec(context.Background(), self, "-test.run=^$")
		hold.Env = append(os.Environ(), "VIPD_TEST_HELPER=wildcard", "VIPD_WILDCARD_PORT=6443")
		if err := hold.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { hold.Process.Kill(); hold.Wait() }()
		lab.WaitFor(5*time.Second, func() error {
			out, _ := lb1.Exec(context.Background(), "ss", "-Hltn", "sport = :6443").Output()
			if len(out) == 0 {
				return fmt.Errorf("wildcard listener not up")
			}
			return nil
		})
		r, code := runDoctor(t, lb1, cfg1, "lb1")
		expect(t, "*:6443 taken", r, code, 2, want{doctor.CheckListener, doctor.SevError,
			[]string{fmt.Sprintf("cannot listen on %s:6443", vip), "another process listens on *:6443"}, "--bind-address=<node IP>"})
		if f := r.Findings[0].Fix; !strings.Contains(f, "another port than 6443") {
			t.Errorf("fix %q: want both fixes (--bind-address, or another frontend port)", f)
		}
	})

	t.Run("rp_filter strict", func(t *testing.T) {
		nsSysctl(t, lb1, "net.ipv4.conf.eth0.rp_filter=1")
		defer nsSysctl(t, lb1, "net.ipv4.conf.eth0.rp_filter=0")
		r, code := runDoctor(t, lb1, cfg1, "lb1")
		expect(t, "rp_filter=1", r, code, 1, want{doctor.CheckSysctl, doctor.SevWarning,
			[]string{"net.ipv4.conf.eth0.rp_filter = 1 (strict)"}, "sysctl -w net.ipv4.conf.eth0.rp_filter=2"})
	})

	t.Run("arp_ignore never answers", func(t *testing.T) {
		nsSysctl(t, lb1, "net.ipv4.conf.eth0.arp_ignore=8")
		defer nsSysctl(t, lb1, "net.ipv4.conf.eth0.arp_ignore=0")
		r, code := runDoctor(t, lb1, cfg1, "lb1")
		expect(t, "arp_ignore=8", r, code, 2, want{doctor.CheckSysctl, doctor.SevError,
			[]string{"net.ipv4.conf.eth0.arp_ignore = 8", "answers no ARP request"}, "to 0 or 1"})
	})

	t.Run("nftables drops VRRP", func(t *testing.T) {
		lab.Nft(t, lb1.NS, "table inet vipdtest {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tip protocol vrrp drop\n\t}\n}\n")
		defer exec.Command("ip", "netns", "exec", lb1.NS, "nft", "delete", "table", "inet", "vipdtest").Run()
		r, code := runDoctor(t, lb1, cfg1, "lb1")
		expect(t, "nft drops 112", r, code, 2,
			want{doctor.CheckFirewall, doctor.SevError, []string{"nftables drops VRRP adverts from lb2", "to 224.0.0.18", "chain input in table inet vipdtest"}, "IP protocol 112"},
			// lb2 is MASTER: its beacon says so, its adverts do not arrive.
			want{doctor.CheckPeers, doctor.SevError, []string{"lb2 says in its status beacon that it is MASTER of vrid 51", "none of its adverts reached this node"}, "unicast = true"})
	})

	t.Run("world-readable config with password hashes", func(t *testing.T) {
		hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.DefaultCost)
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(l.Dir(), "lb1-users.toml")
		text := string(body) + fmt.Sprintf("\n[control]\nsocket = %q\n\n[http]\nlisten = \"127.0.0.1:9600\"\n[[http.user]]\nname = \"ops\"\npassword_hash = %q\n", sock1, hash)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(cfg, 0o644)
		r, code := runDoctor(t, lb1, cfg, "lb1")
		expect(t, "0644 with hashes", r, code, 1, want{doctor.CheckFiles, doctor.SevWarning,
			[]string{cfg + " is readable by every user (mode 0644)", "[[http.user]] password hashes"}, "chmod 640"})
	})

	t.Run("interface down", func(t *testing.T) {
		// A second NIC, never brought up (a veth pair: the kernels we run
		// on may lack the dummy module).
		ipn(t, lb1.NS, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
		defer ipn(t, lb1.NS, "link", "del", "eth1")
		text := strings.Replace(string(body), "name = \"lb1\"\n", "name = \"lb1\"\ninterface = \"eth1\"\n", 1)
		cfg, _ := nodeCfg("lb1-eth1", text, 0o644)
		r, code := runDoctor(t, lb1, cfg, "lb1")
		expect(t, "eth1 down", r, code, 2,
			want{doctor.CheckInterface, doctor.SevError, []string{"interface eth1 is down"}, "ip link set eth1 up"},
			// Nothing is listened for or probed on it: the interface
			// findings say all there is to say.
			want{doctor.CheckInterface, doctor.SevError, []string{"is on eth0, not on eth1"}, ""})
	})

	t.Run("node address missing", func(t *testing.T) {
		wrong := l.Addr(21)
		text := strings.Replace(string(body), fmt.Sprintf("address = %q", lb1.Addr), fmt.Sprintf("address = %q", wrong), 1)
		cfg, _ := nodeCfg("lb1-addr", text, 0o644)
		r, code := runDoctor(t, lb1, cfg, "lb1")
		expect(t, "address .21 missing", r, code, 2, want{doctor.CheckInterface, doctor.SevError,
			[]string{fmt.Sprintf("node address %s ([[node]] \"lb1\") is on no interface of this host", wrong)}, "configure " + wrong.String() + " on eth0"})
	})

	t.Run("another host answers ARP for the VIP", func(t *testing.T) {
		ipn(t, ext.NS, "addr", "add", vip.String()+"/32", "dev", "eth0")
		defer ipn(t, ext.NS, "addr", "del", vip.String()+"/32", "dev", "eth0")
		r, code := runDoctor(t, lb1, cfg1, "lb1")
		expect(t, "VIP on ext", r, code, 2, want{doctor.CheckConflict, doctor.SevError,
			[]string{fmt.Sprintf("VIP %s is answered (ARP probe, RFC 5227) by %s, which is none of the [[node]]s", vip, macOf(t, ext))}, "choose a VIP nobody uses"})
	})

	t.Run("foreign VRRP router on the VRID", func(t *testing.T) {
		// Another cluster's keepalived on vrid 51, with its own VIP and
		// a higher priority: it wins, and lb2 (vipd) gives up the VIP.
		k := l.StartKeepalived(t, ext, "foreign", lab.KeepalivedOptions{VRID: 51, VIP: l.Addr(200), Priority: 254, AdvertInt: "0.2"})
		k.AwaitLog("Entering MASTER STATE", 0, 10*time.Second)
		r, code := runDoctor(t, lb1, cfg1, "lb1")
		expect(t, "foreign keepalived", r, code, 2, want{doctor.CheckVRRP, doctor.SevError,
			[]string{fmt.Sprintf("router %s on vrid 51 is not one of the [[node]]s", ext.Addr), "VRRPv3, priority 254", "VIPs " + l.Addr(200).String()}, "give one of them another vrid"})
		k.Kill()
		n2.AwaitState("MASTER", 10*time.Second)
	})

	t.Run("no peer heard with multicast", func(t *testing.T) {
		if err := n2.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
			t.Fatalf("lb2 exit: %v", err)
		}
		defer func() { n2.Start(); n2.AwaitState("MASTER", 10*time.Second) }()
		r, code := runDoctor(t, lb1, cfg1, "lb1")
		expect(t, "lb2 silent", r, code, 1, want{doctor.CheckPeers, doctor.SevWarning,
			[]string{fmt.Sprintf("nothing heard from lb2 (%s) in 2.5s: no VRRP advert, no status beacon (UDP 9601)", lb2.Addr)}, "set unicast = true on every node"})

		// The same node, lb2, running keepalived with VRRPv2 in vipd's
		// place: its adverts are heard, and cannot join an election.
		k := l.StartKeepalived(t, lb2, "lb2-v2", lab.KeepalivedOptions{VRID: 51, VIP: vip, Priority: 200, Version: 2})
		k.AwaitLog("Entering MASTER STATE", 0, 10*time.Second)
		defer k.Kill()
		r, code = runDoctor(t, lb1, cfg1, "lb1")
		expect(t, "lb2 on VRRPv2", r, code, 2, want{doctor.CheckVRRP, doctor.SevError,
			[]string{fmt.Sprintf("peer %s speaks VRRPv2: neither node hears the other, so there is no election", lb2.Addr)}, "set version = 2 to join it"})
	})

	t.Run("beside a running vipd", func(t *testing.T) {
		// lb1 has the higher priority: it preempts once its checks ran.
		n1 := l.StartNode(lb1, "lb1", cfg1, sock1)
		n1.AwaitState("MASTER", 10*time.Second)
		n2.AwaitState("BACKUP", 10*time.Second)
		lab.AwaitHolder(t, vip, lb1, 5*time.Second, lb1, lb2)
		transitions := func() [2]int {
			var out [2]int
			for i, n := range []*lab.Node{n1, n2} {
				st, err := n.Status()
				if err != nil {
					t.Fatal(err)
				}
				out[i] = st.Instances[0].Transitions
			}
			return out
		}
		before := transitions()
		r, code := runDoctor(t, lb1, cfg1, "lb1")
		expect(t, "clean lab, lb1 running (MASTER)", r, code, 0)
		if !r.Running {
			t.Error("doctor did not see the vipd running on lb1")
		}
		r, code = runDoctor(t, lb2, cfg2, "lb2")
		expect(t, "clean lab, lb2 running (BACKUP)", r, code, 0)
		// Doctor fought nobody: no transition, the VIP where it was.
		if after := transitions(); after != before {
			t.Errorf("transitions lb1, lb2: %v before doctor, %v after", before, after)
		}
		n1.AwaitState("MASTER", time.Second)
		lab.AwaitHolder(t, vip, lb1, time.Second, lb1, lb2)
	})
}

// TestDoctorIPv6: VRRP over IPv6 multicast, lb2 running: a clean lab gives
// no finding (the peer is heard from its link-local address); a host that
// holds the IPv6 VIP answers the neighbour solicitation and is named.
func TestDoctorIPv6(t *testing.T) {
	l := lab.NewLab(t)
	lb1, lb2, ext := l.AddHost("lb1", 11), l.AddHost("lb2", 12), l.AddHost("ext", 40)
	for i, h := range []*lab.Host{lb1, lb2, ext} {
		l.EnableIPv6(h, uint16(0x11+i))
	}
	vip := l.Addr6(0x100)
	base := l.WriteConfig(t, lab.PairOptions{VIP: vip, NoFront: true}, []lab.LBNode{lab.N("lb1", lb1, 150), lab.N("lb2", lb2, 100)})
	body, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(body), vip.String()+`/32"]`, vip.String()+`/128"]`, 1)
	write := func(name string) (string, string) {
		sock := filepath.Join(l.Dir(), name+".sock")
		path := filepath.Join(l.Dir(), name+".toml")
		if err := os.WriteFile(path, []byte(text+fmt.Sprintf("\n[control]\nsocket = %q\n", sock)), 0o644); err != nil {
			t.Fatal(err)
		}
		return path, sock
	}
	cfg1, _ := write("lb1")
	cfg2, sock2 := write("lb2")
	n2 := l.StartNode(lb2, "lb2", cfg2, sock2)
	n2.AwaitState("MASTER", 10*time.Second)

	r, code := runDoctor(t, lb1, cfg1, "lb1")
	expect(t, "clean IPv6 lab", r, code, 0)

	ipn(t, ext.NS, "-6", "addr", "add", vip.String()+"/128", "dev", "eth0", "nodad")
	r, code = runDoctor(t, lb1, cfg1, "lb1")
	expect(t, "IPv6 VIP on ext", r, code, 2, want{doctor.CheckConflict, doctor.SevError,
		[]string{fmt.Sprintf("VIP %s is answered (neighbour solicitation, RFC 4861) by %s, which is none of the [[node]]s", vip, macOf(t, ext))}, "choose a VIP nobody uses"})
}
