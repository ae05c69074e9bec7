package registry

import (
	"context"
	"io"
	"path"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
)

// BlobStore is a repository's view of the content store: blobs are stored
// once under their digest and linked into each repository that has them.
type BlobStore struct {
	repo *Repository
}

func (bs *BlobStore) driver() driver.Driver { return bs.repo.reg.driver }

// Stat describes a blob linked into the repository (BLOB_UNKNOWN otherwise).
// It costs two stats, of the link and of the blob (side by side on an object
// store), unless the cache knows:
// a link is an empty object, so writing one needs no data made durable
// (see link), and the blob's own size is the truth.
func (bs *BlobStore) Stat(ctx context.Context, d digest.Digest) (v1.Descriptor, error) {
	return bs.stat(ctx, d, true)
}

// stat is Stat, through the cache or (for a check a write depends on) not.
func (bs *BlobStore) stat(ctx context.Context, d digest.Digest, cached bool) (v1.Descriptor, error) {
	if err := checkDigest(d); err != nil {
		return v1.Descriptor{}, err
	}
	if cached && bs.repo.reg.cache != nil { // (the key costs an allocation)
		if v, ok := bs.repo.reg.cacheGet(ctx, linkKey(bs.repo.name, d.String())); ok {
			if size, err := strconv.ParseInt(string(v), 10, 64); err == nil && size >= 0 {
				return blobDescriptor(d, size), nil
			}
		}
	}
	read := time.Now()
	var fi driver.FileInfo
	statLink := func(ctx context.Context) error {
		_, err := driver.StatObject(ctx, bs.driver(), layerLinkPath(bs.repo.name, d))
		return err
	}
	statBlob := func(ctx context.Context) (err error) {
		fi, err = driver.StatObject(ctx, bs.driver(), blobPath(d))
		return err
	}
	var err error
	if bs.repo.reg.deferring {
		// The local file system (the one driver that defers): a stat costs
		// less than a goroutine.
		if err = statLink(ctx); err == nil {
			err = statBlob(ctx)
		}
	} else {
		// An object store: each stat is a round trip; wait for one.
		err = together(ctx, statLink, statBlob)
	}
	if driver.IsNotFound(err) {
		// No link, or a dangling one (the collector's or fsck's business),
		// which must not answer HEAD with a blob that GET cannot serve.
		return v1.Descriptor{}, newError(CodeBlobUnknown, "blob %s unknown to repository %s", d, bs.repo.name)
	} else if err != nil {
		return v1.Descriptor{}, err
	}
	if time.Since(read) < cacheFillWithin {
		bs.cacheLink(ctx, d, fi.Size)
	}
	return blobDescriptor(d, fi.Size), nil
}

// cacheFillWithin bounds how long a lookup may take from its store read to
// caching what it read. A shared cache refuses values for a while after a
// delete (a minute in cache.Redis), so that a lookup which read before the
// delete cannot put the entry back; that holds only for lookups quicker
// than the while, and an object store's request may be retried for
// minutes.
var cacheFillWithin = 20 * time.Second // a variable for the tests

// Open returns a reader over a blob linked into the repository.
func (bs *BlobStore) Open(ctx context.Context, d digest.Digest) (*BlobReader, error) {
	desc, err := bs.Stat(ctx, d)
	if err != nil {
		return nil, err
	}
	return &BlobReader{ctx: ctx, drv: bs.driver(), path: blobPath(d), desc: desc}, nil
}

