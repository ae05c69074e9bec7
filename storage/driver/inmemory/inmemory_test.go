package inmemory_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

func TestBasics(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	for _, p := range []string{"/p/a-b", "/p/a.b", "/p/a/b", "/p/a/c/d", "/p/a0"} {
		if err := d.PutContent(ctx, p, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Create(ctx, "/p/a0", []byte("x")); !errors.Is(err, driver.ErrExists) {
		t.Fatalf("Create over object: %v", err)
	}
	var walked []string
	if err := d.Walk(ctx, "/p", "/p/a", func(fi driver.FileInfo) error {
		walked = append(walked, fi.Path)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/p/a-b", "/p/a.b", "/p/a/b", "/p/a/c/d", "/p/a0"}; !slices.Equal(walked, want) {
		t.Fatalf("Walk = %q, want %q", walked, want)
	}
	ls, err := d.List(ctx, "/p")
	if want := []string{"/p/a", "/p/a-b", "/p/a.b", "/p/a0"}; err != nil || !slices.Equal(ls, want) {
		t.Fatalf("List = %q, %v; want %q", ls, err, want)
	}
	w, err := d.Writer(ctx, "/q/data", false)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "abc")
	w.Close()
	if w, err = d.Writer(ctx, "/q/data", true); err != nil || w.Size() != 3 {
		t.Fatalf("reopen: %v", err)
	}
	io.WriteString(w, "def")
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r, err := d.Reader(ctx, "/q/data", 2)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != "cdef" {
		t.Fatalf("read %q", b)
	}
	if _, err := d.Reader(ctx, "/q/data", 7); !driver.IsInvalidOffset(err) {
		t.Fatalf("offset beyond: %v", err)
	}
	if err := d.Delete(ctx, "/p/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stat(ctx, "/p/a"); !driver.IsNotFound(err) {
		t.Fatalf("Stat deleted dir: %v", err)
	}
	if fi, err := d.Stat(ctx, "/p"); err != nil || !fi.IsDir {
		t.Fatalf("Stat dir: %+v %v", fi, err)
	}
}

// A file system cannot hold an object that is also a directory; refusing it
// here makes tests on this driver catch a layout that only S3 would accept.
func TestObjectAndPrefixConflict(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	if err := d.PutContent(ctx, "/a/b", nil); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/a", nil); err == nil {
		t.Error("PutContent on a directory succeeded")
	}
	if err := d.PutContent(ctx, "/a/b/c", nil); err == nil {
		t.Error("PutContent below an object succeeded")
	}
	if err := d.Create(ctx, "/a", nil); !errors.Is(err, driver.ErrExists) {
		t.Errorf("Create on a directory: %v", err)
	}
	if err := d.Move(ctx, "/a/b", "/a/b/c"); err == nil {
		t.Error("Move below itself succeeded")
	}
	if _, err := d.GetContent(ctx, "/a/b"); err != nil {
		t.Errorf("failed Move lost its source: %v", err)
	}
}
