package filesystem_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
)

// The hot paths of the registry: a small state object replaced on every
// upload chunk, and a 16 MiB chunk appended to an upload.

func BenchmarkPutContent1KiB(b *testing.B) {
	d, _ := newDriver(b)
	content := make([]byte, 1<<10)
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		if err := d.PutContent(b.Context(), "/repositories/r/_uploads/u/state", content); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreate1KiB(b *testing.B) {
	d, _ := newDriver(b)
	content := make([]byte, 1<<10)
	b.SetBytes(int64(len(content)))
	i := 0
	for b.Loop() {
		i++
		if err := d.Create(b.Context(), "/catalog/r"+strconv.Itoa(i), content); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriterChunk16MiB reopens the upload, appends a chunk and closes,
// as one PATCH does; commit=true adds the fsync of the final chunk.
func BenchmarkWriterChunk16MiB(b *testing.B) {
	for _, commit := range []bool{false, true} {
		name := "close"
		if commit {
			name = "commit"
		}
		b.Run(name, func(b *testing.B) {
			d, _ := newDriver(b)
			ctx := b.Context()
			chunk := make([]byte, 16<<20)
			const p = "/repositories/r/_uploads/u/data"
			b.SetBytes(int64(len(chunk)))
			n := 0
			for b.Loop() {
				w, err := d.Writer(ctx, p, n%16 != 0) // keep the file below 256 MiB
				if err != nil {
					b.Fatal(err)
				}
				n++
				if _, err := w.Write(chunk); err != nil {
					b.Fatal(err)
				}
				if commit {
					if err := w.Commit(ctx); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPlainWrite16MiB is the floor the driver's writer is measured
// against: the same chunks appended to an open file.
func BenchmarkPlainWrite16MiB(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "data"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 16<<20)
	b.SetBytes(int64(len(chunk)))
	n := 0
	for b.Loop() {
		if n%16 == 0 {
			f.Truncate(0)
			f.Seek(0, 0)
		}
		n++
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWalkPage lists a page of 100 names from the middle of a folder
// of 100,000 (a large repository's tags, a large registry's catalog).
func BenchmarkWalkPage(b *testing.B) {
	d, root := newDriver(b)
	dir := filepath.Join(root, "tags")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 100_000 {
		f, err := os.Create(filepath.Join(dir, "t"+strconv.Itoa(100_000+i)))
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	for b.Loop() {
		n := 0
		err := d.Walk(b.Context(), "/tags", "/tags/t150000", func(driver.FileInfo) error {
			if n++; n == 100 {
				return driver.ErrStopWalk
			}
			return nil
		})
		if err != nil || n != 100 {
			b.Fatalf("%d names, %v", n, err)
		}
	}
}
