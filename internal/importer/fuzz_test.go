package importer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"golang.org/x/crypto/bcrypt"

	"github.com/vipd/vipd/internal/config"
)

// fuzzFS serves the fuzzer's input for every file name, and answers every
// include pattern with two files, so includes, cycles and the depth limit
// are exercised by any input that has an include line.
type fuzzFS struct{ data []byte }

func (f fuzzFS) ReadFile(name string, limit int64) ([]byte, error) {
	if int64(len(f.data)) > limit {
		return nil, errTooLarge
	}
	return f.data, nil
}

func (f fuzzFS) Glob(pattern string) ([]string, error) {
	if _, err := filepath.Match(pattern, ""); err != nil {
		return nil, err
	}
	dir := filepath.Dir(pattern)
	return []string{filepath.Join(dir, "a.conf"), filepath.Join(dir, "b.conf")}, nil
}

// checkImport asserts what every import must give, whatever the input: no
// panic (the fuzzer catches those), errors that are *Error values with
// lines inside the input, or an output that is TOML.
func checkImport(t *testing.T, data []byte, o Options) {
	t.Helper()
	lines := strings.Count(string(data), "\n") + 1
	res, err := Import(o)
	if err != nil {
		if res == nil || res.TOML != nil {
			t.Fatalf("a failed import returned %v", res)
		}
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var ie *Error
			if !errors.As(e, &ie) {
				t.Fatalf("error %v (%T) is not an *Error", e, e)
			}
			if ie.Line < 0 || ie.Line > lines {
				t.Fatalf("error line %d outside the input's %d lines: %v", ie.Line, lines, ie)
			}
		}
		return
	}
	for _, n := range res.Notes {
		if n.Line < 0 || n.Line > lines || strings.ContainsAny(n.Msg, "\n\r") {
			t.Fatalf("bad note %q", n)
		}
	}
	// The output is always TOML; whether it passes vipd check is for
	// config.Parse to say (the CLI exits 1 when it does not), one place for
	// each rule. Its errors are *config.Error with lines of the output.
	var raw map[string]any
	if _, err := toml.Decode(string(res.TOML), &raw); err != nil {
		t.Fatalf("the output is not TOML: %v\n%s", err, numbered(res.TOML))
	}
	if _, err := config.Parse("out.toml", res.TOML); err != nil {
		outLines := strings.Count(string(res.TOML), "\n") + 1
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var ce *config.Error
			if !errors.As(e, &ce) || ce.Line < 0 || ce.Line > outLines || strings.Contains(ce.Msg, "TOML syntax") {
				t.Fatalf("config error %v\n%s", e, numbered(res.TOML))
			}
		}
	}
}

func seeds(f *testing.F, patterns ...string) {
	for _, p := range patterns {
		files, _ := filepath.Glob(p)
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

// FuzzKeepalived feeds one input as every node's keepalived.conf (and as
// every file it includes). Time and memory stay bounded by the parser's
// limits: file size, include depth and count, nesting, words.
func FuzzKeepalived(f *testing.F) {
	seeds(f, "testdata/*/*.conf", "testdata/hand/conf.d/*.conf")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return // the parser's own limit is 1 MiB; keep the fuzzer fast
		}
		checkImport(t, data, Options{
			Keepalived: []NodeFile{{"lb1", "/k/keepalived.conf"}, {"lb2", "/k/keepalived.conf"}},
			Addresses:  addrs("lb1", "10.0.0.1", "lb2", "10.0.0.2"),
			BcryptCost: bcrypt.MinCost,
			fs:         fuzzFS{data},
		})
	})
}

// fuzzKeepalivedConf is a keepalived.conf beside which FuzzHAProxy's
// haproxy.cfg is translated, so that VIP binding is exercised too.
const fuzzKeepalivedConf = `vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    unicast_src_ip 10.0.0.1
    virtual_ipaddress {
        10.0.0.100/24
    }
}
`

// FuzzHAProxy feeds one input as haproxy.cfg, alone (single LB) and beside
// a keepalived.conf.
func FuzzHAProxy(f *testing.F) {
	seeds(f, "testdata/*/*.cfg")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		fs := mapFS{"/h/haproxy.cfg": data, "/k/keepalived.conf": []byte(fuzzKeepalivedConf)}
		checkImport(t, data, Options{HAProxy: "/h/haproxy.cfg", BcryptCost: bcrypt.MinCost, fs: fs})
		checkImport(t, data, Options{HAProxy: "/h/haproxy.cfg", Keepalived: one("lb1", "/k/keepalived.conf"), BcryptCost: bcrypt.MinCost, fs: fs})
	})
}

// TestFuzzRegressions holds what the fuzzers found, by name: each input
// once made an output that was not TOML or failed config.Parse; each now
// translates to a file that passes it, or fails with the error named.
func TestFuzzRegressions(t *testing.T) {
	for _, tc := range []struct {
		name, keepalived, haproxy string
		wantErr                   string // an error to expect, or "" for an output that parses
	}{
		{name: "invalid UTF-8 in a comment", keepalived: "0{\xff}vrrp_instance 0{interface 0\nvirtual_router_id 10{}virtual_ipaddress{0.0.0.1}}"},
		{name: "a frontend without a name", haproxy: "frontend\nbind :1\ndefault_backend ingress\nbackend ingress\nserver 00 0.0.10.0", wantErr: "frontend without a name"},
		{name: "sni on a tcp check", haproxy: "frontend 0\nbind :10\ndefault_backend be\nbackend be\noption tcp-check\ntcp-check connect sni 0\nserver 0 0.0.0.1 check"},
		{name: "a relative crt", haproxy: "frontend 0\nbind :10\ndefault_backend be\nbackend be\noption tcp-check\ntcp-check connect ssl\nserver 0 0.0.0.1 check crt 00", wantErr: "absolute path"},
		{name: "the same bind twice", haproxy: "frontend 0\nbind :6443,:6443\ndefault_backend be\nbackend be\nserver 0 0.0.0.1"},
		{name: "two servers with one address", haproxy: "frontend f\nbind :1000\ndefault_backend be\nbackend be\nserver a 10.0.0.1:1000 check\nserver b 10.0.0.1 check"},
		{name: "two frontends of one name", haproxy: "frontend s\nbind :1\ndefault_backend a\nfrontend s\nbind :2\ndefault_backend b\nbackend a\nserver 0 0.0.10.0\nbackend b\nserver 0 0.0.10.0", wantErr: "already used by frontend s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{BcryptCost: bcrypt.MinCost}
			var data []byte
			if tc.keepalived != "" {
				data = []byte(tc.keepalived)
				o.Keepalived = []NodeFile{{"lb1", "/k/keepalived.conf"}, {"lb2", "/k/keepalived.conf"}}
				o.Addresses = addrs("lb1", "10.0.0.1", "lb2", "10.0.0.2")
				o.fs = fuzzFS{data}
			} else {
				data = []byte(tc.haproxy)
				o.HAProxy = "/h/haproxy.cfg"
				o.fs = mapFS{"/h/haproxy.cfg": data}
			}
			checkImport(t, data, o)
			res, err := Import(o)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("want an output, got %v", err)
			case tc.wantErr == "":
				if _, err := config.Parse("out.toml", res.TOML); err != nil {
					t.Errorf("the output does not pass vipd check: %v\n%s", err, numbered(res.TOML))
				}
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("want an error with %q, got %v (%v)", tc.wantErr, err, res)
			}
		})
	}
}
