//go:build linux

package netcfg

// NewSysctls returns Sysctls backed by /proc/sys.
func NewSysctls() Sysctls { return procSysctls{root: "/proc/sys"} }
