package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

// BenchmarkImmutableDeleteCheck is what a delete by digest pays, on the
// filesystem driver, in a repository of 1,000 immutable tags that each
// name an image or a two-image index: the check of a digest no release
// holds, which walks all of them (with the manifest cache serve has by
// default, and without one), from what the first check read.
func BenchmarkImmutableDeleteCheck(b *testing.B) {
	rules, _ := glob.ParseTagRules("v*")
	for _, children := range []int{0, 2} {
		for _, cache := range []int64{64 << 20, 0} {
			name := fmt.Sprintf("images/cache=%t", cache > 0)
			if children > 0 {
				name = fmt.Sprintf("indexes-of-%d/cache=%t", children, cache > 0)
			}
			b.Run(name, func(b *testing.B) {
				fsd, err := filesystem.New(testenv.BenchDir(b))
				if err != nil {
					b.Fatal(err)
				}
				reg := New(driver.Instrument(fsd, nil), Options{ImmutableTags: rules, ManifestCacheSize: cache, Logger: slog.New(slog.DiscardHandler)})
				ms := pushReleases(b, reg, 1000, children)
				absent := digest.FromString("no release holds this")
				for b.Loop() {
					if err := ms.checkReleases(context.Background(), "blob", absent); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// pushReleases pushes n images, or indexes over children images each,
// tagged v0 ... v<n-1>; the images share a layer.
func pushReleases(b *testing.B, reg *Registry, n, children int) *ManifestStore {
	b.Helper()
	ctx := context.Background()
	repo, err := reg.Repository("bench/releases")
	if err != nil {
		b.Fatal(err)
	}
	ms := repo.Manifests()
	blob := func(mediaType string, content []byte) v1.Descriptor {
		d := digest.FromBytes(content)
		if _, err := repo.Blobs().Put(ctx, d, bytes.NewReader(content)); err != nil {
			b.Fatal(err)
		}
		return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(content))}
	}
	put := func(reference string, v any) v1.Descriptor {
		payload, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		if reference == "" {
			reference = digest.FromBytes(payload).String()
		}
		m, err := ms.Put(ctx, reference, "", payload)
		if err != nil {
			b.Fatal(err)
		}
		return m.Descriptor
	}
	layer := blob(testLayerType, []byte("shared layer"))
	// An image under reference ("": its digest), told apart by its config.
	image := func(reference, config string) v1.Descriptor {
		c := blob(testConfigType, fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","n":%q}`, config))
		return put(reference, v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIManifest, Config: c, Layers: []v1.Descriptor{layer}})
	}
	for i := range n {
		tag := fmt.Sprint("v", i)
		if children == 0 {
			image(tag, tag)
			continue
		}
		var list []v1.Descriptor
		for c := range children {
			list = append(list, image("", fmt.Sprint(tag, "/", c)))
		}
		put(tag, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: list})
	}
	return ms
}
