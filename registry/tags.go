package registry

import (
	"context"
	"path"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
)

// A tag is one small object holding the manifest's digest, replaced by an
// atomic put: concurrent pushes to one tag leave it on one of the complete
// manifests, never on a mix.

// Tags lists the repository's tags in lexical order, at most n after last
// (n <= 0: all). more reports whether tags remain after the page. A page
// costs one listing resumed at last: on an object store in proportion to
// the page; on a file system, which reads the whole folder to order it,
// memory for the page and time for the folder. An empty
// page of a repository that does not exist is NAME_UNKNOWN; an existing
// repository with no tags gives an empty list. last must be a valid tag
// (TAG_INVALID otherwise), since it becomes a storage path.
func (ms *ManifestStore) Tags(ctx context.Context, last string, n int) (tags []string, more bool, err error) {
	from := ""
	if last != "" {
		if err := ValidateTag(last); err != nil {
			return nil, false, err
		}
		from = tagPath(ms.repo.name, last)
	}
	// A sole server pages through a large repository's kept list, and
	// lists a repository no request is reading whole that way.
	var all []string
	listed := false
	if c := ms.repo.reg.tags; c != nil {
		now := ms.repo.reg.now()
		if all, listed = c.list(ms.repo.name, now); !listed && c.beginList(ms.repo.name) {
			if all, err = ms.readList(ctx, c, now); err != nil {
				return nil, false, err
			}
			listed = true
		}
	}
	if listed {
		tags, more = pageOf(all, last, n)
	} else {
		tags, more, err = page(ctx, ms.driver(), tagsPath(ms.repo.name), from, n, tagOfPath(tagsPath(ms.repo.name)))
	}
	if err != nil || len(tags) > 0 {
		return tags, more, err
	}
	exists, err := ms.repo.exists(ctx)
	if err != nil {
		return nil, false, err
	}
	if !exists {
		return nil, false, nameUnknown(ms.repo.name)
	}
	return []string{}, false, nil
}

// tagOfPath names the tag a path below a repository's tags holds. What
// Lading did not write there (a file manager's .DS_Store, a copy's
// temporary file, a file in a folder) is no tag: listed, it would be a
// page's last, whose link the next request refuses.
func tagOfPath(dir string) func(p string) (string, bool) {
	return func(p string) (string, bool) {
		tag := path.Base(p)
		return tag, ValidateTag(tag) == nil && path.Dir(p) == dir
	}
}

// readList reads every tag of the repository, for c to keep once the
// claim beginList gave is released, whatever happens to the read.
func (ms *ManifestStore) readList(ctx context.Context, c *tagCache, now time.Time) (all []string, err error) {
	defer func() { c.endList(ms.repo.name, all, now) }()
	all, _, err = page(ctx, ms.driver(), tagsPath(ms.repo.name), "", 0, tagOfPath(tagsPath(ms.repo.name)))
	if err != nil {
		all = nil
	}
	return all, err
}

// pageOf is the page of names (in order) after last: at most n (n <= 0:
// all), and whether more follow. Never nil.
func pageOf(names []string, last string, n int) ([]string, bool) {
	i := sort.Search(len(names), func(j int) bool { return names[j] > last })
	rest := names[i:]
	more := n > 0 && len(rest) > n
	if more {
		rest = rest[:n]
	}
	return append([]string{}, rest...), more
}

// tagDigest reads the digest a tag points at.
func (ms *ManifestStore) tagDigest(ctx context.Context, tag string) (digest.Digest, error) {
	if err := ValidateTag(tag); err != nil {
		return "", err
	}
	b, err := ms.driver().GetContent(ctx, tagPath(ms.repo.name, tag))
	if driver.IsNotFound(err) {
		return "", manifestUnknown(ms.repo.name, tag)
	}
	if err != nil {
		return "", err
	}
	d := digest.Digest(b) // read as the collector, untag and fsck read it: exactly
	if validateDigest(d) != nil {
		// Tags are written whole; an unreadable one names nothing.
		return "", manifestUnknown(ms.repo.name, tag)
	}
	return d, nil
}

// Each tag also leaves a marker under the digest it points at, written
// before the tag: every tag pointing at d has a marker under d, so a delete
// by digest finds its tags by listing d's markers rather than reading every
// tag of the repository (thousands of reads on an object store for a CI
// repository). A marker is not removed when its tag moves or is deleted,
// since that could race a push re-pointing the tag at d; a stale marker is
// harmless, as untag removes a tag only while it names d
// (driver.RemoveObjectIf). Markers are not
// removed by a delete either: a push racing the delete may have written one
// the delete's second pass (afterDelete) must still find. The collector
// removes the markers of digests the repository no longer holds.
// (The markers' paths are in layout.go, with every other path.)

// tag points tag at d, marker first.
func (ms *ManifestStore) tag(ctx context.Context, tag string, d digest.Digest) error {
	defer ms.tagsChanged(tag)
	if err := ms.driver().PutContent(ctx, tagRefPath(ms.repo.name, d, tag), nil); err != nil {
		return err
	}
	return ms.driver().PutContent(ctx, tagPath(ms.repo.name, tag), []byte(d))
}

// tagsChanged tells the tag cache that tags were written, or may have been.
func (ms *ManifestStore) tagsChanged(tags ...string) {
	if c := ms.repo.reg.tags; c != nil && len(tags) > 0 {
		keys := make([]string, len(tags))
		for i, t := range tags {
			keys[i] = tagKey(ms.repo.name, t)
		}
		c.forget(ms.repo.name, keys...)
	}
}

// untag removes every tag pointing at d.
func (ms *ManifestStore) untag(ctx context.Context, d digest.Digest) error {
	markers, err := listAll(ctx, ms.driver(), tagRefsPath(ms.repo.name, d))
	if err != nil {
		return err
	}
	err = forEach(len(markers), func(i int) error {
		t := path.Base(markers[i])
		if ValidateTag(t) != nil {
			return nil
		}
		// Only while it names d: a push may be moving it to another
		// manifest right now, and must keep it.
		_, err := driver.RemoveObjectIf(ctx, ms.driver(), tagPath(ms.repo.name, t), []byte(d))
		// Whatever it says: on a file system a failed or refused removal
		// may still have moved the tag for a moment.
		ms.tagsChanged(t)
		return err
	})
	return err
}

// listAll returns the paths of every object below dir; none if dir is absent.
func listAll(ctx context.Context, drv driver.Driver, dir string) ([]string, error) {
	var paths []string
	err := drv.Walk(ctx, dir, "", func(fi driver.FileInfo) error {
		paths = append(paths, fi.Path)
		return nil
	})
	if err != nil && !driver.IsNotFound(err) {
		return nil, err
	}
	return paths, nil
}

// page collects up to n entries (n <= 0: all) of the objects below dir
// that sort after from, naming each with name (false skips the object).
// It reads one entry past the page to tell whether more remain.
func page(ctx context.Context, drv driver.Driver, dir, from string, n int, name func(string) (string, bool)) ([]string, bool, error) {
	var out []string
	more := false
	err := drv.Walk(ctx, dir, from, func(fi driver.FileInfo) error {
		s, ok := name(fi.Path)
		if !ok {
			return nil
		}
		if n > 0 && len(out) == n {
			more = true
			return driver.ErrStopWalk
		}
		out = append(out, s)
		return nil
	})
	if err != nil && !driver.IsNotFound(err) {
		return nil, false, err
	}
	return out, more, nil
}
