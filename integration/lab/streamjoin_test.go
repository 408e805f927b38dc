//go:build linux

package lab

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestJoinStreams(t *testing.T) {
	orderly := func(id uint32, mode int) (StreamSide, StreamSide) {
		c := StreamSide{ID: id, Mode: mode, Sent: 1000, Closed: true, Recv: 2000, Verified: 2000, EOF: true}
		s := StreamSide{ID: id, Mode: mode, Sent: 2000, Closed: true, Recv: 1000, Verified: 1000, EOF: true}
		return c, s
	}
	type got struct {
		Cut, Reset, Hung, HalfClosed, Corrupt int
		Lost, Dup                             uint64
	}
	tests := []struct {
		name string
		edit func(c, s *StreamSide) bool // false: no server side
		want got
	}{
		{"orderly", func(c, s *StreamSide) bool { return true }, got{}},
		{"half-closed, orderly", func(c, s *StreamSide) bool { c.Mode, s.Mode = ModeC2SHalf, ModeC2SHalf; return true },
			got{HalfClosed: 1}},
		{"reset", func(c, s *StreamSide) bool {
			c.ReadErr, c.EOF, c.Verified = "read: connection reset by peer", false, 1500
			return true
		}, got{Cut: 1, Reset: 1, Lost: 500}},
		{"an EOF the client never sent", func(c, s *StreamSide) bool { c.Closed = false; return true }, got{Cut: 1}},
		{"an EOF the server never sent", func(c, s *StreamSide) bool { s.Closed = false; return true }, got{Cut: 1}},
		{"hung", func(c, s *StreamSide) bool { c.ReadErr, c.EOF = "i/o timeout", false; return true }, got{Cut: 1, Hung: 1}},
		{"bytes lost in order", func(c, s *StreamSide) bool { s.Verified, s.Lost = 900, 100; return true }, got{Lost: 100}},
		{"bytes repeated", func(c, s *StreamSide) bool { c.Verified, c.Dup = 2010, 10; return true }, got{Dup: 10}},
		{"corrupt", func(c, s *StreamSide) bool { c.Corrupt, c.Verified = true, 10; return true },
			got{Cut: 1, Corrupt: 1, Lost: 1990}},
		{"no server side", func(c, s *StreamSide) bool { return false }, got{Cut: 1, Lost: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := orderly(3, ModeBoth)
			srv := []StreamSide{}
			if tt.edit(&c, &s) {
				srv = append(srv, s)
			} else {
				// The client verified nothing the server sent either.
				c.Verified = 0
				c.Recv = 0
			}
			r := JoinStreams([]StreamSide{c}, srv)
			g := got{r.Cut, r.Reset, r.Hung, r.HalfClosed, r.Corrupt, r.LostBytes, r.DupBytes}
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("(-want +got)\n%s\n%v", diff, r.Why)
			}
		})
	}
}

func TestAdvertGapAndChanges(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	ad := func(ms int, src netip.Addr, prio int) Advert {
		return Advert{At: t0.Add(time.Duration(ms) * time.Millisecond), Src: src, VRID: 51, Priority: prio}
	}
	as := []Advert{
		ad(0, a, 150), ad(200, a, 150), ad(400, a, 150),
		ad(450, a, 0), // a resigns
		ad(500, b, 100), ad(700, b, 100),
		{At: t0.Add(800 * time.Millisecond), Src: a, VRID: 52, Priority: 150}, // another VRID
		ad(1300, a, 150), ad(1301, b, 100), ad(1500, a, 150),
	}
	type got struct {
		Gap              time.Duration
		Changes, Resigns int
	}
	tests := []struct {
		name     string
		from, to int
		want     got
	}{
		{"all", -1, 2000, got{600 * time.Millisecond, 4, 1}},
		{"steady", -1, 400, got{200 * time.Millisecond, 0, 0}},
		{"handover", 400, 600, got{50 * time.Millisecond, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to := t0.Add(time.Duration(tt.from)*time.Millisecond), t0.Add(time.Duration(tt.to)*time.Millisecond)
			var g got
			g.Gap = AdvertGap(as, 51, from, to)
			g.Changes, g.Resigns = MasterChanges(as, 51, from, to)
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestParseAdvert(t *testing.T) {
	p := make([]byte, 28)
	p[0], p[9] = 0x45, 112
	copy(p[12:16], []byte{10, 0, 0, 1})
	p[20], p[21], p[22] = 0x31, 51, 150
	got, ok := parseAdvert(p)
	want := Advert{Src: netip.MustParseAddr("10.0.0.1"), VRID: 51, Priority: 150, Version: 3}
	if !ok {
		t.Fatal("not parsed")
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	p[9] = 6
	if _, ok := parseAdvert(p); ok {
		t.Error("TCP parsed as VRRP")
	}
	if _, ok := parseAdvert(p[:10]); ok {
		t.Error("short packet parsed")
	}
}
