package integration

import (
	"encoding/json"
	"fmt"
	"html"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/control"
	"github.com/vipd/vipd/vrrp"
)

// Interop with keepalived 2.2.7 at vrrp_version 2 with PASS
// authentication, the setup of every keepalived.conf vipd is meant to
// replace: keepalived MASTER / vipd BACKUP and the reverse, multicast and
// unicast. Each checks no flap beside a 1 s master, takeover on the
// master's death, preemption back, that neither side logs or counts a
// VRRP error, and that an advert with a wrong password is counted and
// ignored by both.

const v2Pass = "k8sPASS"

// kaVRRPErr matches what keepalived logs about an advert it rejects
// (keepalived's vrrp_check_packet): wrong version, auth type or password,
// checksum, interval, address count or list, length, TTL, unicast source.
var kaVRRPErr = regexp.MustCompile(`(?i)wrong version|invalid|passwd|auth(entication)? type|received a \d+ auth|checksum|interval mismatch|unexpected ip number|packet too|not present in MASTER|not a unicast peer|icast packet but received`)

// v2Lab is a keepalived host (.11), a vipd host (.12) and a third host
// (.66) that sends adverts with a wrong password: a third node of vipd's
// config with a stale password (in unicast mode its adverts get past the
// peer filter to the password check that way; keepalived does not filter
// unicast sources unless told to). A router that is not a [[node]] is
// reported as a foreign router first, whatever it sends.
type v2Lab struct {
	*kaLab
	evil    *lab.Host
	unicast bool
	watch   *lab.VIPWatch
}

func newV2Lab(t *testing.T, unicast bool) *v2Lab {
	t.Helper()
	k := &v2Lab{kaLab: newKALab(t), unicast: unicast}
	k.evil = k.AddHost("evil", 66)
	k.watch = lab.WatchVIP(t, k.vip, k.ka, k.vp)
	return k
}

// keepalived starts keepalived at vrrp_version 2, PASS, advert_int 1.
func (k *v2Lab) keepalived(t *testing.T, prio int) *lab.Keepalived {
	t.Helper()
	o := lab.KeepalivedOptions{VIP: k.vip, Priority: prio, AdvertInt: "1", Version: 2, AuthPass: v2Pass}
	if k.unicast {
		o.UnicastSrc, o.UnicastPeers = k.ka.Addr, []netip.Addr{k.vp.Addr}
	}
	return k.StartKeepalived(t, k.ka, "ka", o)
}

// vipd starts vipd with version = 2, the same auth_pass and 1 s adverts,
// as the import of that keepalived.conf writes it.
func (k *v2Lab) vipd(t *testing.T, prio, kaPrio int) *lab.Node {
	t.Helper()
	nodes := []lab.LBNode{lab.N("vp", k.vp, prio), lab.N("ka", k.ka, kaPrio), lab.N("evil", k.evil, 1)}
	o := lab.PairOptions{VIP: k.vip, AdvertInterval: "1s", Version: 2, AuthPass: v2Pass, Unicast: k.unicast}
	return k.startNode(t, o, nodes)
}

// startNode writes o for nodes with vipd's own control socket and starts
// vipd on the vipd host.
func (k *kaLab) startNode(t *testing.T, o lab.PairOptions, nodes []lab.LBNode) *lab.Node {
	t.Helper()
	data, err := os.ReadFile(k.WriteConfig(t, o, nodes))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(k.Dir(), "vp.sock")
	cfg := filepath.Join(k.Dir(), "vp.toml")
	if err := os.WriteFile(cfg, append(data, fmt.Sprintf("\n[control]\nsocket = %q\n", sock)...), 0o644); err != nil {
		t.Fatal(err)
	}
	return k.StartNode(k.vp, "vp", cfg, sock)
}

// steady watches for d that nothing moves: no VIP event on either host,
// no vipd transition, no keepalived state line.
func (k *v2Lab) steady(t *testing.T, n *lab.Node, ka *lab.Keepalived, d time.Duration) {
	t.Helper()
	before, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	mark, from := ka.LogLen(), time.Now()
	steadyFor(d)
	after, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	if a, b := after.Instances[0], before.Instances[0]; a.Transitions != b.Transitions || a.State != b.State {
		t.Errorf("vipd flapped within %s: %s -> %s, transitions %d -> %d: %+v", d, b.State, a.State, b.Transitions, a.Transitions, a.Recent)
	}
	for _, e := range k.watch.Events() {
		if e.At.After(from) {
			t.Errorf("VIP moved within %s: %+v", d, e)
		}
	}
	if l := ka.Log()[mark:]; strings.Contains(l, "Entering") {
		t.Errorf("keepalived changed state within %s:\n%s", d, l)
	}
}

