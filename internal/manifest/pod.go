package manifest

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/vipd/vipd/internal/config"
)

// The image and its user; tools/image builds the image with these.
const (
	// ImageRepo is the name the image archive carries
	// (io.containerd.image.name), so `ctr -n k8s.io images import` on a
	// node makes the default image reference of the pod resolvable
	// without a registry.
	ImageRepo = "ghcr.io/vipd/vipd"
	// UID and GID the container runs as (the distroless "nonroot" id).
	UID = 65532
	// BinaryPath is vipd inside the image.
	BinaryPath = "/usr/bin/vipd"
	// ContainerConfig is where the pod sees the config file.
	ContainerConfig = "/etc/vipd/vipd.toml"
)

// Resource requests, sized from vipd's measured footprint: a steady
// HA-pair node (three HTTPS /readyz checks every 2 s, 200 ms adverts, the
// status listener) runs at 21.5-21.7 MiB RSS and 6-7 ms of CPU per second,
// master and backup alike (BenchmarkFootprint in integration/, see
// README "Resources"); the 10-minute soak with a drill every 4 s and
// proxied traffic stayed at 18-23 MB (docs/reliability.md). The requests
// leave room for a handover's burst and for connections (about 0.2 KB of
// RSS and two fds per idle proxied connection). No limits: an OOM kill or
// CPU throttling of the VIP holder is a failover, so vipd is not capped,
// as kubeadm does not cap kube-apiserver.
const (
	requestMemory = "32Mi"
	requestCPU    = "25m"
)

// Options are the choices `vipd manifest` leaves to the operator.
type Options struct {
	// Image is the container image; default ImageRepo:Version.
	Image string
	// Version labels the pod and names the default image tag.
	Version string
}

func (o Options) image() string {
	if o.Image != "" {
		return o.Image
	}
	return ImageRepo + ":" + ImageTag(o.Version)
}

var tagUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// ImageTag makes a version usable as an image tag and label value.
func ImageTag(v string) string {
	t := strings.Trim(tagUnsafe.ReplaceAllString(v, "-"), "-._")
	if t == "" {
		return "dev"
	}
	if len(t) > 63 {
		t = t[:63]
	}
	return t
}

// The subset of the Kubernetes core/v1 types that vipd's pod uses. Field
// names and JSON tags follow k8s.io/api exactly (the tests decode the
// output strictly with those types).

type pod struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       podSpec    `json:"spec"`
}

type objectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type podSpec struct {
	HostNetwork                   bool                `json:"hostNetwork"`
	PriorityClassName             string              `json:"priorityClassName"`
	TerminationGracePeriodSeconds int64               `json:"terminationGracePeriodSeconds"`
	EnableServiceLinks            bool                `json:"enableServiceLinks"`
	SecurityContext               *podSecurityContext `json:"securityContext"`
	Containers                    []container         `json:"containers"`
	Volumes                       []volume            `json:"volumes"`
}

type podSecurityContext struct {
	RunAsNonRoot   bool            `json:"runAsNonRoot"`
	RunAsUser      int64           `json:"runAsUser"`
	RunAsGroup     int64           `json:"runAsGroup"`
	SeccompProfile *seccompProfile `json:"seccompProfile"`
}

type seccompProfile struct {
	Type string `json:"type"`
}

type container struct {
	Name            string               `json:"name"`
	Image           string               `json:"image"`
	ImagePullPolicy string               `json:"imagePullPolicy"`
	Command         []string             `json:"command"`
	SecurityContext *containerSecContext `json:"securityContext"`
	LivenessProbe   *probe               `json:"livenessProbe"`
	Resources       resourceRequirements `json:"resources"`
	VolumeMounts    []volumeMount        `json:"volumeMounts"`
}

