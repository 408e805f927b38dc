package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWarnings(t *testing.T) {
	track := func(weight string) string {
		return "[[track]]\nname = \"t" + weight + "\"\ntype = \"interface\"\ninterface = \"eth0\"\nweight = " + weight + "\n"
	}
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{
			name:  "clean",
			input: vrrpOK + nodesOK + feOK + beOK + track("-60"),
		},
		{
			name:  "weight smaller than the gap",
			input: vrrpOK + nodesOK + feOK + beOK + track("-40"),
			want: []string{
				`vipd.toml: trackers can never move the VIP from "lb1" to "lb2": with all of them failing "lb1" has 150 - 40 = 110, and "lb2" with all healthy has 100 + 0 = 100; the weights must add up to more than the priority gap 50`,
			},
		},
		{
			name:  "weight equal to the gap ties",
			input: vrrpOK + nodesOK + feOK + beOK + track("-25") + track("25"),
			want: []string{
				`vipd.toml: trackers can never move the VIP from "lb1" to "lb2": with all of them failing "lb1" has 150 - 25 = 125, and "lb2" with all healthy has 100 + 25 = 125 (equal priorities go to the higher address); the weights must add up to more than the priority gap 50`,
			},
		},
		{
			name:  "only together",
			input: vrrpOK + nodesOK + feOK + beOK + track("-30") + track("-31"),
			want: []string{
				`vipd.toml: [[track]] "t-30" weight -30 cannot move the VIP on its own: the priority gap between "lb1" (150) and "lb2" (100) is 50; it only matters together with other trackers`,
				`vipd.toml: [[track]] "t-31" weight -31 cannot move the VIP on its own: the priority gap between "lb1" (150) and "lb2" (100) is 50; it only matters together with other trackers`,
			},
		},
		{
			name:  "weight 0 means FAULT, always a failover",
			input: vrrpOK + nodesOK + feOK + beOK + track("0"),
		},
		{
			name:  "owner is never adjusted",
			input: vrrpOK + "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\npriority = 255\n[[node]]\nname = \"lb2\"\naddress = \"192.168.30.22\"\n" + feOK + beOK + track("-60"),
			want: []string{
				`vipd.toml: [[node]] "lb1" has priority 255 (address owner), which trackers never adjust, so their weights cannot move the VIP off it; use 254 or less`,
			},
		},
		{
			name:  "one node",
			input: vrrpWith("unicast = true") + "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\n" + feOK + beOK,
			want: []string{
				`vipd.toml: only one [[node]] (lb1): there is no peer to fail over to; add the other load balancer, or remove [vrrp] for single-LB mode (with unicast = true the adverts have nobody to go to)`,
			},
		},
		{
			name:  "tied priorities",
			input: vrrpOK + "[[node]]\nname = \"lb1\"\naddress = \"192.168.30.21\"\n[[node]]\nname = \"lb2\"\naddress = \"192.168.30.22\"\n" + feOK + beOK,
			want: []string{
				`vipd.toml: [[node]] "lb1" and "lb2" both have priority 100; the higher address wins the tie (RFC 9568 section 6.4.3), so give them different priorities to choose the master`,
			},
		},
		{
			name:  "check timeout not below interval",
			input: vrrpOK + nodesOK + feOK + beOK + "check = { interval = \"1s\", timeout = \"1s\" }\n",
			want: []string{
				`vipd.toml:20: [[backend]] "kube-apiserver" check timeout = "1s": timeout 1s is not shorter than interval 1s; a slow check overlaps the next one; make timeout shorter than interval`,
			},
		},
		{
			name:  "script timeout not below interval",
			input: vrrpOK + nodesOK + feOK + beOK + "[[track]]\nname = \"s\"\ntype = \"script\"\ncommand = [\"/bin/true\"]\ninterval = \"1s\"\ntimeout = \"2s\"\n",
			want: []string{
				`vipd.toml:25: [[track]] "s" timeout = "2s": not shorter than interval 1s; a slow script is still running when the next run is due; make timeout shorter`,
			},
		},
		{
			name:  "https without ca",
			input: vrrpOK + nodesOK + feOK + beOK + "check = { type = \"https\", path = \"/readyz\" }\n",
			want: []string{
				`vipd.toml:20: [[backend]] "kube-apiserver" check: an https check without ca verifies against the system roots, which do not sign a cluster's kube-apiserver certificate; set ca = "/etc/kubernetes/pki/ca.crt" (or insecure_skip_verify = true)`,
			},
		},
		{
			name:  "unused backend",
			input: vrrpOK + nodesOK + feOK + beOK + "[[backend]]\nname = \"talos\"\nservers = [\"192.168.30.31:50000\"]\n",
			want: []string{
				`vipd.toml:20: [[backend]] "talos": no [[frontend]] uses it; add backend = "talos" to a frontend or remove it`,
			},
		},
		{
			name:  "status page only for loopback",
			input: vrrpOK + nodesOK + feOK + beOK + "[http]\nlisten = \"0.0.0.0:9600\"\n",
			want: []string{
				`vipd.toml:21: [http] listen = "0.0.0.0:9600": allow is not set, so only loopback clients get in; add allow = ["10.0.0.0/8"] for the networks that may read it`,
			},
		},
		{
			name: "weak bcrypt cost",
			input: vrrpOK + nodesOK + feOK + beOK + "[http]\n[[http.user]]\nname = \"admin\"\npassword_hash = \"" + hashCost4 + "\"\n" +
				"[[http.user]]\nname = \"ok\"\npassword_hash = \"" + hashCost10 + "\"\n",
			want: []string{
				`vipd.toml:23: [[http.user]] "admin": bcrypt cost 4 is below 10, so a copied config file gives the password away quickly; generate the hash with htpasswd -bnBC 10 "" PASSWORD | tr -d ':\n'`,
			},
		},
		{
			name:  "page open to everyone without users",
			input: vrrpOK + nodesOK + feOK + beOK + "[http]\nlisten = \":9600\"\nallow = [\"10.0.0.0/8\", \"0.0.0.0/0\"]\n",
			want: []string{
				`vipd.toml:22: [http] listen = ":9600" with allow = ["0.0.0.0/0"] and no [[http.user]]: anyone who reaches this port reads the status and metrics; add an [[http.user]] or list only the operators' networks in allow`,
			},
		},
		{
			name:  "open allow on loopback is fine",
			input: vrrpOK + nodesOK + feOK + beOK + "[http]\nlisten = \"127.0.0.1:9600\"\nallow = [\"::/0\", \"0.0.0.0/0\"]\n",
		},
		{
			name:  "world-writable socket",
			input: vrrpOK + nodesOK + feOK + beOK + "[control]\nmode = \"0666\"\n",
			want: []string{
				`vipd.toml:21: [control] mode = "0666": anyone on the host can drive failovers through a world-writable socket; use "0660" with group`,
			},
		},
		{
			name:  "trackers without vrrp",
			input: "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\naddress = \"10.0.0.5\"\n" + beOK + track("-10"),
			want: []string{
				`vipd.toml:9: [[track]]: trackers adjust the VRRP priority, and there is no [vrrp]; they run but change nothing`,
			},
		},
		{
			name:  "frontend maxconn above global",
			input: vrrpOK + nodesOK + "[[frontend]]\nname = \"kubernetes\"\nport = 6443\nbackend = \"kube-apiserver\"\nmaxconn = 500\n" + beOK + "[global]\nmaxconn = 100\n",
			want: []string{
				`vipd.toml:17: [[frontend]] "kubernetes" maxconn = 500: above [global] maxconn = 100, which caps it first`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("vipd.toml", []byte(tt.input))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, c.Warnings()); diff != "" {
				t.Errorf("Warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// Hashes of "x" at cost 4 and 10.
const (
	hashCost4  = "$2a$04$6yw9BNYgJvZwL7wWWs8dQejRxfiCc2j0.TfHD0yPU3Kkn5J0U0hOG"
	hashCost10 = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
)

// TestFileModeWarning: a config that holds password hashes and that every
// local user can read is worth a warning (the README installed it 0644).
func TestFileModeWarning(t *testing.T) {
	dir := t.TempDir()
	body := vrrpOK + nodesOK + feOK + beOK + "[http]\n[[http.user]]\nname = \"ok\"\npassword_hash = \"" + hashCost10 + "\"\n"
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o644, true}, {0o640, false}, {0o600, false}} {
		path := filepath.Join(dir, fmt.Sprintf("vipd-%o.toml", tc.mode))
		if err := os.WriteFile(path, []byte(body), tc.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, tc.mode) // past the umask
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%s: mode %04o lets every local user read the [[http.user]] password hashes; chmod 0640 %s and chown root:vipd (the daemon's group)", path, tc.mode, path)
		got := slices.Contains(c.Warnings(), want)
		if got != tc.warn {
			t.Errorf("mode %04o: warning %v, want %v; warnings %q", tc.mode, got, tc.warn, c.Warnings())
		}
	}
}
