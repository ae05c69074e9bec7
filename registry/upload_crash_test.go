package registry_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
	_, err = repo.Blobs().Resume(ctx, u.ID())
	if !errors.Is(err, registry.ErrBlobUploadUnknown) {
		t.Fatalf("resume with an unreadable state: %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
	// The client is told why in the registry's terms; the cause (a
	// backend's error may name the server's paths) goes to the log only.
	if msg := err.Error(); !strings.Contains(msg, "its state is unreadable") || strings.Contains(msg, "invalid character") {
		t.Fatalf("the client is told %q: want the reason without the parser's error", msg)
	}
	for _, p := range []string{session + ".state", session + ".data"} {
		if _, err := fsd.Stat(ctx, p); !driver.IsNotFound(err) {
			t.Errorf("%s after the session was dropped: %v", p, err)
		}
	}
}

// dataFile is where the filesystem driver keeps upload u's bytes below root.
func dataFile(root string, u *registry.Upload) string {
	return filepath.Join(root, "repositories", "r", "_uploads", u.ID()+".data")
}

// After a crash of the machine, part of a session's data that never reached
// the disk reads as zeros while its size agrees with the state: the hashes
// are rebuilt from the bytes that are there, so the commit is refused
// rather than the zeros published under the client's digest, on every way
// a session goes on.
func TestMachineRestartRehashes(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(t, 9000)
	d := digest.FromBytes(data)
	for _, finish := range []string{"commit", "append then commit", "append-commit", "status then commit"} {
		t.Run(finish, func(t *testing.T) {
			root := t.TempDir()
			repo := repository(t, newFSRegistry(t, root), "r")
			u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
			sent := len(data)
			if finish != "commit" {
				sent = 6000
			}
			if _, err := u.Append(ctx, bytes.NewReader(data[:sent]), 0); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(dataFile(root, u), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(make([]byte, 1000), 2000)
			if finish == "status then commit" {
				// The last chunk's bytes made it, its state did not.
				f.WriteAt(data[sent:], int64(sent))
			}
			f.Close()
			registry.SetBootID(t, "another boot")

			u, err = repository(t, newFSRegistry(t, root), "r").Blobs().Resume(ctx, u.ID())
			if err != nil {
				t.Fatal(err)
			}
			switch finish {
			case "commit":
				_, err = u.Commit(ctx, d, int64(len(data)))
			case "append then commit":
				if _, err = u.Append(ctx, bytes.NewReader(data[sent:]), int64(sent)); err == nil {
					_, err = u.Commit(ctx, d, int64(len(data)))
				}
			case "append-commit":
				_, err = u.AppendCommit(ctx, bytes.NewReader(data[sent:]), int64(sent), d)
			case "status then commit":
				if err = u.Refresh(ctx); err != nil || u.Offset() != int64(len(data)) {
					t.Fatalf("status at %d, %v", u.Offset(), err)
				}
				_, err = u.Commit(ctx, d, int64(len(data)))
			}
			if !errors.Is(err, registry.ErrDigestInvalid) {
				t.Fatalf("commit over zeros left by a crash: %v, want DIGEST_INVALID", err)
			}
			if _, err := repo.Blobs().Stat(ctx, d); !errors.Is(err, registry.ErrBlobUnknown) {
				t.Fatalf("blob after the refused commit: %v", err)
			}
		})
	}
	// A session the crash left whole goes on as if nothing happened.
	root := t.TempDir()
	repo := repository(t, newFSRegistry(t, root), "r")
	u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if _, err := u.Append(ctx, bytes.NewReader(data[:6000]), 0); err != nil {
		t.Fatal(err)
	}
	registry.SetBootID(t, "yet another boot")
	u, _ = repository(t, newFSRegistry(t, root), "r").Blobs().Resume(ctx, u.ID())
	if _, err := u.AppendCommit(ctx, bytes.NewReader(data[6000:]), 6000, d); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, repo, d), data) {
		t.Fatal("content differs")
	}
}

