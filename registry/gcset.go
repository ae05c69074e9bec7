package registry

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
)

// digestKey is a digest in 33 bytes: its algorithm, then the first 32 bytes
// of its hash. Keys sort like the storage paths of their digests (sha256
// before sha512, then by hex), so a sorted set of keys merges with a Walk.
// A sha512 key drops half the hash: two sha512 digests sharing 32 bytes
// would collide, and a collision can only make the collector keep a blob,
// never remove one.
type digestKey [33]byte

func keyOf(d digest.Digest) (digestKey, bool) {
	var k digestKey
	switch d.Algorithm() {
	case digest.SHA256:
		k[0] = 1
	case digest.SHA512:
		k[0] = 2
	default:
		return k, false
	}
	enc := d.Encoded()
	if len(enc) < 64 {
		return k, false
	}
	if _, err := hex.Decode(k[1:], []byte(enc[:64])); err != nil {
		return k, false
	}
	return k, true
}

// digestAt parses the digest whose encoded part is the last path segment
// and whose algorithm is the segment named by algAt segments from the end
// (1: the one before, 2: two before, as in /blobs/<alg>/<xx>/<hex>).
func digestAt(path string, algAt int) (digest.Digest, bool) {
	segs := strings.Split(path, "/")
	if len(segs) < algAt+2 {
		return "", false
	}
	d := digest.Digest(segs[len(segs)-1-algAt] + ":" + segs[len(segs)-1])
	if validateDigest(d) != nil {
		return "", false
	}
	return d, true
}

// spillLimit is how many keys a digestSet holds in memory before it writes
// a sorted run to disk: 8.6 MB of keys.
const spillLimit = 1 << 18

// digestSet collects digests without bounding their number by memory:
// keys are buffered, and each full buffer is sorted and written to a
// temporary file as a run. Iterate merges the runs. Memory is the buffer
// plus one read buffer per run.
type digestSet struct {
	dir   string
	limit int
	buf   []digestKey
	runs  []string
	err   error
}

func newDigestSet(dir string, limit int) *digestSet {
	if limit <= 0 {
		limit = spillLimit
	}
	return &digestSet{dir: dir, limit: limit}
}

// Add inserts d; digests the store cannot address are ignored.
func (s *digestSet) Add(d digest.Digest) {
	if k, ok := keyOf(d); ok {
		s.addKey(k)
	}
}

func (s *digestSet) addKey(k digestKey) {
	if s.err != nil {
		return
	}
	s.buf = append(s.buf, k)
	if len(s.buf) >= s.limit {
		s.err = s.spill()
	}
}

func sortKeys(keys []digestKey) []digestKey {
	slices.SortFunc(keys, func(a, b digestKey) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(keys)
}

func (s *digestSet) spill() error {
	keys := sortKeys(s.buf)
	f, err := os.CreateTemp(s.dir, "lading-gc-*.run")
	if err != nil {
		return err
	}
	s.runs = append(s.runs, f.Name())
	w := bufio.NewWriterSize(f, 64<<10)
	for i := range keys {
		w.Write(keys[i][:])
	}
	err = errors.Join(w.Flush(), f.Close())
	s.buf = s.buf[:0]
	return err
}

// Close removes the set's files.
func (s *digestSet) Close() {
	for _, r := range s.runs {
		os.Remove(r)
	}
	s.runs = nil
	s.buf = nil
}

// Iterate returns the set's keys in ascending order without duplicates.
// No Add may follow.
func (s *digestSet) Iterate() (*keyIter, error) {
	if s.err != nil {
		return nil, s.err
	}
	it := &keyIter{mem: sortKeys(s.buf)}
	for _, r := range s.runs {
		f, err := os.Open(r)
		if err != nil {
			it.Close()
			return nil, err
		}
		src := &runReader{f: f, r: bufio.NewReaderSize(f, 64<<10)}
		if src.next() {
			it.heap = append(it.heap, src)
		} else if src.err != nil {
			f.Close()
			it.Close()
			return nil, src.err
		} else {
			f.Close()
		}
	}
	heap.Init(&it.heap)
	return it, nil
}

// keyIter merges sorted runs and a sorted slice.
type keyIter struct {
	mem  []digestKey
	heap runHeap
	cur  digestKey
	has  bool
	done bool
	err  error
}

type runReader struct {
	f   *os.File
	r   *bufio.Reader
	key digestKey
	err error
}

func (r *runReader) next() bool {
	_, err := io.ReadFull(r.r, r.key[:])
	if err == io.EOF {
		return false
	}
	if err != nil {
		r.err = err
		return false
	}
	return true
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return bytes.Compare(h[i].key[:], h[j].key[:]) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// next advances to the next distinct key; false at the end or on error.
func (it *keyIter) next() bool {
	for {
		k, ok := it.pop()
		if !ok {
			it.has, it.done = false, true
			return false
		}
		if !it.has || k != it.cur {
			it.cur, it.has = k, true
			return true
		}
	}
}

func (it *keyIter) pop() (digestKey, bool) {
	var best digestKey
	fromMem := len(it.mem) > 0
	if fromMem {
		best = it.mem[0]
	}
	if len(it.heap) > 0 && (!fromMem || bytes.Compare(it.heap[0].key[:], best[:]) < 0) {
		top := it.heap[0]
		best = top.key
		if top.next() {
			heap.Fix(&it.heap, 0)
		} else {
			if top.err != nil {
				it.err = top.err
			}
			top.f.Close()
			heap.Pop(&it.heap)
		}
		return best, it.err == nil
	}
	if !fromMem {
		return best, false
	}
	it.mem = it.mem[1:]
	return best, true
}

// Contains reports whether k is in the set. Successive calls must ask for
// keys in ascending order: the iterator only moves forward. After a read
// error it answers true for everything, so a damaged run can make the
// collector keep garbage but never remove what is marked.
func (it *keyIter) Contains(k digestKey) bool {
	if !it.has && !it.done {
		it.next()
	}
	for it.has && bytes.Compare(it.cur[:], k[:]) < 0 {
		it.next()
	}
	if it.err != nil {
		return true
	}
	return it.has && it.cur == k
}

// Err is the first read error met.
func (it *keyIter) Err() error { return it.err }

// Close releases the runs still open.
func (it *keyIter) Close() {
	for _, r := range it.heap {
		r.f.Close()
	}
	it.heap = nil
}
