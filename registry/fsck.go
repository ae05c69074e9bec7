package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path"
	"slices"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
)

// FsckOptions configure a check of the store.
type FsckOptions struct {
	// Repair fixes what can be fixed without losing anything readable:
	// dangling tags, links and referrer entries go, corrupt blobs go with
	// their links (so clients upload them again), manifest records without
	// their bytes go with the tags naming them, wrong link sizes are
	// rewritten, corrupt manifest records and referrer entries are written
	// again from the manifest's intact bytes, lost catalog markers are
	// written again, and a blob a manifest uses whose bytes are stored but
	// whose link the repository lost is linked again. A manifest whose
	// layers' bytes are missing, and what cannot be read, are only
	// reported: an operator must act (push the image again).
	Repair bool
	// Mirror says the store is a pull-through cache's (proxy.remoteurl),
	// which fetches what a manifest references when a client asks for it:
	// a reference not stored, or not linked, is no problem there. Bytes
	// stored corrupt still are.
	Mirror bool
	// Problem, when set, is called for each problem found.
	Problem func(FsckProblem)
	// Progress, when set, is called now and then with the counts so far.
	Progress func(FsckReport)
}

// FsckProblem is one inconsistency.
type FsckProblem struct {
	Kind       string // one of the Problem constants
	Repository string
	Path       string
	Digest     digest.Digest
	Detail     string
	// Tags are the tags naming the manifest that a repair removes with it:
	// those it removed when Repaired. Pushing them again restores them.
	Tags []string
	// Repaired is set when Repair fixed it.
	Repaired bool
}

// Kinds of FsckProblem.
const (
	ProblemCorruptBlob      = "corrupt blob"
	ProblemUnexpectedObject = "unexpected object"
	ProblemDanglingLink     = "dangling link"
	ProblemLinkSize         = "wrong link size"
	ProblemDanglingTag      = "dangling tag"
	ProblemCorruptRecord    = "corrupt manifest record"
	ProblemCorruptReferrer  = "corrupt referrer entry"
	ProblemUnreadable       = "unreadable"
	ProblemManifestBytes    = "manifest without its bytes"
	ProblemMissingBlob      = "manifest references a missing blob"
	ProblemUnlinkedBlob     = "manifest references a blob its repository does not link"
	ProblemStaleReferrer    = "stale referrer entry"
	ProblemUnlistedReferrer = "manifest missing from its subject's referrers"
	ProblemUnlisted         = "repository missing from the catalog"
	ProblemAbandonedRun     = "collection abandoned while running"
)

// FsckReport counts what a check saw.
type FsckReport struct {
	Blobs        int
	Bytes        int64
	Repositories int
	Manifests    int
	Links        int
	Tags         int
	Problems     int
	Repaired     int
	Duration     time.Duration
}

// Fsck verifies every blob's digest by reading it whole, and every link,
// tag, manifest record and referrer entry against what it names. It is safe
// to run while the registry serves: each repair re-checks its problem just
// before it acts. What cannot be read, or read as what it should be, is a
// problem of its own and the check goes on, so that one run finds all;
// only a failure of the storage itself (see storageFailed) ends it, with
// an error.
func (r *Registry) Fsck(ctx context.Context, opts FsckOptions) (FsckReport, error) {
	start := time.Now()
	f := &fsck{reg: r, opts: opts, corrupt: map[digest.Digest]bool{}, mismatched: map[digest.Digest]bool{}, unreadable: map[string]bool{}, visited: map[string]bool{}}
	err := f.collection(ctx)
	if err == nil {
		err = f.blobs(ctx)
	}
	if err == nil {
		err = f.eachRepository(ctx, reposRoot, func(name string) error {
			f.report.Repositories++
			f.progress()
			return f.repository(ctx, name)
		})
	}
	f.report.Duration = time.Since(start)
	return f.report, err
}

type fsck struct {
	reg        *Registry
	opts       FsckOptions
	report     FsckReport
	corrupt    map[digest.Digest]bool // removed by repair; few by nature
	mismatched map[digest.Digest]bool // found corrupt, repaired or not
	unreadable map[string]bool        // paths reported unreadable; as few
	visited    map[string]bool        // repositories checked
	last       time.Time
}

func (f *fsck) progress() {
	if f.opts.Progress != nil && time.Since(f.last) > 200*time.Millisecond {
		f.last = time.Now()
		f.opts.Progress(f.report)
	}
}

