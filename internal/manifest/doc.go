// Package manifest renders the manifests of `vipd manifest`: a Kubernetes
// static pod for the "vipd on every control-plane node" topology
// (StaticPod), and a Talos machine-configuration patch that carries the
// same pod in machine.pods and the config file in machine.files (Talos).
//
// # What it implements
//
// The pod runs the image `make image` builds (a static vipd on an empty
// base, user 65532, the three capabilities as file capabilities on the
// binary) with hostNetwork, priorityClassName system-node-critical, the
// capabilities NET_ADMIN, NET_RAW and NET_BIND_SERVICE added and all
// others dropped, a read-only root filesystem, the config file and every
// file it names (check CAs, client certificates, scripts) mounted read-only
// from the host, the control socket's directory on an emptyDir, a liveness
// probe on the [http] status endpoint (/api/v1/status), and resource
// requests sized from measured RSS and CPU (see requestMemory).
//
// The YAML is written without the Kubernetes API packages, which would
// add 7 MB (+47 %) and 17 modules to the vipd binary: the types in pod.go
// are the subset of the core/v1 Pod that vipd sets, with the same JSON
// field names, and yaml.go turns their JSON into block YAML. The tests
// decode the output with the real k8s.io/api types and fail on any
// unknown field, so a typo here cannot reach an operator.
//
// # What it does not do
//
// It does not check the host (that the files exist, that the apiserver
// leaves VIP:6443 free, that the image is pullable) and it does not push
// or import the image. A config without [http] is refused: the liveness
// probe has nothing to ask; so is one whose [http] needs basic auth or
// does not allow the kubelet's address.
package manifest
