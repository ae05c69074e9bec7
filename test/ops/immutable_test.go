package ops

import (
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/lading-registry/lading/internal/imagetest"
)

// TestImmutableTags pushes with go-containerregistry to a registry whose
// v* tags are immutable: a second image under v1, and deletes of v1, get
// 403 DENIED with an OCI error body, and v1 still pulls the first image.
func TestImmutableTags(t *testing.T) {
	_, addr := serve(t, []string{"LADING_TAGS_IMMUTABLE=v*"}, "--root", t.TempDir())
	first := pushRandom(t, addr+"/ops/app:v1")
	v1, _ := name.ParseReference(addr + "/ops/app:v1")

	denied := func(what string, err error) {
		t.Helper()
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusForbidden ||
			len(terr.Errors) == 0 || terr.Errors[0].Code != transport.DeniedErrorCode {
			t.Fatalf("%s: %v, want 403 DENIED", what, err)
		}
	}
	denied("a second image under v1", remote.Write(v1, randomImage(t)))
	denied("DELETE of v1", remote.Delete(v1))
	d, _ := first.Digest()
	denied("DELETE by digest of what v1 names", remote.Delete(v1.Context().Digest(d.String())))

	// A retried push of the same image goes, and tags no pattern names move.
	if err := remote.Write(v1, first); err != nil {
		t.Fatalf("the same image under v1 again: %v", err)
	}
	pushRandom(t, addr+"/ops/app:latest")
	pushRandom(t, addr+"/ops/app:latest")

	got, err := remote.Image(v1)
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Same(t, first, got)
}
