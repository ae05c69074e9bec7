package registry

import (
	"math"

	"github.com/maypok86/otter/v2"
	"github.com/opencontainers/go-digest"
)

// payloadCache keeps manifest payloads by digest in this process. Bytes
// named by their digest never change, so an entry never goes stale and no
// other process need invalidate it; whether a repository holds the manifest
// is still read from its record every time. A hit spares a pull the payload
// read (a round trip on an object store) and a HEAD the stat of the bytes.
type payloadCache struct {
	c *otter.Cache[digest.Digest, []byte]
}

// entryOverhead approximates an entry's bookkeeping beyond its bytes, so
// that many tiny manifests are weighed fairly.
const entryOverhead = 128

func newPayloadCache(maxBytes int64) *payloadCache {
	if maxBytes <= 0 {
		return nil
	}
	return &payloadCache{c: otter.Must(&otter.Options[digest.Digest, []byte]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(d digest.Digest, b []byte) uint32 {
			return uint32(min(len(d)+len(b)+entryOverhead, math.MaxUint32))
		},
	})}
}

func (p *payloadCache) get(d digest.Digest) ([]byte, bool) {
	if p == nil {
		return nil, false
	}
	return p.c.GetIfPresent(d)
}

// put keeps payload, which must be the bytes of d.
func (p *payloadCache) put(d digest.Digest, payload []byte) {
	if p != nil {
		p.c.Set(d, payload)
	}
}
