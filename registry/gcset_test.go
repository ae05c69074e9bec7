package registry

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// A set far larger than its memory limit spills runs and still iterates
// every digest once, in the order of their storage paths.
func TestDigestSetSpills(t *testing.T) {
	dir := t.TempDir()
	s := newDigestSet(dir, 7)
	var want []digestKey
	in := map[digestKey]bool{}
	for i := range 200 {
		d := digest.FromString(fmt.Sprint(i % 150)) // duplicates across runs
		if i%9 == 0 {
			d = digest.SHA512.FromString(fmt.Sprint(i))
		}
		s.Add(d)
		k, _ := keyOf(d)
		want = append(want, k)
		in[k] = true
	}
	s.Add("sha256:not-a-digest") // ignored
	want = sortKeys(want)
	if files, _ := os.ReadDir(dir); len(files) < 20 {
		t.Fatalf("%d runs spilled, want many", len(files))
	}
	it, err := s.Iterate()
	if err != nil {
		t.Fatal(err)
	}
	var got []digestKey
	for it.next() {
		got = append(got, it.cur)
	}
	it.Close()
	if it.Err() != nil || !slices.Equal(got, want) {
		t.Fatalf("iterated %d keys, want %d (err %v)", len(got), len(want), it.Err())
	}
	// Membership, asked in ascending order as a sweep does.
	it, _ = s.Iterate()
	absent := 0
	probes := make([]digestKey, 0, 300)
	for i := range 300 {
		k, _ := keyOf(digest.FromString(fmt.Sprint(i)))
		probes = append(probes, k)
	}
	slices.SortFunc(probes, func(a, b digestKey) int { return bytes.Compare(a[:], b[:]) })
	for _, k := range probes {
		if it.Contains(k) != in[k] {
			t.Fatalf("Contains(%x) = %v", k, !in[k])
		}
		if !in[k] {
			absent++
		}
	}
	it.Close()
	if absent < 100 {
		t.Fatalf("only %d of 300 probes absent: the probe misses its point", absent)
	}
	s.Close()
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatalf("%d run files left after Close", len(files))
	}
}

// Keys sort like the paths the collector walks.
func TestDigestKeyOrderMatchesPaths(t *testing.T) {
	var ds []digest.Digest
	for i := range 50 {
		ds = append(ds, digest.FromString(fmt.Sprint(i)), digest.SHA512.FromString(fmt.Sprint(i)))
	}
	byPath := slices.Clone(ds)
	slices.SortFunc(byPath, func(a, b digest.Digest) int { return strings.Compare(blobPath(a), blobPath(b)) })
	byKey := slices.Clone(ds)
	slices.SortFunc(byKey, func(a, b digest.Digest) int {
		ka, _ := keyOf(a)
		kb, _ := keyOf(b)
		return bytes.Compare(ka[:], kb[:])
	})
	if !slices.Equal(byPath, byKey) {
		t.Fatal("key order differs from path order")
	}
}
