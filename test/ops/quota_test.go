package ops

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/lading-registry/lading/internal/bytesize"
)

// TestQuotas pushes with go-containerregistry into the repositories of a
// quota until their total is nearly reached: the next image fails with
// 403 DENIED naming the limit, a repository outside the rule still takes
// pushes, and an image the full repository holds is pushed again (its
// blobs are there, and manifests are never refused).
func TestQuotas(t *testing.T) {
	first, second, third := randomImage(t), randomImage(t), randomImage(t)
	limit := imageBytes(t, first) + imageBytes(t, second) + 1024
	env := []string{fmt.Sprintf(`LADING_QUOTAS=[{repository: "team/**", limit: %d}]`, limit)}
	p, addr := serve(t, env, "--root", t.TempDir(), "--debug-addr", debugAddr)
	debug, err := p.listening("debug listener")
	if err != nil {
		t.Fatal(err)
	}
	write := func(ref string, img v1.Image) error {
		r, err := name.ParseReference(addr + "/" + ref)
		if err != nil {
			t.Fatal(err)
		}
		return remote.Write(r, img)
	}
	for ref, img := range map[string]v1.Image{"team/a:v1": first, "team/b:v1": second} {
		if err := write(ref, img); err != nil {
			t.Fatalf("%s within the quota: %v", ref, err)
		}
	}

	err = write("team/a:v2", third)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusForbidden ||
		len(terr.Errors) == 0 || terr.Errors[0].Code != transport.DeniedErrorCode {
		t.Fatalf("an image past the quota: %v, want 403 DENIED", err)
	}
	for _, want := range []string{`quota "team/**" would be exceeded`, "of their " + bytesize.Format(limit)} {
		if !strings.Contains(terr.Errors[0].Message, want) {
			t.Errorf("the refusal %q does not name %q", terr.Errors[0].Message, want)
		}
	}

	if err := write("lib/app:v1", third); err != nil {
		t.Fatalf("a repository outside the quota: %v", err)
	}
	if err := write("team/a:v1", first); err != nil {
		t.Fatalf("an image the full repository holds, again: %v", err)
	}
	if err := write("team/a:again", first); err != nil {
		t.Fatalf("an image the full repository holds, under a new tag: %v", err)
	}

	m := scrape(t, "http://"+debug+"/metrics")
	if got := m.sum("lading_quota_limit_bytes", "rule=team/**"); got != float64(limit) {
		t.Errorf("lading_quota_limit_bytes = %v, want %d", got, limit)
	}
	if _, ok := m[`lading_quota_used_bytes{rule="team/**"}`]; !ok {
		t.Error("no lading_quota_used_bytes for team/** after the start's count")
	}
	if got := m.sum("lading_quota_refusals_total", "rule=team/**"); got < 1 {
		t.Errorf("lading_quota_refusals_total = %v after a refused push", got)
	}
}

// imageBytes is what an image's push links: its layers, its config and
// its manifest.
func imageBytes(t *testing.T, img v1.Image) int64 {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	size, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	size += m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return size
}