// lockForRepair holds manifest d for a repair that must look again and act
// with no push or delete of it in between; one held is errLeftHeld, left
// for the next run rather than waited for.
func lockForRepair(ctx context.Context, ms *ManifestStore, d digest.Digest) (func(), error) {
	unlock, _, err := ms.lockManifest(ctx, d, false)
	if errors.Is(err, &Error{Code: CodeTooManyRequests}) {
		return nil, errLeftHeld
	}
	return unlock, err
}

// errLeftHeld is a repair's way of saying the problem stands, left for
// the next run: what it would change is held by a push or a delete.
var errLeftHeld = errors.New("registry: held by a push or a delete")

// errNotRepairable is a repair's way of saying the problem stands and
// nothing it can do mends it.
var errNotRepairable = errors.New("registry: not repairable")

// problem reports p, first running fix when repairing; fix returns whether
// it repaired (false: the problem went away by itself on re-check), or
// errLeftHeld or errNotRepairable, and may add to p what the operator
// needs to know of it. A repair that fails is reported unrepaired, with
// why, unless the storage failed.
func (f *fsck) problem(ctx context.Context, p *FsckProblem, fix func(context.Context) (bool, error)) error {
	if f.opts.Repair && fix != nil {
		switch fixed, err := fix(ctx); {
		case errors.Is(err, errLeftHeld), errors.Is(err, errNotRepairable):
			// Reported, not repaired.
		case err != nil && storageFailed(ctx, err):
			return err
		case err != nil:
			p.Detail = joinDetail(p.Detail, "repair failed: "+err.Error())
		case !fixed:
			return nil // mended meanwhile
		default:
			p.Repaired = true
			f.report.Repaired++
		}
	}
	f.report.Problems++
	if f.opts.Problem != nil {
		f.opts.Problem(*p)
	}
	return nil
}

func joinDetail(detail, more string) string {
	if detail == "" {
		return more
	}
	return detail + "; " + more
}

// storageFailed tells a failure of the storage itself (unreachable,
// throttling, full, read-only, out of file descriptors) or of the run
// (cancelled), which ends the check, from damage to the one object or
// folder being read (a permission, an I/O error, bytes that do not
// decode), which is a problem to report before going on.
func storageFailed(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		driver.IsUnavailable(err) || driver.IsFull(err)
}

// damaged reports p unreadable for err and lets the check go on, unless
// the storage failed. What lies in a folder already reported is not
// reported again: its one cause is.
func (f *fsck) damaged(ctx context.Context, repo, p string, err error) error {
	if storageFailed(ctx, err) {
		return err
	}
	for q := p; q != "/" && q != "."; q = path.Dir(q) {
		if f.unreadable[q] {
			return nil
		}
	}
	f.unreadable[p] = true
	return f.problem(ctx, &FsckProblem{Kind: ProblemUnreadable, Repository: repo, Path: p, Detail: err.Error()}, nil)
}

// walk is walkPast, reporting what it cannot read as unreadable.
func (f *fsck) walk(ctx context.Context, repo, dir, from string, fn driver.WalkFunc) error {
	return walkPast(ctx, f.reg.driver, dir, from, fn, func(p string, err error) error {
		return f.damaged(ctx, repo, p, err)
	})
}

// eachRepository is eachRepositoryPast, each repository once, reporting
// a folder it cannot list as unreadable.
func (f *fsck) eachRepository(ctx context.Context, dir string, fn func(name string) error) error {
	return f.reg.eachRepositoryPast(ctx, dir, f.visited, fn, func(p string, err error) error {
		return f.damaged(ctx, "", p, err)
	})
}

// collection reports a collection that the state shows running while no
// collector holds the lease (one killed mid-run): every write pins its
// digests for it until it is ended, as the repair does, the way the
// collector itself ends a run.
func (f *fsck) collection(ctx context.Context) error {
	s, err := f.reg.readGCState(ctx)
	if err != nil {
		return f.damaged(ctx, "", gcStatePath, err)
	}
	if !s.active() {
		return nil
	}
	unlock, _, err := tryLock(ctx, NewBackendLocker(f.reg.driver, 0), gcLeaseKey)
	if errors.Is(err, ErrLocked) {
		return nil // running
	}
	if err != nil {
		return f.damaged(ctx, "", lockPath(gcLeaseKey), err)
	}
	defer unlock()
	// The run may have ended between the read and the lease.
	if s, err = f.reg.readGCState(ctx); err != nil {
		return f.damaged(ctx, "", gcStatePath, err)
	} else if !s.active() {
		return nil
	}
	return f.problem(ctx, &FsckProblem{Kind: ProblemAbandonedRun, Path: gcStatePath, Detail: "run " + s.Run},
		func(ctx context.Context) (bool, error) {
			if _, err := f.reg.writeGCState(ctx, gcState{Last: s.Run, Ended: s.Ended, Window: s.Window, Stored: s.Stored}); err != nil {
				return false, err
			}
			return true, ignoreNotFound(f.reg.driver.Delete(ctx, gcRunPinsPath(s.Run)))
		})
}

