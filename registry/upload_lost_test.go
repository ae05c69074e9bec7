package registry

import (
	"bytes"
	"errors"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
)

// A session dropped as damaged is never saved again: a request that then
// records its progress (AppendCommit after a failed finish) would leave a
// state without data, which lingered until the purge.
func TestLostSessionIsNotSavedAgain(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "team/app")
		up, err := f.repo.Blobs().Upload(f.ctx, UploadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.Append(f.ctx, bytes.NewReader(randomContent(100)), 0); err != nil {
			t.Fatal(err)
		}
		if err := up.lost(f.ctx, "a test's"); !errors.Is(err, ErrBlobUploadUnknown) {
			t.Fatalf("lost: %v", err)
		}
		if err := up.save(f.ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{uploadStatePath("team/app", up.ID()), uploadDataPath("team/app", up.ID())} {
			if _, err := driver.StatObject(f.ctx, reg.driver, p); !driver.IsNotFound(err) {
				t.Errorf("%s after the session was dropped: %v", p, err)
			}
		}
	})
}
