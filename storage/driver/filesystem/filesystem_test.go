package filesystem_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
	"github.com/lading-registry/lading/storage/driver/testsuite"
)

func newDriver(t testing.TB) (*filesystem.Driver, string) {
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return d, root
}

func TestConformance(t *testing.T) {
	testsuite.Run(t, func(t *testing.T) driver.Driver {
		d, root := newDriver(t)
		// Runs after the suite's own cleanup: the root must be as new.
		t.Cleanup(func() { wantPristine(t, root) })
		return d
	})
}

// wantPristine checks that root holds nothing but an empty temporary
// directory: no temporary file outlived its call, no directory its objects.
func wantPristine(t *testing.T, root string) {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "#tmp" {
			t.Errorf("left in the root: %s", e.Name())
		}
	}
	temps, err := os.ReadDir(filepath.Join(root, "#tmp"))
	if err != nil || len(temps) > 0 {
		t.Errorf("temporary directory holds %d entries (%v)", len(temps), err)
	}
}
