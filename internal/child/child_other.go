//go:build !linux

package child

func clearThreadAmbient() error { return nil }

// DropAmbient: there are no ambient capabilities outside Linux.
func DropAmbient() error { return ErrNotSupported }

func raiseThreadAmbient() {}

// setThreadNice: a nice value is per process outside Linux, so the child
// starts at vipd's own.
func setThreadNice(int) error { return nil }
