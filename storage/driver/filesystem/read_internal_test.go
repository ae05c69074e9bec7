package filesystem

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// readWhole returns every byte of files around its buffer's size, whether
// it trusts a short read for the end or reads on until nothing comes.
func TestReadWhole(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, smallRead - 1, smallRead, smallRead + 1, 2 * smallRead, 100000} {
		want := make([]byte, n)
		for i := range want {
			want[i] = byte(i * 7)
		}
		name := filepath.Join(dir, fmt.Sprint(n))
		if err := os.WriteFile(name, want, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, shortEnds := range []bool{false, true} {
			if got, err := readWhole(name, shortEnds); err != nil || !bytes.Equal(got, want) {
				t.Errorf("readWhole of %d bytes, shortEnds %v: %d bytes, %v", n, shortEnds, len(got), err)
			}
		}
	}
	if !shortReadsEnd(dir) {
		t.Logf("short reads are not trusted on the file system of %s", dir)
	}
}
