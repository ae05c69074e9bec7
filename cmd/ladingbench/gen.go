package main

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"

	"github.com/opencontainers/go-digest"
)

// Test content is a fixed 1 MiB pseudo-random block repeated, with the
// content's seed and the unit number stamped at the start of every 4 KiB
// unit. Making it is a memory copy, so the generator never competes with
// the registry for the CPU, yet no two seeds, and no two places of one
// content, give a page in common: a disk or file system that deduplicates
// or compresses blocks finds nothing to gain.
const (
	genBlockSize = 1 << 20
	genUnit      = 4 << 10
	genStampLen  = 16
)

var genBlock = func() []byte {
	b := make([]byte, genBlockSize)
	r := rand.NewChaCha8([32]byte{'l', 'a', 'd', 'i', 'n', 'g'})
	r.Read(b)
	return b
}()

// content is one blob's bytes: size bytes determined by seed.
type content struct {
	seed uint64
	size int64
}

// reader streams the content from the start.
func (c content) reader() *contentReader { return &contentReader{c: c} }

// bytes materialises the content; only for small blobs.
func (c content) bytes() []byte {
	b := make([]byte, c.size)
	c.readAt(b, 0)
	return b
}

// digest hashes the content, streaming it.
func (c content) digest() digest.Digest {
	h := sha256.New()
	buf := make([]byte, genBlockSize)
	for off := int64(0); off < c.size; {
		n := c.readAt(buf[:min(int64(len(buf)), c.size-off)], off)
		h.Write(buf[:n])
		off += int64(n)
	}
	return digest.NewDigest(digest.SHA256, h)
}

// readAt fills p with the content from off and returns how much it filled.
func (c content) readAt(p []byte, off int64) int {
	if off >= c.size {
		return 0
	}
	p = p[:min(int64(len(p)), c.size-off)]
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		unit := pos / genUnit
		in := int(pos % genUnit)
		n := min(genUnit-in, len(p)-done)
		blockOff := int(pos % genBlockSize)
		copy(p[done:done+n], genBlock[blockOff:blockOff+n])
		if in < genStampLen {
			var stamp [genStampLen]byte
			binary.LittleEndian.PutUint64(stamp[:8], c.seed)
			binary.LittleEndian.PutUint64(stamp[8:], uint64(unit))
			copy(p[done:done+n], stamp[in:])
		}
		done += n
	}
	return done
}

type contentReader struct {
	c   content
	off int64
}

func (r *contentReader) Read(p []byte) (int, error) {
	if r.off >= r.c.size {
		return 0, io.EOF
	}
	n := r.c.readAt(p, r.off)
	r.off += int64(n)
	return n, nil
}

// section is the part [off, off+n) of a content, as a reader.
func (c content) section(off, n int64) io.Reader {
	return io.LimitReader(&contentReader{c: c, off: off}, n)
}