// awaitInstance polls vipd's status until check accepts its first instance.
func awaitInstance(t *testing.T, n *lab.Node, d time.Duration, check func(in control.Instance) error) {
	t.Helper()
	err := lab.WaitFor(d, func() error {
		st, err := n.Status()
		if err != nil {
			return err
		}
		return check(st.Instances[0])
	})
	if err != nil {
		t.Fatalf("%v\n--- vipd log ---\n%s", err, n.Log())
	}
}

// wrongPassword sends three VRRPv2 adverts at priority 254 with a wrong
// password from the third host to both peers and checks that each counts
// and ignores them: vipd drops them as "auth" and names the sender's
// problem, keepalived logs "received an invalid passwd!", and nobody's
// state or master changes.
func (k *v2Lab) wrongPassword(t *testing.T, n *lab.Node, ka *lab.Keepalived, master *lab.Host) {
	t.Helper()
	before, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	adv := vrrp.Advertisement{Version: 2, Type: vrrp.TypeAdvertisement, VRID: 51, Priority: 254,
		MaxAdvertInterval: time.Second, Addresses: []netip.Addr{k.vip}, AuthType: 1}
	copy(adv.AuthData[:], "wrongpw")
	b, err := vrrp.MarshalAdvertisement(&adv, k.evil.Addr, vrrp.IPv4Group, vrrp.ChecksumMessage)
	if err != nil {
		t.Fatal(err)
	}
	mark, from := ka.LogLen(), time.Now()
	if k.unicast {
		lab.InjectTo(t, k.evil, b, k.ka.Addr, 3)
		lab.InjectTo(t, k.evil, b, k.vp.Addr, 3)
	} else {
		lab.Inject(t, k.evil, b, 255, 3)
	}
	ka.AwaitLog("received an invalid passwd!", mark, 3*time.Second)
	awaitInstance(t, n, 3*time.Second, func(in control.Instance) error {
		if in.Drops["auth"] < before.Instances[0].Drops["auth"]+3 {
			return fmt.Errorf("drops %v: want 3 more auth drops", in.Drops)
		}
		for _, s := range in.Senders {
			if s.Addr == k.evil.Addr.String() && strings.Contains(s.Problem, "different auth_pass") && s.Count == 0 {
				return nil
			}
		}
		return fmt.Errorf("senders %+v: want %s with a wrong-password problem and no advert accepted", in.Senders, k.evil.Addr)
	})
	after, _ := n.Status()
	a, b0 := after.Instances[0], before.Instances[0]
	if a.State != b0.State || a.Transitions != b0.Transitions || a.MasterAddr != b0.MasterAddr {
		t.Errorf("vipd followed an advert with a wrong password: %s/%d/%s -> %s/%d/%s", b0.State, b0.Transitions, b0.MasterAddr, a.State, a.Transitions, a.MasterAddr)
	}
	if !containsProblem(a.Problems, "different auth_pass") {
		t.Errorf("problems %q: want the wrong password named", a.Problems)
	}
	if l := ka.Log()[mark:]; strings.Contains(l, "Entering") {
		t.Errorf("keepalived followed an advert with a wrong password:\n%s", l)
	}
	if h := k.watch.Holders(time.Now()); len(h) != 1 || h[0] != master.Name {
		t.Errorf("VIP held by %v, want %s", h, master.Name)
	}
	for _, e := range k.watch.Events() {
		if e.At.After(from) {
			t.Errorf("VIP moved after the wrong-password adverts: %+v", e)
		}
	}
}

func containsProblem(ps []string, substr string) bool {
	for _, p := range ps {
		if strings.Contains(p, substr) {
			return true
		}
	}
	return false
}

// noKeepalivedErrors fails if keepalived logged any VRRP error about the
// adverts it received.
func noKeepalivedErrors(t *testing.T, ka *lab.Keepalived, from int) {
	t.Helper()
	l := ka.Log()
	if from > len(l) {
		from = len(l)
	}
	for _, line := range strings.Split(l[from:], "\n") {
		if kaVRRPErr.MatchString(line) {
			t.Errorf("keepalived logged a VRRP error: %q\n--- keepalived log ---\n%s", line, l)
			return
		}
	}
}

