//go:build linux

package lab

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVerifier(t *testing.T) {
	seed := StreamSeed(7, 1)
	seq := func(from, to int) []byte {
		b := make([]byte, to-from)
		SeqFill(seed, uint64(from), b)
		return b
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	type got struct {
		Verified, Lost, Dup, Unverified uint64
		Mismatches                      int
		Corrupt                         bool
	}
	tests := []struct {
		name   string
		chunks [][]byte
		want   got
	}{
		{"intact in pieces", [][]byte{seq(0, 100), seq(100, 101), seq(101, 5000)},
			got{Verified: 5000}},
		{"lost 100 bytes", [][]byte{cat(seq(0, 1000), seq(1100, 2000))},
			got{Verified: 1900, Lost: 100, Mismatches: 1}},
		{"lost across chunks", [][]byte{seq(0, 1000), seq(1300, 1310), seq(1310, 2000)},
			got{Verified: 1700, Lost: 300, Mismatches: 1}},
		{"duplicated 50 bytes", [][]byte{seq(0, 1000), seq(950, 2000)},
			got{Verified: 2050, Dup: 50, Mismatches: 1}},
		{"lost exactly 256", [][]byte{cat(seq(0, 512), seq(768, 1024))},
			got{Verified: 768, Lost: 256, Mismatches: 1}},
		{"garbage", [][]byte{seq(0, 10), make([]byte, 64)},
			got{Verified: 10, Unverified: 64, Mismatches: 1, Corrupt: true}},
		{"short bad tail", [][]byte{seq(0, 10), {0, 0, 0}},
			got{Verified: 10, Unverified: 3, Mismatches: 1, Corrupt: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Verifier{Seed: seed}
			for _, c := range tt.chunks {
				v.Feed(c)
			}
			v.Finish()
			g := got{v.Verified, v.Lost, v.Dup, v.Unverified, v.Mismatches, v.Corrupt}
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestStreamSeedsDiffer(t *testing.T) {
	a, b := make([]byte, 64), make([]byte, 64)
	SeqFill(StreamSeed(1, 0), 0, a)
	SeqFill(StreamSeed(1, 1), 0, b)
	if string(a) == string(b) {
		t.Fatal("both directions of a connection carry the same sequence")
	}
}