// fullStates is a file system with no room for upload states.
type fullStates struct{ driver.Driver }

func (f fullStates) PutState(_ context.Context, path string, _ []byte) error {
	return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
}

func (f fullStates) DefersUnderBatch() bool { return driver.Defers(f.Driver) }

// A session whose hashes must be rebuilt after a restart of the machine,
// on a disk with no room for its state, is kept: the request fails as the
// disk does, and the next one rebuilds them again.
func TestRehashOnAFullDiskKeepsTheSession(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(t, 9000)
	root := t.TempDir()
	repo := repository(t, newFSRegistry(t, root), "r")
	u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if _, err := u.Append(ctx, bytes.NewReader(data[:6000]), 0); err != nil {
		t.Fatal(err)
	}
	registry.SetBootID(t, "another boot")
	fsd, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	full := repository(t, registry.New(fullStates{fsd}, registry.Options{}), "r")
	fu, err := full.Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fu.Append(ctx, bytes.NewReader(data[6000:]), 6000); !driver.IsFull(err) {
		t.Fatalf("a chunk after a restart, with no room for the state: %v, want storage full", err)
	}
	u, err = repository(t, newFSRegistry(t, root), "r").Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatalf("the session after a full disk: %v", err)
	}
	if _, err := u.AppendCommit(ctx, bytes.NewReader(data[6000:]), 6000, digest.FromBytes(data)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, repo, digest.FromBytes(data)), data) {
		t.Fatal("content differs")
	}
}

