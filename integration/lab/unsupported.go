//go:build !linux

package lab

// The lab is Linux-only: network namespaces, veths and AF_PACKET sockets.
// Built for another OS, the package stops the build with this one error.
var _ = vipd_integration_lab_builds_only_on_linux_network_namespaces
