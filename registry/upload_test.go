package registry_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func newFSRegistry(t testing.TB, root string) *registry.Registry {
	t.Helper()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return registry.New(driver.Instrument(d, nil), registry.Options{})
}

func repository(t testing.TB, reg *registry.Registry, name string) *registry.Repository {
	t.Helper()
	repo, err := reg.Repository(name)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func readBlob(t testing.TB, repo *registry.Repository, d digest.Digest) []byte {
	t.Helper()
	br, err := repo.Blobs().Open(context.Background(), d)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	defer br.Close()
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	return got
}

func wantCode(t testing.TB, err error, code registry.Code) {
	t.Helper()
	e, ok := registry.AsError(err)
	if !ok || e.Code != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

// A session outlives the process: each chunk goes through a new registry
// over the same root, as after a restart, and the commit still needs no
// re-read because the hash state travelled in the backend.
func TestUploadChunksAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	data := randomBytes(t, 3*1000_003)
	chunks := [][]byte{data[:1000_003], data[1000_003:2000_006], data[2000_006:]}

	u, err := repository(t, newFSRegistry(t, root), "team/app").Blobs().Upload(ctx, registry.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := u.ID()
	var offset int64
	for i, c := range chunks {
		repo := repository(t, newFSRegistry(t, root), "team/app")
		u, err := repo.Blobs().Resume(ctx, id)
		if err != nil {
			t.Fatalf("resume before chunk %d: %v", i, err)
		}
		if u.Offset() != offset {
			t.Fatalf("chunk %d: resumed at %d, want %d", i, u.Offset(), offset)
		}
		n, err := u.Append(ctx, bytes.NewReader(c), offset)
		if err != nil || n != int64(len(c)) {
			t.Fatalf("chunk %d: append = %d, %v", i, n, err)
		}
		offset += n
	}
	repo := repository(t, newFSRegistry(t, root), "team/app")
	u, err = repo.Blobs().Resume(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := digest.FromBytes(data)
	desc, err := u.Commit(ctx, want, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != want || desc.Size != int64(len(data)) {
		t.Fatalf("descriptor = %+v", desc)
	}
	if got := readBlob(t, repo, want); !bytes.Equal(got, data) {
		t.Fatal("blob content differs from what was uploaded")
	}
	if _, err := repo.Blobs().Resume(ctx, id); !errors.Is(err, registry.ErrBlobUploadUnknown) {
		t.Fatalf("session after commit: %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
}

func TestUploadSHA512(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(t, 70_000)
	want := digest.SHA512.FromBytes(data)
	for _, tc := range []struct {
		name string
		opts registry.UploadOptions
	}{
		{"announced", registry.UploadOptions{Algorithms: []digest.Algorithm{digest.SHA512}}},
		{"discovered at commit", registry.UploadOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := repository(t, newFSRegistry(t, t.TempDir()), "sha512/repo")
			u, err := repo.Blobs().Upload(ctx, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.Append(ctx, bytes.NewReader(data[:30_000]), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := u.Append(ctx, bytes.NewReader(data[30_000:]), 30_000); err != nil {
				t.Fatal(err)
			}
			if _, err := u.Commit(ctx, want, -1); err != nil {
				t.Fatal(err)
			}
			if got := readBlob(t, repo, want); !bytes.Equal(got, data) {
				t.Fatal("content differs")
			}
		})
	}
	t.Run("monolithic", func(t *testing.T) {
		repo := repository(t, registry.New(inmemory.New(), registry.Options{}), "sha512/mono")
		if _, err := repo.Blobs().Put(ctx, want, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if got := readBlob(t, repo, want); !bytes.Equal(got, data) {
			t.Fatal("content differs")
		}
	})
}

func TestCommitMismatchKeepsSessionResumable(t *testing.T) {
	ctx := context.Background()
	repo := repository(t, newFSRegistry(t, t.TempDir()), "r")
	data := randomBytes(t, 10_000)
	u, err := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(ctx, bytes.NewReader(data[:6000]), 0); err != nil {
		t.Fatal(err)
	}
	_, err = u.Commit(ctx, digest.FromBytes(data), -1)
	wantCode(t, err, registry.CodeDigestInvalid)
	_, err = u.Commit(ctx, digest.FromBytes(data[:6000]), 5999)
	wantCode(t, err, registry.CodeSizeInvalid)

	u, err = repo.Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatalf("session gone after a failed commit: %v", err)
	}
	if u.Offset() != 6000 {
		t.Fatalf("offset = %d, want 6000", u.Offset())
	}
	if _, err := u.Append(ctx, bytes.NewReader(data[6000:]), 6000); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(ctx, digest.FromBytes(data), 10_000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, repo, digest.FromBytes(data)), data) {
		t.Fatal("content differs")
	}
}

func TestAppendAtWrongOffset(t *testing.T) {
	ctx := context.Background()
	repo := repository(t, registry.New(inmemory.New(), registry.Options{}), "r")
	u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if _, err := u.Append(ctx, bytes.NewReader([]byte("hello")), 0); err != nil {
		t.Fatal(err)
	}
	for _, at := range []int64{0, 4, 6} {
		_, err := u.Append(ctx, bytes.NewReader([]byte("x")), at)
		var re *registry.RangeError
		if !errors.As(err, &re) || re.Offset != 5 {
			t.Fatalf("append at %d: %v, want RangeError at 5", at, err)
		}
	}
}

// slowReader hands out its bytes in small pieces and pauses, so that
// concurrent appends overlap in time.
type slowReader struct {
	data []byte
	gate <-chan struct{}
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	<-s.gate
	n := copy(p[:min(len(p), 512)], s.data)
	s.data = s.data[n:]
	return n, nil
}

// Two writers on one session never interleave bytes, also when they come
// through two registries (replicas) sharing a locker: one wins, the others
// get a RangeError, and the data is whole chunks back to back.
func TestConcurrentAppendsDoNotInterleave(t *testing.T) {
	ctx := context.Background()
	drv := inmemory.New()
	locker := registry.NewLocalLocker()
	replicas := []*registry.Registry{
		registry.New(drv, registry.Options{Locker: locker}),
		registry.New(drv, registry.Options{Locker: locker}),
	}
	u, err := repository(t, replicas[0], "r").Blobs().Upload(ctx, registry.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const writers, chunk = 8, 4096
	gate := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := repository(t, replicas[i%2], "r").Blobs().Resume(ctx, u.ID())
			if err != nil {
				t.Error(err)
				return
			}
			_, err = s.Append(ctx, &slowReader{data: bytes.Repeat([]byte{byte('a' + i)}, chunk), gate: gate}, -1)
			mu.Lock()
			defer mu.Unlock()
			var re *registry.RangeError
			switch {
			case err == nil:
				won++
			case errors.As(err, &re):
				lost++
			default:
				t.Errorf("append: %v", err)
			}
		}()
	}
	go func() {
		for range 100_000 {
			gate <- struct{}{}
		}
	}()
	wg.Wait()
	if won == 0 || won+lost != writers {
		t.Fatalf("won %d, lost %d of %d", won, lost, writers)
	}
	s, err := repository(t, replicas[0], "r").Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatal(err)
	}
	if s.Offset() != int64(won*chunk) {
		t.Fatalf("offset %d, want %d", s.Offset(), won*chunk)
	}
	rc, err := drv.Reader(ctx, "/repositories/r/_uploads/"+u.ID()+".data", 0)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	for off := 0; off < len(data); off += chunk {
		run := data[off : off+chunk]
		if !bytes.Equal(run, bytes.Repeat(run[:1], chunk)) {
			t.Fatalf("bytes interleaved in chunk at %d", off)
		}
	}
	if _, err := s.Commit(ctx, digest.FromBytes(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// errAfter yields its data, then fails like a dropped connection.
type errAfter struct{ data []byte }

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, io.ErrClosedPipe
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func TestBrokenChunkKeepsWhatArrived(t *testing.T) {
	ctx := context.Background()
	repo := repository(t, newFSRegistry(t, t.TempDir()), "r")
	data := randomBytes(t, 3000)
	u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if _, err := u.Append(ctx, bytes.NewReader(data[:1000]), 0); err != nil {
		t.Fatal(err)
	}
	n, err := u.Append(ctx, &errAfter{data: data[1000:2000]}, 1000)
	wantCode(t, err, registry.CodeBlobUploadInvalid)
	if n != 1000 {
		t.Fatalf("kept %d bytes of the broken chunk, want 1000", n)
	}
	u, err = repo.Blobs().Resume(ctx, u.ID())
	if err != nil || u.Offset() != 2000 {
		t.Fatalf("resume: offset %d, %v", u.Offset(), err)
	}
	if _, err := u.Append(ctx, bytes.NewReader(data[2000:]), 2000); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(ctx, digest.FromBytes(data), 3000); err != nil {
		t.Fatal(err)
	}
}

func TestCancelAndUnknownSessions(t *testing.T) {
	ctx := context.Background()
	drv := inmemory.New()
	repo := repository(t, registry.New(drv, registry.Options{}), "r")
	u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if _, err := u.Append(ctx, bytes.NewReader([]byte("abc")), 0); err != nil {
		t.Fatal(err)
	}
	if err := u.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := drv.Walk(ctx, "/repositories", "", func(fi driver.FileInfo) error {
		t.Errorf("left behind: %s", fi.Path)
		return nil
	}); err != nil && !driver.IsNotFound(err) {
		t.Fatal(err)
	}
	for _, id := range []string{u.ID(), "", "../../blobs", "not-a-uuid", "00000000-0000-4000-8000-000000000000/../x"} {
		if _, err := repo.Blobs().Resume(ctx, id); !errors.Is(err, registry.ErrBlobUploadUnknown) {
			t.Errorf("resume %q: %v, want BLOB_UPLOAD_UNKNOWN", id, err)
		}
	}
}

func TestPutMonolithic(t *testing.T) {
	ctx := context.Background()
	drv := inmemory.New()
	repo := repository(t, registry.New(drv, registry.Options{}), "r")
	data := randomBytes(t, 5000)

	_, err := repo.Blobs().Put(ctx, digest.FromBytes([]byte("other")), bytes.NewReader(data))
	wantCode(t, err, registry.CodeDigestInvalid)
	if _, err := drv.Stat(ctx, "/blobs"); !driver.IsNotFound(err) {
		t.Fatalf("a failed put left blobs behind: %v", err)
	}
	if _, err := drv.Stat(ctx, "/repositories/r/_uploads"); !driver.IsNotFound(err) {
		t.Fatalf("a failed put left its upload behind: %v", err)
	}

	d := digest.FromBytes(data)
	for range 2 { // the second is deduplicated
		if _, err := repo.Blobs().Put(ctx, d, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(readBlob(t, repo, d), data) {
		t.Fatal("content differs")
	}
	empty := digest.FromBytes(nil)
	if _, err := repo.Blobs().Put(ctx, empty, bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	if got := readBlob(t, repo, empty); len(got) != 0 {
		t.Fatalf("empty blob reads %d bytes", len(got))
	}
}

func TestMountAndDelete(t *testing.T) {
	ctx := context.Background()
	reg := registry.New(inmemory.New(), registry.Options{})
	src, dst, other := repository(t, reg, "src"), repository(t, reg, "dst"), repository(t, reg, "other")
	data := randomBytes(t, 100)
	d := digest.FromBytes(data)
	if _, err := src.Blobs().Put(ctx, d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Blobs().Mount(ctx, "nowhere", d); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Fatalf("mount from a repo without the blob: %v", err)
	}
	if _, err := dst.Blobs().Mount(ctx, "src", d); err != nil {
		t.Fatal(err)
	}
	if desc, err := other.Blobs().Mount(ctx, "", d); err != nil || desc.Size != 100 {
		t.Fatalf("anonymous mount: %+v, %v", desc, err)
	}
	if !bytes.Equal(readBlob(t, dst, d), data) {
		t.Fatal("mounted content differs")
	}
	if err := dst.Blobs().Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Blobs().Stat(ctx, d); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Fatalf("stat after delete: %v", err)
	}
	if _, err := src.Blobs().Stat(ctx, d); err != nil {
		t.Fatalf("delete in one repository touched another: %v", err)
	}
	if err := dst.Blobs().Delete(ctx, d); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestAppendCommit(t *testing.T) {
	ctx := context.Background()
	repo := repository(t, newFSRegistry(t, t.TempDir()), "r")
	data := randomBytes(t, 8000)
	u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if _, err := u.Append(ctx, bytes.NewReader(data[:3000]), 0); err != nil {
		t.Fatal(err)
	}
	_, err := u.AppendCommit(ctx, bytes.NewReader(data[3000:5000]), 2000, digest.FromBytes(data))
	var re *registry.RangeError
	if !errors.As(err, &re) || re.Offset != 3000 {
		t.Fatalf("final chunk at the wrong offset: %v", err)
	}
	// A wrong digest keeps the chunk: the session goes on after it.
	_, err = u.AppendCommit(ctx, bytes.NewReader(data[3000:5000]), 3000, digest.FromBytes(data))
	wantCode(t, err, registry.CodeDigestInvalid)
	if u, err = repo.Blobs().Resume(ctx, u.ID()); err != nil || u.Offset() != 5000 {
		t.Fatalf("after a failed final chunk: offset %d, %v", u.Offset(), err)
	}
	if _, err := u.AppendCommit(ctx, bytes.NewReader(data[5000:]), 5000, digest.FromBytes(data)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, repo, digest.FromBytes(data)), data) {
		t.Fatal("content differs")
	}
	if _, err := repo.Blobs().Resume(ctx, u.ID()); !errors.Is(err, registry.ErrBlobUploadUnknown) {
		t.Fatalf("session after commit: %v", err)
	}
}

// conflicted is a backend whose writers find, at Commit, bytes another
// writer put in their object (one whose lease lapsed).
type conflicted struct{ driver.Driver }

func (c conflicted) Writer(ctx context.Context, path string, append bool) (driver.FileWriter, error) {
	w, err := c.Driver.Writer(ctx, path, append)
	return conflictedWriter{w}, err
}

type conflictedWriter struct{ driver.FileWriter }

func (conflictedWriter) Commit(context.Context) error {
	return fmt.Errorf("test: %w", driver.ErrWriterConflict)
}

// A session whose data another writer changed cannot be committed or
// resumed: it ends with BLOB_UPLOAD_UNKNOWN, so the client starts over,
// rather than failing every retry with a server error.
func TestWriterConflictEndsTheSession(t *testing.T) {
	ctx := context.Background()
	drv := inmemory.New()
	data := randomBytes(t, 5000)
	d := digest.FromBytes(data)
	u, _ := repository(t, registry.New(drv, registry.Options{}), "r").Blobs().Upload(ctx, registry.UploadOptions{})
	if _, err := u.Append(ctx, bytes.NewReader(data), 0); err != nil {
		t.Fatal(err)
	}
	repo := repository(t, registry.New(conflicted{drv}, registry.Options{}), "r")
	cu, err := repo.Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatal(err)
	}
	_, err = cu.Commit(ctx, d, int64(len(data)))
	wantCode(t, err, registry.CodeBlobUploadUnknown)
	if _, err := repo.Blobs().Resume(ctx, u.ID()); !errors.Is(err, registry.ErrBlobUploadUnknown) {
		t.Fatalf("resume after the conflict: %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
	if _, err := repo.Blobs().Stat(ctx, d); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Fatalf("the blob after the conflict: %v, want BLOB_UNKNOWN", err)
	}
}
