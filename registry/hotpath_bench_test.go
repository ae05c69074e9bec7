package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

// Micro-benchmarks of the registry's hot paths on the filesystem driver,
// wrapped in driver.Instrument as `lading serve` does. LADING_BENCH_DIR
// puts the data on the disk under test; the default is the temp dir.

func benchRegistry(b *testing.B) *Registry {
	b.Helper()
	dir := testenv.BenchDir(b)
	fsd, err := filesystem.New(dir)
	if err != nil {
		b.Fatal(err)
	}
	return New(driver.Instrument(fsd, nil), Options{Logger: slog.New(slog.DiscardHandler)})
}

func benchRepo(b *testing.B, reg *Registry) *Repository {
	b.Helper()
	repo, err := reg.Repository("bench/hot")
	if err != nil {
		b.Fatal(err)
	}
	return repo
}

func randomChunk(b *testing.B, n int) []byte {
	b.Helper()
	p := make([]byte, n)
	rand.Read(p)
	return p
}

// BenchmarkUploadAppend is one PATCH in the registry: lock, state read,
// the chunk hashed and written, state saved (durably).
func BenchmarkUploadAppend(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 16 << 20} {
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			ctx := context.Background()
			bs := benchRepo(b, benchRegistry(b)).Blobs()
			chunk := randomChunk(b, size)
			var u *Upload
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				if i%64 == 0 { // keep the session's file small
					b.StopTimer()
					if u != nil {
						u.Cancel(ctx)
					}
					var err error
					if u, err = bs.Upload(ctx, UploadOptions{}); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				i++
				if _, err := u.Append(ctx, bytes.NewReader(chunk), -1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSmallBlob pushes 4 KiB blobs as clients do: "session" opens an
// upload (POST), appends its one chunk and commits (PUT); "put" stores the
// blob in one call (POST ?digest=).
func BenchmarkSmallBlob(b *testing.B) {
	ways := []struct {
		name string
		push func(ctx context.Context, bs *BlobStore, d digest.Digest, p []byte) error
	}{
		{"session", func(ctx context.Context, bs *BlobStore, d digest.Digest, p []byte) error {
			u, err := bs.Upload(ctx, UploadOptions{})
			if err == nil {
				_, err = u.Append(ctx, bytes.NewReader(p), 0)
			}
			if err == nil {
				_, err = u.Commit(ctx, d, int64(len(p)))
			}
			return err
		}},
		{"put", func(ctx context.Context, bs *BlobStore, d digest.Digest, p []byte) error {
			_, err := bs.Put(ctx, d, bytes.NewReader(p))
			return err
		}},
	}
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			ctx := context.Background()
			bs := benchRepo(b, benchRegistry(b)).Blobs()
			p := randomChunk(b, 4<<10)
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				rand.Read(p[:16])
				if err := w.push(ctx, bs, digest.FromBytes(p), p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBlobOpenSeek opens a blob, seeks to its end (what ServeContent
// does for the size) and reads 4 KiB in its middle.
func BenchmarkBlobOpenSeek(b *testing.B) {
	ctx := context.Background()
	bs := benchRepo(b, benchRegistry(b)).Blobs()
	p := randomChunk(b, 4<<20)
	d := digest.FromBytes(p)
	if _, err := bs.Put(ctx, d, bytes.NewReader(p)); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4<<10)
	for b.Loop() {
		br, err := bs.Open(ctx, d)
		if err != nil {
			b.Fatal(err)
		}
		size, _ := br.Seek(0, io.SeekEnd)
		if _, err := br.Seek(size/2, io.SeekStart); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, buf); err != nil {
			b.Fatal(err)
		}
		br.Close()
	}
}

func benchManifest(b *testing.B, layers int) []byte {
	b.Helper()
	desc := func(mt string, i int) v1.Descriptor {
		return v1.Descriptor{MediaType: mt, Digest: digest.FromString(fmt.Sprint(mt, i)), Size: int64(1000 + i)}
	}
	m := v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    desc(v1.MediaTypeImageConfig, 0),
	}
	for i := range layers {
		m.Layers = append(m.Layers, desc(v1.MediaTypeImageLayerGzip, i))
	}
	p, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkParseManifest is the structural validation of every manifest PUT.
func BenchmarkParseManifest(b *testing.B) {
	for _, layers := range []int{1, 5, 50} {
		b.Run(strconv.Itoa(layers)+"layers", func(b *testing.B) {
			p := benchManifest(b, layers)
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := parseManifest(p, v1.MediaTypeImageManifest); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPaths maps names and digests to the storage layout, as every
// request does at least once.
func BenchmarkPaths(b *testing.B) {
	d := digest.FromString("lading")
	const repo = "library/some-image.name"
	b.Run("blob", func(b *testing.B) {
		for b.Loop() {
			_ = blobPath(d)
		}
	})
	b.Run("layerLink", func(b *testing.B) {
		for b.Loop() {
			_ = layerLinkPath(repo, d)
		}
	})
	b.Run("uploadState", func(b *testing.B) {
		for b.Loop() {
			_ = uploadStatePath(repo, "0f8e6a52-5b4c-4d7e-9a1b-2c3d4e5f6a7b")
		}
	})
	b.Run("catalog", func(b *testing.B) {
		for b.Loop() {
			_ = catalogPath(repo)
		}
	})
	b.Run("validateNameAndDigest", func(b *testing.B) {
		for b.Loop() {
			if err := ValidateName(repo); err != nil {
				b.Fatal(err)
			}
			if _, err := ParseDigest(d.String()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
