//go:build !linux

package daemon

func atLowPriority(f func() error) error { return f() }
