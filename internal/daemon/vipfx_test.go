package daemon

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/vipd/vipd/netcfg"
)

// The first round of gratuitous ARP goes out before Announce returns, so
// before the advert the runner sends next: the old master drops the VIP
// when it hears that advert, and a client must already know where the VIP
// went (a planned handover costs no failed connection). The rest of the
// burst follows one garp_interval later, in the background.
func TestAnnounceFirstRoundBeforeReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ann := &fakeAnnouncer{}
		var mu sync.Mutex
		var bursts []int
		taken := func() []int { mu.Lock(); defer mu.Unlock(); return slices.Clone(bursts) }
		os := &OS{Burst: func(ctx context.Context, a netcfg.Announcer, vips []netip.Addr, count int, gap time.Duration) error {
			mu.Lock()
			bursts = append(bursts, count)
			mu.Unlock()
			return nil
		}}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e := &vipEffects{log: zerolog.Nop(), os: os, ctx: ctx, ann: ann,
			announced: []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")},
			garp:      garpSettings{repeat: 5, interval: 100 * time.Millisecond}}
		e.Announce(0)
		if n := ann.count(); n != 2 {
			t.Fatalf("%d gratuitous ARPs when Announce returned, want one round (2 VIPs)", n)
		}
		synctest.Wait()
		if b := taken(); len(b) != 0 {
			t.Fatalf("the rest of the burst started at once (%v), want it one garp_interval later", b)
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if b := taken(); len(b) != 1 || b[0] != 4 {
			t.Errorf("bursts %v, want the remaining 4 rounds", b)
		}
		e.StopAnnounce()
	})
}
