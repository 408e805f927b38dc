//go:build vipd_crashtest

package main

// Test-only crash triggers, compiled only with -tags vipd_crashtest (the
// failover benchmark builds such a binary; bin/vipd never has them, see
// TestCrashTriggersNotInRelease): SIGTTIN panics on a goroutine, as a bug
// would (SIGUSR2 is vipd restart's); SIGUSR1 allocates and touches memory
// without end, as a leak would, until a cgroup memory limit gets the
// process OOM-killed.

import (
	"os"
	"os/signal"
	"syscall"
)

func init() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTTIN)
	go func() {
		for s := range sigs {
			if s == syscall.SIGTTIN {
				go func() { panic("vipd crash test: a panic on a goroutine (SIGTTIN)") }()
				continue
			}
			go leak()
		}
	}()
}

var leaked [][]byte

func leak() {
	for i := 0; i < 1<<16; i++ {
		b := make([]byte, 4<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		leaked = append(leaked, b)
	}
}