// Delete unlinks a blob from the repository; the bytes stay for the
// garbage collector, since other repositories may hold them. A blob an
// immutable release holds stays (DENIED). Nothing orders this delete with
// a push: one racing it may check the blob, then tag a release after the
// look, which then misses the link (as any push racing a blob delete
// does) until the blob is pushed again (its bytes stay) or fsck repairs.
func (bs *BlobStore) Delete(ctx context.Context, d digest.Digest) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if ms := bs.repo.Manifests(); ms.releasesMayHold() {
		// A blob the repository does not link is unknown, release or not.
		if gone, err := objectGone(ctx, bs.driver(), layerLinkPath(bs.repo.name, d)); err != nil {
			return err
		} else if gone {
			return newError(CodeBlobUnknown, "blob %s unknown to repository %s", d, bs.repo.name)
		}
		if err := ms.checkReleases(ctx, "blob", d); err != nil {
			return err
		}
	}
	err := bs.driver().Delete(ctx, layerLinkPath(bs.repo.name, d))
	// Invalidate even when the link was already gone: a stale entry may remain.
	bs.repo.reg.cacheDelete(ctx, linkKey(bs.repo.name, d.String()))
	if driver.IsNotFound(err) {
		return newError(CodeBlobUnknown, "blob %s unknown to repository %s", d, bs.repo.name)
	}
	if err != nil {
		return err
	}
	// Acknowledged deletes stay deleted: a crash must not bring the link
	// back.
	return driver.PersistRemovals(ctx, bs.driver(), path.Dir(layerLinkPath(bs.repo.name, d)))
}

// Mount links a blob into this repository without moving bytes. from names
// the source repository; empty means any repository of the registry. It
// returns BLOB_UNKNOWN when the source does not have the blob.
func (bs *BlobStore) Mount(ctx context.Context, from string, d digest.Digest) (v1.Descriptor, error) {
	if err := checkDigest(d); err != nil {
		return v1.Descriptor{}, err
	}
	// Guarded against a garbage collection in progress (gcguard.go).
	guard, err := bs.repo.reg.guardWrite(ctx, d)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var size int64
	if from != "" {
		src, err := bs.repo.reg.Repository(from)
		if err != nil {
			return v1.Descriptor{}, err
		}
		desc, err := src.Blobs().Stat(ctx, d)
		if err != nil {
			return v1.Descriptor{}, err
		}
		size = desc.Size
		// The source's link may come from the cache; the bytes must exist.
		if _, err := driver.StatObject(ctx, bs.driver(), blobPath(d)); driver.IsNotFound(err) {
			return v1.Descriptor{}, newError(CodeBlobUnknown, "blob %s unknown to the registry", d)
		} else if err != nil {
			return v1.Descriptor{}, err
		}
	} else {
		fi, err := driver.StatObject(ctx, bs.driver(), blobPath(d))
		if driver.IsNotFound(err) {
			return v1.Descriptor{}, newError(CodeBlobUnknown, "blob %s unknown to the registry", d)
		}
		if err != nil {
			return v1.Descriptor{}, err
		}
		size = fi.Size
	}
	linked := false
	if q := bs.repo.reg.quotas; q != nil {
		hold, err := q.admit(ctx, bs.repo.name, d, size, true)
		if err != nil {
			return v1.Descriptor{}, err
		}
		defer func() { hold.done(linked) }()
	}
	// The bytes may be a push's not durable yet: they are made so with the
	// link.
	bctx, batch := driver.WithBatch(ctx)
	if err := driver.Persist(bctx, bs.driver(), blobPath(d)); err != nil {
		return v1.Descriptor{}, err
	}
	if err := bs.link(bctx, d); err != nil {
		return v1.Descriptor{}, err
	}
	if err := batch.Commit(); err != nil {
		return v1.Descriptor{}, err
	}
	linked = true
	if err := guard.settle(ctx, func(ctx context.Context) error { return bs.ensureMounted(ctx, d) }); err != nil {
		return v1.Descriptor{}, err
	}
	bs.cacheLink(ctx, d, size)
	return blobDescriptor(d, size), nil
}

