package filesystem

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
)

// A walk resuming after from must not read the subtrees before it: a
// listing page costs what it returns, not what precedes it.
func TestWalkSkipsSubtreesBeforeFrom(t *testing.T) {
	root := t.TempDir()
	d, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/a/x/1", "/a/y/1", "/a-/1", "/b/1"} {
		if err := d.PutContent(t.Context(), p, nil); err != nil {
			t.Fatal(err)
		}
	}
	var read []string
	openDir = func(dir string) (*os.File, error) {
		rel, _ := filepath.Rel(root, dir)
		read = append(read, filepath.ToSlash(rel))
		return os.Open(dir)
	}
	defer func(f func(string) (*os.File, error)) { openDir = f }(openDir)

	var walked []string
	err = d.Walk(t.Context(), "/", "/a/x/1", func(fi driver.FileInfo) error {
		walked = append(walked, fi.Path)
		return nil
	})
	if want := []string{"/a/y/1", "/b/1"}; err != nil || !slices.Equal(walked, want) {
		t.Fatalf("Walk = %q, %v; want %q", walked, err, want)
	}
	// "a-" sorts before "a/" and so before from; "a/x" holds from itself.
	if want := []string{".", "a", "a/x", "a/y", "b"}; !slices.Equal(read, want) {
		t.Errorf("Walk read directories %q, want %q", read, want)
	}
}

// A walk read in pieces (a directory holding more names than walkBatch)
// visits what a walk holding every name does, from every place a listing
// may resume.
func TestWalkInPiecesAgreesWithWhole(t *testing.T) {
	root := t.TempDir()
	d, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	// Names whose order as paths differs from their order as names: a
	// directory "a" sorts as "a/", after "a-" and "a.b", before "a0".
	all := []string{"/a/x", "/a/y/1", "/a/y/2", "/a-", "/a.b", "/a0", "/b/c/d", "/b/c0", "/b0", "/c"}
	for i := range 40 {
		all = append(all, fmt.Sprintf("/m/%02d", 39-i), fmt.Sprintf("/m/%02d-", i))
	}
	for _, p := range all {
		if err := d.PutContent(t.Context(), p, nil); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(all)
	froms := []string{"", "/", "/a", "/a/", "/a/y", "/a/y/1", "/a-", "/a/z", "/b/c", "/b/c/", "/m/", "/m/17", "/m/17-", "/m/39-", "/z"}
	froms = append(froms, all...)
	defer func(n int) { walkBatch = n }(walkBatch)
	for _, batch := range []int{1, 2, 3, 7, 1 << 14} {
		walkBatch = batch
		for _, from := range froms {
			var got []string
			err := d.Walk(t.Context(), "/", from, func(fi driver.FileInfo) error {
				got = append(got, fi.Path)
				return nil
			})
			want := slices.DeleteFunc(slices.Clone(all), func(p string) bool { return p <= from })
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("walkBatch %d, from %q: %q, %v; want %q", batch, from, got, err, want)
			}
		}
	}
}

// A page of a large directory holds the page's names: the least after
// from, with word that more follow.
func TestWalkHoldsAPageOfALargeDirectory(t *testing.T) {
	root := t.TempDir()
	d, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		if err := d.PutContent(t.Context(), fmt.Sprintf("/tags/t%05d", (i*7919)%n), nil); err != nil {
			t.Fatal(err)
		}
	}
	names, more, err := namesInOrder(filepath.Join(root, "tags"), "/tags", "/tags/t00999", "", 100)
	if err != nil || !more || len(names) != 100 {
		t.Fatalf("%d names, more %v, %v; want 100 and more", len(names), more, err)
	}
	for i, e := range names {
		if want := fmt.Sprintf("t%05d", 1000+i); e.key != want || e.dir {
			t.Fatalf("name %d is %+v, want %s", i, e, want)
		}
	}
}
