package integration

import (
	"context"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vipd/vipd/integration/lab"
	"github.com/vipd/vipd/internal/control"
)

// TestStatusPage looks at the [http] status page the way a person does: a
// real HA pair in namespaces, in front of two stand-in control planes (one
// failing its readiness check), and a headless Chromium inside lb1's
// namespace that loads http://127.0.0.1:9600/. It checks the text a reader
// sees, keeps a screenshot in integration/artifacts/, and checks the
// access rules over the wire: 403 from a network outside [http] allow, 401
// without or with wrong credentials.
func TestStatusPage(t *testing.T) {
	chromium := findChromium(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("SKIP: needs curl for the access checks (apt-get install -y curl)")
	}
	l := lab.NewLab(t)
	lb1, lb2, client := l.AddHost("lb1", 11), l.AddHost("lb2", 12), l.AddHost("client", 100)
	cp1, cp2 := l.AddHost("cp1", 31), l.AddHost("cp2", 32)
	vip := l.Addr(10)
	pki := lab.NewPKI(t, vip, cp1.Addr, cp2.Addr)
	lab.StartControlPlane(t, cp1, pki)
	lab.StartControlPlane(t, cp2, pki).SetMode(t, "500")

	const user, pass = "admin", "correct horse"
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// lb1: loopback only, no users (the browser's view). lb2: loopback
	// only, with a user (the auth checks).
	perNode := func(name string) string {
		s := "\n[http]\nlisten = \":9600\"\nallow = [\"127.0.0.0/8\"]\n"
		if name == "lb2" {
			s += fmt.Sprintf("\n[[http.user]]\nname = %q\npassword_hash = %q\n", user, hash)
		}
		return s
	}
	check := fmt.Sprintf(`{ type = "https", path = "/readyz", ca = %q, interval = "300ms", timeout = "200ms", rise = 1, fall = 1 }`, pki.CA)
	ns := l.StartNodes(t, lab.PairOptions{VIP: vip, Backends: []*lab.Host{cp1, cp2}, Check: check, PerNode: perNode},
		[]lab.LBNode{lab.N("lb1", lb1, 150), lab.N("lb2", lb2, 100)})
	n1, n2 := ns[0], ns[1]
	n1.AwaitState("MASTER", 5*time.Second)
	n2.AwaitState("BACKUP", 2*time.Second)
	// Wait until the page has everything to show: lb2's beacon and a
	// verdict on both servers.
	err = lab.WaitFor(10*time.Second, func() error {
		st, err := n1.Status()
		if err != nil {
			return err
		}
		if !hasFreshPeer(st, "lb2") {
			return fmt.Errorf("lb1 has no fresh beacon from lb2: %+v", st.Peers)
		}
		if a, b := serverState(n1, "kube-apiserver", "cp1"), serverState(n1, "kube-apiserver", "cp2"); a != "UP" || b != "DOWN" {
			return fmt.Errorf("cp1 %s, cp2 %s; want UP, DOWN", a, b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, n1.Log())
	}

	// What a person sees.
	dom := runChromium(t, lb1, chromium, "--dump-dom", "http://127.0.0.1:9600/")
	text := domText(dom)
	for _, want := range []string{
		"vipd · lb1",
		"VIP " + vip.String() + "/32",
		"VIP owner lb1 (this node)",
		"lb1 (this node) " + lb1.Addr.String() + " MASTER 150",
		"lb2 " + lb2.Addr.String() + " BACKUP 100 yes fresh",
		"Backend kube-apiserver · 1 of 2 UP",
		"cp1 " + cp1.Addr.String() + ":6443 UP ok",
		"cp2 " + cp2.Addr.String() + ":6443 DOWN failed",
		"INIT → BACKUP", "BACKUP → MASTER",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the page does not show %q\n--- visible text ---\n%s", want, text)
		}
	}

	dir, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "status-page.png")
	os.Remove(shot)
	runChromium(t, lb1, chromium, "--hide-scrollbars", "--screenshot="+shot, "http://127.0.0.1:9600/?refresh=0")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Errorf("screenshot %s missing or too small to show anything (%v)", shot, err)
	} else {
		t.Logf("screenshot: %s (%d bytes)", shot, fi.Size())
	}

	// The other endpoints, from loopback inside lb1.
	if code, body := curl(t, lb1, "http://127.0.0.1:9600/metrics"); code != "200" ||
		!regexp.MustCompile(`(?m)^vipd_vrrp_state\{instance="[^"]+",state="MASTER"\} 1$`).MatchString(body) ||
		!regexp.MustCompile(`(?m)^vipd_server_state\{backend="kube-apiserver",server="cp2",state="DOWN"\} 1$`).MatchString(body) {
		t.Errorf("lb1 /metrics = %s without the MASTER and cp2 DOWN series\n%s", code, body)
	}
	if code, body := curl(t, lb1, "http://127.0.0.1:9600/api/v1/status"); code != "200" || !strings.Contains(body, `"node": "lb1"`) {
		t.Errorf("lb1 /api/v1/status = %s\n%s", code, body)
	}

	// Access: a foreign network is refused before auth is even asked.
	for _, h := range []*lab.Host{client, lb2} {
		if code, body := curl(t, h, fmt.Sprintf("http://%s:9600/", lb1.Addr)); code != "403" || strings.Contains(body, "MASTER") {
			t.Errorf("GET lb1 from %s (%s) = %s, want 403 without the page\n%s", h.Name, h.Addr, code, body)
		}
	}
	if code, _ := curl(t, client, fmt.Sprintf("http://%s:9600/", lb2.Addr), "-u", user+":"+pass); code != "403" {
		t.Errorf("GET lb2 from the client with good credentials = %s, want 403 (allow is checked first)", code)
	}
	// Basic auth on lb2.
	code, hdr := curl(t, lb2, "http://127.0.0.1:9600/", "-D", "-", "-o", "/dev/null")
	if code != "401" || !strings.Contains(strings.ToLower(hdr), `www-authenticate: basic realm="vipd"`) {
		t.Errorf("GET lb2 without credentials = %s, want 401 with a Basic challenge\n%s", code, hdr)
	}
	if code, _ := curl(t, lb2, "http://127.0.0.1:9600/metrics", "-u", user+":wrong"); code != "401" {
		t.Errorf("GET lb2 with a wrong password = %s, want 401", code)
	}
	// Right after a failed login its address waits (100 ms, doubling):
	// 429 until then.
	var code200, body200 string
	lab.WaitFor(3*time.Second, func() error {
		code200, body200 = curl(t, lb2, "http://127.0.0.1:9600/api/v1/status", "-u", user+":"+pass)
		if code200 == "429" {
			return fmt.Errorf("429")
		}
		return nil
	})
	if code200 != "200" || !strings.Contains(body200, `"node": "lb2"`) {
		t.Errorf("GET lb2 with credentials = %s, want 200 and lb2's status\n%s", code200, body200)
	}
	// A browser with the credentials sees the backup's view of the pair.
	text = domText(runChromium(t, lb2, chromium, "--dump-dom", "http://"+user+":"+strings.ReplaceAll(pass, " ", "%20")+"@127.0.0.1:9600/"))
	for _, want := range []string{"vipd · lb2", "VIP owner lb1 (" + lb1.Addr.String() + ")", "lb2 (this node) " + lb2.Addr.String() + " BACKUP"} {
		if !strings.Contains(text, want) {
			t.Errorf("lb2's page (with credentials) does not show %q\n%s", want, text)
		}
	}
}

