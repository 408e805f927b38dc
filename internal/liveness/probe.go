package liveness

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// The second question: a UDP datagram to the peer's liveness port. A live
// vipd echoes it; a host whose vipd is gone answers ICMP port unreachable,
// which a connected UDP socket reports as ECONNREFUSED. It is asked again
// after each wait in probeWaits (about 130 ms in all): the first datagram
// can reach a socket the dying process has not closed yet, or be lost.
var probeWaits = []time.Duration{2 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond, 60 * time.Millisecond}

// probeUDP asks the host at remote from local.
func probeUDP(ctx context.Context, local netip.Addr, remote netip.AddrPort) Verdict {
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(remote))
	if err != nil {
		return Unknown
	}
	defer c.Close()
	nonce := rand.Uint64() | 1
	q, _ := json.Marshal(message{T: "probe", N: nonce})
	buf := make([]byte, maxLine)
	for _, wait := range probeWaits {
		if ctx.Err() != nil {
			return Unknown
		}
		if _, err := c.Write(q); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return Gone
			}
			return Unknown
		}
		deadline := time.Now().Add(wait)
		for {
			c.SetReadDeadline(deadline)
			n, err := c.Read(buf)
			if errors.Is(err, syscall.ECONNREFUSED) {
				return Gone
			}
			if err != nil {
				break // timeout: ask again
			}
			var m message
			if json.Unmarshal(buf[:n], &m) == nil && m.T == "alive" && m.N == nonce {
				return Alive
			}
		}
	}
	return Unknown
}

// serveEcho answers probes from the known peers until the socket is
// closed. Answers are no larger than the question's allowance and go only
// to configured node addresses, so the port cannot amplify anything.
func serveEcho(pc *net.UDPConn, self string, known func(netip.Addr) bool) {
	buf := make([]byte, maxLine)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !known(from.Addr().Unmap()) {
			continue
		}
		var m message
		if json.Unmarshal(buf[:n], &m) != nil || m.T != "probe" {
			continue
		}
		b, _ := json.Marshal(message{T: "alive", N: m.N, Node: self})
		pc.WriteToUDPAddrPort(b, from)
	}
}
