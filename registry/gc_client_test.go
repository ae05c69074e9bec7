package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/server"
)

// go-containerregistry, a real client, pushes images sharing base layers
// and deletes earlier ones over HTTP while the collector runs in a loop;
// afterwards every tag it left pulls and validates (digests, sizes, config).
func TestGCWithRealClient(t *testing.T) {
	reg := newFSRegistry(t, t.TempDir())
	srv := httptest.NewServer(server.New(reg, server.Options{}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	var base []v1.Layer
	for range 4 {
		l, err := random.Layer(4096, types.OCIUncompressedLayer)
		if err != nil {
			t.Fatal(err)
		}
		base = append(base, l)
	}
	stop := make(chan struct{})
	gcDone := make(chan error, 1)
	runs := 0
	go func() {
		for {
			select {
			case <-stop:
				gcDone <- nil
				return
			default:
			}
			_, err := reg.CollectGarbage(context.Background(), registry.GCOptions{Grace: 50 * time.Millisecond,
				DeleteUntagged: true, Window: 20 * time.Millisecond, TempDir: t.TempDir()})
			if err != nil {
				gcDone <- err
				return
			}
			runs++
		}
	}()

	var mu sync.Mutex
	live := map[string]bool{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			var mine []name.Reference
			for i := range 8 {
				ref, err := name.ParseReference(fmt.Sprintf("%s/client/w%d:t%d", host, w, i), name.Insecure)
				if err != nil {
					t.Error(err)
					return
				}
				if err := pushWithRetry(ref, base[(w+i)%len(base)]); err != nil {
					t.Errorf("push %s: %v", ref, err)
					return
				}
				mu.Lock()
				live[ref.String()] = true
				mu.Unlock()
				mine = append(mine, ref)
				if len(mine) > 2 {
					victim := mine[0]
					mine = mine[1:]
					mu.Lock()
					delete(live, victim.String())
					mu.Unlock()
					if err := remote.Delete(victim); err != nil {
						t.Errorf("delete %s: %v", victim, err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-gcDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d collections during the pushes", runs)
	for s := range live {
		ref, _ := name.ParseReference(s, name.Insecure)
		img, err := remote.Image(ref)
		if err != nil {
			t.Errorf("pull %s: %v", s, err)
			continue
		}
		if err := verifyImage(img); err != nil {
			t.Errorf("pull %s: %v", s, err)
		}
	}
}

// pushWithRetry pushes an image of a shared base layer and a layer of its
// own. The grace is far shorter than a push here, so the collector may take
// a layer the client checked moments ago; the registry then refuses the
// manifest and the client pushes again, as clients do.
func pushWithRetry(ref name.Reference, shared v1.Layer) error {
	own, err := random.Layer(512, types.OCIUncompressedLayer)
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, shared, own)
	if err != nil {
		return err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for attempt := 0; ; attempt++ {
		err = remote.Write(ref, img)
		var terr *transport.Error
		if err == nil || attempt == 10 || !errors.As(err, &terr) || !blobUnknown(terr) {
			return err
		}
	}
}

func blobUnknown(err *transport.Error) bool {
	for _, d := range err.Errors {
		if d.Code == transport.ManifestBlobUnknownErrorCode || d.Code == transport.BlobUnknownErrorCode {
			return true
		}
	}
	return false
}

// verifyImage reads every byte of img as pulled and checks it against the
// digests the manifest names.
func verifyImage(img v1.Image) error {
	raw, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	want, err := img.ConfigName()
	if err != nil {
		return err
	}
	if got, _, _ := v1.SHA256(bytes.NewReader(raw)); got != want {
		return fmt.Errorf("config is %s, manifest says %s", got, want)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		want, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer %s: %w", want, err)
		}
		got, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", want, err)
		}
		if got != want {
			return fmt.Errorf("layer %s reads as %s", want, got)
		}
	}
	return nil
}
