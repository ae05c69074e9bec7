package ops

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/lading-registry/lading/internal/imagetest"
)

// TestReadOnly restarts a registry holding an image in read-only mode:
// the image still pulls, and every write is refused with an OCI error body
// and leaves nothing behind.
func TestReadOnly(t *testing.T) {
	root := t.TempDir()
	p, addr := serve(t, nil, "--root", root)
	img := pushRandom(t, addr+"/ops/frozen:v1")
	if p.stop(t) != 0 {
		t.Fatal("exit status after SIGTERM is not 0")
	}

	p, addr = serve(t, nil, "--root", root, "--read-only")
	base := "http://" + addr

	r, _ := name.ParseReference(addr + "/ops/frozen:v1")
	got, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull from a read-only registry: %v", err)
	}
	imagetest.Same(t, img, got)

	// go-containerregistry's push stops at the first refusal and shows it.
	other, _ := name.ParseReference(addr + "/ops/new:v1")
	newImg := randomImage(t)
	err = remote.Write(other, newImg)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusMethodNotAllowed ||
		len(terr.Errors) == 0 || terr.Errors[0].Code != transport.UnsupportedErrorCode {
		t.Fatalf("push to a read-only registry: %v, want 405 UNSUPPORTED", err)
	}
	if err := remote.Tag(r.Context().Tag("v2"), got); err == nil {
		t.Error("tagging on a read-only registry succeeded")
	}

	manifest, _ := img.RawManifest()
	digest, _ := img.Digest()
	for _, w := range []struct{ method, path, body string }{
		{http.MethodPost, "/v2/ops/frozen/blobs/uploads/", ""},
		{http.MethodPost, "/v2/ops/frozen/blobs/uploads/?mount=" + digest.String() + "&from=ops/frozen", ""},
		{http.MethodPut, "/v2/ops/frozen/manifests/v3", string(manifest)},
		{http.MethodDelete, "/v2/ops/frozen/manifests/" + digest.String(), ""},
		{http.MethodDelete, "/v2/ops/frozen/manifests/v1", ""},
	} {
		req, _ := http.NewRequest(w.method, base+w.path, strings.NewReader(w.body))
		req.Header.Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var oci struct {
			Errors []struct{ Code, Message string }
		}
		if resp.StatusCode != http.StatusMethodNotAllowed || json.Unmarshal(body, &oci) != nil ||
			len(oci.Errors) != 1 || oci.Errors[0].Code != "UNSUPPORTED" || oci.Errors[0].Message == "" {
			t.Errorf("%s %s: %s %s, want 405 with an UNSUPPORTED error body", w.method, w.path, resp.Status, body)
		}
	}

	// Nothing was written: the tag still pulls the same image and the
	// catalog knows one repository.
	if again, err := remote.Image(r); err != nil {
		t.Fatal(err)
	} else {
		imagetest.Same(t, img, again)
	}
	if tags, err := remote.List(r.Context()); err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Errorf("tags after refused writes: %v %v", tags, err)
	}
	repos, err := remote.Catalog(t.Context(), r.Context().Registry)
	if err != nil || len(repos) != 1 || repos[0] != "ops/frozen" {
		t.Errorf("catalog after refused writes: %v %v", repos, err)
	}
	if p.stop(t) != 0 {
		t.Error("exit status after SIGTERM is not 0")
	}
}