// findChromium returns Debian's chromium, or skips with a visible line.
func findChromium(t *testing.T) string {
	t.Helper()
	lab.RequireRoot(t)
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("SKIP: chromium is not installed (apt-get install -y chromium); the status page browser test needs it")
	return ""
}

// runChromium runs headless Chromium inside h's namespace (the [http]
// listener is on that namespace's loopback) and returns its stdout.
func runChromium(t *testing.T, h *lab.Host, chromium string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tmp := t.TempDir()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + filepath.Join(tmp, "profile"),
		"--window-size=1280,1000",
	}
	cmd := h.Exec(ctx, chromium, append(base, args...)...)
	// Keep Chromium's caches and crash reports out of root's home.
	cmd.Env = append(os.Environ(), "HOME="+tmp, "XDG_CONFIG_HOME="+tmp, "XDG_CACHE_HOME="+tmp)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s in %s: %v\n%s", strings.Join(args, " "), h.Name, err, stderr.String())
	}
	return stdout.String()
}

var (
	domTagRE   = regexp.MustCompile(`(?is)<(style|head)\b.*?</(style|head)>|<[^>]*>`)
	domSpaceRE = regexp.MustCompile(`\s+`)
)

// domText is the visible text of a dumped DOM: no head, styles or tags,
// entities decoded, whitespace collapsed.
func domText(dom string) string {
	return strings.TrimSpace(domSpaceRE.ReplaceAllString(html.UnescapeString(domTagRE.ReplaceAllString(dom, " ")), " "))
}

// curl fetches url from inside h's namespace and returns the HTTP status
// code and the body (or whatever -o/-D options send to stdout).
func curl(t *testing.T, h *lab.Host, url string, extra ...string) (code, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := append([]string{"-sS", "--max-time", "5", "-w", "\n%{http_code}"}, extra...)
	b, err := h.Exec(ctx, "curl", append(args, url)...).CombinedOutput()
	s := strings.TrimRight(string(b), "\n")
	i := strings.LastIndexByte(s, '\n')
	if err != nil || i < 0 {
		t.Fatalf("curl %s from %s: %v\n%s", url, h.Name, err, b)
	}
	return s[i+1:], s[:i]
}

func hasFreshPeer(st control.Status, name string) bool {
	for _, p := range st.Peers {
		if p.Name == name && p.Fresh {
			return true
		}
	}
	return false
}
