package filesystem

import (
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
	readDir = func(dir string) ([]os.DirEntry, error) {
		rel, _ := filepath.Rel(root, dir)
		read = append(read, filepath.ToSlash(rel))
		return os.ReadDir(dir)
	}
	defer func(f func(string) ([]os.DirEntry, error)) { readDir = f }(readDir)

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
