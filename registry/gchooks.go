package registry

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
)

// The verify steps of the writers' guards (gcguard.go), and the repair of
// the race between a push and a delete of the same manifest. Each checks
// with uncached reads, since a cache may remember what a collector removed.

// ensureCommitted checks that a committed upload's blob and link exist.
// A blob collected meanwhile is placed again from the session's data when
// the commit left it there (dataLeft: the blob was already stored); else
// the bytes are gone and the client must upload again.
func (u *Upload) ensureCommitted(ctx context.Context, d digest.Digest, dataPath string, dataLeft bool) error {
	drv := u.bs.driver()
	_, err := driver.StatObject(ctx, drv, blobPath(d))
	if driver.IsNotFound(err) {
		switch {
		case u.state.Offset == 0:
			err = drv.PutContent(ctx, blobPath(d), nil)
		case dataLeft:
			err = drv.Move(ctx, dataPath, blobPath(d))
		}
		if u.state.Offset > 0 && (!dataLeft || driver.IsNotFound(err)) {
			u.bs.unlink(ctx, d)
			return newError(CodeBlobUploadUnknown, "blob %s was collected while it was committed; upload it again", d)
		}
	}
	if err != nil {
		return err
	}
	return u.bs.ensureLinked(ctx, d)
}

// ensureStored verifies a putWhole: content collected meanwhile is written
// again, since it is still at hand, and the link restored.
func (bs *BlobStore) ensureStored(ctx context.Context, d digest.Digest, content []byte) error {
	_, err := driver.StatObject(ctx, bs.driver(), blobPath(d))
	if driver.IsNotFound(err) {
		err = bs.driver().PutContent(ctx, blobPath(d), content)
	}
	if err != nil {
		return err
	}
	return bs.ensureLinked(ctx, d)
}

// ensureMounted checks that a mounted blob and its new link exist.
func (bs *BlobStore) ensureMounted(ctx context.Context, d digest.Digest) error {
	_, err := driver.StatObject(ctx, bs.driver(), blobPath(d))
	if driver.IsNotFound(err) {
		bs.unlink(ctx, d)
		return newError(CodeBlobUnknown, "blob %s was collected while it was mounted", d)
	}
	if err != nil {
		return err
	}
	return bs.ensureLinked(ctx, d)
}

func (bs *BlobStore) ensureLinked(ctx context.Context, d digest.Digest) error {
	_, err := driver.StatObject(ctx, bs.driver(), layerLinkPath(bs.repo.name, d))
	if driver.IsNotFound(err) {
		return bs.link(ctx, d)
	}
	return err
}

// unlink removes a link whose blob is gone; the write that made it fails.
func (bs *BlobStore) unlink(ctx context.Context, d digest.Digest) {
	ctx = context.WithoutCancel(ctx)
	if err := driver.RemoveObject(ctx, bs.driver(), layerLinkPath(bs.repo.name, d)); err != nil {
		bs.repo.reg.log.Warn("dangling blob link left behind", "repository", bs.repo.name, "digest", d, "err", err)
	}
	bs.repo.reg.cacheDelete(ctx, linkKey(bs.repo.name, d.String()))
}

// guardPut begins a manifest push for the collector: call it after parsing
// and before checkReferences. It also drops the cached links of what the
// manifest uses, so the checks read the store: a reader that looked up a
// link just before a collection removed it may have put it back in the
// cache after the collector's invalidation.
func (ms *ManifestStore) guardPut(ctx context.Context, d digest.Digest, m *parsedManifest) (*gcGuard, error) {
	digests := []digest.Digest{d}
	var keys []string
	for _, r := range m.references() {
		if r.kind != refExternal {
			digests = append(digests, r.desc.Digest)
			keys = append(keys, linkKey(ms.repo.name, r.desc.Digest.String()))
		}
	}
	g, err := ms.repo.reg.guardWrite(ctx, digests...)
	if err == nil && len(keys) > 0 {
		ms.repo.reg.cacheForget(ctx, keys...)
	}
	return g, err
}

