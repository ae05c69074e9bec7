package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/registry"
)

// The push benchmarks write 1 GiB in 16 MiB chunks: once through the content
// store on the filesystem driver (upload session, running hash in the
// backend, commit, link), once as the plain floor — SHA-256 and write to one
// file, fsync at the end. The ratio of the two is the store's overhead.
const (
	pushTotal  = 1 << 30
	pushChunk  = 16 << 20
	plainPiece = 1 << 20
)

// pushData returns one chunk of random bytes; each iteration stamps a
// counter into it so no two blobs are alike and nothing is deduplicated.
func pushData(b *testing.B) []byte {
	b.Helper()
	return randomBytes(b, pushChunk)
}

func stamp(chunk []byte, iter, i int) {
	binary.LittleEndian.PutUint64(chunk, uint64(iter)<<32|uint64(i))
}

func BenchmarkPush1GiBContentStore(b *testing.B) {
	ctx := context.Background()
	chunk := pushData(b)
	root := testenv.BenchDir(b)
	repo := repository(b, newFSRegistry(b, root), "bench/push")
	b.SetBytes(pushTotal)
	b.ResetTimer()
	for iter := 0; iter < b.N; iter++ {
		// The client knows its digest before it pushes; compute it untimed.
		b.StopTimer()
		h := sha256.New()
		for i := range pushTotal / pushChunk {
			stamp(chunk, iter, i)
			h.Write(chunk)
		}
		d := digest.NewDigest(digest.SHA256, h)
		b.StartTimer()
		u, err := repo.Blobs().Upload(ctx, registry.UploadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var off int64
		for i := range pushTotal / pushChunk {
			stamp(chunk, iter, i)
			n, err := u.Append(ctx, bytes.NewReader(chunk), off)
			if err != nil {
				b.Fatal(err)
			}
			off += n
		}
		if _, err := u.Commit(ctx, d, off); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(filepath.Join(root, "blobs"))
		b.StartTimer()
	}
}

func BenchmarkPush1GiBPlainWrite(b *testing.B) {
	chunk := pushData(b)
	dir := testenv.BenchDir(b)
	b.SetBytes(pushTotal)
	b.ResetTimer()
	for iter := 0; iter < b.N; iter++ {
		f, err := os.Create(filepath.Join(dir, "plain"))
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		for i := range pushTotal / pushChunk {
			stamp(chunk, iter, i)
			// Hash and write in the store's piece size, so the floor is
			// the best this pattern does, not a handicapped one: 16 MiB
			// write calls measured slower here than 1 MiB ones.
			for p := chunk; len(p) > 0; p = p[plainPiece:] {
				h.Write(p[:plainPiece])
				if _, err := f.Write(p[:plainPiece]); err != nil {
					b.Fatal(err)
				}
			}
		}
		h.Sum(nil)
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		b.StopTimer()
		os.Remove(f.Name())
		b.StartTimer()
	}
}
