package daemon

import (
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vipd/vipd/vrrp"
)

// A router that is none of the [[node]]s is named as a foreign router on
// the VRID, even when its adverts are dropped (here: it speaks VRRPv2):
// "set version = 2 to join it" would be the wrong advice for a router that
// belongs to another cluster.
func TestStatusForeignRouter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBus()
		n := startNode(t, b, "lb1", baseConfig(""))
		settle(time.Second)
		stranger := netip.MustParseAddr("10.99.0.99")
		c := b.listen(stranger)
		defer c.Close()
		adv := vrrp.Advertisement{Version: 2, Type: vrrp.TypeAdvertisement, VRID: 51, Priority: 100,
			MaxAdvertInterval: time.Second, Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.99")}}
		p, err := vrrp.MarshalAdvertisement(&adv, stranger, vrrp.IPv4Group, vrrp.ChecksumMessage)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteTo(p, vrrp.IPv4Group)
		synctest.Wait()
		probs := n.d.Status().Instances[0].Problems
		if len(probs) != 1 || !strings.Contains(probs[0], "router 10.99.0.99 on vrid 51 is not one of the [[node]]s") {
			t.Errorf("problems %q, want the foreign router named, and only that", probs)
		}
	})
}
