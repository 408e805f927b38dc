package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml3 "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/vipd/vipd/internal/config"
)

func load(t *testing.T, path string) (*config.Config, []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(path, raw)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, raw
}

func parseConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// decodePod decodes YAML into the real Kubernetes Pod type the way the
// kubelet reads a manifest, but strictly: an unknown or duplicate field
// is an error.
func decodePod(t *testing.T, data []byte) corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("not a valid core/v1 Pod: %v\n%s", err, data)
	}
	return p
}

// TestStrictDecodeRejectsUnknownFields shows the decoder the tests rely on
// is strict: a misspelt field fails.
func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	cfg, _ := load(t, "../../examples/control-plane-nodes.toml")
	out, _, err := StaticPod(cfg, Options{Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(out, []byte("hostNetwork:"), []byte("hostNetwrok:"), 1)
	var p corev1.Pod
	if err := yaml.UnmarshalStrict(bad, &p); err == nil || !strings.Contains(err.Error(), "hostNetwrok") {
		t.Fatalf("strict decode of a misspelt field: err = %v, want an unknown-field error", err)
	}
}

// checkPod asserts the contract of DESIGN.md section 6 and the issue on
// a decoded pod: host network, system-node-critical, exactly the three
// capabilities, read-only root, non-root, the config from the host, the
// liveness probe on the status endpoint, and measured requests.
func checkPod(t *testing.T, p corev1.Pod, hostConfig string, typed bool) {
	t.Helper()
	if p.APIVersion != "v1" || p.Kind != "Pod" || p.Name != "vipd" || p.Namespace != "kube-system" {
		t.Errorf("pod identity %s/%s %s/%s", p.APIVersion, p.Kind, p.Namespace, p.Name)
	}
	s := p.Spec
	if !s.HostNetwork || s.PriorityClassName != "system-node-critical" {
		t.Errorf("hostNetwork %v priorityClassName %q", s.HostNetwork, s.PriorityClassName)
	}
	if s.TerminationGracePeriodSeconds == nil || *s.TerminationGracePeriodSeconds < 10 {
		t.Errorf("terminationGracePeriodSeconds %v: the SIGTERM handover needs time", s.TerminationGracePeriodSeconds)
	}
	if sc := s.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != UID {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and uid %d", sc, UID)
	}
	if len(s.Containers) != 1 {
		t.Fatalf("%d containers", len(s.Containers))
	}
	c := s.Containers[0]
	if diff := cmp.Diff([]string{BinaryPath, "run", "-c", ContainerConfig}, c.Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no container securityContext.capabilities")
	}
	if diff := cmp.Diff([]corev1.Capability{"NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"}, sc.Capabilities.Add); diff != "" {
		t.Errorf("capabilities added (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]corev1.Capability{"ALL"}, sc.Capabilities.Drop); diff != "" {
		t.Errorf("capabilities dropped (-want +got):\n%s", diff)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root filesystem not read-only")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged container")
	}

	// The config: a read-only mount at ContainerConfig from hostConfig.
	vols := map[string]corev1.Volume{}
	for _, v := range s.Volumes {
		if errs := validation.IsDNS1123Label(v.Name); len(errs) > 0 {
			t.Errorf("volume name %q: %v", v.Name, errs)
		}
		vols[v.Name] = v
	}
	var cfgMount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("mount %q has no volume", m.Name)
		}
		if m.MountPath == ContainerConfig {
			cfgMount = &c.VolumeMounts[i]
		}
	}
	if cfgMount == nil || !cfgMount.ReadOnly {
		t.Fatalf("config not mounted read-only at %s: %+v", ContainerConfig, c.VolumeMounts)
	}
	hp := vols[cfgMount.Name].HostPath
	if hp == nil || hp.Path != hostConfig {
		t.Errorf("config volume %+v, want hostPath %s", vols[cfgMount.Name], hostConfig)
	}
	if typed != (hp != nil && hp.Type != nil && *hp.Type == corev1.HostPathFile) {
		t.Errorf("config hostPath type %v, want typed=%v", hp.Type, typed)
	}

	// Liveness: the status endpoint on the [http] listener.
	lp := c.LivenessProbe
	if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/api/v1/status" || lp.HTTPGet.Port.IntValue() != 9600 || lp.HTTPGet.Host != "127.0.0.1" {
		t.Errorf("liveness probe %+v, want GET 127.0.0.1:9600/api/v1/status", lp)
	}

	// Requests as measured, no limits (an OOM kill is a failover).
	if got := c.Resources.Requests[corev1.ResourceMemory]; got.Cmp(resource.MustParse(requestMemory)) != 0 {
		t.Errorf("memory request %s, want %s", got.String(), requestMemory)
	}
	if got := c.Resources.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse(requestCPU)) != 0 {
		t.Errorf("cpu request %s, want %s", got.String(), requestCPU)
	}
	if len(c.Resources.Limits) != 0 {
		t.Errorf("limits %v, want none", c.Resources.Limits)
	}
	for k, v := range p.Labels {
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("label %s=%q: %v", k, v, errs)
		}
	}
}