func (f *fsck) blobs(ctx context.Context) error {
	drv := f.reg.driver
	return f.walk(ctx, "", blobsRoot, "", func(fi driver.FileInfo) error {
		f.report.Blobs++
		f.report.Bytes += fi.Size
		f.progress()
		d, ok := digestAt(fi.Path, 2)
		if !ok || blobPath(d) != fi.Path {
			return f.problem(ctx, &FsckProblem{Kind: ProblemUnexpectedObject, Path: fi.Path}, nil)
		}
		got, err := f.hash(ctx, fi.Path, d.Algorithm())
		if driver.IsNotFound(err) {
			return nil // collected since the walk saw it
		}
		if err != nil {
			return f.damaged(ctx, "", fi.Path, err)
		}
		if got == d {
			return nil
		}
		f.mismatched[d] = true
		return f.problem(ctx, &FsckProblem{Kind: ProblemCorruptBlob, Path: fi.Path, Digest: d, Detail: "content hashes to " + got.String()},
			func(ctx context.Context) (bool, error) {
				// A push may have put the right bytes back meanwhile.
				if good, err := f.blobGood(ctx, d); good || err != nil {
					return false, err
				}
				// Marked only once gone: while the bad bytes stay, an
				// upload of the blob keeps them (it finds it stored), so
				// its links had better stay too.
				err := drv.Delete(ctx, fi.Path)
				if err != nil && !driver.IsNotFound(err) {
					return false, err
				}
				f.corrupt[d] = true
				return err == nil, nil
			})
	})
}

// blobGood reports whether the blob stored as d now holds d's bytes: one
// removed as corrupt may have been pushed again since, and its links and
// bytes must then stay. It clears d's mark as corrupt when it does.
func (f *fsck) blobGood(ctx context.Context, d digest.Digest) (bool, error) {
	got, err := f.hash(ctx, blobPath(d), d.Algorithm())
	if driver.IsNotFound(err) {
		return false, nil
	}
	if err != nil || got != d {
		return false, err
	}
	delete(f.corrupt, d)
	delete(f.mismatched, d)
	return true, nil
}

func (f *fsck) hash(ctx context.Context, p string, alg digest.Algorithm) (digest.Digest, error) {
	rc, err := f.reg.driver.Reader(ctx, p, 0)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := alg.Digester()
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	if _, err := io.CopyBuffer(h.Hash(), rc, *bufp); err != nil {
		return "", err
	}
	return h.Digest(), nil
}

func (f *fsck) repository(ctx context.Context, name string) error {
	repo, err := f.reg.stored(name)
	if err != nil {
		return err
	}
	ms := repo.Manifests()
	for _, step := range []func(context.Context, *ManifestStore) error{f.links, f.manifests, f.tags, f.referrers, f.listed} {
		if err := step(ctx, ms); err != nil {
			return err
		}
	}
	return nil
}

