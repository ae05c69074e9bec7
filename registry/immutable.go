package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
)

// Immutable tags (Options.ImmutableTags) never move once pushed: a push
// that would point one elsewhere, its delete, and a delete by digest of
// the manifest it names or of anything that manifest reaches (children,
// configs, layers) are refused with DENIED. The same manifest may be
// pushed under it again, as a retried CI job does.

// ImmutableTag reports whether tag never moves in repository repo once
// pushed (Options.ImmutableTags).
func (r *Registry) ImmutableTag(repo, tag string) bool { return r.immutable.Match(repo, tag) }

// holdImmutable checks that a push of d may write tags, and holds the
// locks of the immutable ones until the returned release: two first
// pushes of one tag take turns, so the second finds the first's. It is
// taken before the manifest's lock, which is never held while waiting for
// a tag's.
func (ms *ManifestStore) holdImmutable(ctx context.Context, d digest.Digest, tags []string) (release func(), err error) {
	var held []func()
	release = func() {
		for _, unlock := range slices.Backward(held) {
			unlock()
		}
	}
	var fixed []string
	for _, t := range tags {
		if ms.repo.reg.immutable.Match(ms.repo.name, t) {
			fixed = append(fixed, t)
		}
	}
	// In one order, so that pushes of several such tags cannot deadlock.
	slices.Sort(fixed)
	for _, t := range slices.Compact(fixed) {
		unlock, err := ms.lockTag(ctx, t)
		if err != nil {
			release()
			return nil, err
		}
		held = append(held, unlock)
		cur, err := ms.tagDigest(ctx, t)
		if err == nil && cur != d {
			release()
			return nil, immutableTag(ms.repo.name, t, cur)
		}
		if err != nil && !errors.Is(err, ErrManifestUnknown) {
			release()
			return nil, err
		}
	}
	return release, nil
}

// holdTagDelete checks that tag may be deleted, refusing an immutable one
// that exists, and holds that tag's lock until the returned release: a
// first push of it must not land between the look and the delete, which
// would remove the tag the push was told it made.
func (ms *ManifestStore) holdTagDelete(ctx context.Context, tag string) (release func(), err error) {
	if !ms.repo.reg.immutable.Match(ms.repo.name, tag) {
		return func() {}, nil
	}
	unlock, err := ms.lockTag(ctx, tag)
	if err != nil {
		return nil, err
	}
	cur, err := ms.tagDigest(ctx, tag)
	switch {
	case errors.Is(err, ErrManifestUnknown):
		return unlock, nil // the delete answers for a tag that is not there
	case err != nil:
		unlock()
		return nil, err // a tag that may be there stays
	}
	unlock()
	return nil, immutableTag(ms.repo.name, tag, cur)
}

// checkDigestDelete refuses the delete by digest of a manifest an
// immutable tag names, which would take the tag with it, or of one such a
// manifest reaches (an index's child, at any depth), which would leave
// the release unpullable. The caller holds the manifest's lock, which a
// push pointing a tag at d takes too: every tag naming d is in the
// listing. A push of an index over d takes only the index's: one racing
// this delete may check d, then publish its tag after the listing and
// name d deleted, as a push after the delete would (the index's check
// accepts d by its blob link, which stays); a push of d mends either.
func (ms *ManifestStore) checkDigestDelete(ctx context.Context, d digest.Digest) error {
	if !ms.releasesMayHold() {
		return nil
	}
	// Only a manifest of the repository is a release's to keep: the
	// delete answers any other digest MANIFEST_UNKNOWN, a layer's too.
	if _, err := ms.record(ctx, d); IsUnknown(err) {
		return nil
	} else if err != nil {
		return err
	}
	return ms.checkReleases(ctx, "manifest", d)
}

// releasesMayHold reports whether an immutable tag may name a manifest of
// the repository: else deletes look for no release.
func (ms *ManifestStore) releasesMayHold() bool {
	rules := ms.repo.reg.immutable
	return len(rules) > 0 && rules.MayMatch(ms.repo.name)
}