type containerSecContext struct {
	Capabilities             *capabilities `json:"capabilities"`
	ReadOnlyRootFilesystem   bool          `json:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation bool          `json:"allowPrivilegeEscalation"`
}

type capabilities struct {
	Add  []string `json:"add"`
	Drop []string `json:"drop"`
}

type probe struct {
	HTTPGet             *httpGetAction `json:"httpGet"`
	InitialDelaySeconds int32          `json:"initialDelaySeconds"`
	PeriodSeconds       int32          `json:"periodSeconds"`
	TimeoutSeconds      int32          `json:"timeoutSeconds"`
	FailureThreshold    int32          `json:"failureThreshold"`
}

type httpGetAction struct {
	Host   string `json:"host"`
	Path   string `json:"path"`
	Port   int    `json:"port"`
	Scheme string `json:"scheme"`
}

type resourceRequirements struct {
	Requests map[string]string `json:"requests"`
}

type volumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

type volume struct {
	Name     string                `json:"name"`
	HostPath *hostPathVolumeSource `json:"hostPath,omitempty"`
	EmptyDir *emptyDirVolumeSource `json:"emptyDir,omitempty"`
}

type hostPathVolumeSource struct {
	Path string `json:"path"`
	Type string `json:"type,omitempty"`
}

type emptyDirVolumeSource struct {
	Medium string `json:"medium,omitempty"`
}

// podLayout is where the pod finds its files on the host.
type podLayout struct {
	// hostConfig is the config file on the node.
	hostConfig string
	// typed sets hostPath types (File), so the kubelet refuses to start
	// the pod with a clear event when a file is missing. Talos's kubelet
	// runs in a container that does not see /var/etc, so its pod leaves
	// the type out and the runtime mounts the path as it is.
	typed bool
}

// buildPod makes vipd's pod for cfg. Warnings are things the operator
// must do on the node that the pod cannot do for them.
func buildPod(cfg *config.Config, o Options, l podLayout) (pod, []string, error) {
	lp, err := livenessProbe(cfg)
	if err != nil {
		return pod{}, nil, err
	}
	fileType := func(t string) string {
		if l.typed {
			return t
		}
		return ""
	}
	mounts := []volumeMount{{Name: "config", MountPath: ContainerConfig, ReadOnly: true}}
	volumes := []volume{{Name: "config", HostPath: &hostPathVolumeSource{Path: l.hostConfig, Type: fileType("File")}}}
	files, warnings := referencedFiles(cfg)
	for i, f := range files {
		name := fmt.Sprintf("file-%d", i+1)
		mounts = append(mounts, volumeMount{Name: name, MountPath: f, ReadOnly: true})
		volumes = append(volumes, volume{Name: name, HostPath: &hostPathVolumeSource{Path: f, Type: fileType("File")}})
	}
	// The control socket's directory: writable by the container user.
	mounts = append(mounts, volumeMount{Name: "run", MountPath: filepath.Dir(cfg.Control.Socket)})
	volumes = append(volumes, volume{Name: "run", EmptyDir: &emptyDirVolumeSource{Medium: "Memory"}})

	p := pod{
		APIVersion: "v1",
		Kind:       "Pod",
		Metadata: objectMeta{
			Name:      "vipd",
			Namespace: "kube-system",
			Labels: map[string]string{
				"app.kubernetes.io/name":      "vipd",
				"app.kubernetes.io/component": "control-plane-endpoint",
				"app.kubernetes.io/version":   ImageTag(o.Version),
			},
		},
		Spec: podSpec{
			HostNetwork:       true,
			PriorityClassName: "system-node-critical",
			// SIGTERM hands the VIP over (priority 0, make before break,
			// bounded by the peer's Down_Interval) before vipd exits; the
			// systemd unit allows the same 15 s.
			TerminationGracePeriodSeconds: 15,
			EnableServiceLinks:            false,
			SecurityContext: &podSecurityContext{
				RunAsNonRoot:   true,
				RunAsUser:      UID,
				RunAsGroup:     UID,
				SeccompProfile: &seccompProfile{Type: "RuntimeDefault"},
			},
			Containers: []container{{
				Name:            "vipd",
				Image:           o.image(),
				ImagePullPolicy: "IfNotPresent",
				Command:         []string{BinaryPath, "run", "-c", ContainerConfig},
				SecurityContext: &containerSecContext{
					Capabilities: &capabilities{
						Add:  []string{"NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"},
						Drop: []string{"ALL"},
					},
					ReadOnlyRootFilesystem: true,
					// A non-root process gets capabilities at exec only
					// from the binary's file capabilities (Kubernetes sets
					// no ambient set), and no_new_privs may stop a runtime
					// from granting them: keep privilege escalation on.
					AllowPrivilegeEscalation: true,
				},
				LivenessProbe: lp,
				Resources:     resourceRequirements{Requests: map[string]string{"cpu": requestCPU, "memory": requestMemory}},
				VolumeMounts:  mounts,
			}},
			Volumes: volumes,
		},
	}
	return p, warnings, nil
}

// livenessProbe asks the status endpoint, which answers only while the
// daemon's loops do (a wedged vipd is restarted, as the systemd watchdog
// does). The kubelet runs in the host's network namespace, like the pod.
func livenessProbe(cfg *config.Config) (*probe, error) {
	fix := fmt.Sprintf("add to %s:\n\n[http]\nlisten = \"127.0.0.1:9600\"", cfg.Path)
	if cfg.HTTP == nil {
		return nil, fmt.Errorf("manifest: the pod's liveness probe asks the status endpoint, and %s has no [http] table; %s", cfg.Path, fix)
	}
	if len(cfg.HTTP.Users) > 0 {
		return nil, fmt.Errorf("manifest: [http] in %s requires basic auth, so the kubelet's liveness probe would get 401; remove [[http.user]] (the listener on 127.0.0.1 is reachable from the node only)", cfg.Path)
	}
	host, portStr, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("manifest: [http] listen = %q: %v", cfg.HTTP.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("manifest: [http] listen = %q: the probe needs a numeric port", cfg.HTTP.Listen)
	}
	addr, err := netip.ParseAddr(host)
	if host == "" || (err == nil && addr.IsUnspecified()) {
		addr = netip.MustParseAddr("127.0.0.1")
	} else if err != nil {
		return nil, fmt.Errorf("manifest: [http] listen = %q: the probe needs an IP address", cfg.HTTP.Listen)
	}
	allow := cfg.HTTP.Allow
	if len(allow) == 0 {
		allow = config.DefaultHTTPAllow()
	}
	allowed := false
	for _, p := range allow {
		allowed = allowed || p.Contains(addr)
	}
	if !allowed {
		return nil, fmt.Errorf("manifest: the kubelet's liveness probe comes from %s, which [http] allow in %s does not include; add %q", addr, cfg.Path, addr.String()+"/32")
	}
	return &probe{
		HTTPGet:             &httpGetAction{Host: addr.String(), Path: "/api/v1/status", Port: port, Scheme: "HTTP"},
		InitialDelaySeconds: 10,
		PeriodSeconds:       5,
		TimeoutSeconds:      3,
		FailureThreshold:    3,
	}, nil
}

// referencedFiles lists the files the config names that vipd reads or
// runs (check CAs and client certificates, tracker scripts, the notify
// command), sorted, each once. Scripts are run inside the container,
// whose image has nothing but vipd: a script that needs a shell or other
// tools is reported.
func referencedFiles(cfg *config.Config) ([]string, []string) {
	seen := map[string]bool{}
	var warnings []string
	add := func(p string) {
		if p != "" && filepath.IsAbs(p) {
			seen[filepath.Clean(p)] = true
		}
	}
	for _, b := range cfg.Backends {
		add(b.Check.CA)
		add(b.Check.ClientCert)
		add(b.Check.ClientKey)
	}
	script := func(what string, argv []string) {
		if len(argv) == 0 {
			return
		}
		add(argv[0])
		warnings = append(warnings, fmt.Sprintf("%s runs %s inside the container, whose image holds only vipd: it must be a static binary (no shell, no interpreter)", what, argv[0]))
	}
	for _, t := range cfg.Tracks {
		if t.Type == config.TrackScript {
			script("[[track]] "+t.Name, t.Command)
		}
	}
	if cfg.Notify != nil {
		script("[notify]", cfg.Notify.Command)
	}
	files := make([]string, 0, len(seen))
	for f := range seen {
		files = append(files, f)
	}
	sort.Strings(files)
	return files, warnings
}