func (f *fsck) links(ctx context.Context, ms *ManifestStore) error {
	drv, name := f.reg.driver, ms.repo.name
	return f.walk(ctx, name, repoPath(name)+"/_layers", "", func(fi driver.FileInfo) error {
		f.report.Links++
		d, ok := digestAt(fi.Path, 1)
		if !ok || layerLinkPath(name, d) != fi.Path {
			return f.problem(ctx, &FsckProblem{Kind: ProblemUnexpectedObject, Repository: name, Path: fi.Path}, nil)
		}
		blob, err := driver.StatObject(ctx, drv, blobPath(d))
		if err != nil && !driver.IsNotFound(err) {
			return f.damaged(ctx, name, blobPath(d), err)
		}
		if err != nil || f.corrupt[d] {
			return f.problem(ctx, &FsckProblem{Kind: ProblemDanglingLink, Repository: name, Path: fi.Path, Digest: d},
				func(ctx context.Context) (bool, error) {
					if _, err := driver.StatObject(ctx, drv, blobPath(d)); err == nil && !f.corrupt[d] {
						return false, nil // committed again meanwhile
					} else if err == nil {
						// Removed as corrupt: pushed again since?
						if good, err := f.blobGood(ctx, d); good || err != nil {
							return false, err
						}
					}
					err := drv.Delete(ctx, fi.Path)
					f.reg.cacheDelete(ctx, linkKey(name, d.String()))
					if err != nil {
						return false, ignoreNotFound(err)
					}
					// An upload of the blob commits its bytes, then its
					// link: one that committed since the look above has its
					// link back.
					if _, err := driver.StatObject(ctx, drv, blobPath(d)); err == nil && !f.corrupt[d] {
						if err := drv.Create(ctx, fi.Path, nil); err != nil && !errors.Is(err, driver.ErrExists) {
							return false, err
						}
						return false, nil
					}
					return true, nil
				})
		}
		if fi.Size == 0 {
			return nil // as it should be
		}
		raw, err := drv.GetContent(ctx, fi.Path)
		if driver.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return f.damaged(ctx, name, fi.Path, err)
		}
		// Links are empty (the size is the blob's own); a link holding a
		// size that disagrees with the blob is damage worth a rewrite.
		if size, err := strconv.ParseInt(string(raw), 10, 64); len(raw) == 0 || err == nil && size == blob.Size {
			return nil
		}
		return f.problem(ctx, &FsckProblem{Kind: ProblemLinkSize, Repository: name, Path: fi.Path, Digest: d, Detail: "link says " + strconv.Quote(string(raw)) + ", blob has " + strconv.FormatInt(blob.Size, 10)},
			func(ctx context.Context) (bool, error) {
				// Only a link that still holds what was read: one a client
				// deleted meanwhile must not come back.
				removed, err := driver.RemoveObjectIf(ctx, drv, fi.Path, raw)
				if err != nil || !removed {
					return false, err
				}
				f.reg.cacheDelete(ctx, linkKey(name, d.String()))
				if err := drv.Create(ctx, fi.Path, nil); err != nil && !errors.Is(err, driver.ErrExists) {
					return false, err
				}
				return true, nil
			})
	})
}

