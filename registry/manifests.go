package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
)

// ManifestStore holds a repository's manifests, tags and referrers.
//
// A manifest's bytes live in the content store like any blob; the repository
// keeps a small record of it (manifestRecord), its tags, and one referrer
// entry under its subject. Writes go payload → record → tags and referrer
// entry, and deletes go the other way, so a reader never finds a tag without
// its record or a record without its bytes (on a driver that defers
// durability, a crash can keep a record without its bytes, which then reads
// as absent: see Put and Stat). A push of
// a tag onto a manifest being deleted by digest may land after the delete
// listed the manifest's tags: settlePut and afterDelete (gchooks.go) settle
// that race so that no tag is left pointing at nothing.
type ManifestStore struct {
	repo *Repository
}

// Manifest is a stored manifest: its bytes exactly as pushed, and its
// descriptor (media type, digest, size, artifact type).
type Manifest struct {
	Descriptor v1.Descriptor
	Payload    []byte
	// Subject is the manifest's subject, if it has one.
	Subject *v1.Descriptor
}

// manifestRecord is what the repository keeps about one of its manifests at
// manifestLinkPath: what HEAD needs, and the subject so that a delete can
// find the referrer entry without reading the payload.
type manifestRecord struct {
	v1.Descriptor
	Subject *v1.Descriptor `json:"subject,omitempty"`
}

// MaxManifestSize is the largest manifest payload Put accepts. The HTTP layer
// reads at most one byte more, so an oversized body is refused unread.
func (r *Registry) MaxManifestSize() int64 { return r.maxMan }

func (ms *ManifestStore) driver() driver.Driver { return ms.repo.reg.driver }

// Get returns the manifest named by reference, a tag or a digest.
func (ms *ManifestStore) Get(ctx context.Context, reference string) (*Manifest, error) {
	rec, err := ms.resolve(ctx, reference)
	if err != nil {
		return nil, ms.explain(ctx, err)
	}
	payload, err := ms.payload(ctx, rec, reference)
	if err != nil {
		return nil, err
	}
	return &Manifest{Descriptor: rec.Descriptor, Payload: payload, Subject: rec.Subject}, nil
}

// payload returns the bytes of the manifest rec records, which reference
// named: from the cache, else from the store.
func (ms *ManifestStore) payload(ctx context.Context, rec manifestRecord, reference string) ([]byte, error) {
	if payload, cached := ms.repo.reg.manifests.payload(rec.Digest.String()); cached {
		return payload, nil
	}
	payload, err := ms.driver().GetContent(ctx, blobPath(rec.Digest))
	if driver.IsNotFound(err) {
		// A crash before a push's first barrier can keep the record
		// without the bytes (Put): the push was not acknowledged, and
		// the manifest is not there.
		return nil, manifestUnknown(ms.repo.name, reference)
	}
	if err != nil {
		return nil, err
	}
	// Checked once per read from the store, a few microseconds for a
	// manifest: bytes damaged on disk must not be served under a digest
	// they do not have. A push of the right bytes mends them.
	if int64(len(payload)) != rec.Size || rec.Digest.Algorithm().FromBytes(payload) != rec.Digest {
		return nil, errors.New("registry: manifest bytes of " + rec.Digest.String() + " are damaged (they do not match their digest): push the manifest again, and see lading fsck")
	}
	ms.repo.reg.manifests.putPayload(rec.Digest.String(), payload)
	return payload, nil
}

// Stat describes the manifest named by reference without its payload: the
// record (a stat when cached), after the tag's read for a tag, and on a
// driver that defers durability a stat of the bytes, which a record may
// have outlived a crash without there (see Put), unless this process holds
// them. On others the bytes are durable before the record is written.
func (ms *ManifestStore) Stat(ctx context.Context, reference string) (v1.Descriptor, error) {
	rec, err := ms.resolve(ctx, reference)
	if err != nil {
		return v1.Descriptor{}, ms.explain(ctx, err)
	}
	if _, cached := ms.repo.reg.manifests.payload(rec.Digest.String()); cached || !ms.repo.reg.deferring {
		// Bytes this process has held were there, durable, since it
		// started: no crash since can have lost them.
		return rec.Descriptor, nil
	}
	if _, err := driver.StatObject(ctx, ms.driver(), blobPath(rec.Digest)); driver.IsNotFound(err) {
		return v1.Descriptor{}, manifestUnknown(ms.repo.name, reference)
	} else if err != nil {
		return v1.Descriptor{}, err
	}
	return rec.Descriptor, nil
}