func TestStaticPod(t *testing.T) {
	for _, file := range []string{"control-plane-nodes.toml", "ha-pair.toml"} {
		t.Run(file, func(t *testing.T) {
			cfg, _ := load(t, filepath.Join("../../examples", file))
			out, warnings, err := StaticPod(cfg, Options{Version: "v1.2.3-4-gabcdef0-dirty"})
			if err != nil {
				t.Fatal(err)
			}
			p := decodePod(t, out)
			checkPod(t, p, StaticPodHostConfig, true)
			if img := p.Spec.Containers[0].Image; img != ImageRepo+":v1.2.3-4-gabcdef0-dirty" {
				t.Errorf("image %q", img)
			}
			// Every file the config names is mounted at the same path.
			mounted := map[string]bool{}
			for _, m := range p.Spec.Containers[0].VolumeMounts {
				mounted[m.MountPath] = m.ReadOnly
			}
			for _, b := range cfg.Backends {
				if b.Check.CA != "" && !mounted[b.Check.CA] {
					t.Errorf("check CA %s not mounted read-only", b.Check.CA)
				}
			}
			if !strings.Contains(strings.Join(warnings, "\n"), "promote_secondaries") {
				t.Errorf("no reminder of promote_secondaries in %q", warnings)
			}
		})
	}
}

func TestStaticPodImageOption(t *testing.T) {
	cfg, _ := load(t, "../../examples/control-plane-nodes.toml")
	out, _, err := StaticPod(cfg, Options{Image: "registry.example:5000/infra/vipd@sha256:" + strings.Repeat("a", 64)})
	if err != nil {
		t.Fatal(err)
	}
	if img := decodePod(t, out).Spec.Containers[0].Image; !strings.HasPrefix(img, "registry.example:5000/infra/vipd@sha256:") {
		t.Errorf("image %q", img)
	}
}

// talosDoc is the shape Talos's v1alpha1 MachineFile and machine.pods
// have; decoded with yaml.v3 (as Talos does) and KnownFields, so an
// unexpected key fails.
type talosDoc struct {
	Machine struct {
		Files []struct {
			Content     string `yaml:"content"`
			Permissions uint32 `yaml:"permissions"`
			Path        string `yaml:"path"`
			Op          string `yaml:"op"`
		} `yaml:"files"`
		Pods    []map[string]any  `yaml:"pods"`
		Sysctls map[string]string `yaml:"sysctls"`
	} `yaml:"machine"`
}