// guardClosure protects, during a collection, what a pushed manifest
// reaches beyond what it names: what its child manifests name, and so on
// down, and the referrers of each and of itself. Marking may have passed
// them over before the push made them reachable again, and a pin keeps
// only what it names (with the links and blobs a kept manifest uses), so
// they are pinned too.
//
// With check, which a push sets before it publishes anything, what the
// manifests below its children name must be there once pinned, and those
// manifests must be manifests still: a batch may have removed one before
// the pins. Else MANIFEST_BLOB_UNKNOWN, as for the manifest's own
// references. (The manifest's own children keep the rule of every push: a
// blob will do.) Referrers are kept from now on, not checked: one removed
// before is as if collected before the push. A push that settles late
// (settlePut) only pins: it has published, and a failure there could only
// withdraw the manifest with the tags it had before.
func (ms *ManifestStore) guardClosure(ctx context.Context, g *gcGuard, d digest.Digest, m *parsedManifest, check bool) error {
	pins, checks, err := ms.reach(ctx, d, m)
	if err != nil {
		return err
	}
	if len(pins) > 0 {
		if err := g.pinMore(ctx, pins); err != nil {
			return err
		}
	}
	if !check {
		return nil
	}
	checked := map[digest.Digest]bool{}
	for _, r := range checks {
		if checked[r.desc.Digest] {
			continue
		}
		checked[r.desc.Digest] = true
		if r.kind != refManifest {
			if _, err := ms.checkReference(ctx, r); err != nil {
				return err
			}
			continue
		}
		desc, err := ms.Stat(ctx, r.desc.Digest.String())
		if IsUnknown(err) {
			return &Error{Code: CodeManifestBlobUnknown, Message: "manifest " + r.desc.Digest.String() + ", which the manifest reaches through its children, is not in repository " + ms.repo.name, Detail: map[string]string{"digest": r.desc.Digest.String()}}
		}
		if err == nil {
			err = checkSize(r, desc.Size)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// reach lists what guardClosure pins (all it reaches but d and what m
// names, which guardPut pins) and the references it checks: those of the
// manifests m's children reach.
func (ms *ManifestStore) reach(ctx context.Context, d digest.Digest, m *parsedManifest) (pins []digest.Digest, checks []reference, err error) {
	type node struct {
		d     digest.Digest
		child bool // reached through children: what it names must be there
	}
	// seen maps what was reached to whether through children; reached
	// through children after, a referrer is walked again as a child.
	seen := map[digest.Digest]bool{d: false}
	queue := []node{{d: d}}
	for _, r := range m.references() {
		if _, ok := seen[r.desc.Digest]; r.kind != refExternal && !ok {
			seen[r.desc.Digest] = true
			if r.kind == refManifest {
				queue = append(queue, node{r.desc.Digest, true})
			}
		}
	}
	reached := func(rd digest.Digest, child bool) {
		was, ok := seen[rd]
		if !ok {
			pins = append(pins, rd)
		}
		if !ok || child && !was {
			seen[rd] = child
			queue = append(queue, node{rd, child})
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if n.d != d {
			got, err := ms.Get(ctx, n.d.String())
			if IsUnknown(err) {
				continue // the check of whatever names it tells
			}
			if err != nil {
				return nil, nil, err
			}
			for _, r := range storedReferences(got.Payload, got.Descriptor.MediaType) {
				if n.child {
					checks = append(checks, r)
				}
				if r.kind == refManifest {
					reached(r.desc.Digest, n.child)
				} else if _, ok := seen[r.desc.Digest]; !ok {
					seen[r.desc.Digest] = n.child
					pins = append(pins, r.desc.Digest)
				}
			}
		}
		err := ms.driver().Walk(ctx, referrersPath(ms.repo.name, n.d), "", func(fi driver.FileInfo) error {
			if rd, ok := digestAt(fi.Path, 1); ok {
				reached(rd, false)
			}
			return nil
		})
		if err != nil && !driver.IsNotFound(err) {
			return nil, nil, err
		}
	}
	return pins, checks, nil
}

// settlePut ends a manifest push once its tags are written: it settles the
// guard, then makes sure a concurrent delete of the same digest did not
// remove the record from under the tags just written (the delete lists the
// tags before it removes the record; a push landing between the two would
// otherwise leave tags pointing at nothing). The push then wins: the record,
// its referrer entry and its tags are written again.
func (ms *ManifestStore) settlePut(ctx context.Context, g *gcGuard, rec manifestRecord, m *parsedManifest, payload []byte, tags []string, lazy bool) error {
	verify := func(ctx context.Context) error {
		if err := ms.repo.Blobs().ensureStored(ctx, rec.Digest, payload); err != nil {
			return err
		}
		if err := ms.ensureReferences(ctx, rec.Digest, m, lazy); err != nil {
			return err
		}
		if err := ms.guardClosure(ctx, g, rec.Digest, m, false); err != nil {
			return err
		}
		// The collector may have taken the tags' markers as stale.
		for _, t := range tags {
			if err := ms.driver().PutContent(ctx, tagRefPath(ms.repo.name, rec.Digest, t), nil); err != nil {
				return err
			}
		}
		return nil
	}
	// Whether a delete took the record meanwhile is read beside the
	// collector's state (on an object store each is a round trip), and
	// again after a verify, which may have repaired what the push wrote.
	recordGone := func(ctx context.Context) (bool, error) {
		return objectGone(ctx, ms.driver(), manifestLinkPath(ms.repo.name, rec.Digest))
	}
	var gone, verified bool
	var statErr error
	err := together(ctx, func(ctx context.Context) error {
		return g.settle(ctx, func(ctx context.Context) error { verified = true; return verify(ctx) })
	}, func(ctx context.Context) error {
		gone, statErr = recordGone(ctx)
		return nil
	})
	switch {
	case err != nil:
	case verified: // the first look is stale, whatever it found
		gone, err = recordGone(ctx)
	default:
		err = statErr
	}
	if err != nil || !gone {
		return err
	}
	if err := ms.writeRecord(ctx, rec); err != nil {
		return err
	}
	if m.subject != nil {
		if err := ms.addReferrer(ctx, m, rec.Descriptor); err != nil {
			return err
		}
	}
	for _, t := range tags {
		if err := ms.tag(ctx, t, rec.Digest); err != nil {
			return err
		}
	}
	return nil
}

// ensureReferences is a manifest push's verify step: what the manifest
// points at must still be in the repository. If a collection removed a blob
// meanwhile, the manifest cannot be pulled whole: it is withdrawn and the
// push fails as if the blob had never been there, so the client uploads it
// again. A lazy put (Fill) links what is stored and passes over the rest.
func (ms *ManifestStore) ensureReferences(ctx context.Context, d digest.Digest, m *parsedManifest, lazy bool) error {
	var missing digest.Digest
	for _, r := range m.references() {
		if r.kind == refExternal {
			continue
		}
		rd := r.desc.Digest
		if r.kind == refManifest {
			if _, err := ms.Stat(ctx, rd.String()); err == nil {
				continue
			} else if !IsUnknown(err) {
				return err
			}
		}
		_, err := driver.StatObject(ctx, ms.driver(), blobPath(rd))
		if driver.IsNotFound(err) && lazy {
			continue // a mirror's fill: fetched when asked for
		} else if driver.IsNotFound(err) {
			missing = rd
			break
		}
		if err != nil {
			return err
		}
		if err := ms.repo.Blobs().ensureLinked(ctx, rd); err != nil {
			return err
		}
	}
	if missing == "" {
		return nil
	}
	err := &Error{Code: CodeManifestBlobUnknown, Message: "blob " + missing.String() + " was collected during the push", Detail: map[string]string{"digest": missing.String()}}
	ms.withdraw(ctx, d, err)
	return err
}

// withdraw deletes a manifest just pushed that cannot be pulled whole,
// because of why. The push holds the manifest's lock.
func (ms *ManifestStore) withdraw(ctx context.Context, d digest.Digest, why error) {
	if err := ms.deleteDigest(context.WithoutCancel(ctx), d, true); err != nil && !IsUnknown(err) {
		ms.repo.reg.log.Error("manifest left referencing what a collection removed", "repository", ms.repo.name, "digest", d, "missing", why, "err", err)
	}
}

// afterDelete ends a delete by digest once the record is gone: a push of a
// tag onto the manifest that landed after the delete listed the tags is
// undone, so no tag is left pointing at nothing. With settlePut on the push
// side, either the push sees the record gone and restores it, or this sees
// the push's tag marker and removes the tag.
func (ms *ManifestStore) afterDelete(ctx context.Context, d digest.Digest) error {
	return ms.untag(ctx, d)
}
