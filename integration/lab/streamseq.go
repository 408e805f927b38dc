//go:build linux

package lab

import "bytes"

// The checksummed streams of the restart benchmark (integration/benchrestart,
// TestRestartUnderLoad): each direction of each connection carries a
// deterministic, aperiodic byte sequence named by a seed, so the receiver
// knows the byte due at every position and tells a lost or duplicated run
// of bytes from the shift it takes to match the sequence again.

// splitmix64 is one step of the SplitMix64 generator: a well-mixed
// function of x.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// SeqFill fills b with the sequence seed names from position pos on.
func SeqFill(seed, pos uint64, b []byte) {
	for i := range b {
		p := pos + uint64(i)
		b[i] = byte(splitmix64(seed^(p>>3)*0x2545f4914f6cdd1d) >> ((p & 7) * 8))
	}
}

// StreamSeed names the sequence of connection id in one direction (0
// client to server, 1 server to client).
func StreamSeed(id uint32, dir int) uint64 {
	return splitmix64(uint64(id)<<1 | uint64(dir&1))
}

// maxShift bounds the resynchronisation search: a lost or duplicated run
// longer than this is reported as a corrupt stream.
const maxShift = 1 << 16

// resyncLen is how many bytes must match after a shift to accept it.
const resyncLen = 32

// Verifier checks received bytes against a stream's sequence.
type Verifier struct {
	Seed uint64
	// Pos is the sequence position of the next byte expected.
	Pos uint64
	// Verified counts bytes that matched; Lost and Dup count the bytes
	// skipped or repeated by the shifts found; Mismatches counts the
	// shifts; Corrupt is set when no shift within maxShift matches (the
	// rest of the stream is then only counted in Unverified).
	Verified, Lost, Dup, Unverified uint64
	Mismatches                      int
	Corrupt                         bool
	scratch                         []byte
	// pending holds a mismatched tail too short to resynchronise on.
	pending []byte
}

// Feed verifies b, the next bytes received.
func (v *Verifier) Feed(b []byte) {
	if len(v.pending) > 0 {
		b = append(v.pending, b...)
		v.pending = nil
	}
	for len(b) > 0 {
		if v.Corrupt {
			v.Unverified += uint64(len(b))
			return
		}
		n := v.matchLen(v.Pos, b)
		v.Verified += uint64(n)
		v.Pos += uint64(n)
		b = b[n:]
		if len(b) == 0 {
			return
		}
		if len(b) < resyncLen {
			v.pending = append([]byte(nil), b...)
			return
		}
		v.Mismatches++
		shift, ok := v.resync(b)
		if !ok {
			v.Corrupt = true
			continue
		}
		if shift > 0 {
			v.Lost += uint64(shift)
			v.Pos += uint64(shift)
		} else {
			v.Dup += uint64(-shift)
			v.Pos -= uint64(-shift)
		}
	}
}

// Finish ends the stream: a held-back mismatched tail counts as
// unverified and makes the stream corrupt.
func (v *Verifier) Finish() {
	if len(v.pending) > 0 {
		v.Mismatches++
		v.Corrupt = true
		v.Unverified += uint64(len(v.pending))
		v.pending = nil
	}
}

// matchLen is how many leading bytes of b are the sequence from pos.
func (v *Verifier) matchLen(pos uint64, b []byte) int {
	if cap(v.scratch) < len(b) {
		v.scratch = make([]byte, len(b))
	}
	want := v.scratch[:len(b)]
	SeqFill(v.Seed, pos, want)
	for i := range b {
		if b[i] != want[i] {
			return i
		}
	}
	return len(b)
}

// resync finds the smallest shift k (positive: bytes lost, negative:
// repeated) for which b (at least resyncLen bytes) starts with the
// sequence at Pos+k.
func (v *Verifier) resync(b []byte) (int, bool) {
	m := resyncLen
	want := make([]byte, m)
	for d := 1; d <= maxShift; d++ {
		for _, k := range [2]int{d, -d} {
			if k < 0 && uint64(-k) > v.Pos {
				continue
			}
			SeqFill(v.Seed, uint64(int64(v.Pos)+int64(k)), want)
			if bytes.Equal(want, b[:m]) {
				return k, true
			}
		}
	}
	return 0, false
}
