package registry

import (
	"math"

	"github.com/maypok86/otter/v2"
)

// manifestCache keeps, in this process, what a pull reads of a manifest
// besides its tag, so that a hit costs one stat:
//
//   - payloads by digest. Bytes named by their digest never change, so an
//     entry never goes stale and no other process need invalidate it.
//   - records by path, with their size. A record is a function of the
//     manifest's bytes and of its media type, and the media types Lading
//     accepts all differ in length, so a record whose size is unchanged is
//     unchanged: a stat both proves the repository still holds the
//     manifest and validates the entry, whichever process rewrote it.
type manifestCache struct {
	payloads *otter.Cache[string, []byte]
	records  *otter.Cache[string, recordEntry]
}

type recordEntry struct {
	size int64
	rec  manifestRecord
}

// recordWeight approximates a record entry's memory beside its stored
// bytes: the descriptor's strings and their bookkeeping.
const recordWeight = 512

// newManifestCache spends a quarter of maxBytes on records, the rest on
// payloads; nil (nothing cached) when maxBytes is 0.
func newManifestCache(maxBytes int64) *manifestCache {
	if maxBytes <= 0 {
		return nil
	}
	return &manifestCache{
		payloads: newWeighed(maxBytes-maxBytes/4, func(b []byte) int { return len(b) }),
		// A record holds its subject's descriptor whole, annotations and
		// data included: up to a manifest's size, so it weighs its bytes.
		records: newWeighed(maxBytes/4, func(e recordEntry) int { return recordWeight + int(e.size) }),
	}
}

func (m *manifestCache) payload(d string) ([]byte, bool) {
	if m == nil {
		return nil, false
	}
	return m.payloads.GetIfPresent(d)
}

// putPayload keeps payload, which must be the bytes of d.
func (m *manifestCache) putPayload(d string, payload []byte) {
	if m != nil {
		m.payloads.Set(d, payload)
	}
}

func (m *manifestCache) record(path string) (recordEntry, bool) {
	if m == nil {
		return recordEntry{}, false
	}
	return m.records.GetIfPresent(path)
}

func (m *manifestCache) putRecord(path string, size int64, rec manifestRecord) {
	if m != nil {
		m.records.Set(path, recordEntry{size: size, rec: rec})
	}
}

// entryOverhead approximates an entry's bookkeeping beyond its value, so
// that many tiny entries are weighed fairly.
const entryOverhead = 128

// newWeighed returns an otter cache bounded by the bytes its entries weigh.
func newWeighed[V any](maxBytes int64, weigh func(V) int) *otter.Cache[string, V] {
	return otter.Must(&otter.Options[string, V]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(k string, v V) uint32 {
			return uint32(min(len(k)+weigh(v)+entryOverhead, math.MaxUint32))
		},
	})
}
