// Package distimport copies what a CNCF Distribution registry (v2.x, v3.x)
// keeps on disk into a Lading registry: its blobs, manifests and tags,
// through the registry package's own writes, so that every invariant, lock
// and check of a push holds.
package distimport

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
)

// Source is a Distribution storage tree, read and never written. Its layout
// (Distribution's registry/storage/paths.go), from the v2 folder:
//
//	blobs/<alg>/<hex[:2]>/<hex>/data                     blob bytes, manifests' too
//	repositories/<name>/_layers/<alg>/<hex>/link         blob linked into the repository
//	repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//	                                                     manifest of the repository
//	repositories/<name>/_manifests/tags/<tag>/current/link
//	                                                     the tag's manifest
//	repositories/<name>/_uploads/<id>/...                uploads in progress
//
// A link holds "<alg>:<hex>". A deleted link leaves its folder behind, empty.
type Source struct {
	fsys fs.FS
	// Dir is the v2 folder.
	Dir string
}

// v2Dir is where Distribution keeps everything under its root directory.
const v2Dir = "docker/registry/v2"

// Open finds the Distribution tree in dir: its storage root directory
// (storage.filesystem.rootdirectory), or the docker/registry/v2 folder in it.
func Open(dir string) (*Source, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", dir)
	}
	for _, v2 := range []string{path.Join(dir, v2Dir), dir} {
		if isDir(path.Join(v2, "repositories")) || isDir(path.Join(v2, "blobs")) {
			// A Lading store has repositories and blobs too, and a catalog.
			if isDir(path.Join(v2, "catalog")) {
				return nil, fmt.Errorf("%s is a Lading store, not a Distribution one", v2)
			}
			return &Source{fsys: os.DirFS(v2), Dir: v2}, nil
		}
	}
	return nil, fmt.Errorf("%s holds no Distribution storage: neither %s/repositories nor %s/blobs is there (give storage.filesystem.rootdirectory)", dir, v2Dir, v2Dir)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// Repositories lists the repositories' names in order: every folder under
// repositories/ holding _layers, _manifests or _uploads. Names nest, so a
// repository's folder may hold others.
func (s *Source) Repositories() ([]string, error) {
	var names []string
	var walk func(dir, name string) error
	walk = func(dir, name string) error {
		entries, err := fs.ReadDir(s.fsys, dir)
		if err != nil {
			return err
		}
		var children []string
		repo := false
		for _, e := range entries {
			switch {
			case !e.IsDir():
			case e.Name() == "_layers" || e.Name() == "_manifests" || e.Name() == "_uploads":
				repo = true
			case !strings.HasPrefix(e.Name(), "_"):
				// (No name component starts with "_": those are
				// Distribution's own folders.)
				children = append(children, e.Name())
			}
		}
		if repo && name != "" {
			names = append(names, name)
		}
		for _, c := range children {
			child := c
			if name != "" {
				child = name + "/" + c
			}
			if err := walk(path.Join(dir, c), child); err != nil {
				return err
			}
		}
		return nil
	}
	err := walk("repositories", "")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // blobs only, or nothing pushed yet
	}
	return names, err
}

// link is one link file: the digest its path names, and err when the link
// cannot be used (unreadable, or naming another digest).
type link struct {
	digest digest.Digest
	err    error
}

// links reads the links under dir, laid out as <alg>/<hex>/<file>, file
// being "link". A folder without its link was deleted and is left out.
func (s *Source) links(dir string) ([]link, error) {
	algs, err := fs.ReadDir(s.fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []link
	for _, alg := range algs {
		if !alg.IsDir() {
			continue
		}
		hexes, err := fs.ReadDir(s.fsys, path.Join(dir, alg.Name()))
		if err != nil {
			return nil, err
		}
		for _, hex := range hexes {
			if !hex.IsDir() {
				continue
			}
			p := path.Join(dir, alg.Name(), hex.Name(), "link")
			d, err := s.readLink(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			named := digest.Digest(alg.Name() + ":" + hex.Name())
			if _, perr := registry.ParseDigest(string(named)); perr != nil {
				out = append(out, link{digest: named, err: fmt.Errorf("%s: unsupported digest: %v", p, perr)})
				continue
			}
			if err == nil && d != named {
				err = fmt.Errorf("%s names %s, not the digest of its path", p, d)
			}
			out = append(out, link{digest: named, err: err})
		}
	}
	return out, nil
}

// readLink reads a link file's digest.
func (s *Source) readLink(p string) (digest.Digest, error) {
	b, err := fs.ReadFile(s.fsys, p)
	if err != nil {
		return "", err
	}
	d, err := registry.ParseDigest(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("%s: %v", p, err)
	}
	return d, nil
}

// blobLinks lists the blobs linked into the repository.
func (s *Source) blobLinks(repo string) ([]link, error) {
	return s.links(path.Join("repositories", repo, "_layers"))
}

// manifestLinks lists the repository's manifests, tagged or not.
func (s *Source) manifestLinks(repo string) ([]link, error) {
	return s.links(path.Join("repositories", repo, "_manifests", "revisions"))
}

// tagLink is a tag and the manifest it currently names.
type tagLink struct {
	tag    string
	digest digest.Digest
	err    error
}

// tags lists the repository's tags and their current manifests; a tag's
// index (its history) is not read. A tag without its current link was
// being deleted and is left out.
func (s *Source) tags(repo string) ([]tagLink, error) {
	dir := path.Join("repositories", repo, "_manifests", "tags")
	entries, err := fs.ReadDir(s.fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []tagLink
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		d, err := s.readLink(path.Join(dir, e.Name(), "current", "link"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		out = append(out, tagLink{tag: e.Name(), digest: d, err: err})
	}
	return out, nil
}

// blobPath is where Distribution keeps a blob's bytes.
func blobPath(d digest.Digest) string {
	hex := d.Encoded()
	return path.Join("blobs", string(d.Algorithm()), hex[:2], hex, "data")
}

// errMissing is a blob whose bytes the source does not hold.
var errMissing = errors.New("missing from the source")

// openBlob opens a blob's bytes.
func (s *Source) openBlob(d digest.Digest) (fs.File, error) {
	f, err := s.fsys.Open(blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (no %s)", errMissing, path.Join(s.Dir, blobPath(d)))
	}
	return f, err
}

// readManifest reads a manifest's bytes, at most limit of them, and checks
// them against d.
func (s *Source) readManifest(d digest.Digest, limit int64) ([]byte, error) {
	f, err := s.openBlob(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than the %d bytes Lading accepts (http.maxmanifestsize)", limit)
	}
	if d.Algorithm().FromBytes(b) != d {
		return nil, errCorrupt
	}
	return b, nil
}

// errCorrupt is bytes that do not hash to their digest.
var errCorrupt = errors.New("its bytes in the source do not match the digest")
