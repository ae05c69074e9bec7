package registry

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/storage/driver"
)

// PruneOptions are a retention rule over one repository's tags: among the
// tags matching Tags, ordered by when each was last pushed, a tag goes when
// it is not among the Keep newest and was pushed longer than OlderThan ago.
type PruneOptions struct {
	// Tags are path.Match patterns; a tag matching any is subject to the
	// rule, and the others are left out of it. None: every tag.
	Tags []string
	// Keep is how many of the newest matched tags stay whatever their
	// age; 0 keeps none by count.
	Keep int
	// OlderThan keeps the tags pushed this recently; 0 keeps none by age.
	OlderThan time.Duration
	// DryRun reports what would go and removes nothing.
	DryRun bool

	// listed, set by tests, runs between the listing and the removals.
	listed func()
}

// PrunedTag is a tag a prune removed, or with DryRun would remove.
type PrunedTag struct {
	Tag    string
	Digest digest.Digest
	// Pushed is when the tag was last written, as the storage tells it.
	Pushed time.Time
}

// PruneReport counts what a prune did with one repository's matched tags:
// each is kept for one reason, changed under it, or removed.
type PruneReport struct {
	Matched       int
	KeptByCount   int
	KeptByAge     int
	KeptImmutable int
	// KeptSchema are tags of the referrers tag scheme (a signature's,
	// an attestation's), which a rule covers only when a pattern names
	// them by their prefix (sha256-*).
	KeptSchema int
	// Changed are tags pushed again, moved or removed by another between
	// the listing and their removal, which the prune left as they are.
	Changed int
	// Removed, in the order of the tags' names.
	Removed []PrunedTag
}

// listedTag is a tag as the listing found it.
type listedTag struct {
	name   string
	pushed time.Time
}