// Put stores a whole blob in one call and checks it against d. It is an
// upload session that never needs its state written, since it ends within
// the call.
func (bs *BlobStore) Put(ctx context.Context, d digest.Digest, r io.Reader) (v1.Descriptor, error) {
	if err := checkDigest(d); err != nil {
		return v1.Descriptor{}, err
	}
	if q := bs.repo.reg.quotas; q != nil {
		// Before the body is read.
		if err := q.mayStart(ctx, bs.repo.name, d); err != nil {
			return v1.Descriptor{}, err
		}
	}
	u := bs.newUpload([]digest.Algorithm{d.Algorithm()})
	u.private = true
	if _, err := u.write(ctx, r, -1, true); err != nil {
		_ = bs.driver().Delete(context.WithoutCancel(ctx), uploadDataPath(bs.repo.name, u.state.ID))
		return v1.Descriptor{}, err
	}
	desc, err := u.finish(ctx, d, -1, true)
	if err != nil {
		_ = bs.driver().Delete(context.WithoutCancel(ctx), uploadDataPath(bs.repo.name, u.state.ID))
	}
	return desc, err
}

// putWhole publishes a blob the caller staged (driver.Stage) after finding
// d missing, or nil when d was stored already, and links it into the
// repository: one write to its address instead of a session's data file,
// commit, move and removal; durable on return, or at a batch's Commit. A concurrent push of the same bytes may
// put its copy over this one: readers see either, and both are whole.
// alongside, when set, runs while the link is written (a manifest's
// record): it may need the bytes to be visible, never the link. Both follow
// the bytes, so a reader (or an online fsck) never meets a link or record
// whose blob is not yet there. The caller holds a guard that covers d from
// before its check (gcguard.go) and settles it with ensureStored, which
// also puts back bytes collected meanwhile. The caller also registers the
// repository (Repository.register) once the link is published: a
// manifest push does so beside its tags, where on an object store it
// costs no round trip of its own.
func (bs *BlobStore) putWhole(ctx context.Context, d digest.Digest, staged driver.Staged, alongside func(context.Context) error) error {
	if staged != nil {
		if err := staged.Publish(ctx); err != nil {
			return err
		}
	} else if err := driver.Persist(ctx, bs.driver(), blobPath(d)); err != nil {
		// Stored already, maybe by a push whose bytes are not durable yet.
		return err
	}
	return together(ctx, func(ctx context.Context) error { return bs.linkOnly(ctx, d) }, alongside)
}

// together runs a and b (b may be nil) at once and returns a's error, else
// b's: two durable writes side by side share the syncs that make them
// durable, and two requests to an object store cost one round trip.
func together(ctx context.Context, a, b func(context.Context) error) error {
	if b == nil {
		return a(ctx)
	}
	done := make(chan error, 1)
	go func() { done <- b(ctx) }()
	aerr := a(ctx)
	berr := <-done
	if aerr != nil {
		return aerr
	}
	return berr
}

// link records the blob in the repository. The link is empty: a file
// system makes an empty file durable without syncing any bytes, which
// halves the syncs of a small blob's push, and the size is the blob's own.
func (bs *BlobStore) link(ctx context.Context, d digest.Digest) error {
	if err := bs.linkOnly(ctx, d); err != nil {
		return err
	}
	// Only after the link: the collector's catalog sweep counts on writers
	// checking the marker once their content is visible (sweepCatalog).
	return bs.repo.register(ctx)
}

// linkOnly writes the link, leaving the repository's registration to the
// caller (see link).
func (bs *BlobStore) linkOnly(ctx context.Context, d digest.Digest) error {
	return bs.driver().PutContent(ctx, layerLinkPath(bs.repo.name, d), nil)
}

// cacheLink tells the shared cache the repository holds d, once its link
// is durable (after a batch's Commit): a crash before then could leave the
// cache naming a link that is gone, for every replica.
func (bs *BlobStore) cacheLink(ctx context.Context, d digest.Digest, size int64) {
	if bs.repo.reg.cache == nil {
		return // (the key costs an allocation)
	}
	bs.repo.reg.cacheSet(ctx, linkKey(bs.repo.name, d.String()), strconv.AppendInt(nil, size, 10), linkTTL)
}

func blobDescriptor(d digest.Digest, size int64) v1.Descriptor {
	return v1.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: size}
}

// checkDigest refuses digests the store cannot address, so a malformed one
// never reaches a storage path.
func checkDigest(d digest.Digest) error {
	_, err := ParseDigest(string(d))
	return err
}