func (f *fsck) manifests(ctx context.Context, ms *ManifestStore) error {
	drv, name := f.reg.driver, ms.repo.name
	// Manifests whose bytes are lost are dealt with once every index has
	// been read: a repair removes the record and the tags of one, which
	// an index that names it would then name as nothing, and the
	// collector would take what its bytes used. Left, it keeps the
	// collector stopped until the manifest is pushed again.
	type lost struct {
		d      digest.Digest
		detail string
	}
	var losses []lost
	children := map[digest.Digest]bool{}
	err := f.walk(ctx, name, repoPath(name)+"/_manifests", "", func(fi driver.FileInfo) error {
		f.report.Manifests++
		d, ok := digestAt(fi.Path, 1)
		if !ok || manifestLinkPath(name, d) != fi.Path {
			return f.problem(ctx, &FsckProblem{Kind: ProblemUnexpectedObject, Repository: name, Path: fi.Path}, nil)
		}
		rec, ok, err := f.record(ctx, ms, d)
		if err != nil || !ok {
			return err
		}
		payload, err := drv.GetContent(ctx, blobPath(d))
		if driver.IsNotFound(err) {
			losses = append(losses, lost{d, ""})
			return nil
		}
		if err != nil {
			return f.damaged(ctx, name, blobPath(d), err)
		}
		if !f.opts.Repair && d.Algorithm().FromBytes(payload) != d {
			// What a repair, having removed the corrupt blob, finds, so
			// that a check names the tags it would take.
			losses = append(losses, lost{d, "its bytes are corrupt"})
			return nil
		}
		for _, ref := range storedReferences(payload, rec.MediaType) {
			if ref.kind == refManifest {
				children[ref.desc.Digest] = true
			}
			if err := f.reference(ctx, ms, d, ref); err != nil {
				return err
			}
		}
		if rec.Subject != nil && validateDigest(rec.Subject.Digest) == nil {
			return f.referrerListed(ctx, ms, rec)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range losses {
		if children[l.d] {
			detail := joinDetail(l.detail, "an index names it: push the manifest again (a repair would leave the index naming nothing)")
			if err := f.problem(ctx, &FsckProblem{Kind: ProblemManifestBytes, Repository: name, Path: manifestLinkPath(name, l.d), Digest: l.d, Detail: detail}, nil); err != nil {
				return err
			}
		} else if err := f.lostBytes(ctx, ms, l.d, l.detail); err != nil {
			return err
		}
	}
	return nil
}

// record reads manifest d's record. One that does not decode as d's is
// reported, and a repair writes it again from the manifest's bytes; ok
// is false when there is no record to check further.
func (f *fsck) record(ctx context.Context, ms *ManifestStore, d digest.Digest) (rec manifestRecord, ok bool, err error) {
	name, p := ms.repo.name, manifestLinkPath(ms.repo.name, d)
	raw, err := f.reg.driver.GetContent(ctx, p)
	if driver.IsNotFound(err) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, f.damaged(ctx, name, p, err)
	}
	rec, fault := decodeDescriptor(raw, d)
	if fault == "" {
		return rec, true, nil
	}
	problem := &FsckProblem{Kind: ProblemCorruptRecord, Repository: name, Path: p, Digest: d, Detail: fault}
	err = f.problem(ctx, problem, func(ctx context.Context) (fixed bool, err error) {
		rec, fixed, err = f.rebuildRecord(ctx, ms, problem, d)
		return fixed, err
	})
	return rec, problem.Repaired, err
}

// decodeDescriptor decodes a manifest record, or a referrer entry (the
// same descriptor, without the subject), of manifest d; fault says what
// is wrong with it, "" when nothing.
func decodeDescriptor(raw []byte, d digest.Digest) (rec manifestRecord, fault string) {
	switch err := json.Unmarshal(raw, &rec); {
	case err != nil:
		return rec, "does not decode: " + err.Error()
	case rec.Digest != d:
		return rec, "names " + cmp.Or(rec.Digest.String(), "no digest")
	case !validMediaType(rec.MediaType) || rec.Size <= 0:
		return rec, "no valid media type and size"
	}
	return rec, ""
}

// rebuildRecord writes manifest d's corrupt record again, as a push
// writes it, from the manifest's bytes when they are there and intact;
// when not, p says why and what the operator can do.
func (f *fsck) rebuildRecord(ctx context.Context, ms *ManifestStore, p *FsckProblem, d digest.Digest) (manifestRecord, bool, error) {
	drv := f.reg.driver
	// Under the manifest's lock: a push of it writes the record too.
	unlock, err := lockForRepair(ctx, ms, d)
	if err != nil {
		return manifestRecord{}, false, err
	}
	defer unlock()
	raw, err := drv.GetContent(ctx, p.Path)
	if err != nil {
		return manifestRecord{}, false, ignoreNotFound(err)
	}
	if _, fault := decodeDescriptor(raw, d); fault == "" {
		return manifestRecord{}, false, nil // written again meanwhile
	}
	payload, err := drv.GetContent(ctx, blobPath(d))
	if err != nil && !driver.IsNotFound(err) {
		return manifestRecord{}, false, err
	}
	if err != nil || d.Algorithm().FromBytes(payload) != d {
		p.Detail = joinDetail(p.Detail, "the manifest's bytes are missing or damaged too: push it again")
		return manifestRecord{}, false, errNotRepairable
	}
	m, err := parseManifest(payload, "")
	if err != nil {
		p.Detail = joinDetail(p.Detail, "the manifest's bytes no longer pass validation ("+err.Error()+"): remove the record by hand")
		return manifestRecord{}, false, errNotRepairable
	}
	rec := manifestRecord{
		Descriptor: v1.Descriptor{MediaType: m.mediaType, Digest: d, Size: int64(len(payload)), ArtifactType: m.artifactType},
		Subject:    m.subject,
	}
	return rec, true, ms.writeRecord(ctx, rec)
}

// lostBytes reports manifest d's record without its bytes, naming the
// tags that the repair, a delete of the manifest by digest, removes with
// it: the operator pushes them again.
func (f *fsck) lostBytes(ctx context.Context, ms *ManifestStore, d digest.Digest, detail string) error {
	drv, name := f.reg.driver, ms.repo.name
	tags, err := f.tagsNaming(ctx, name, d)
	if err != nil {
		if err := f.damaged(ctx, name, tagRefsPath(name, d), err); err != nil {
			return err
		}
	}
	p := &FsckProblem{Kind: ProblemManifestBytes, Repository: name, Path: manifestLinkPath(name, d), Digest: d, Detail: detail, Tags: tags}
	return f.problem(ctx, p, func(ctx context.Context) (bool, error) {
		// Under the manifest's lock, looked at again: a push of these
		// bytes may have landed since the walk. One held by a push or a
		// delete is left for the next run.
		unlock, err := lockForRepair(ctx, ms, d)
		if err != nil {
			return false, err
		}
		defer unlock()
		if gone, err := objectGone(ctx, drv, blobPath(d)); err != nil || !gone {
			return false, err
		}
		if p.Tags, err = f.tagsNaming(ctx, name, d); err != nil {
			return false, err
		}
		if err := ms.deleteDigest(ctx, d, true); err != nil {
			return false, ignoreUnknown(err)
		}
		// A tag that a push moved to another manifest meanwhile stays.
		p.Tags = slices.DeleteFunc(p.Tags, func(t string) bool {
			gone, err := objectGone(ctx, drv, tagPath(name, t))
			return err == nil && !gone
		})
		return true, nil
	})
}

// tagsNaming lists the tags that name manifest d. Each tag leaves a
// marker under every digest it is pointed at, kept when it moves on, so
// each marked tag is read; one that cannot be read is left to the check
// of the tags.
func (f *fsck) tagsNaming(ctx context.Context, name string, d digest.Digest) ([]string, error) {
	markers, err := listAll(ctx, f.reg.driver, tagRefsPath(name, d))
	if err != nil {
		return nil, err
	}
	var tags []string
	for _, m := range markers {
		t := path.Base(m)
		if ValidateTag(t) != nil {
			continue
		}
		raw, err := f.reg.driver.GetContent(ctx, tagPath(name, t))
		if err != nil && storageFailed(ctx, err) {
			return nil, err
		}
		if err == nil && digest.Digest(raw) == d {
			tags = append(tags, t)
		}
	}
	return tags, nil
}

// referrerListed checks that a manifest with a subject is in the subject's
// referrers list. A push writes the entry after the record, and a delete
// by digest removes it before the record, so that a list never names a
// manifest not there; a crash in between leaves one that pulls unlisted.
// The repair writes the entry again.
func (f *fsck) referrerListed(ctx context.Context, ms *ManifestStore, rec manifestRecord) error {
	drv, name, d := f.reg.driver, ms.repo.name, rec.Digest
	entry := referrerPath(name, rec.Subject.Digest, d)
	missing, err := objectGone(ctx, drv, entry)
	if err != nil {
		return f.damaged(ctx, name, entry, err)
	}
	if !missing {
		return nil
	}
	p := &FsckProblem{Kind: ProblemUnlistedReferrer, Repository: name, Path: manifestLinkPath(name, d), Digest: d, Detail: "subject " + rec.Subject.Digest.String()}
	return f.problem(ctx, p, func(ctx context.Context) (bool, error) {
		return f.relist(ctx, ms, p, rec.Subject.Digest, d, func(ctx context.Context) (bool, error) {
			return objectGone(ctx, drv, entry)
		})
	})
}

// relist writes referrer d's entry under subject again, as a push writes
// it, from d's record and bytes, if stands says p still stands: looked at
// again under the manifest's lock, as a delete may have taken the record
// since, and one in progress holds it.
func (f *fsck) relist(ctx context.Context, ms *ManifestStore, p *FsckProblem, subject, d digest.Digest, stands func(context.Context) (bool, error)) (bool, error) {
	unlock, err := lockForRepair(ctx, ms, d)
	if err != nil {
		return false, err
	}
	defer unlock()
	if still, err := stands(ctx); err != nil || !still {
		return false, err
	}
	rec, err := ms.record(ctx, d)
	if err != nil {
		return false, ignoreUnknown(err)
	}
	payload, err := f.reg.driver.GetContent(ctx, blobPath(d))
	if err != nil && !driver.IsNotFound(err) {
		return false, err
	}
	m, err := parseManifest(payload, rec.MediaType)
	if err != nil || m.subject == nil || m.subject.Digest != subject || d.Algorithm().FromBytes(payload) != d {
		p.Detail = joinDetail(p.Detail, "the referrer's bytes are lost or damaged, or name another subject")
		return false, errNotRepairable
	}
	return true, ms.addReferrer(ctx, m, rec.Descriptor)
}

// reference checks that what manifest d points at can be pulled.
func (f *fsck) reference(ctx context.Context, ms *ManifestStore, d digest.Digest, ref reference) error {
	drv, name, rd := f.reg.driver, ms.repo.name, ref.desc.Digest
	if checkDigest(rd) != nil {
		return nil // refused at push; nothing stored to check
	}
	if ref.kind == refManifest {
		if _, err := ms.Stat(ctx, rd.String()); err == nil {
			return nil
		} else if !IsUnknown(err) {
			// A record or bytes that cannot be read are reported where
			// the walks meet them.
			if storageFailed(ctx, err) {
				return err
			}
			return nil
		}
	}
	paths := []string{layerLinkPath(name, rd), blobPath(rd)}
	_, lerr := driver.StatObject(ctx, drv, paths[0])
	_, berr := driver.StatObject(ctx, drv, paths[1])
	if lerr == nil && berr == nil {
		return nil
	}
	for i, err := range []error{lerr, berr} {
		if err != nil && !driver.IsNotFound(err) {
			return f.damaged(ctx, name, paths[i], err)
		}
	}
	if f.opts.Mirror && !f.mismatched[rd] {
		return nil // fetched when a client asks for it
	}
	if berr == nil && !f.mismatched[rd] && ref.kind == refBlob {
		// Only the link is gone (a client's DELETE of the blob, a lost
		// file): the collector keeps bytes a kept manifest uses, so a
		// link puts the image back whole.
		p := &FsckProblem{Kind: ProblemUnlinkedBlob, Repository: name, Path: manifestLinkPath(name, d), Digest: d,
			Detail: rd.String() + ": its bytes are stored, but the repository no longer links them (the blob was deleted from it, or its link lost), so the image does not pull: a repair links it again"}
		return f.problem(ctx, p, func(ctx context.Context) (bool, error) { return f.relink(ctx, ms, p, d, rd) })
	}
	detail := rd.String() + ": its bytes are missing"
	switch {
	case f.corrupt[rd]:
		detail = rd.String() + ": its bytes were corrupt and the repair removed them"
	case f.mismatched[rd]:
		detail = rd.String() + ": its bytes are corrupt"
	case ref.kind == refManifest:
		detail = rd.String() + ": the repository holds no such manifest or blob"
	}
	return f.problem(ctx, &FsckProblem{Kind: ProblemMissingBlob, Repository: name, Path: manifestLinkPath(name, d), Digest: d,
		Detail: detail + ": push the image (its layers) again"}, nil)
}

// relink links blob rd, which manifest d uses, back into the repository
// through the path a cross-repository mount takes, which a collection in
// progress cannot undo unseen (gcguard.go). Under the manifest's lock,
// looked at again: the manifest may have been deleted since, or the blob
// linked by a push.
func (f *fsck) relink(ctx context.Context, ms *ManifestStore, p *FsckProblem, d, rd digest.Digest) (bool, error) {
	drv, name := f.reg.driver, ms.repo.name
	unlock, err := lockForRepair(ctx, ms, d)
	if err != nil {
		return false, err
	}
	defer unlock()
	if gone, err := objectGone(ctx, drv, manifestLinkPath(name, d)); err != nil || gone {
		return false, err
	}
	if gone, err := objectGone(ctx, drv, layerLinkPath(name, rd)); err != nil || !gone {
		return false, err
	}
	if _, err := ms.repo.Blobs().Mount(ctx, "", rd); IsUnknown(err) {
		// Collected meanwhile: by a collector that no kept manifest
		// stopped (one of an earlier version), or with the manifest.
		p.Detail = rd.String() + ": its bytes went while the repair linked them: push the image (its layers) again"
		return false, errNotRepairable
	} else if err != nil {
		return false, err
	}
	return true, nil
}

func (f *fsck) tags(ctx context.Context, ms *ManifestStore) error {
	drv, name := f.reg.driver, ms.repo.name
	isTag := tagOfPath(tagsPath(name))
	return f.walk(ctx, name, tagsPath(name), "", func(fi driver.FileInfo) error {
		tag, ok := isTag(fi.Path)
		if !ok {
			// No tag (a file manager's, a copy's, one in a folder), as
			// the listings hold: reported, left for the operator.
			return f.problem(ctx, &FsckProblem{Kind: ProblemUnexpectedObject, Repository: name, Path: fi.Path}, nil)
		}
		f.report.Tags++
		d, err := ms.tagDigest(ctx, tag)
		if err == nil {
			_, err = driver.StatObject(ctx, drv, manifestLinkPath(name, d))
			if err == nil {
				return nil
			} else if !driver.IsNotFound(err) {
				return f.damaged(ctx, name, manifestLinkPath(name, d), err)
			}
		} else if !IsUnknown(err) && !errors.Is(err, ErrTagInvalid) {
			return f.damaged(ctx, name, fi.Path, err)
		}
		detail := "tag " + tag + ", which holds no digest"
		if d != "" {
			detail = "tag " + tag + ", naming a manifest not in the repository"
		}
		return f.problem(ctx, &FsckProblem{Kind: ProblemDanglingTag, Repository: name, Path: fi.Path, Digest: d, Detail: detail},
			func(ctx context.Context) (bool, error) {
				// Re-read: a push may have pointed the tag at a manifest
				// meanwhile, and may still be doing so: only what was read
				// goes.
				raw, err := drv.GetContent(ctx, fi.Path)
				if driver.IsNotFound(err) {
					return false, nil
				} else if err != nil {
					return false, err
				}
				if d := digest.Digest(raw); validateDigest(d) == nil {
					// Under the lock of the manifest it names: a push of
					// that manifest under this tag writes the record, then
					// the same tag bytes, which RemoveObjectIf cannot tell
					// from the dangling ones.
					unlock, err := lockForRepair(ctx, ms, d)
					if err != nil {
						return false, err
					}
					defer unlock()
					if _, err := driver.StatObject(ctx, drv, manifestLinkPath(name, d)); err == nil {
						return false, nil
					}
				}
				removed, err := driver.RemoveObjectIf(ctx, drv, fi.Path, raw)
				if removed {
					ms.tagsChanged(tag)
				}
				return removed, err
			})
	})
}

func (f *fsck) referrers(ctx context.Context, ms *ManifestStore) error {
	drv, name := f.reg.driver, ms.repo.name
	return f.walk(ctx, name, repoPath(name)+"/_referrers", "", func(fi driver.FileInfo) error {
		d, ok := digestAt(fi.Path, 1)
		subject, sok := digestAt(path.Dir(path.Dir(fi.Path)), 1)
		if !ok || !sok || referrerPath(name, subject, d) != fi.Path {
			return f.problem(ctx, &FsckProblem{Kind: ProblemUnexpectedObject, Repository: name, Path: fi.Path}, nil)
		}
		stale := func(ctx context.Context) (bool, error) {
			return objectGone(ctx, drv, manifestLinkPath(name, d))
		}
		gone, err := stale(ctx)
		if err != nil {
			return f.damaged(ctx, name, manifestLinkPath(name, d), err)
		}
		if !gone {
			return f.referrerEntry(ctx, ms, fi.Path, subject, d)
		}
		return f.problem(ctx, &FsckProblem{Kind: ProblemStaleReferrer, Repository: name, Path: fi.Path, Digest: d},
			func(ctx context.Context) (bool, error) {
				// Under the referrer's lock: pushed again, it writes its
				// record, then this entry.
				unlock, err := lockForRepair(ctx, ms, d)
				if err != nil {
					return false, err
				}
				defer unlock()
				if gone, err := stale(ctx); err != nil || !gone {
					return false, err
				}
				err = drv.Delete(ctx, fi.Path)
				return !driver.IsNotFound(err), ignoreNotFound(err)
			})
	})
}

// referrerEntry checks that the entry at p decodes as referrer d's
// descriptor: the referrers list of subject is read from such entries.
// The repair writes it again.
func (f *fsck) referrerEntry(ctx context.Context, ms *ManifestStore, p string, subject, d digest.Digest) error {
	faulty := func(ctx context.Context) (string, error) {
		raw, err := f.reg.driver.GetContent(ctx, p)
		if err != nil {
			return "", ignoreNotFound(err) // removed: by a delete
		}
		_, fault := decodeDescriptor(raw, d)
		return fault, nil
	}
	fault, err := faulty(ctx)
	if err != nil {
		return f.damaged(ctx, ms.repo.name, p, err)
	}
	if fault == "" {
		return nil
	}
	problem := &FsckProblem{Kind: ProblemCorruptReferrer, Repository: ms.repo.name, Path: p, Digest: d, Detail: fault}
	return f.problem(ctx, problem, func(ctx context.Context) (bool, error) {
		return f.relist(ctx, ms, problem, subject, d, func(ctx context.Context) (bool, error) {
			fault, err := faulty(ctx)
			return fault != "", err
		})
	})
}

// listed checks that a repository with content is in the catalog.
func (f *fsck) listed(ctx context.Context, ms *ManifestStore) error {
	name := ms.repo.name
	exists, err := ms.repo.exists(ctx)
	if err != nil {
		return f.damaged(ctx, name, catalogPath(name), err)
	}
	if exists {
		return nil
	}
	empty, err := f.reg.repoEmpty(ctx, name)
	if err != nil {
		return f.damaged(ctx, name, repoPath(name), err)
	}
	if empty {
		return nil
	}
	return f.problem(ctx, &FsckProblem{Kind: ProblemUnlisted, Repository: name, Path: catalogPath(name)},
		func(ctx context.Context) (bool, error) { return true, ms.repo.register(ctx) })
}

func ignoreNotFound(err error) error {
	if driver.IsNotFound(err) {
		return nil
	}
	return err
}

func ignoreUnknown(err error) error {
	if IsUnknown(err) {
		return nil
	}
	return err
}
