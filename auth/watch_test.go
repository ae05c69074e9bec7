package auth

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A file saved by renaming a new version over it, of the same size and
// (on a file system with coarse timestamps) the same modification time,
// is read again: a revocation in it must not be missed.
func TestWatchedFileSeesARenamedVersionOfTheSameSizeAndTime(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy")
	if err := os.WriteFile(path, []byte("alice"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := watchFile(path, func(b []byte) (string, error) { return string(b), nil }, orDefault(nil))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(dir, "policy.new")
	if err := os.WriteFile(next, []byte("bobby"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(next, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.checked = time.Time{} // as if a second had passed
	w.mu.Unlock()
	if got := w.get(); got != "bobby" {
		t.Fatalf("content in force %q after the rename, want %q", got, "bobby")
	}
}
