//go:build !linux

package child

func clearThreadAmbient() error { return nil }

// DropAmbient: there are no ambient capabilities outside Linux.
func DropAmbient() error { return ErrNotSupported }

func raiseThreadAmbient() {}
