package doctor

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestFiles(t *testing.T) {
	tests := []struct {
		name    string
		cfg     FileInfo
		dir     FileInfo
		vipd    bool // a vipd user (uid 998, group 998) exists
		group   string
		secrets []string
		want    []string
	}{
		{name: "packaged", cfg: FileInfo{Mode: 0o640, GID: 998}, dir: FileInfo{Mode: os.ModeDir | 0o755}, vipd: true, secrets: []string{"auth_pass"}},
		{name: "world-readable without secrets", cfg: FileInfo{Mode: 0o644}, dir: FileInfo{Mode: os.ModeDir | 0o755}},
		{name: "world-writable", cfg: FileInfo{Mode: 0o666}, dir: FileInfo{Mode: os.ModeDir | 0o755},
			want: []string{"error: is writable by every user (mode 0666)"}},
		{name: "vipd cannot read", cfg: FileInfo{Mode: 0o600}, dir: FileInfo{Mode: os.ModeDir | 0o755}, vipd: true,
			want: []string{"warning: user vipd (the packaged unit runs vipd as it) cannot read"}},
		{name: "socket group missing", cfg: FileInfo{Mode: 0o640}, dir: FileInfo{Mode: os.ModeDir | 0o755}, group: "vipd-admin",
			want: []string{"error: [control] group \"vipd-admin\" does not exist"}},
		{name: "socket directory world-writable", cfg: FileInfo{Mode: 0o640}, dir: FileInfo{Mode: os.ModeDir | 0o777},
			want: []string{"warning: the control socket's directory /run/vipd is writable by every user"}},
		{name: "socket directory /tmp-like", cfg: FileInfo{Mode: 0o640}, dir: FileInfo{Mode: os.ModeDir | os.ModeSticky | 0o777}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := filesHost{
				stat: func(p string) (FileInfo, error) {
					if p == "/run/vipd" {
						return tt.dir, nil
					}
					return tt.cfg, nil
				},
				lookupGroup: func(string) (int, error) { return 0, errors.New("unknown group") },
				lookupUser: func(string) (int, []int, error) {
					if tt.vipd {
						return 998, []int{998}, nil
					}
					return 0, nil, errors.New("unknown user")
				},
			}
			plan := Plan{ConfigPath: "/etc/vipd/vipd.toml", Socket: "/run/vipd/vipd.sock", SocketGroup: tt.group, Secrets: tt.secrets}
			fs := checkFiles(h, plan)
			if len(fs) != len(tt.want) {
				t.Fatalf("findings %+v, want %q", fs, tt.want)
			}
			for i, w := range tt.want {
				sev, seen, _ := strings.Cut(w, ": ")
				if fs[i].Severity != sev || !strings.Contains(fs[i].Seen, seen) || fs[i].Fix == "" {
					t.Errorf("finding %+v, want %s", fs[i], w)
				}
			}
		})
	}
}
