package netcfg

import "errors"

// Sentinel errors, wrapped by the errors this package returns so that
// callers can tell a configuration mistake from a host that refuses.
var (
	// ErrNoInterface reports that the named interface does not exist.
	ErrNoInterface = errors.New("no such interface")
	// ErrNotIPv4 reports an operation that only supports IPv4 addresses.
	ErrNotIPv4 = errors.New("not an IPv4 address")
	// ErrInvalidConfig reports a VRRPConfig or argument that cannot work.
	ErrInvalidConfig = errors.New("invalid configuration")
)
