package vrrp

import "time"

// The timers of RFC 9568 section 6.1 (Skew_Time, Master_Down_Interval),
// RFC 3768's for version 2, and vipd's GoneSkew.

// skewTime is RFC 9568 section 6.1: ((256 - Priority) * Master_Adver_Interval) / 256.
func skewTime(prio uint8, interval time.Duration) time.Duration {
	return time.Duration(256-int(prio)) * interval / 256
}

// downInterval is RFC 9568 section 6.1: 3 * Master_Adver_Interval + Skew_Time.
func downInterval(prio uint8, interval time.Duration) time.Duration {
	return 3*interval + skewTime(prio, interval)
}

func (m *Machine) owner() bool { return m.cfg.Priority == ownerPriority }

// skewV2 is RFC 3768 section 6.1: ((256 - Priority) / 256) seconds.
func skewV2(prio uint8) time.Duration {
	return time.Duration(256-int(prio)) * time.Second / 256
}

// SkewTime is Skew_Time for a router of priority prio following a master
// that advertises every interval: RFC 9568 section 6.1 for version 3,
// RFC 3768 section 6.1 (not scaled by the interval) for version 2.
func SkewTime(version, prio uint8, interval time.Duration) time.Duration {
	if version == 2 {
		return skewV2(prio)
	}
	return skewTime(prio, interval)
}

// DownInterval is Master_Down_Interval (RFC 9568's Active_Down_Interval):
// 3 * interval + SkewTime. A drill predicts a crash's gap with it.
func DownInterval(version, prio uint8, interval time.Duration) time.Duration {
	return 3*interval + SkewTime(version, prio, interval)
}

// GoneSkew is how long a BACKUP waits after its master's process was
// confirmed gone (MasterGone) before it takes over: Skew_Time / 4.
// vipd's rule, not RFC 9568's. Like Skew_Time after a priority-0 advert,
// it is shorter the higher the priority, so with three or more nodes the
// best backup moves first and the others hear its advert before their own
// timer runs out. It is a quarter of Skew_Time because the crash is known
// (a closed connection and the host's own word that nothing listens
// there): the wait only has to cover the winner's first advert reaching
// the others, milliseconds on a LAN, not the loss of adverts. Those
// milliseconds can be too few on a busy host, so the daemon does not send
// MasterGone to a backup whose beacons show a ready backup outranking it
// (internal/daemon's outrankedBy).
func GoneSkew(version, prio uint8, interval time.Duration) time.Duration {
	return SkewTime(version, prio, interval) / goneSkewDivisor
}

const goneSkewDivisor = 4

// skewAt computes Skew_Time for this machine's version.
func (m *Machine) skewAt(prio uint8, interval time.Duration) time.Duration {
	return SkewTime(m.cfg.Version, prio, interval)
}

func (m *Machine) downFor(prio uint8, interval time.Duration) time.Duration {
	return 3*interval + m.skewAt(prio, interval)
}

func (m *Machine) skew() time.Duration { return m.skewAt(m.prio, m.masterInterval) }
func (m *Machine) down() time.Duration { return m.downFor(m.prio, m.masterInterval) }
