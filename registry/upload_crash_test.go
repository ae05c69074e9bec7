package registry_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

// A crash after a chunk's bytes reached the data but before its state was
// saved leaves the data ahead: the session goes on from the data's end.
func TestDataAheadOfStateCatchesUp(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := repository(t, newFSRegistry(t, root), "r")
	data := randomBytes(t, 9000)
	u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if _, err := u.Append(ctx, bytes.NewReader(data[:3000]), 0); err != nil {
		t.Fatal(err)
	}
	// The "crashed" chunk: bytes appended behind the registry's back.
	fsd, _ := filesystem.New(root)
	w, err := fsd.Writer(ctx, "/repositories/r/_uploads/"+u.ID()+".data", true)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[3000:6000])
	w.Close()

	// Asking where the session stands finds the data's end.
	status, _ := repository(t, newFSRegistry(t, root), "r").Blobs().Resume(ctx, u.ID())
	if err := status.Refresh(ctx); err != nil || status.Offset() != 6000 {
		t.Fatalf("refreshed status at %d, %v; want 6000", status.Offset(), err)
	}
	// A client that resends from the old offset is told the true one.
	w, _ = fsd.Writer(ctx, "/repositories/r/_uploads/"+u.ID()+".data", true)
	w.Write(data[6000:7000])
	w.Close()
	u, _ = repository(t, newFSRegistry(t, root), "r").Blobs().Resume(ctx, u.ID())
	_, err = u.Append(ctx, bytes.NewReader(data[6000:7000]), 6000)
	var re *registry.RangeError
	if !errors.As(err, &re) || re.Offset != 7000 {
		t.Fatalf("resending the lost chunk: %v, want a RangeError at 7000", err)
	}
	if u, _ = repo.Blobs().Resume(ctx, u.ID()); u.Offset() != 7000 {
		t.Fatalf("status offset %d, want 7000", u.Offset())
	}
	if _, err := u.Append(ctx, bytes.NewReader(data[7000:]), 7000); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(ctx, digest.FromBytes(data), 9000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, repo, digest.FromBytes(data)), data) {
		t.Fatal("content differs")
	}
}

// A crash after a commit's move, before its link: the retried commit finds
// the bytes at their address and links them.
func TestCommitAfterInterruptedMove(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := repository(t, newFSRegistry(t, root), "r")
	data := randomBytes(t, 5000)
	d := digest.FromBytes(data)
	u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if _, err := u.Append(ctx, bytes.NewReader(data), 0); err != nil {
		t.Fatal(err)
	}
	fsd, _ := filesystem.New(root)
	var drv driver.Driver = fsd
	hex := d.Encoded()
	if err := drv.Move(ctx, "/repositories/r/_uploads/"+u.ID()+".data", "/blobs/sha256/"+hex[:2]+"/"+hex); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(ctx, d, 5000); err != nil {
		t.Fatalf("commit after an interrupted move: %v", err)
	}
	if !bytes.Equal(readBlob(t, repo, d), data) {
		t.Fatal("content differs")
	}
	// Without the bytes at their address, the same state is a lost session.
	u, _ = repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if _, err := u.Append(ctx, bytes.NewReader([]byte("other")), 0); err != nil {
		t.Fatal(err)
	}
	if err := drv.Delete(ctx, "/repositories/r/_uploads/"+u.ID()+".data"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(ctx, digest.FromBytes([]byte("other")), 5); !errors.Is(err, registry.ErrBlobUploadUnknown) {
		t.Fatalf("commit with data gone: %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
}

// A first chunk cut off by a crash, before any chunk was acknowledged,
// leaves data and no state: the client's retry from the start wins.
func TestFirstChunkCutOffIsRetried(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := repository(t, newFSRegistry(t, root), "r")
	data := randomBytes(t, 9000)
	u, err := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fsd, _ := filesystem.New(root)
	w, err := fsd.Writer(ctx, "/repositories/r/_uploads/"+u.ID()+".data", true)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:4000])
	w.Close()

	u, err = repository(t, newFSRegistry(t, root), "r").Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.AppendCommit(ctx, bytes.NewReader(data), -1, digest.FromBytes(data)); err != nil {
		t.Fatalf("whole body after a cut-off first chunk: %v", err)
	}
	if !bytes.Equal(readBlob(t, repo, digest.FromBytes(data)), data) {
		t.Fatal("content differs")
	}
}

// A session whose state cannot be read is dropped whole when asked for:
// unknown to the client, and nothing of it left behind.
func TestUnreadableStateDropsTheSession(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := repository(t, newFSRegistry(t, root), "r")
	u, err := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(ctx, bytes.NewReader([]byte("some bytes")), 0); err != nil {
		t.Fatal(err)
	}
	fsd, _ := filesystem.New(root)
	session := "/repositories/r/_uploads/" + u.ID()
	if err := fsd.PutContent(ctx, session+".state", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Blobs().Resume(ctx, u.ID()); !errors.Is(err, registry.ErrBlobUploadUnknown) {
		t.Fatalf("resume with an unreadable state: %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
	for _, p := range []string{session + ".state", session + ".data"} {
		if _, err := fsd.Stat(ctx, p); !driver.IsNotFound(err) {
			t.Errorf("%s after the session was dropped: %v", p, err)
		}
	}
}
