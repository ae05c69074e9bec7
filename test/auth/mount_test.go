package authtest

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lading-registry/lading/internal/imagetest"
)

// testMount shows that a cross-repository mount happens only when the caller
// may pull the source; otherwise the client is sent to a plain upload and
// the blob stays where it was. seed holds the images root pushed.
func testMount(t *testing.T, m mode, baseURL string, seed map[string]v1.Image) {
	addr := baseURL[len("http://"):]
	secretLayer := layerDigests(t, seed["secret/vault:1"])[0].String()
	teamLayer := layerDigests(t, seed["team/app:1"])[0].String()

	t.Run("refused source falls back to upload", func(t *testing.T) {
		authz := credentials(t, m, baseURL, "bob", "repository:team/app:pull,push", "repository:secret/vault:pull")
		resp := do(t, http.MethodPost, baseURL+"/v2/team/app/blobs/uploads/?mount="+secretLayer+"&from=secret/vault", authz)
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") == "" {
			t.Fatalf("mount from a repository bob may not pull: %d (Location %q), want 202 with an upload session",
				resp.StatusCode, resp.Header.Get("Location"))
		}
		resp = do(t, http.MethodHead, baseURL+"/v2/team/app/blobs/"+secretLayer, authz)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("the secret layer answers %d in team/app after a refused mount, want 404", resp.StatusCode)
		}
	})
	t.Run("no source falls back to upload", func(t *testing.T) {
		authz := credentials(t, m, baseURL, "bob", "repository:team/app:pull,push")
		resp := do(t, http.MethodPost, baseURL+"/v2/team/app/blobs/uploads/?mount="+secretLayer, authz)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("mount without a source: %d, want 202", resp.StatusCode)
		}
		if resp = do(t, http.MethodHead, baseURL+"/v2/team/app/blobs/"+secretLayer, authz); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("the secret layer answers %d in team/app, want 404", resp.StatusCode)
		}
	})
	t.Run("allowed source mounts", func(t *testing.T) {
		// Only the destination in the token: the policy says alice may pull
		// the source, which is what the conformance client relies on too.
		authz := credentials(t, m, baseURL, "alice", "repository:team/other:pull,push")
		resp := do(t, http.MethodPost, baseURL+"/v2/team/other/blobs/uploads/?mount="+teamLayer+"&from=team/app", authz)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("mount from a repository alice may pull: %d, want 201", resp.StatusCode)
		}
		if resp = do(t, http.MethodHead, baseURL+"/v2/team/other/blobs/"+teamLayer, authz); resp.StatusCode != http.StatusOK {
			t.Fatalf("mounted layer answers %d, want 200", resp.StatusCode)
		}
	})
	t.Run("client copy still succeeds", func(t *testing.T) {
		// root reads the image; bob writes it: go-containerregistry asks to
		// mount each layer from secret/vault, is refused, and uploads it.
		src, err := remote.Image(ref(t, addr, "secret/vault:1"), remote.WithAuth(login("root")))
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		if err := remote.Write(ref(t, addr, "team/copied:1"), src, remote.WithAuth(login("bob")), remote.WithTransport(rec)); err != nil {
			t.Fatalf("bob copying: %v", err)
		}
		mountRefused := regexp.MustCompile(`^POST /v2/team/copied/blobs/uploads/\?.*from=secret%2Fvault.* 202$`)
		if !slices.ContainsFunc(rec.exchanges, mountRefused.MatchString) {
			t.Fatalf("no mount from secret/vault answered 202 among\n%s", strings.Join(rec.exchanges, "\n"))
		}
		got, err := remote.Image(ref(t, addr, "team/copied:1"), remote.WithAuth(login("bob")))
		if err != nil {
			t.Fatal(err)
		}
		imagetest.Same(t, src, got)
		_, err = remote.Image(ref(t, addr, "secret/vault:1"), remote.WithAuth(login("bob")))
		wantRefused(t, err, http.StatusForbidden, "DENIED")
	})
}
