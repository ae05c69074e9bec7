package testenv

import (
	"os"
	"testing"
)

// BenchDir is a fresh folder on the disk under test: inside
// $LADING_BENCH_DIR when set (benchmarks of storage mean little on a tmpfs),
// else the test's temporary directory. It is removed when t ends.
func BenchDir(t testing.TB) string {
	t.Helper()
	parent := os.Getenv("LADING_BENCH_DIR")
	if parent == "" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "bench")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