// Put validates payload and stores it under reference: a tag, or the digest
// of payload (in any supported algorithm; a mismatch is DIGEST_INVALID).
// mediaType is the request's Content-Type; the payload's own mediaType field
// wins when present, and the two must agree. tags are further tags to point
// at the manifest (the `?tag=` parameters of a push by digest); all tags are
// validated before anything is written.
//
// Accepted: OCI image manifest and index, Docker schema 2 manifest and
// manifest list, stored byte-exact. Config and layers must be blobs of the
// repository (MANIFEST_BLOB_UNKNOWN), except non-distributable layers; index
// children must be manifests (or blobs) of the repository; the subject need
// not exist. Payloads over MaxManifestSize are MANIFEST_TOO_LARGE.
func (ms *ManifestStore) Put(ctx context.Context, reference, mediaType string, payload []byte, tags ...string) (*Manifest, error) {
	return ms.put(ctx, reference, mediaType, payload, false, tags)
}

// put is Put; lazy leaves out the checks that what the manifest references
// is stored (see Fill).
func (ms *ManifestStore) put(ctx context.Context, reference, mediaType string, payload []byte, lazy bool, tags []string) (*Manifest, error) {
	if int64(len(payload)) > ms.repo.reg.maxMan {
		return nil, newError(CodeManifestTooLarge, "manifest is %d bytes, the limit is %d", len(payload), ms.repo.reg.maxMan)
	}
	var d digest.Digest
	if isDigestReference(reference) {
		want, err := ParseDigest(reference)
		if err != nil {
			return nil, err
		}
		if d = want.Algorithm().FromBytes(payload); d != want {
			return nil, &Error{Code: CodeDigestInvalid, Message: "manifest does not match digest " + reference, Detail: map[string]string{"digest": reference}}
		}
	} else {
		tags = append([]string{reference}, tags...)
		d = digest.Canonical.FromBytes(payload)
	}
	if len(tags) > MaxTagsPerPush {
		return nil, newError(CodeTagInvalid, "%d tags in one push; the limit is %d", len(tags), MaxTagsPerPush)
	}
	for _, t := range tags {
		if err := ValidateTag(t); err != nil {
			return nil, err
		}
	}
	m, err := parseManifest(payload, mediaType)
	if err != nil {
		return nil, err
	}
	releaseTags, err := ms.holdImmutable(ctx, d, tags)
	if err != nil {
		return nil, err
	}
	defer releaseTags()
	guard, err := ms.guardPut(ctx, d, m)
	if err != nil {
		return nil, err
	}
	if guard.pinnedIn != "" {
		if err := ms.guardClosure(ctx, guard, d, m, !lazy); err != nil {
			return nil, err
		}
	}
	var refPaths []string
	check := func(ctx context.Context) (err error) {
		refPaths, err = ms.checkReferences(ctx, m)
		return err
	}
	if lazy {
		check = func(context.Context) error { return nil }
	}
	// On an object store, where each request is a round trip, the bytes
	// and the references' checks go while the lock is taken. The bytes
	// are content-addressed, the same whoever writes them, and ones a
	// failed push leaves are the collector's (the guard covers them from
	// here). On a file system they wait for the batch below, which makes
	// them durable with the rest.
	var early, checked *inFlight
	if !ms.repo.reg.deferring {
		early = start(ctx, createPayload{ms.driver(), blobPath(d), payload}.Publish)
		defer early.wait()
		checked = start(ctx, check)
		defer checked.wait()
	}
	unlock, waited, err := ms.lockManifest(ctx, d, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	defer func() {
		if m.typed {
			ms.tagsChanged(tags...)
		} else {
			// A record an earlier version stored as Docker for these bytes
			// is rewritten: other tags may name it.
			ms.repo.reg.tags.forgetAll()
		}
	}()
	// On a file system, whether the bytes are stored already is read
	// beside the references' checks (which take precedence), so stored
	// bytes are not written again. An object store is not asked: the
	// bytes go with a conditional create (createPayload), one request
	// where a look and a write would be two.
	stored := false
	var isStored func(context.Context) error
	if ms.repo.reg.deferring {
		isStored = func(ctx context.Context) error {
			fi, err := driver.StatObject(ctx, ms.driver(), blobPath(d))
			if driver.IsNotFound(err) {
				return nil
			} else if err != nil {
				return err
			}
			// Bytes damaged on disk are written again: a size that
			// differs tells at once, else a read of a few KiB does.
			stored = fi.Size == int64(len(payload)) && storedAre(ctx, ms.driver(), blobPath(d), payload)
			return nil
		}
	}
	if checked != nil {
		if err = checked.wait(); err == nil && waited {
			// Another push or delete of this manifest (an index whose
			// children a cleanup deletes) held it meanwhile, for up to
			// lockManifestWait: what it names is checked again, as
			// close to the writes as a push that found it free.
			err = check(ctx)
		}
	} else {
		err = together(ctx, check, isStored)
	}
	if err != nil {
		return nil, err
	}
	rec := manifestRecord{
		Descriptor: v1.Descriptor{MediaType: m.mediaType, Digest: d, Size: int64(len(payload)), ArtifactType: m.artifactType},
		Subject:    m.subject,
	}
	// The bytes of every write are staged side by side first, so the push
	// pays for one round of syncs (on a file system, at the first Publish),
	// then published in two steps, each made durable by one barrier
	// (driver.Batch):
	//
	//  1. the payload, its link, the record and the tags' markers. A
	//     crash may keep any subset of them, and every subset reads as a
	//     manifest not there (Stat and Get check the bytes behind a record;
	//     a marker without its record is ignored), while readers meet them
	//     in this order.
	//  2. the tags and the subject's referrer entry, which are read without
	//     a look at the record and so must never outlive a crash that loses
	//     what they point at; beside them, the repository's catalog marker
	//     (fsck puts back one a crash loses).
	writes, err := ms.stageWrites(ctx, d, payload, stored, early, rec, m, tags)
	if err != nil {
		return nil, err
	}
	defer writes.discard()
	bctx, batch := driver.WithBatch(ctx)
	// What the manifest names may be another push's not durable yet (a
	// link made, its sync still running): it is made durable with the
	// manifest, which must not outlive it in a crash.
	for _, p := range refPaths {
		if err := driver.Persist(bctx, ms.driver(), p); err != nil {
			return nil, err
		}
	}
	marked := make(chan error, 1)
	go func() {
		marked <- forEach(len(tags), func(i int) error {
			return ms.driver().PutContent(bctx, tagRefPath(ms.repo.name, d, tags[i]), nil)
		})
	}()
	err = ms.repo.Blobs().putWhole(bctx, d, writes.payload, writes.record.Publish)
	if merr := <-marked; err == nil {
		err = merr
	}
	if err == nil {
		err = batch.Commit()
	}
	if err != nil {
		return nil, err
	}
	// The tags, the referrer entry and the repository's registration
	// (after the link, see putWhole) are independent of one another.
	second := make([]func(context.Context) error, 0, len(writes.tags)+2)
	for _, t := range writes.tags {
		second = append(second, t.Publish)
	}
	if writes.referrer != nil {
		second = append(second, writes.referrer.Publish)
	}
	second = append(second, ms.repo.register)
	err = forEach(len(second), func(i int) error { return second[i](bctx) })
	if err == nil {
		err = batch.Commit()
	}
	if err != nil {
		return nil, err
	}
	if err := ms.settlePut(ctx, guard, rec, m, payload, tags, lazy); err != nil {
		return nil, err
	}
	ms.repo.reg.manifests.putPayload(d.String(), bytes.Clone(payload)) // the caller's buffer may be reused
	ms.repo.reg.manifests.putRecord(manifestLinkPath(ms.repo.name, d), writes.recordSize, rec)
	return &Manifest{Descriptor: rec.Descriptor, Payload: payload, Subject: rec.Subject}, nil
}

// storedAre reports whether the bytes stored at path are payload; a read
// that fails says no, and the push writes them again.
func storedAre(ctx context.Context, drv driver.Driver, path string, payload []byte) bool {
	got, err := drv.GetContent(ctx, path)
	return err == nil && bytes.Equal(got, payload)
}

// stagedWrites are a manifest push's writes with content, staged.
type stagedWrites struct {
	payload    driver.Staged // nil when the bytes were stored already
	record     driver.Staged
	recordSize int64
	referrer   driver.Staged // nil without a subject
	tags       []driver.Staged
}

// stageWrites stages a push's writes with content all at once; the payload
// only when it was not stored already, or was written early.
func (ms *ManifestStore) stageWrites(ctx context.Context, d digest.Digest, payload []byte, stored bool, early *inFlight, rec manifestRecord, m *parsedManifest, tags []string) (*stagedWrites, error) {
	drv := ms.driver()
	w := &stagedWrites{tags: make([]driver.Staged, len(tags))}
	type write struct {
		to      *driver.Staged
		path    string
		content []byte
	}
	recBytes, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	w.recordSize = int64(len(recBytes))
	list := []write{{&w.record, manifestLinkPath(ms.repo.name, d), recBytes}}
	if early != nil {
		w.payload = early // an object store's (see put)
	} else if !stored {
		list = append(list, write{&w.payload, blobPath(d), payload})
	}
	if m.subject != nil {
		entry, err := ms.referrerEntry(m, rec.Descriptor)
		if err != nil {
			return nil, err
		}
		list = append(list, write{&w.referrer, referrerPath(ms.repo.name, m.subject.Digest, d), entry})
	}
	for i, t := range tags {
		list = append(list, write{&w.tags[i], tagPath(ms.repo.name, t), []byte(d)})
	}
	err = forEach(len(list), func(i int) (err error) {
		*list[i].to, err = driver.Stage(ctx, drv, list[i].path, list[i].content)
		return err
	})
	if err != nil {
		w.discard()
		return nil, err
	}
	return w, nil
}

// createPayload publishes a manifest's bytes unless they are stored
// already: content-addressed bytes there are the same bytes.
type createPayload struct {
	drv     driver.Driver
	path    string
	content []byte
}

func (c createPayload) Publish(ctx context.Context) error {
	if err := c.drv.Create(ctx, c.path, c.content); !errors.Is(err, driver.ErrExists) {
		return err
	}
	// Stored already: the same bytes, unless damaged (a bad restore), which
	// a push of the right ones mends, as on a file system (see Put).
	if storedAre(ctx, c.drv, c.path, c.content) {
		return nil
	}
	return c.drv.PutContent(ctx, c.path, c.content)
}

func (createPayload) Discard() {}

// inFlight is a write begun before its turn (start): its Publish is its
// result.
type inFlight struct {
	done chan struct{}
	err  error
}

// start runs f at once, apart from the caller. A panic in f is its error,
// as net/http would have caught it on the request's own goroutine.
func start(ctx context.Context, f func(context.Context) error) *inFlight {
	w := &inFlight{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer func() {
			if p := recover(); p != nil {
				w.err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		w.err = f(ctx)
	}()
	return w
}

// wait returns f's error once it has returned; a request waits for what
// it began before it answers.
func (w *inFlight) wait() error {
	<-w.done
	return w.err
}

func (w *inFlight) Publish(context.Context) error { return w.wait() }

func (*inFlight) Discard() {}

// discard drops whatever was not published; Discard after Publish is a
// no-op.
func (w *stagedWrites) discard() {
	for _, s := range append([]driver.Staged{w.payload, w.record, w.referrer}, w.tags...) {
		if s != nil {
			s.Discard()
		}
	}
}

// lockManifestWait bounds how long a push or a digest delete waits for
// another's of the same manifest: past it the answer is TOOMANYREQUESTS
// (429), which clients retry. A variable for the tests.
var lockManifestWait = 30 * time.Second

// lockManifest holds manifest d of the repository for a push or a digest
// delete. Interleaved, their writes can leave a tag naming a deleted
// manifest, an acknowledged push whose manifest stands without its tag, or
// a referrers list naming a deleted manifest; no order of the writes
// alone prevents all three. Held in turn, each sees the other's finished
// work. The push's settle and the delete's second pass (afterDelete) stay:
// they mend a crash, a lapsed lease, and a `lading gc` process beside a
// server on a file system without Redis, whose locks are in the server's
// memory.
//
// Requests of this process queue for the key in memory and are handed it
// in turn; the first in line polls the Locker, which another process or
// replica may hold. With wait, until lockManifestWait has passed; without,
// a held key is TOOMANYREQUESTS at once. Two pushes of one manifest
// (under different tags) also take turns: the lock cannot tell them from
// a delete.
// waited says another request held the manifest first.
func (ms *ManifestStore) lockManifest(ctx context.Context, d digest.Digest, wait bool) (unlock func(), waited bool, _ error) {
	return ms.lockKey(ctx, manifestLockKey(ms.repo.name, d), "manifest "+d.String(), wait, func() error {
		return newError(CodeTooManyRequests, "manifest %s is being pushed or deleted by another request; try again", d)
	})
}

// lockKey takes the lock on key, which guards what (for logs), as
// lockManifest does, answering busy when it stays held.
func (ms *ManifestStore) lockKey(ctx context.Context, key, what string, wait bool, busy func() error) (_ func(), waited bool, _ error) {
	reg := ms.repo.reg
	deadline := time.Now().Add(lockManifestWait)
	if !wait {
		deadline = time.Time{}
	}
	release, err := reg.manifestQueue.lock(ctx, key, deadline, func(key string) {
		waited = true
		if reg.lockWaited != nil {
			reg.lockWaited(key)
		}
	})
	if errors.Is(err, errQueueTimeout) {
		return nil, waited, busy()
	}
	if err != nil {
		return nil, waited, err
	}
	pause := 2 * time.Millisecond
	for {
		unlock, lost, err := tryLock(ctx, reg.locker, key)
		if err == nil {
			return func() {
				defer release() // even past a panic in unlock: the slot has no expiry
				select {
				case <-lost:
					// Another request may have held the manifest
					// meanwhile; the push's settle and the delete's
					// second pass mend what that interleaving breaks.
					reg.log.Warn("a lock lapsed or could not be renewed while held", "repository", ms.repo.name, "lock", what)
				default:
				}
				unlock()
			}, waited, nil
		}
		if !errors.Is(err, ErrLocked) {
			release()
			return nil, waited, err
		}
		waited = true
		if reg.lockWaited != nil {
			reg.lockWaited(key)
		}
		if !wait || time.Now().Add(pause).After(deadline) {
			release()
			return nil, waited, busy()
		}
		// Jittered, so replicas polling one lease do not ask in step.
		t := time.NewTimer(pause/2 + rand.N(pause))
		select {
		case <-ctx.Done():
			t.Stop()
			release()
			return nil, waited, context.Cause(ctx)
		case <-t.C:
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// Delete removes a tag, or a manifest by digest together with its tags and
// its referrer entry. The manifest's bytes stay for the garbage collector.
//
// A digest delete removes the tags first and the record last, so an
// interrupted delete leaves at worst an untagged manifest, never a tag
// pointing at nothing.
func (ms *ManifestStore) Delete(ctx context.Context, reference string) error {
	return ms.delete(ctx, reference, true)
}

// delete is Delete; only when durable is the removal durable on return
// (the collector's need not be: what a crash brings back, the next run
// removes again).
func (ms *ManifestStore) delete(ctx context.Context, reference string, durable bool) error {
	if !isDigestReference(reference) {
		if err := ValidateTag(reference); err != nil {
			return err
		}
		release, err := ms.holdTagDelete(ctx, reference)
		if err != nil {
			return err
		}
		defer release()
		defer ms.tagsChanged(reference)
		err = ms.driver().Delete(ctx, tagPath(ms.repo.name, reference))
		if driver.IsNotFound(err) {
			return ms.explain(ctx, manifestUnknown(ms.repo.name, reference))
		}
		if err != nil || !durable {
			return err
		}
		// Acknowledged deletes stay deleted: a crash must not bring the
		// tag back.
		return driver.PersistRemovals(ctx, ms.driver(), tagsPath(ms.repo.name))
	}
	d, err := ParseDigest(reference)
	if err != nil {
		return err
	}
	// The collector does not wait: a manifest being pushed is in use.
	unlock, _, err := ms.lockManifest(ctx, d, durable)
	if err != nil {
		return err
	}
	defer unlock()
	// The collector removes manifests no tag names; a push racing it
	// puts its tags back (settlePut).
	if durable {
		if err := ms.checkDigestDelete(ctx, d); err != nil {
			return err
		}
	}
	return ms.deleteDigest(ctx, d, durable)
}

// deleteDigest is a delete by digest; the caller holds the manifest's lock.
func (ms *ManifestStore) deleteDigest(ctx context.Context, d digest.Digest, durable bool) error {
	rec, err := ms.record(ctx, d)
	if err != nil {
		return ms.explain(ctx, err)
	}
	if err := ms.untag(ctx, d); err != nil {
		return err
	}
	if rec.Subject != nil {
		if err := ms.removeReferrer(ctx, rec.Subject.Digest, d); err != nil {
			return err
		}
	}
	// The tags' and the entry's removal are durable before the record's,
	// which a crash could otherwise keep alone: the tags would name
	// nothing. (The collector removes manifests no tag names.)
	dirs := []string{tagsPath(ms.repo.name)}
	if rec.Subject != nil {
		dirs = append(dirs, path.Dir(referrerPath(ms.repo.name, rec.Subject.Digest, d)))
	}
	if durable {
		if err := ms.persistRemovals(ctx, dirs...); err != nil {
			return err
		}
	}
	if err := driver.RemoveObject(ctx, ms.driver(), manifestLinkPath(ms.repo.name, d)); err != nil {
		return err
	}
	// A concurrent delete may have got there first; the outcome is the same.
	if err := ms.afterDelete(ctx, d); err != nil || !durable {
		return err
	}
	// Acknowledged deletes stay deleted: a crash must not bring back the
	// manifest, or the tags and entry the second pass took.
	return ms.persistRemovals(ctx, append(dirs, path.Dir(manifestLinkPath(ms.repo.name, d)))...)
}

// persistRemovals makes the removals in dirs durable, with one sync.
func (ms *ManifestStore) persistRemovals(ctx context.Context, dirs ...string) error {
	bctx, batch := driver.WithBatch(ctx)
	for _, dir := range dirs {
		if err := driver.PersistRemovals(bctx, ms.driver(), dir); err != nil {
			return err
		}
	}
	return batch.Commit()
}

// resolve finds the record of the manifest named by reference.
func (ms *ManifestStore) resolve(ctx context.Context, reference string) (manifestRecord, error) {
	if isDigestReference(reference) {
		d, err := ParseDigest(reference)
		if err != nil {
			return manifestRecord{}, err
		}
		return ms.record(ctx, d)
	}
	tags := ms.repo.reg.tags
	var key string
	var now time.Time
	var since uint64
	if tags != nil { // (the key costs an allocation)
		key, now = tagKey(ms.repo.name, reference), ms.repo.reg.now()
		if rec, ok := tags.get(key, now); ok {
			return rec, nil
		}
		since = tags.begin()
	}
	d, err := ms.tagDigest(ctx, reference)
	if err != nil {
		return manifestRecord{}, err
	}
	rec, err := ms.record(ctx, d)
	if err == nil {
		tags.fill(key, since, rec, now)
	}
	return rec, err
}

// record reads the repository's record of manifest d: a stat when this
// process holds a record of the same size (see manifestCache).
func (ms *ManifestStore) record(ctx context.Context, d digest.Digest) (manifestRecord, error) {
	var rec manifestRecord
	p := manifestLinkPath(ms.repo.name, d)
	if cached, ok := ms.repo.reg.manifests.record(p); ok {
		fi, err := driver.StatObject(ctx, ms.driver(), p)
		switch {
		case driver.IsNotFound(err):
			return rec, manifestUnknown(ms.repo.name, d.String())
		case err != nil:
			return rec, err
		case fi.Size == cached.size:
			return cached.rec, nil
		}
	}
	b, err := ms.driver().GetContent(ctx, p)
	if driver.IsNotFound(err) {
		return rec, manifestUnknown(ms.repo.name, d.String())
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Digest != d {
		return rec, errors.Join(errors.New("registry: corrupt manifest record "+p), err)
	}
	ms.repo.reg.manifests.putRecord(p, int64(len(b)), rec)
	return rec, nil
}

func (ms *ManifestStore) writeRecord(ctx context.Context, rec manifestRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return ms.driver().PutContent(ctx, manifestLinkPath(ms.repo.name, rec.Digest), b)
}

func manifestUnknown(repo, reference string) *Error {
	return &Error{Code: CodeManifestUnknown, Message: "manifest " + reference + " unknown to repository " + repo}
}

// explain turns MANIFEST_UNKNOWN into NAME_UNKNOWN when the repository itself
// does not exist: one stat, paid only on a miss.
func (ms *ManifestStore) explain(ctx context.Context, err error) error {
	if !errors.Is(err, ErrManifestUnknown) {
		return err
	}
	if exists, serr := ms.repo.exists(ctx); serr == nil && !exists {
		return nameUnknown(ms.repo.name)
	}
	return err
}

// checkReferences verifies that the repository holds what m points at,
// and returns the paths that hold it: each reference's bytes and the link
// or record that made it found.
func (ms *ManifestStore) checkReferences(ctx context.Context, m *parsedManifest) ([]string, error) {
	var refs []reference
	seen := map[digest.Digest]bool{}
	for _, r := range m.references() {
		if r.kind != refExternal && !seen[r.desc.Digest] {
			seen[r.desc.Digest] = true
			refs = append(refs, r)
		}
	}
	found := make([]string, len(refs))
	// The first failure in document order, so the answer is deterministic;
	// the references after a failed one are not looked at (on an object
	// store, two requests each: a manifest naming thousands of missing
	// blobs would cost thousands).
	var failed atomic.Int64
	failed.Store(math.MaxInt64)
	err := forEach(len(refs), func(i int) (err error) {
		if int64(i) > failed.Load() {
			return nil
		}
		if found[i], err = ms.checkReference(ctx, refs[i]); err != nil {
			for cur := failed.Load(); int64(i) < cur && !failed.CompareAndSwap(cur, int64(i)); cur = failed.Load() {
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, 2*len(refs))
	for i, r := range refs {
		paths = append(paths, blobPath(r.desc.Digest), found[i])
	}
	return paths, nil
}

// checkReference verifies one reference and returns the link or record
// through which it was found.
func (ms *ManifestStore) checkReference(ctx context.Context, r reference) (string, error) {
	d := r.desc.Digest
	if r.kind == refManifest {
		desc, err := ms.Stat(ctx, d.String())
		if err == nil {
			return manifestLinkPath(ms.repo.name, d), checkSize(r, desc.Size)
		} else if !IsUnknown(err) {
			return "", err
		}
	}
	// From the store: a cache may hold a link a collection removed.
	desc, err := ms.repo.Blobs().stat(ctx, d, false)
	if err != nil {
		if IsUnknown(err) || errors.Is(err, ErrDigestInvalid) {
			what := "blob"
			if r.kind == refManifest {
				what = "manifest"
			}
			return "", &Error{Code: CodeManifestBlobUnknown, Message: what + " " + d.String() + " unknown to repository " + ms.repo.name, Detail: map[string]string{"digest": d.String()}}
		}
		return "", err
	}
	return layerLinkPath(ms.repo.name, d), checkSize(r, desc.Size)
}

// checkSize refuses a descriptor whose size is not what is stored.
func checkSize(r reference, stored int64) error {
	if stored != r.desc.Size {
		d := r.desc.Digest
		return &Error{Code: CodeManifestInvalid, Message: "descriptor " + d.String() + " has the wrong size", Detail: map[string]any{"digest": d.String(), "size": r.desc.Size, "stored": stored}}
	}
	return nil
}

// objectGone reports whether nothing is at path: a look that finds the
// object, or fails otherwise, says false.
func objectGone(ctx context.Context, drv driver.Driver, path string) (bool, error) {
	_, err := driver.StatObject(ctx, drv, path)
	if driver.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

// IsUnknown reports whether err says a blob, manifest or repository is not
// there, as opposed to a failure to find out.
func IsUnknown(err error) bool {
	return errors.Is(err, ErrBlobUnknown) || errors.Is(err, ErrManifestUnknown) || errors.Is(err, ErrNameUnknown)
}

// isDigestReference tells a digest from a tag: tags cannot hold ':'.
func isDigestReference(reference string) bool { return strings.Contains(reference, ":") }
