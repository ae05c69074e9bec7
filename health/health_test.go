package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

func get(h http.Handler) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code
}

func TestLive(t *testing.T) {
	if code := get(Live()); code != http.StatusOK {
		t.Fatalf("healthz %d", code)
	}
}

func TestReadyFollowsCheck(t *testing.T) {
	var calls int
	var fail error
	h := Ready(func(context.Context) error { calls++; return fail }, nil, nil)
	if code := get(h); code != http.StatusOK {
		t.Fatalf("passing check: %d", code)
	}
	fail = errors.New("bucket gone")
	if code := get(h); code != http.StatusOK || calls != 1 {
		t.Fatalf("within a second the last result is reused: code %d, calls %d", code, calls)
	}
	time.Sleep(reuseFor)
	if code := get(h); code != http.StatusServiceUnavailable || calls != 2 {
		t.Fatalf("failing check: code %d, calls %d", code, calls)
	}
}

// A stop makes readiness fail at once, not once the result of a check
// made before it is stale.
func TestReadyFailsAtOnceWhenDraining(t *testing.T) {
	draining := make(chan struct{})
	h := Ready(func(context.Context) error { return nil }, draining, nil)
	if code := get(h); code != http.StatusOK {
		t.Fatalf("before the stop: %d", code)
	}
	close(draining)
	if code := get(h); code != http.StatusServiceUnavailable {
		t.Fatalf("right after the stop: %d", code)
	}
}

// TestStorageOnRealDriver checks an empty and a filled filesystem driver
// both count as ready.
func TestStorageOnRealDriver(t *testing.T) {
	d, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	check := Storage(d)
	if err := check(context.Background()); err != nil {
		t.Fatalf("empty storage reported %v", err)
	}
	if err := d.PutContent(context.Background(), "/repositories/a/link", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := check(context.Background()); err != nil {
		t.Fatalf("storage with data reported %v", err)
	}
	if code := get(Ready(check, nil, nil)); code != http.StatusOK {
		t.Fatalf("readyz over a real driver: %d", code)
	}
}

// brokenDriver fails every listing, as an object store does with a missing
// bucket or revoked credentials.
type brokenDriver struct{ driver.Driver }

func (brokenDriver) List(context.Context, string) ([]string, error) {
	return nil, errors.New("NoSuchBucket")
}

func TestStorageFailure(t *testing.T) {
	if code := get(Ready(Storage(brokenDriver{}), nil, nil)); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with broken storage: %d", code)
	}
}