// A commit without a body publishes the data file whole, so its size must
// agree with the state: bytes the state never counted (a crash between a
// chunk and its state) are hashed in first, and less data than the state
// vouches for drops the session.
func TestCommitChecksTheDataAgainstTheState(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(t, 9000)
	start := func(t *testing.T) (string, *registry.Repository, *registry.Upload) {
		root := t.TempDir()
		repo := repository(t, newFSRegistry(t, root), "r")
		u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
		if _, err := u.Append(ctx, bytes.NewReader(data[:6000]), 0); err != nil {
			t.Fatal(err)
		}
		return root, repo, u
	}
	t.Run("ahead", func(t *testing.T) {
		root, repo, u := start(t)
		f, err := os.OpenFile(dataFile(root, u), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(data[6000:])
		f.Close()
		if _, err := u.Commit(ctx, digest.FromBytes(data[:6000]), -1); !errors.Is(err, registry.ErrDigestInvalid) {
			t.Fatalf("commit of the counted bytes' digest: %v, want DIGEST_INVALID", err)
		}
		if _, err := u.Commit(ctx, digest.FromBytes(data), 6000); !errors.Is(err, registry.ErrSizeInvalid) {
			t.Fatalf("commit declaring the counted size: %v, want SIZE_INVALID", err)
		}
		if _, err := u.Commit(ctx, digest.FromBytes(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readBlob(t, repo, digest.FromBytes(data)), data) {
			t.Fatal("content differs")
		}
	})
	t.Run("behind", func(t *testing.T) {
		root, repo, u := start(t)
		if err := os.Truncate(dataFile(root, u), 5000); err != nil {
			t.Fatal(err)
		}
		d := digest.FromBytes(data[:6000])
		if _, err := u.Commit(ctx, d, -1); !errors.Is(err, registry.ErrBlobUploadUnknown) {
			t.Fatalf("commit over data shorter than the state: %v, want BLOB_UPLOAD_UNKNOWN", err)
		}
		if _, err := repo.Blobs().Stat(ctx, d); !errors.Is(err, registry.ErrBlobUnknown) {
			t.Fatalf("blob after the refused commit: %v", err)
		}
	})
}

// After a machine restart, two requests that resumed the session before
// either wrote send the same chunk: the second is out of order (a 416),
// not appended after the first.
func TestChunkAfterRestartMustStartWhereTheSessionStands(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := repository(t, newFSRegistry(t, root), "r")
	data := randomBytes(t, 3000)
	u, err := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(ctx, bytes.NewReader(data[:1000]), 0); err != nil {
		t.Fatal(err)
	}
	registry.SetBootID(t, "after the restart")
	repo = repository(t, newFSRegistry(t, root), "r")
	first, err := repo.Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatal(err)
	}
	retry, err := repo.Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := retry.Append(ctx, bytes.NewReader(data[1000:2000]), 1000); err != nil {
		t.Fatal(err)
	}
	var re *registry.RangeError
	if _, err := first.Append(ctx, bytes.NewReader(data[1000:2000]), 1000); !errors.As(err, &re) {
		t.Fatalf("the same chunk again: %v, want a RangeError", err)
	}
	u, err = repo.Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.AppendCommit(ctx, bytes.NewReader(data[2000:]), 2000, digest.FromBytes(data)); err != nil {
		t.Fatalf("the rest of the blob: %v", err)
	}
}

// A final PUT carrying the last chunk after acknowledged ones, cut off by
// a crash once its bytes moved to their address (before or after their
// link): the session then reports the whole upload, and the client's
// commit completes it. Before, it reported the last chunk's offset, and
// resuming there found no data: BLOB_UPLOAD_UNKNOWN.
func TestAppendCommitCutAfterItsMove(t *testing.T) {
	for _, c := range []struct{ linked, emptyPut bool }{{false, false}, {true, false}, {false, true}} {
		linked := c.linked
		ctx := context.Background()
		root := t.TempDir()
		fsd, err := filesystem.New(root)
		if err != nil {
			t.Fatal(err)
		}
		// What a crash right after the move would leave of the state.
		var statePath string
		var left []byte
		reg := registry.New(driver.Instrument(fsd, func(op string, _ time.Duration, err error) {
			if op == "Move" && err == nil {
				left, _ = os.ReadFile(statePath)
			}
		}), registry.Options{})
		repo := repository(t, reg, "r")
		data := randomBytes(t, 9000)
		d := digest.FromBytes(data)
		u, _ := repo.Blobs().Upload(ctx, registry.UploadOptions{})
		statePath = filepath.Join(root, "repositories/r/_uploads", u.ID()+".state")
		if _, err := u.Append(ctx, bytes.NewReader(data[:4000]), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := u.AppendCommit(ctx, bytes.NewReader(data[4000:]), 4000, d); err != nil {
			t.Fatal(err)
		}
		if left == nil {
			t.Fatal("no state when the data moved")
		}
		// (the removal of the state may have pruned its folder)
		if err := os.MkdirAll(filepath.Dir(statePath), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(statePath, left, 0o644); err != nil {
			t.Fatal(err)
		}
		if !linked {
			if err := os.Remove(filepath.Join(root, "repositories/r/_layers/sha256", d.Encoded())); err != nil {
				t.Fatal(err)
			}
		}

		status, err := repository(t, newFSRegistry(t, root), "r").Blobs().Resume(ctx, u.ID())
		if err != nil {
			t.Fatalf("linked %v: the session is gone: %v", linked, err)
		}
		if err := status.Refresh(ctx); err != nil || status.Offset() != 9000 {
			t.Fatalf("linked %v: the session reports %d (%v), want the whole 9000", linked, status.Offset(), err)
		}
		if c.emptyPut {
			// A final PUT sent chunked with an empty body comes as one
			// with a body, whose length is unknown.
			_, err = status.AppendCommit(ctx, bytes.NewReader(nil), -1, d)
		} else {
			_, err = status.Commit(ctx, d, 9000)
		}
		if err != nil {
			t.Fatalf("linked %v, empty PUT %v: commit: %v", linked, c.emptyPut, err)
		}
		if !bytes.Equal(readBlob(t, repository(t, newFSRegistry(t, root), "r"), d), data) {
			t.Fatalf("linked %v: content differs", linked)
		}
	}
}