// checkReleases refuses the removal of d (what names it: "manifest",
// "blob") from the repository when an immutable release holds it: a
// manifest an immutable tag names, or one it reaches down indexes, or
// what one of those references (config, layers, blobs an index lists).
// Referrers are not followed: signatures and SBOMs come and go beside a
// release. It costs a listing of the tags, a read of each immutable one,
// and a read of each manifest they reach (records and payloads through
// the manifest cache), unless no rule may name a tag here. What cannot be
// read refuses the removal: it may hold d.
func (ms *ManifestStore) checkReleases(ctx context.Context, what string, d digest.Digest) error {
	if !ms.releasesMayHold() {
		return nil
	}
	rules := ms.repo.reg.immutable
	dir := tagsPath(ms.repo.name)
	tags, _, err := page(ctx, ms.driver(), dir, "", 0, tagOfPath(dir))
	if err != nil {
		return err
	}
	tags = slices.DeleteFunc(tags, func(t string) bool { return !rules.Match(ms.repo.name, t) })
	roots := make([]digest.Digest, len(tags))
	err = forEach(len(tags), func(i int) (err error) {
		roots[i], err = ms.tagDigest(ctx, tags[i])
		if errors.Is(err, ErrManifestUnknown) {
			return nil // gone since the listing
		} else if err != nil {
			return fmt.Errorf("reading immutable tag %s, which may hold %s %s: %w", tags[i], what, d, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Down from the tagged manifests a level at a time, each read once,
	// with the tag it was reached from.
	type reached struct {
		d   digest.Digest
		tag int
	}
	var level []reached
	seen := map[digest.Digest]bool{}
	for i, root := range roots {
		if root == d {
			if what == "blob" { // the manifest's bytes, linked as a blob
				return releaseHolds(ms.repo.name, tags[i], root, what, d)
			}
			return immutableTag(ms.repo.name, tags[i], d)
		}
		if root != "" && !seen[root] {
			seen[root] = true
			level = append(level, reached{root, i})
		}
	}
	for len(level) > 0 {
		refs := make([][]reference, len(level))
		err := forEach(len(level), func(i int) (err error) {
			if r, ok := ms.repo.reg.releaseRefs.Load(level[i].d); ok {
				refs[i] = r.([]reference)
				return nil
			}
			if refs[i], err = ms.storedRefs(ctx, level[i].d); err != nil {
				t := level[i].tag
				return fmt.Errorf("reading manifest %s, which immutable tag %s reaches and which may hold %s %s: %w", level[i].d, tags[t], what, d, err)
			}
			if refs[i] != nil {
				ms.repo.reg.releaseRefs.Store(level[i].d, refs[i])
			}
			return nil
		})
		if err != nil {
			return err
		}
		var next []reached
		for i, from := range level {
			for _, ref := range refs[i] {
				c := ref.desc.Digest
				// A manifest is only ever a manifest reference's.
				if c == d && (what == "blob" || ref.kind == refManifest) {
					t := from.tag
					return releaseHolds(ms.repo.name, tags[t], roots[t], what, d)
				}
				if ref.kind == refManifest && !seen[c] {
					seen[c] = true
					next = append(next, reached{c, from.tag})
				}
			}
		}
		level = next
	}
	return nil
}

// storedRefs lists what manifest d of the repository references but its
// subject and the layers it does not store (as the collector keeps). An
// index may name a child by a blob of the repository, a manifest deleted
// before the index was pushed (the push accepts it by its blob link):
// its bytes, read as a manifest, tell what a push of it again needs. None
// when d is neither, or a blob larger than a manifest may be.
func (ms *ManifestStore) storedRefs(ctx context.Context, d digest.Digest) ([]reference, error) {
	rec, err := ms.record(ctx, d)
	if err == nil {
		var payload []byte
		if payload, err = ms.payload(ctx, rec, d.String()); err == nil {
			return storedReferences(payload, rec.MediaType), nil
		}
	}
	if !errors.Is(err, ErrManifestUnknown) {
		return nil, err
	}
	if gone, err := objectGone(ctx, ms.driver(), layerLinkPath(ms.repo.name, d)); err != nil || gone {
		return nil, err
	}
	fi, err := driver.StatObject(ctx, ms.driver(), blobPath(d))
	if driver.IsNotFound(err) || err == nil && fi.Size > ms.repo.reg.maxMan {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	payload, err := ms.driver().GetContent(ctx, blobPath(d))
	if driver.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return storedReferences(payload, ""), nil
}

// lockTag takes the lock of an immutable tag, which its pushes and
// deletes take before anything else.
func (ms *ManifestStore) lockTag(ctx context.Context, tag string) (func(), error) {
	unlock, _, err := ms.lockKey(ctx, tagLockKey(ms.repo.name, tag), "tag "+tag, true, func() error {
		return newError(CodeTooManyRequests, "tag %s is being pushed by another request; try again", tag)
	})
	return unlock, err
}

// releaseHolds refuses the removal of d (a "manifest" or "blob"), part
// of the release root that immutable tag tag of repo names.
func releaseHolds(repo, tag string, root digest.Digest, what string, d digest.Digest) error {
	part := " is part of " + root.String() + " which"
	if d == root {
		part = " is the manifest"
	}
	return &Error{
		Code:    CodeDenied,
		Message: what + " " + d.String() + part + " immutable tag " + tag + " of " + repo + " names for good",
		Detail:  map[string]string{"tag": tag, "digest": root.String(), what: d.String()},
	}
}

func immutableTag(repo, tag string, d digest.Digest) error {
	return &Error{
		Code:    CodeDenied,
		Message: "tag " + tag + " of " + repo + " is immutable: it names " + d.String() + " for good; push under a new tag",
		Detail:  map[string]string{"tag": tag, "digest": d.String()},
	}
}
