// Command ladingimage builds Lading's multi-platform container image from
// the checkout it runs in, without a container engine, and writes it to an
// OCI layout folder or pushes it to a registry (Lading itself, say).
//
//	ladingimage [flags] --oci DIR
//	ladingimage [flags] --push REGISTRY/REPOSITORY:TAG
//
// It prints the index's digest, which is the same for every build of one
// commit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lading-registry/lading/internal/imagebuild"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ladingimage:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ladingimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ladingimage [flags] --oci DIR | --push REGISTRY/REPOSITORY:TAG\n\nflags:\n")
		fs.PrintDefaults()
	}
	platforms := fs.String("platform", imagebuild.DefaultPlatforms, "comma-separated `platforms` to build; one is enough to try the image on this machine")
	dir := fs.String("C", ".", "`folder` inside the checkout to build")
	version := fs.String("version", "", "version linked in and labelled; empty: `git describe --tags --always --dirty`")
	commit := fs.String("commit", "", "commit linked in and labelled; empty: the checked-out one")
	created := fs.String("created", "", "date of the image and its files, RFC 3339; empty: the commit's time")
	source := fs.String("source", imagebuild.SourceURL, "`URL` of the source, labelled")
	caCerts := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "PEM `file` of the CA certificates the server trusts")
	ociDir := fs.String("oci", "", "write the image to this OCI layout `folder` (created; an existing layout is added to)")
	tag := fs.String("tag", "", "with --oci, the name the layout gives the image; empty: the version")
	push := fs.String("push", "", "push the image to this `reference`; credentials as docker login or crane auth login saved them")
	insecure := fs.Bool("insecure", false, "with --push, plain HTTP to a registry not on a loopback or private address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || (*ociDir == "" && *push == "") {
		fs.Usage()
		return errors.New("give --oci DIR or --push REFERENCE, and no arguments")
	}
	ps, err := imagebuild.ParsePlatforms(*platforms)
	if err != nil {
		return err
	}
	var ref name.Reference
	if *push != "" {
		var opts []name.Option
		if *insecure {
			opts = append(opts, name.Insecure)
		}
		if ref, err = name.ParseReference(*push, opts...); err != nil {
			return err
		}
	}
	meta, err := metadata(ctx, *dir, *version, *commit, *created)
	if err != nil {
		return err
	}
	meta.Source = *source

	fmt.Fprintf(stderr, "ladingimage: building lading %s (%s) for %s\n", meta.Version, meta.Commit, *platforms)
	idx, err := imagebuild.Build(ctx, imagebuild.Options{Dir: *dir, Platforms: ps, CACerts: *caCerts}, meta)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	if *ociDir != "" {
		as := *tag
		if as == "" {
			as = meta.Version
		}
		if err := writeLayout(*ociDir, idx, as); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "ladingimage: wrote %s as %s\n", *ociDir, as)
	}
	if ref != nil {
		if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		fmt.Fprintf(stderr, "ladingimage: pushed %s@%s\n", ref, digest)
	}
	fmt.Fprintln(stdout, digest)
	return nil
}

// metadata is what the flags say, and git for what they leave empty.
func metadata(ctx context.Context, dir, version, commit, created string) (imagebuild.Metadata, error) {
	var meta imagebuild.Metadata
	if version == "" || commit == "" || created == "" {
		var err error
		if meta, err = imagebuild.FromGit(ctx, dir); err != nil {
			return meta, fmt.Errorf("%w (outside a git checkout, give --version, --commit and --created)", err)
		}
	}
	if version != "" {
		meta.Version = version
	}
	if commit != "" {
		meta.Commit = commit
	}
	if created != "" {
		t, err := time.Parse(time.RFC3339, created)
		if err != nil {
			return meta, fmt.Errorf("--created: %w", err)
		}
		meta.Created = t.UTC()
	}
	return meta, nil
}

// writeLayout adds idx to the OCI layout at dir under the name tag, as
// skopeo's and crane's oci:DIR:TAG find it, replacing what had that name.
func writeLayout(dir string, idx v1.ImageIndex, tag string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return err
		}
	}
	const refName = "org.opencontainers.image.ref.name"
	return p.ReplaceIndex(idx, func(d v1.Descriptor) bool { return d.Annotations[refName] == tag },
		layout.WithAnnotations(map[string]string{refName: tag}))
}