func v2Modes(t *testing.T, f func(t *testing.T, unicast bool)) {
	for _, unicast := range []bool{false, true} {
		name := "multicast"
		if unicast {
			name = "unicast"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, unicast)
		})
	}
}

// TestKeepalivedV2MasterVipdBackup: keepalived (150, v2, PASS) is MASTER,
// vipd (100, version = 2) follows it without a flap, takes over when
// keepalived dies (Master_Down_Interval 3 s + (256-100)/256 s), and hands
// back when keepalived returns (preemption).
func TestKeepalivedV2MasterVipdBackup(t *testing.T) {
	v2Modes(t, func(t *testing.T, unicast bool) {
		k := newV2Lab(t, unicast)
		ka := k.keepalived(t, 150)
		ka.AwaitLog("Entering MASTER STATE", 0, 10*time.Second)
		n := k.vipd(t, 100, 150)
		n.AwaitState("BACKUP", 5*time.Second)
		awaitInstance(t, n, 5*time.Second, func(in control.Instance) error {
			if in.Version != 2 || in.MasterAddr != k.ka.Addr.String() {
				return fmt.Errorf("version %d, master_addr %q; want 2 and keepalived %s", in.Version, in.MasterAddr, k.ka.Addr)
			}
			for _, s := range in.Senders {
				if s.Addr == k.ka.Addr.String() && s.Version == 2 && s.Count > 0 && s.Problem == "" {
					return nil
				}
			}
			return fmt.Errorf("senders %+v; want keepalived at v2 with adverts accepted and no problem", in.Senders)
		})
		// A 1 s master, vipd's startup_interval 1 s: no flap while watched
		// for longer than Master_Down_Interval (3.61 s).
		k.steady(t, n, ka, 4*time.Second)
		noKeepalivedErrors(t, ka, 0)

		ka.Crash()
		killed := time.Now()
		n.AwaitState("MASTER", 6*time.Second)
		took := time.Since(killed)
		t.Logf("vipd MASTER %s after SIGKILL of keepalived (VRRPv2 Down_Interval at priority 100: 3.61 s)", took.Round(time.Millisecond))
		if took < 3*time.Second {
			t.Errorf("vipd took over %s after keepalived died, before Master_Down_Interval (3.61 s)", took)
		}

		mark := ka.LogLen()
		ka.Start()
		ka.AwaitLog("Entering MASTER STATE", mark, 10*time.Second)
		n.AwaitState("BACKUP", 3*time.Second)
		lab.AwaitHolder(t, k.vip, k.ka, 3*time.Second, k.ka, k.vp)
		noKeepalivedErrors(t, ka, 0)
		awaitInstance(t, n, time.Second, func(in control.Instance) error {
			if len(in.Problems) > 0 || dropped(in.Drops) > 0 {
				return fmt.Errorf("vipd reports problems %q, drops %v beside keepalived", in.Problems, in.Drops)
			}
			return nil
		})

		k.wrongPassword(t, n, ka, k.ka)
	})
}

// TestVipdV2MasterKeepalivedBackup: vipd (150, version = 2) is MASTER,
// keepalived (100, v2, PASS) stays BACKUP without a flap and accepts
// every advert; keepalived takes over when vipd dies, and vipd preempts
// back when it returns.
func TestVipdV2MasterKeepalivedBackup(t *testing.T) {
	v2Modes(t, func(t *testing.T, unicast bool) {
		k := newV2Lab(t, unicast)
		n := k.vipd(t, 150, 100)
		n.AwaitState("MASTER", 8*time.Second)
		ka := k.keepalived(t, 100)
		ka.AwaitLog("Entering BACKUP STATE", 0, 10*time.Second)
		// Longer than keepalived's Master_Down_Interval (3.61 s): a
		// keepalived that could not hear vipd would be MASTER by then.
		k.steady(t, n, ka, 4*time.Second)
		noKeepalivedErrors(t, ka, 0)
		if h := k.watch.Holders(time.Now()); len(h) != 1 || h[0] != "vp" {
			t.Fatalf("VIP held by %v, want vp", h)
		}

		mark := ka.LogLen()
		n.Signal(syscall.SIGKILL)
		killed := time.Now()
		ka.AwaitLog("Entering MASTER STATE", mark, 6*time.Second)
		t.Logf("keepalived MASTER %s after SIGKILL of vipd", time.Since(killed).Round(time.Millisecond))
		n.Stop(syscall.SIGKILL, 5*time.Second)

		// vipd returns: it removes the VIP its killed run left, follows
		// keepalived, and preempts once its checks completed a round.
		mark = ka.LogLen()
		n.Start()
		ka.AwaitLog("Entering BACKUP STATE", mark, 10*time.Second)
		n.AwaitState("MASTER", 2*time.Second)
		lab.AwaitHolder(t, k.vip, k.vp, 3*time.Second, k.ka, k.vp)
		noKeepalivedErrors(t, ka, 0)
		awaitInstance(t, n, time.Second, func(in control.Instance) error {
			if len(in.Problems) > 0 || dropped(in.Drops) > 0 {
				return fmt.Errorf("vipd reports problems %q, drops %v beside keepalived", in.Problems, in.Drops)
			}
			return nil
		})

		k.wrongPassword(t, n, ka, k.vp)
	})
}