// PruneTags applies a retention rule to the repository's tags. Tags the
// registry holds immutable are never removed, and take no place among the
// Keep newest: Keep counts the tags the rule could remove. A tag goes only
// while it still names the manifest it named when listed and has not been
// written since (deleteTagIf), so a push meanwhile keeps it. The manifests
// the removed tags named stay, untagged, for the collector.
func (ms *ManifestStore) PruneTags(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	var rep PruneReport
	all, err := ms.listTagTimes(ctx)
	if err != nil {
		return rep, err
	}
	var ranked []listedTag
	for _, t := range all {
		if !matchesAny(opts.Tags, t.name) {
			continue
		}
		rep.Matched++
		switch {
		case ms.repo.reg.immutable.Match(ms.repo.name, t.name):
			rep.KeptImmutable++
		case schemaTag(t.name) && !namesSchemaTags(opts.Tags):
			// A signature, attestation or SBOM stored under the referrers
			// tag scheme (cosign's sha256-<hex>.sig) belongs to the image
			// its tag names, not to the age of its own push: pruned by
			// it, a kept image would lose its signature.
			rep.KeptSchema++
		default:
			ranked = append(ranked, t)
		}
	}
	// Newest first; tags pushed in one tick of the storage's clock (a
	// second on S3) in an order of their own, the same every run.
	slices.SortFunc(ranked, func(a, b listedTag) int {
		return cmp.Or(b.pushed.Compare(a.pushed), cmp.Compare(b.name, a.name))
	})
	cutoff := ms.repo.reg.now().Add(-opts.OlderThan)
	var doomed []listedTag
	for i, t := range ranked {
		switch {
		case i < opts.Keep:
			rep.KeptByCount++
		case opts.OlderThan > 0 && !t.pushed.Before(cutoff):
			rep.KeptByAge++
		default:
			doomed = append(doomed, t)
		}
	}
	slices.SortFunc(doomed, func(a, b listedTag) int { return cmp.Compare(a.name, b.name) })
	// The digest each names now; the age was read before it, so a tag
	// moved in between is caught by its time at the removal.
	candidates := make([]PrunedTag, len(doomed))
	gone := make([]bool, len(doomed))
	err = forEach(len(doomed), func(i int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := ms.tagDigest(ctx, doomed[i].name)
		if errors.Is(err, ErrManifestUnknown) {
			gone[i] = true
			return nil
		}
		candidates[i] = PrunedTag{Tag: doomed[i].name, Digest: d, Pushed: doomed[i].pushed}
		return err
	})
	if err != nil {
		return rep, err
	}
	if opts.listed != nil {
		opts.listed()
	}
	removed := make([]bool, len(candidates))
	if opts.DryRun {
		for i := range removed {
			removed[i] = !gone[i]
		}
	} else {
		err = forEach(len(candidates), func(i int) error {
			if gone[i] {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			c := candidates[i]
			var err error
			removed[i], err = ms.deleteTagIf(ctx, c.Tag, c.Digest, c.Pushed)
			return err
		})
		// Removals made stay made, an interrupted run's too: a crash
		// bringing a tag back would undo what the report says.
		if slices.Contains(removed, true) {
			if perr := driver.PersistRemovals(context.WithoutCancel(ctx), ms.driver(), tagsPath(ms.repo.name)); err == nil {
				err = perr
			}
		}
	}
	for i, c := range candidates {
		if removed[i] {
			rep.Removed = append(rep.Removed, c)
		} else if gone[i] || err == nil {
			// (An error leaves the tags not reached uncounted.)
			rep.Changed++
		}
	}
	return rep, err
}

// RepositoryMatch is a repository of the catalog and the first of the
// patterns given to MatchRepositories that matches its name.
type RepositoryMatch struct {
	Name    string
	Pattern int
}

// MatchRepositories lists the repositories of the catalog, in its order,
// that match one of patterns, each with the first it matches: one listing
// of the catalog, read whole before anything is pruned.
func (r *Registry) MatchRepositories(ctx context.Context, patterns []glob.Glob) ([]RepositoryMatch, error) {
	var matches []RepositoryMatch
	err := r.WalkCatalog(ctx, "", func(name string) bool {
		components := strings.Split(name, "/")
		if i := slices.IndexFunc(patterns, func(g glob.Glob) bool { return g.Match(components) }); i >= 0 {
			matches = append(matches, RepositoryMatch{Name: name, Pattern: i})
		}
		return true
	})
	return matches, err
}

// PruneRepository applies a retention rule to the tags of the repository
// name (see PruneTags).
func (r *Registry) PruneRepository(ctx context.Context, name string, opts PruneOptions) (PruneReport, error) {
	repo, err := r.Repository(name)
	if err != nil {
		return PruneReport{}, err
	}
	return repo.Manifests().PruneTags(ctx, opts)
}

// listTagTimes lists the repository's tags with when each was last
// written: a file's modification time, an S3 object's LastModified. A
// repository without tags, or not there at all, has none.
func (ms *ManifestStore) listTagTimes(ctx context.Context) ([]listedTag, error) {
	var tags []listedTag
	dir := tagsPath(ms.repo.name)
	name := tagOfPath(dir)
	err := ms.driver().Walk(ctx, dir, "", func(fi driver.FileInfo) error {
		if t, ok := name(fi.Path); ok {
			tags = append(tags, listedTag{name: t, pushed: fi.ModTime})
		}
		return nil
	})
	if err != nil && !driver.IsNotFound(err) {
		return nil, err
	}
	return tags, nil
}

// deleteTagIf removes tag only while it names d and was last written at
// pushed, and reports whether it did. The removal is not made durable
// here (the caller persists a repository's removals at once).
//
// It holds the manifest's lock, which a push of d holds while it writes
// its tags: between the look at the tag's time and the removal no push of
// d can write the tag again, and a push of d since the listing left a
// newer time. A push of another manifest needs no lock to be seen: the
// removal is conditional on the content (driver.RemoveObjectIf). The time
// matters because pushing a tag again, even onto the same manifest, is
// what makes it young: CI re-pushing a release tag asks that it be kept as
// much as a new tag does. It costs a HEAD (a stat on a file system) per
// tag removed.
func (ms *ManifestStore) deleteTagIf(ctx context.Context, tag string, d digest.Digest, pushed time.Time) (bool, error) {
	if ms.repo.reg.immutable.Match(ms.repo.name, tag) {
		return false, nil
	}
	unlock, _, err := ms.lockManifest(ctx, d, true)
	if errors.Is(err, &Error{Code: CodeTooManyRequests}) {
		// Held past the wait: a push of d, which may be writing the
		// tag again, is in progress; the tag waits for the next run.
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unlock()
	p := tagPath(ms.repo.name, tag)
	fi, err := driver.StatObject(ctx, ms.driver(), p)
	if driver.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !sameTime(fi.ModTime, pushed) {
		return false, nil
	}
	removed, err := driver.RemoveObjectIf(ctx, ms.driver(), p, []byte(d))
	// Whatever it says: on a file system a refused removal may still
	// have moved the tag for a moment (see untag).
	ms.tagsChanged(tag)
	return removed, err
}

// sameTime reports whether two readings of an object's time are of one
// write. S3 gives LastModified to the second in a HEAD and, on some
// servers, to the millisecond in a listing: a whole second on either side
// is compared to the second.
func sameTime(a, b time.Time) bool {
	if a.Equal(b) {
		return true
	}
	if a.Nanosecond() == 0 || b.Nanosecond() == 0 {
		return a.Truncate(time.Second).Equal(b.Truncate(time.Second))
	}
	return false
}

// schemaTag reports whether tag is of the referrers tag scheme (OCI
// distribution spec, "Referrers Tag Schema"): <alg>-<hex of the
// subject's digest, cut to 64 characters, as a tag holds at most 128>,
// with a suffix such as cosign's .sig, .att, .sbom.
func schemaTag(tag string) bool {
	alg, rest, ok := strings.Cut(tag, "-")
	if !ok || (alg != "sha256" && alg != "sha512") {
		return false
	}
	hexPart, _, _ := strings.Cut(rest, ".")
	return len(hexPart) == 64 && strings.Trim(hexPart, "0123456789abcdef") == ""
}

// namesSchemaTags reports whether a pattern asks for such tags by their
// scheme's own prefix, which a rule over them must.
func namesSchemaTags(patterns []string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool {
		return strings.HasPrefix(p, "sha256-") || strings.HasPrefix(p, "sha512-")
	})
}

// matchesAny reports whether tag matches one of patterns (none: every
// tag), as path.Match reads them.
func matchesAny(patterns []string, tag string) bool {
	if len(patterns) == 0 {
		return true
	}
	return slices.ContainsFunc(patterns, func(p string) bool { return glob.Component(p, tag) })
}
