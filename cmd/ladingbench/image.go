package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// genLayer is an uncompressed layer streamed from the generator, so an
// image of any size costs the bench no memory.
type genLayer struct {
	c content
	h ggcr.Hash
}

func newGenLayer(c content) (*genLayer, error) {
	h, err := ggcr.NewHash(c.digest().String())
	if err != nil {
		return nil, err
	}
	return &genLayer{c: c, h: h}, nil
}

func (l *genLayer) Digest() (ggcr.Hash, error)           { return l.h, nil }
func (l *genLayer) DiffID() (ggcr.Hash, error)           { return l.h, nil }
func (l *genLayer) Compressed() (io.ReadCloser, error)   { return io.NopCloser(l.c.reader()), nil }
func (l *genLayer) Uncompressed() (io.ReadCloser, error) { return io.NopCloser(l.c.reader()), nil }
func (l *genLayer) Size() (int64, error)                 { return l.c.size, nil }
func (l *genLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }

// runImage pushes and pulls a whole image with go-containerregistry, a
// real client: existence checks, uploads and manifest, then the manifest,
// config and layers back, each layer's digest verified as it arrives.
func runImage(ctx context.Context, b *bench, t *target, roundNo int, rec *recorder) error {
	var layers []ggcr.Layer
	var total int64
	for i, size := range b.s.imageLayers {
		l, err := newGenLayer(content{seed: b.seed("image", roundNo, t.index, i), size: size})
		if err != nil {
			return err
		}
		layers = append(layers, l)
		total += size
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return err
	}
	img, err = mutate.Config(img, ggcr.Config{Labels: map[string]string{"seed": strconv.FormatUint(b.seed("image", roundNo, t.index), 10)}})
	if err != nil {
		return err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	ref, err := name.ParseReference(t.url.Host+"/"+b.repo("image", t, roundNo)+":latest", name.Insecure)
	if err != nil {
		return err
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithJobs(b.s.imageJobs), remote.WithTransport(t.c.hc.Transport)}

	rec.start()
	t0 := time.Now()
	if err := remote.Write(ref, img, opts...); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	rec.set("image push", mbps(total, time.Since(t0)))

	t0 = time.Now()
	pulled, err := pullImage(ctx, ref, b.s.imageJobs, opts)
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	el := time.Since(t0)
	rec.stop()
	if pulled != total {
		return fmt.Errorf("pull: %d layer bytes, want %d", pulled, total)
	}
	rec.set("image pull", mbps(total, el))
	return nil
}

// pullImage fetches the manifest and config, then the layers jobs at a
// time, and returns the layer bytes read.
func pullImage(ctx context.Context, ref name.Reference, jobs int, opts []remote.Option) (int64, error) {
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return 0, err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return 0, err
	}
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	sizes := make([]int64, len(layers))
	_, _, err = parallel(ctx, jobs, len(layers), func(_ context.Context, i int) error {
		rc, err := layers[i].Compressed() // checks the digest at EOF
		if err != nil {
			return err
		}
		sizes[i], err = drain(rc)
		return err
	})
	var total int64
	for _, s := range sizes {
		total += s
	}
	return total, err
}
