package ops

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/lading-registry/lading/internal/imagetest"
)

// TestPruneThenCollect runs lading prune --gc with the serve configuration
// beside a serving lading: the oldest tag goes, the collection takes its
// image's blobs (gc.grace is 0 here), and the kept images still pull.
func TestPruneThenCollect(t *testing.T) {
	root := t.TempDir()
	cfg := writeFile(t, "lading.yaml", "storage:\n  filesystem:\n    root: "+root+"\ngc:\n  grace: 0s\n")
	_, addr := serve(t, nil, "--config", cfg)
	oldest := pushRandom(t, addr+"/ops/app:sha-1")
	time.Sleep(20 * time.Millisecond) // a file's time moves by the kernel's tick
	kept := map[string]v1.Image{"ops/app:sha-2": pushRandom(t, addr+"/ops/app:sha-2")}
	time.Sleep(20 * time.Millisecond)
	kept["ops/app:sha-3"] = pushRandom(t, addr+"/ops/app:sha-3")
	kept["ops/other:sha-1"] = pushRandom(t, addr+"/ops/other:sha-1")

	p := launch(t, nil, "prune", "--config", cfg, "--repository", "ops/app", "--keep", "2", "--gc")
	if code := p.exit(t, 60*time.Second); code != 0 {
		t.Fatalf("lading prune: exit %d\n%s", code, p.output())
	}
	out := p.output()
	for _, want := range []string{
		"ops/app: 3 tags matched, 2 kept by count, 0 kept by age, 0 kept immutable, 1 removed\n",
		"removed 1 of 3 matched tags in 1 repositories\n",
		"collecting garbage with --untagged",
		"removed 1 manifests, ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output:\n%s", want, out)
		}
	}

	ref, _ := name.ParseReference(addr + "/ops/app:sha-1")
	var terr *transport.Error
	if _, err := remote.Head(ref); !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Errorf("the pruned tag: %v, want 404", err)
	}
	stored := func(img v1.Image) (n int) {
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			d, _ := l.Digest()
			if _, err := os.Stat(filepath.Join(root, "blobs", d.Algorithm, d.Hex[:2], d.Hex)); err == nil {
				n++
			}
		}
		return n
	}
	if n := stored(oldest); n != 0 {
		t.Errorf("%d layers of the pruned image are still stored", n)
	}
	if n := stored(kept["ops/app:sha-2"]); n != 2 {
		t.Errorf("%d layers of 2 of a kept image are stored", n)
	}
	for tag, want := range kept {
		ref, _ := name.ParseReference(addr + "/" + tag)
		got, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		imagetest.Same(t, want, got)
	}
}