// dropped sums the drops that are not vipd's own echoes.
func dropped(drops map[string]uint64) uint64 {
	var n uint64
	for k, v := range drops {
		if k != string(vrrp.DropSelf) {
			n += v
		}
	}
	return n
}

// TestMixedVersionsReported: vipd at version = 3 (priority 150) beside a
// keepalived at vrrp_version 2 (priority 100). They cannot hear each
// other; vipd says so in `vipd status -o json` (problems), on the status
// page and in its log, and follows keepalived instead of becoming a
// second MASTER. When keepalived stops (priority 0), vipd takes over.
func TestMixedVersionsReported(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("SKIP: needs curl for the status page (apt-get install -y curl)")
	}
	k := newV2Lab(t, false)
	ka := k.keepalived(t, 100)
	ka.AwaitLog("Entering MASTER STATE", 0, 10*time.Second)
	n := k.startNode(t, lab.PairOptions{VIP: k.vip, AdvertInterval: "1s", HTTP: "127.0.0.1:9600"},
		[]lab.LBNode{lab.N("vp", k.vp, 150), lab.N("ka", k.ka, 100)})
	want := fmt.Sprintf("peer %s speaks VRRPv2; set version = 2 to join it", k.ka.Addr)

	var st control.Status
	err := lab.WaitFor(5*time.Second, func() error {
		out, err := vipdCLI(n, "status", "-o", "json")
		if err != nil {
			return fmt.Errorf("vipd status -o json: %v: %s", err, out)
		}
		st = control.Status{}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if len(st.Instances) == 0 || !containsProblem(st.Instances[0].Problems, want) {
			return fmt.Errorf("instances %+v, want the problem %q", st.Instances, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, n.Log())
	}
	if code, body := curl(t, k.vp, "http://127.0.0.1:9600/"); code != "200" || !strings.Contains(html.UnescapeString(body), want) {
		t.Errorf("status page: HTTP %s, want the problem %q on it:\n%s", code, want, body)
	}
	if !strings.Contains(n.Log(), want) {
		t.Errorf("log has no %q:\n%s", want, n.Log())
	}

	// Watched past Master_Down_Interval: one MASTER, keepalived.
	k.steady(t, n, ka, 4*time.Second)
	if in := instanceOf(t, n); in.State != "BACKUP" || in.MasterAddr != k.ka.Addr.String() || in.Notices["version"] == 0 {
		t.Errorf("vipd %s behind %q, notices %v; want BACKUP following keepalived %s, its adverts counted as the version notice", in.State, in.MasterAddr, in.Notices, k.ka.Addr)
	}

	// keepalived stops: its priority 0 hands over to vipd after Skew_Time.
	stopped := time.Now()
	ka.Stop(syscall.SIGTERM, 10*time.Second)
	n.AwaitState("MASTER", 3*time.Second)
	t.Logf("vipd (version 3) MASTER %s after keepalived (version 2) stopped", time.Since(stopped).Round(time.Millisecond))
	lab.AwaitHolder(t, k.vip, k.vp, 2*time.Second, k.ka, k.vp)
}

func instanceOf(t *testing.T, n *lab.Node) control.Instance {
	t.Helper()
	st, err := n.Status()
	if err != nil || len(st.Instances) == 0 {
		t.Fatalf("status: %v", err)
	}
	return st.Instances[0]
}
