//go:build linux

package lab

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"

	"golang.org/x/net/ipv4"
)

// Inject sends payload as an IP protocol 112 datagram to 224.0.0.18 from
// host with the given TTL, count times, through a helper process.
func Inject(t testing.TB, h *Host, payload []byte, ttl, count int) {
	t.Helper()
	self, _ := os.Executable()
	cmd := h.Exec(context.Background(), self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIPD_TEST_HELPER=inject", "VIPD_INJECT="+hex.EncodeToString(payload),
		"VIPD_INJECT_TTL="+strconv.Itoa(ttl), "VIPD_INJECT_COUNT="+strconv.Itoa(count))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("inject: %v: %s", err, out)
	}
}

func injectMain() int {
	payload, _ := hex.DecodeString(os.Getenv("VIPD_INJECT"))
	ttl, _ := strconv.Atoi(os.Getenv("VIPD_INJECT_TTL"))
	count, _ := strconv.Atoi(os.Getenv("VIPD_INJECT_COUNT"))
	dst := os.Getenv("VIPD_INJECT_DST")
	if dst == "" {
		dst = "224.0.0.18"
	}
	c, err := net.ListenPacket("ip4:112", "0.0.0.0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	pc := ipv4.NewPacketConn(c)
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pc.SetMulticastInterface(ifi)
	pc.SetMulticastTTL(ttl)
	pc.SetTTL(ttl)
	for i := 0; i < count && i < 1000; i++ {
		if _, err := pc.WriteTo(payload, nil, &net.IPAddr{IP: net.ParseIP(dst)}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// InjectTo sends payload to one unicast destination.
func InjectTo(t testing.TB, h *Host, payload []byte, dst netip.Addr, count int) {
	t.Helper()
	self, _ := os.Executable()
	cmd := h.Exec(context.Background(), self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIPD_TEST_HELPER=inject", "VIPD_INJECT="+hex.EncodeToString(payload),
		"VIPD_INJECT_TTL=255", "VIPD_INJECT_COUNT="+strconv.Itoa(count), "VIPD_INJECT_DST="+dst.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("inject: %v: %s", err, out)
	}
}
