package testsuite

import "encoding/binary"

// pattern is deterministic content addressable by offset, so a large
// object can be written and checked in pieces without keeping it in memory.
// Its bytes do not repeat with any short period, so a piece written twice
// or skipped shows.
type pattern uint64

// fill sets p to the pattern's bytes starting at off.
func (s pattern) fill(p []byte, off int64) {
	var word [8]byte
	for i := 0; i < len(p); {
		pos := off + int64(i)
		binary.LittleEndian.PutUint64(word[:], mix(uint64(s)^uint64(pos/8)))
		i += copy(p[i:], word[pos%8:])
	}
}

// bytes returns n bytes of the pattern from off.
func (s pattern) bytes(off int64, n int) []byte {
	p := make([]byte, n)
	s.fill(p, off)
	return p
}

// mix is SplitMix64's finaliser.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
