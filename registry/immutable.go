package registry

import (
	"context"
	"errors"
	"path"
	"slices"

	"github.com/opencontainers/go-digest"
)

// Immutable tags (Options.ImmutableTags) never move once pushed: a push
// that would point one elsewhere, its delete, and a delete by digest of
// the manifest it names are refused with DENIED. The same manifest may be
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
// immutable tag names, which would take the tag with it. The caller holds
// the manifest's lock, which a push pointing a tag at d takes too. Every
// tag naming d has a marker under d (see tag).
func (ms *ManifestStore) checkDigestDelete(ctx context.Context, d digest.Digest) error {
	if len(ms.repo.reg.immutable) == 0 {
		return nil
	}
	markers, err := listAll(ctx, ms.driver(), tagRefsPath(ms.repo.name, d))
	if err != nil {
		return err
	}
	for _, m := range markers {
		t := path.Base(m)
		if ValidateTag(t) != nil || !ms.repo.reg.immutable.Match(ms.repo.name, t) {
			continue
		}
		cur, err := ms.tagDigest(ctx, t)
		switch {
		case errors.Is(err, ErrManifestUnknown):
		case err != nil:
			return err // a tag that may name d stays
		case cur == d:
			return immutableTag(ms.repo.name, t, d)
		}
	}
	return nil
}

// lockTag takes the lock of an immutable tag, which its pushes and
// deletes take before anything else.
func (ms *ManifestStore) lockTag(ctx context.Context, tag string) (func(), error) {
	return ms.lockKey(ctx, tagLockKey(ms.repo.name, tag), "tag "+tag, true, func() error {
		return newError(CodeTooManyRequests, "tag %s is being pushed by another request; try again", tag)
	})
}

func immutableTag(repo, tag string, d digest.Digest) error {
	return &Error{
		Code:    CodeDenied,
		Message: "tag " + tag + " of " + repo + " is immutable: it names " + d.String() + " for good; push under a new tag",
		Detail:  map[string]string{"tag": tag, "digest": d.String()},
	}
}
