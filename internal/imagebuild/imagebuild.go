// Package imagebuild makes Lading's container image without a container
// engine: `lading` compiled static for each platform, on a scratch base of
// CA certificates, a non-root user and a data folder, gathered into one
// multi-platform OCI image index.
//
// The same commit gives the same digest: every file in a layer is dated
// at the commit's time, entries are sorted, and nothing of the build
// machine (paths, user, clock) reaches the layers or the configuration.
package imagebuild

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// What the image holds and runs; the manifests in deploy/ depend on these.
const (
	// DataDir is the filesystem driver's root in the image, owned by User.
	DataDir = "/var/lib/lading"
	// BinaryPath is where lading is; Entrypoint finds it through PATH.
	BinaryPath = "/usr/local/bin/lading"
	// Entrypoint runs with Cmd ("serve") unless arguments are given.
	Entrypoint = "lading"
	// UID and GID are the user the server runs as: not root, and
	// distroless's "nonroot", so volumes prepared for one fit the other.
	UID = 65532
	GID = 65532
	// Port is http.addr's default port, which the image exposes.
	Port = 5000
	// CACerts is where Go's crypto/x509 looks first on Linux.
	CACerts = "/etc/ssl/certs/ca-certificates.crt"
)

// DefaultPlatforms are those a release is built for.
const DefaultPlatforms = "linux/amd64,linux/arm64"

// Metadata is what the image says of the source it was built from.
type Metadata struct {
	Version string    // org.opencontainers.image.version, and `lading version`
	Commit  string    // org.opencontainers.image.revision, and `lading version`
	Source  string    // org.opencontainers.image.source
	Created time.Time // the commit's time: every file's and the image's date
}

// Options are what Build needs besides the source's metadata.
type Options struct {
	// Dir is inside the module holding ./cmd/lading.
	Dir       string
	Platforms []v1.Platform
	// CACerts is the PEM bundle copied into the image, the build
	// machine's by default: the server needs it for S3 and upstream
	// registries over HTTPS.
	CACerts string
}

// Build compiles lading for each platform and assembles the index.
func Build(ctx context.Context, opts Options, meta Metadata) (v1.ImageIndex, error) {
	certs, err := os.ReadFile(opts.CACerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	tmp, err := os.MkdirTemp("", "ladingimage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bins := make([]Binary, 0, len(opts.Platforms))
	for _, p := range opts.Platforms {
		out := filepath.Join(tmp, "lading-"+strings.ReplaceAll(p.String(), "/", "-"))
		if err := Compile(ctx, opts.Dir, p, meta, out); err != nil {
			return nil, err
		}
		// In memory, so the index outlives the temporary folder; the
		// binary is tens of MiB.
		data, err := os.ReadFile(out)
		if err != nil {
			return nil, err
		}
		bins = append(bins, Binary{Platform: p, Data: data})
	}
	return Index(bins, certs, meta)
}

// ParsePlatforms reads a comma-separated list such as DefaultPlatforms.
// Only Linux is built: the image has no other kind of base.
func ParsePlatforms(s string) ([]v1.Platform, error) {
	var ps []v1.Platform
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		p, err := v1.ParsePlatform(f)
		if f == "" || err != nil || p.Architecture == "" {
			return nil, fmt.Errorf("platform %q: want os/arch[/variant], such as linux/arm64", f)
		}
		if p.OS != "linux" {
			return nil, fmt.Errorf("platform %q: only linux images are built", f)
		}
		if p.Architecture == "arm64" && p.Variant == "" {
			// What registries and runtimes record for arm64 images.
			p.Variant = "v8"
		}
		if seen[p.String()] {
			return nil, fmt.Errorf("platform %q given twice", f)
		}
		seen[p.String()] = true
		ps = append(ps, *p)
	}
	return ps, nil
}