func TestTalosPatch(t *testing.T) {
	cfg, raw := load(t, "../../examples/control-plane-nodes.toml")
	out, _, err := Talos(cfg, raw, Options{Version: "v1.2.3", Image: "registry.local/vipd:v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	var doc talosDoc
	dec := yaml3.NewDecoder(bytes.NewReader(out))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not a machine.files/machine.pods patch: %v\n%s", err, out)
	}
	m := doc.Machine
	if len(m.Files) != 1 {
		t.Fatalf("%d machine.files, want 1", len(m.Files))
	}
	f := m.Files[0]
	if f.Path != TalosHostConfig || !strings.HasPrefix(f.Path, "/var/") || f.Op != "create" || f.Permissions != 0o644 {
		t.Errorf("machine.files[0] = path %s op %s permissions %o; want %s, create (Talos creates only under /var), 0644", f.Path, f.Op, f.Permissions, TalosHostConfig)
	}
	if f.Content != string(raw) {
		t.Errorf("machine.files[0].content is not the config file byte for byte")
	}
	if _, err := config.Parse("from-patch.toml", []byte(f.Content)); err != nil {
		t.Errorf("the config in the patch does not parse: %v", err)
	}
	if m.Sysctls["net.ipv4.conf.all.promote_secondaries"] != "1" {
		t.Errorf("machine.sysctls %v", m.Sysctls)
	}
	if len(m.Pods) != 1 {
		t.Fatalf("%d machine.pods, want 1", len(m.Pods))
	}
	podJSON, err := json.Marshal(m.Pods[0])
	if err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	jd := json.NewDecoder(bytes.NewReader(podJSON))
	jd.DisallowUnknownFields()
	if err := jd.Decode(&p); err != nil {
		t.Fatalf("machine.pods[0] is not a valid core/v1 Pod: %v", err)
	}
	checkPod(t, p, TalosHostConfig, false)
	if p.Spec.Containers[0].Image != "registry.local/vipd:v1.2.3" {
		t.Errorf("image %q", p.Spec.Containers[0].Image)
	}
}

func TestTalosWarnsAboutFilesItCannotPlace(t *testing.T) {
	cfg, raw := load(t, "../../examples/ha-pair.toml") // ca = /etc/vipd/kubernetes-ca.crt
	_, warnings, err := Talos(cfg, raw, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(warnings, "\n"), "/etc/vipd/kubernetes-ca.crt") {
		t.Errorf("warnings %q do not name the CA file a Talos node lacks", warnings)
	}
}

const minimal = `[vrrp]
vrid = 51
interface = "eth0"
vips = ["10.1.233.1"]

[[node]]
name = "cp1"
address = "10.1.1.1"

[[frontend]]
name = "kubernetes"
port = 6443
backend = "kube-apiserver"

[[backend]]
name = "kube-apiserver"
servers = ["10.1.1.1:6443"]
`

// TestRefusals: configs the probe cannot work with are refused with the
// fix, never rendered into a pod the kubelet would restart forever.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"no [http]", "", `add to test.toml:`},
		{"basic auth", "[http]\nlisten = \"127.0.0.1:9600\"\n[[http.user]]\nname = \"ops\"\npassword_hash = \"$2a$10$abcdefghijklmnopqrstuu5aXGgYyHzKr.GY0EBN4Q6wvqcOOyI/K\"\n", "401"},
		{"allow list", "[http]\nlisten = \"0.0.0.0:9600\"\nallow = [\"10.0.0.0/8\"]\n", `add "127.0.0.1/32"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parseConfig(t, minimal+tc.extra)
			if _, _, err := StaticPod(cfg, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("StaticPod err = %v, want one containing %q", err, tc.want)
			}
			if _, _, err := Talos(cfg, []byte(minimal+tc.extra), Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Talos err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestWildcardListenProbesLoopback: a listener on every address is probed
// on 127.0.0.1, which the default allow list admits.
func TestWildcardListenProbesLoopback(t *testing.T) {
	cfg := parseConfig(t, minimal+"[http]\nlisten = \"0.0.0.0:9700\"\n")
	out, _, err := StaticPod(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := decodePod(t, out).Spec.Containers[0].LivenessProbe.HTTPGet
	if g.Host != "127.0.0.1" || g.Port.IntValue() != 9700 {
		t.Errorf("probe %s:%d, want 127.0.0.1:9700", g.Host, g.Port.IntValue())
	}
}

// TestScriptTrackerMountedAndWarned: a script runs inside an image that
// holds only vipd, so it is mounted and the operator is told.
func TestScriptTrackerMountedAndWarned(t *testing.T) {
	cfg := parseConfig(t, minimal+"[http]\nlisten = \"127.0.0.1:9600\"\n[[track]]\nname = \"local\"\ntype = \"script\"\ncommand = [\"/usr/local/bin/check-apiserver\", \"--quick\"]\nweight = -50\n")
	out, warnings, err := StaticPod(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range decodePod(t, out).Spec.Containers[0].VolumeMounts {
		found = found || (m.MountPath == "/usr/local/bin/check-apiserver" && m.ReadOnly)
	}
	if !found {
		t.Error("the tracker script is not mounted read-only")
	}
	if !strings.Contains(strings.Join(warnings, "\n"), "check-apiserver") {
		t.Errorf("warnings %q do not mention the script", warnings)
	}
}
