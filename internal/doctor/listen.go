package doctor

import (
	"net/netip"
	"sync"
	"time"

	"github.com/vipd/vipd/vrrp"
)

// maxHeard bounds the senders recorded per instance: forged sources must
// not grow the table without limit (as the runner's maxSenders).
const maxHeard = 64

// heard is one router heard on an instance's VRID during the window.
type heard struct {
	addr     netip.Addr
	accepted int
	dropped  int
	// last is the verdict of the last advert (its Problem, checksum form,
	// version, interval), ttl the TTL it came with.
	last               vrrp.Verdict
	ttl                int
	multicast, unicast bool // the destinations seen
}

// heardTable is what the listen window heard on one instance.
type heardTable struct {
	mu      sync.Mutex
	senders map[netip.Addr]*heard
}

func newHeardTable() *heardTable { return &heardTable{senders: map[netip.Addr]*heard{}} }

// listenVRRP reads src until deadline and judges every packet with checks,
// as the instance's runner would; what concerns our VRID is recorded by
// sender.
func listenVRRP(src PacketSource, checks *vrrp.Checker, vrid uint8, deadline time.Time, into *heardTable) {
	src.SetReadDeadline(deadline)
	buf := make([]byte, 1500)
	for i := 0; i < 100000; i++ {
		n, from, dst, ttl, err := src.ReadFrom(buf)
		if err != nil {
			return
		}
		v := checks.Check(buf[:n], from, dst, ttl)
		if !v.Peer {
			// The checks stopped before the VRID (TTL, a unicast
			// stranger): decode it ourselves to tell whether it is
			// ours. Anything else (self, other VRIDs, siblings,
			// garbage) is not this instance's business.
			if v.Reason != vrrp.DropTTL && v.Reason != vrrp.DropPeer {
				continue
			}
			if v.Advert.UnmarshalBinary(buf[:n]) != nil || v.Advert.VRID != vrid {
				continue
			}
		}
		into.record(from, dst, ttl, v)
	}
}

func (t *heardTable) record(from, dst netip.Addr, ttl int, v vrrp.Verdict) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.senders[from]
	if h == nil {
		if len(t.senders) >= maxHeard {
			return
		}
		h = &heard{addr: from}
		t.senders[from] = h
	}
	if v.Reason == "" {
		h.accepted++
	} else {
		h.dropped++
	}
	h.last, h.ttl = v, ttl
	if dst.IsMulticast() {
		h.multicast = true
	} else if dst.IsValid() {
		h.unicast = true
	}
}

func (t *heardTable) get(a netip.Addr) *heard {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.senders[a]
}

func (t *heardTable) list() []*heard {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*heard, 0, len(t.senders))
	for _, h := range t.senders {
		c := *h
		out = append(out, &c)
	}
	return out
}

// beaconTable is what the window heard on the status port, by source.
type beaconTable struct {
	mu   sync.Mutex
	from map[netip.Addr]Beacon
}

// listenBeacons reads status beacons until deadline; only [[node]]
// addresses are recorded.
func listenBeacons(src PacketSource, decode func([]byte) (Beacon, bool), known map[netip.Addr]bool, deadline time.Time, into *beaconTable) {
	src.SetReadDeadline(deadline)
	buf := make([]byte, 4096)
	for i := 0; i < 100000; i++ {
		n, from, _, _, err := src.ReadFrom(buf)
		if err != nil {
			return
		}
		from = from.Unmap().WithZone("")
		if !known[from] || decode == nil {
			continue
		}
		b, ok := decode(buf[:n])
		if !ok {
			continue
		}
		into.mu.Lock()
		into.from[from] = b
		into.mu.Unlock()
	}
}
