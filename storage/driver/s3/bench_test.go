package s3

import (
	"context"
	"io"
	"testing"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

// BenchmarkBlob256MiB writes a 256 MiB object in 16 MiB writes and reads it
// back, on S3 (versitygw over a local folder) beside the filesystem driver,
// so the cost of going through the S3 protocol is visible.
func BenchmarkBlob256MiB(b *testing.B) {
	const size, chunk = 256 * mib, 16 * mib
	fs, err := filesystem.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	drivers := []struct {
		name string
		d    driver.Driver
	}{
		{"filesystem", fs},
		{"s3", newTestDriver(b, testenv.S3(b), "")},
	}
	data := pattern(chunk, 1)
	ctx := context.Background()
	for _, dr := range drivers {
		b.Run(dr.name+"/write", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				w, err := dr.d.Writer(ctx, "/blob", false)
				if err != nil {
					b.Fatal(err)
				}
				for range size / chunk {
					if _, err := w.Write(data); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				w.Close()
			}
		})
		b.Run(dr.name+"/read", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				r, err := dr.d.Reader(ctx, "/blob", 0)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, r); err != nil || n != size {
					b.Fatalf("read %d bytes: %v", n, err)
				}
				r.Close()
			}
		})
	}
}
