package registry

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// pathLog records every path the registry hands its driver.
type pathLog struct {
	driver.Driver
	mu    sync.Mutex
	paths []string
}

func (l *pathLog) note(p string) {
	l.mu.Lock()
	l.paths = append(l.paths, p)
	l.mu.Unlock()
}

func (l *pathLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.paths
	l.paths = nil
	return p
}

func (l *pathLog) GetContent(ctx context.Context, p string) ([]byte, error) {
	l.note(p)
	return l.Driver.GetContent(ctx, p)
}

func (l *pathLog) PutContent(ctx context.Context, p string, b []byte) error {
	l.note(p)
	return l.Driver.PutContent(ctx, p, b)
}

func (l *pathLog) Writer(ctx context.Context, p string, appendTo bool) (driver.FileWriter, error) {
	l.note(p)
	return l.Driver.Writer(ctx, p, appendTo)
}

func (l *pathLog) Delete(ctx context.Context, p string) error {
	l.note(p)
	return l.Driver.Delete(ctx, p)
}

// FuzzResumeUpload throws arbitrary session ids (the last component of a
// client's Location URL) at Resume, through which every session operation
// of the API begins: anything but the one real session is
// BLOB_UPLOAD_UNKNOWN, an id of the wrong shape never reaches the driver,
// and one of the right shape reads only its own session's state.
func FuzzResumeUpload(f *testing.F) {
	for _, s := range []string{"", "..", "../../blobs", "00000000-0000-4000-8000-000000000000", "00000000-0000-4000-8000-00000000000G",
		"00000000-0000-4000-8000-000000000000/../x", "00000000-0000-4000-8000-000000000000\x00", "%2e%2e", "a\\b", strings.Repeat("f", 4096)} {
		f.Add(s)
	}
	ctx := context.Background()
	log := &pathLog{Driver: driver.Instrument(inmemory.New(), nil)}
	reg := New(log, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	repo, err := reg.Repository("fuzz/up")
	if err != nil {
		f.Fatal(err)
	}
	blobs := repo.Blobs()
	real, err := blobs.Upload(ctx, UploadOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real.ID())
	if !validUploadID(real.ID()) {
		f.Fatalf("new session id %q is not of the shape Resume accepts", real.ID())
	}

	uploadIDPattern := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	f.Fuzz(func(t *testing.T, id string) {
		log.take()
		up, err := blobs.Resume(ctx, id)
		if id == real.ID() {
			if err != nil || up.ID() != id {
				t.Fatalf("Resume of the real session: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("Resume(%q) found a session", id)
		}
		wantErrCode(t, err, CodeBlobUploadUnknown)
		touched := log.take()
		if validUploadID(id) != uploadIDPattern.MatchString(id) {
			t.Fatalf("validUploadID(%q) = %v, the pattern disagrees", id, validUploadID(id))
		}
		if !validUploadID(id) && len(touched) > 0 {
			t.Fatalf("id %q of the wrong shape reached the driver as %q", id, touched)
		}
		for _, p := range touched {
			if p != uploadStatePath(repo.name, id) {
				t.Fatalf("id %q touched %q, not its own session state", id, p)
			}
		}
		if _, err := blobs.Resume(ctx, real.ID()); err != nil {
			t.Fatalf("real session lost after %q: %v", id, err)
		}
	})
}
