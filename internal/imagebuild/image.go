package imagebuild

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Binary is lading compiled for one platform.
type Binary struct {
	Platform v1.Platform
	Data     []byte
}

// Index assembles one image per binary, on a base holding caCerts, into an
// OCI image index listing each under its platform.
func Index(bins []Binary, caCerts []byte, meta Metadata) (v1.ImageIndex, error) {
	if len(bins) == 0 {
		return nil, errors.New("no platform to build")
	}
	if len(caCerts) == 0 {
		return nil, errors.New("no CA certificates")
	}
	base, err := layer(baseFiles(caCerts), meta.Created)
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.IndexAddendum, 0, len(bins))
	for _, b := range bins {
		img, err := image(base, b, meta)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", b.Platform, err)
		}
		desc, err := partial.Descriptor(img)
		if err != nil {
			return nil, err
		}
		p := b.Platform
		desc.Platform, desc.ArtifactType = &p, ""
		adds = append(adds, mutate.IndexAddendum{Add: described{img, *desc}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	return mutate.Annotations(idx, Labels(meta)).(v1.ImageIndex), nil
}

// described is an image listed in the index as image builders list one:
// media type, size, digest and platform. Without it the listing would carry
// the artifactType go-containerregistry derives from the config, which a
// copy by skopeo drops, giving the index another digest.
type described struct {
	v1.Image
	desc v1.Descriptor
}

func (d described) Descriptor() (*v1.Descriptor, error) { return &d.desc, nil }

func image(base v1.Layer, b Binary, meta Metadata) (v1.Image, error) {
	bin, err := layer([]file{{path: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, data: b.Data}}, meta.Created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: meta.Created.UTC().Truncate(time.Second)}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "ladingimage: CA certificates, user lading, " + DataDir}},
		mutate.Addendum{Layer: bin, History: v1.History{Created: created, CreatedBy: "ladingimage: " + BinaryPath + " " + meta.Version}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS, cf.Architecture, cf.Variant = b.Platform.OS, b.Platform.Architecture, b.Platform.Variant
	cf.Config = v1.Config{
		User:         strconv.Itoa(UID) + ":" + strconv.Itoa(GID),
		Entrypoint:   []string{Entrypoint},
		Cmd:          []string{"serve"},
		Env:          Env(),
		ExposedPorts: map[string]struct{}{strconv.Itoa(Port) + "/tcp": {}},
		Volumes:      map[string]struct{}{DataDir: {}},
		Labels:       Labels(meta),
	}
	return mutate.ConfigFile(img, cf)
}

// Env is the image's environment. LADING_STORAGE_FILESYSTEM_ROOT outranks a
// configuration file's storage.filesystem.root, as every variable does a
// file's key: a file that names another root is overruled by it.
func Env() []string {
	return []string{"PATH=" + path.Dir(BinaryPath), "LADING_STORAGE_FILESYSTEM_ROOT=" + DataDir}
}

// Labels are the OCI annotations naming the source, on each image's
// configuration and on the index.
func Labels(meta Metadata) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "lading",
		"org.opencontainers.image.description": "A container image registry over the OCI Distribution API",
		"org.opencontainers.image.source":      meta.Source,
		"org.opencontainers.image.version":     meta.Version,
		"org.opencontainers.image.revision":    meta.Commit,
		"org.opencontainers.image.created":     meta.Created.UTC().Format(time.RFC3339),
	}
}
