package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"path"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
)

// FsckOptions configure a check of the store.
type FsckOptions struct {
	// Repair fixes what can be fixed without losing anything readable:
	// dangling tags, links and referrer entries go, corrupt blobs go with
	// their links (so clients upload them again), manifest records without
	// their bytes go, wrong link sizes are rewritten, and lost catalog
	// markers are written again. A manifest whose layers are missing is
	// only reported: its owner must push them again.
	Repair bool
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
	ProblemManifestBytes    = "manifest without its bytes"
	ProblemMissingBlob      = "manifest references a missing blob"
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
// before it acts.
func (r *Registry) Fsck(ctx context.Context, opts FsckOptions) (FsckReport, error) {
	start := time.Now()
	f := &fsck{reg: r, opts: opts, corrupt: map[digest.Digest]bool{}}
	err := f.collection(ctx)
	if err == nil {
		err = f.blobs(ctx)
	}
	if err == nil {
		err = r.eachRepository(ctx, func(name string) error {
			f.report.Repositories++
			f.progress()
			return f.repository(ctx, name)
		})
	}
	f.report.Duration = time.Since(start)
	return f.report, err
}

type fsck struct {
	reg     *Registry
	opts    FsckOptions
	report  FsckReport
	corrupt map[digest.Digest]bool // removed by repair; few by nature
	last    time.Time
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
	unlock, err := ms.lockManifest(ctx, d, false)
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
// errLeftHeld or errNotRepairable.
func (f *fsck) problem(ctx context.Context, p FsckProblem, fix func(context.Context) (bool, error)) error {
	if f.opts.Repair && fix != nil {
		switch fixed, err := fix(ctx); {
		case errors.Is(err, errLeftHeld), errors.Is(err, errNotRepairable):
			// Reported, not repaired.
		case err != nil:
			return err
		case !fixed:
			return nil // mended meanwhile
		default:
			p.Repaired = true
			f.report.Repaired++
		}
	}
	f.report.Problems++
	if f.opts.Problem != nil {
		f.opts.Problem(p)
	}
	return nil
}

// collection reports a collection that the state shows running while no
// collector holds the lease (one killed mid-run): every write pins its
// digests for it until it is ended, as the repair does, the way the
// collector itself ends a run.
func (f *fsck) collection(ctx context.Context) error {
	s, err := f.reg.readGCState(ctx)
	if err != nil || !s.active() {
		return err
	}
	unlock, _, err := tryLock(ctx, NewBackendLocker(f.reg.driver, 0), gcLeaseKey)
	if errors.Is(err, ErrLocked) {
		return nil // running
	}
	if err != nil {
		return err
	}
	defer unlock()
	// The run may have ended between the read and the lease.
	if s, err = f.reg.readGCState(ctx); err != nil || !s.active() {
		return err
	}
	return f.problem(ctx, FsckProblem{Kind: ProblemAbandonedRun, Path: gcStatePath, Detail: "run " + s.Run},
		func(ctx context.Context) (bool, error) {
			if _, err := f.reg.writeGCState(ctx, gcState{Last: s.Run, Ended: s.Ended, Window: s.Window}); err != nil {
				return false, err
			}
			return true, ignoreNotFound(f.reg.driver.Delete(ctx, gcRunPinsPath(s.Run)))
		})
}

func (f *fsck) blobs(ctx context.Context) error {
	drv := f.reg.driver
	err := drv.Walk(ctx, blobsRoot, "", func(fi driver.FileInfo) error {
		f.report.Blobs++
		f.report.Bytes += fi.Size
		f.progress()
		d, ok := digestAt(fi.Path, 2)
		if !ok || blobPath(d) != fi.Path {
			return f.problem(ctx, FsckProblem{Kind: ProblemUnexpectedObject, Path: fi.Path}, nil)
		}
		got, err := f.hash(ctx, fi.Path, d.Algorithm())
		if driver.IsNotFound(err) {
			return nil // collected since the walk saw it
		}
		if err != nil {
			return err
		}
		if got == d {
			return nil
		}
		return f.problem(ctx, FsckProblem{Kind: ProblemCorruptBlob, Path: fi.Path, Digest: d, Detail: "content hashes to " + got.String()},
			func(ctx context.Context) (bool, error) {
				// A push may have put the right bytes back meanwhile.
				if good, err := f.blobGood(ctx, d); good || err != nil {
					return false, err
				}
				f.corrupt[d] = true
				err := drv.Delete(ctx, fi.Path)
				return !driver.IsNotFound(err), ignoreNotFound(err)
			})
	})
	return ignoreNotFound(err)
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
	err := drv.Walk(ctx, repoPath(name)+"/_layers", "", func(fi driver.FileInfo) error {
		f.report.Links++
		d, ok := digestAt(fi.Path, 1)
		if !ok || layerLinkPath(name, d) != fi.Path {
			return f.problem(ctx, FsckProblem{Kind: ProblemUnexpectedObject, Repository: name, Path: fi.Path}, nil)
		}
		blob, err := driver.StatObject(ctx, drv, blobPath(d))
		if driver.IsNotFound(err) || f.corrupt[d] {
			return f.problem(ctx, FsckProblem{Kind: ProblemDanglingLink, Repository: name, Path: fi.Path, Digest: d},
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
		if err != nil || fi.Size == 0 {
			return err // an empty link is as it should be
		}
		raw, err := drv.GetContent(ctx, fi.Path)
		if driver.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		// Links are empty (the size is the blob's own); a link holding a
		// size that disagrees with the blob is damage worth a rewrite.
		if size, err := strconv.ParseInt(string(raw), 10, 64); len(raw) == 0 || err == nil && size == blob.Size {
			return nil
		}
		return f.problem(ctx, FsckProblem{Kind: ProblemLinkSize, Repository: name, Path: fi.Path, Digest: d, Detail: "link says " + strconv.Quote(string(raw)) + ", blob has " + strconv.FormatInt(blob.Size, 10)},
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
	return ignoreNotFound(err)
}

func (f *fsck) manifests(ctx context.Context, ms *ManifestStore) error {
	drv, name := f.reg.driver, ms.repo.name
	err := drv.Walk(ctx, repoPath(name)+"/_manifests", "", func(fi driver.FileInfo) error {
		f.report.Manifests++
		d, ok := digestAt(fi.Path, 1)
		if !ok || manifestLinkPath(name, d) != fi.Path {
			return f.problem(ctx, FsckProblem{Kind: ProblemUnexpectedObject, Repository: name, Path: fi.Path}, nil)
		}
		raw, err := drv.GetContent(ctx, fi.Path)
		if driver.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		var rec manifestRecord
		if err := json.Unmarshal(raw, &rec); err != nil || rec.Digest != d {
			return f.problem(ctx, FsckProblem{Kind: ProblemCorruptRecord, Repository: name, Path: fi.Path, Digest: d}, nil)
		}
		payload, err := drv.GetContent(ctx, blobPath(d))
		if driver.IsNotFound(err) {
			return f.problem(ctx, FsckProblem{Kind: ProblemManifestBytes, Repository: name, Path: fi.Path, Digest: d},
				func(ctx context.Context) (bool, error) {
					// Under the manifest's lock, looked at again: a push
					// of these bytes may have landed since the walk. One
					// held by a push or a delete is left for the next run.
					unlock, err := lockForRepair(ctx, ms, d)
					if err != nil {
						return false, err
					}
					defer unlock()
					if _, err := driver.StatObject(ctx, drv, blobPath(d)); err == nil {
						return false, nil
					}
					err = ms.deleteDigest(ctx, d, true)
					return !isUnknown(err), ignoreUnknown(err)
				})
		}
		if err != nil {
			return err
		}
		for _, ref := range storedReferences(payload, rec.MediaType) {
			if err := f.reference(ctx, ms, d, ref); err != nil {
				return err
			}
		}
		if rec.Subject != nil && validateDigest(rec.Subject.Digest) == nil {
			return f.referrerListed(ctx, ms, rec, payload)
		}
		return nil
	})
	return ignoreNotFound(err)
}

// referrerListed checks that a manifest with a subject is in the subject's
// referrers list. A push writes the entry after the record, and a delete
// by digest removes it before the record, so that a list never names a
// manifest not there; a crash in between leaves one that pulls unlisted.
// The repair writes the entry again.
func (f *fsck) referrerListed(ctx context.Context, ms *ManifestStore, rec manifestRecord, payload []byte) error {
	drv, name, d := f.reg.driver, ms.repo.name, rec.Digest
	entry := referrerPath(name, rec.Subject.Digest, d)
	if missing, err := objectGone(ctx, drv, entry); err != nil || !missing {
		return err
	}
	return f.problem(ctx, FsckProblem{Kind: ProblemUnlistedReferrer, Repository: name, Path: manifestLinkPath(name, d), Digest: d, Detail: "subject " + rec.Subject.Digest.String()},
		func(ctx context.Context) (bool, error) {
			// Under the manifest's lock, looked at again: a delete may
			// have taken the record since, and one in progress holds it.
			unlock, err := lockForRepair(ctx, ms, d)
			if err != nil {
				return false, err
			}
			defer unlock()
			if _, err := driver.StatObject(ctx, drv, manifestLinkPath(name, d)); err != nil {
				return false, ignoreNotFound(err)
			}
			if missing, err := objectGone(ctx, drv, entry); err != nil || !missing {
				return false, err
			}
			m, err := parseManifest(payload, rec.MediaType)
			if err != nil || m.subject == nil || m.subject.Digest != rec.Subject.Digest {
				return false, errNotRepairable // bytes and record disagree
			}
			return true, ms.addReferrer(ctx, m, rec.Descriptor)
		})
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
		} else if !isUnknown(err) {
			return err
		}
	}
	_, lerr := driver.StatObject(ctx, drv, layerLinkPath(name, rd))
	_, berr := driver.StatObject(ctx, drv, blobPath(rd))
	if lerr == nil && berr == nil {
		return nil
	}
	for _, err := range []error{lerr, berr} {
		if err != nil && !driver.IsNotFound(err) {
			return err
		}
	}
	return f.problem(ctx, FsckProblem{Kind: ProblemMissingBlob, Repository: name, Path: manifestLinkPath(name, d), Digest: d, Detail: rd.String()}, nil)
}

func (f *fsck) tags(ctx context.Context, ms *ManifestStore) error {
	drv, name := f.reg.driver, ms.repo.name
	err := drv.Walk(ctx, tagsPath(name), "", func(fi driver.FileInfo) error {
		f.report.Tags++
		tag := path.Base(fi.Path)
		d, err := ms.tagDigest(ctx, tag)
		if err == nil {
			if _, err = driver.StatObject(ctx, drv, manifestLinkPath(name, d)); err == nil {
				return nil
			}
		}
		if !isUnknown(err) && !driver.IsNotFound(err) && !errors.Is(err, ErrTagInvalid) {
			return err
		}
		return f.problem(ctx, FsckProblem{Kind: ProblemDanglingTag, Repository: name, Path: fi.Path, Digest: d, Detail: "tag " + tag},
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
	return ignoreNotFound(err)
}

func (f *fsck) referrers(ctx context.Context, ms *ManifestStore) error {
	drv, name := f.reg.driver, ms.repo.name
	root := repoPath(name) + "/_referrers"
	err := drv.Walk(ctx, root, "", func(fi driver.FileInfo) error {
		d, ok := digestAt(fi.Path, 1)
		if !ok {
			return f.problem(ctx, FsckProblem{Kind: ProblemUnexpectedObject, Repository: name, Path: fi.Path}, nil)
		}
		stale := func(ctx context.Context) (bool, error) {
			return objectGone(ctx, drv, manifestLinkPath(name, d))
		}
		if gone, err := stale(ctx); err != nil || !gone {
			return err
		}
		return f.problem(ctx, FsckProblem{Kind: ProblemStaleReferrer, Repository: name, Path: fi.Path, Digest: d},
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
	return ignoreNotFound(err)
}

// listed checks that a repository with content is in the catalog.
func (f *fsck) listed(ctx context.Context, ms *ManifestStore) error {
	exists, err := ms.repo.exists(ctx)
	if err != nil || exists {
		return err
	}
	empty, err := f.reg.repoEmpty(ctx, ms.repo.name)
	if err != nil || empty {
		return err
	}
	return f.problem(ctx, FsckProblem{Kind: ProblemUnlisted, Repository: ms.repo.name, Path: catalogPath(ms.repo.name)},
		func(ctx context.Context) (bool, error) { return true, ms.repo.register(ctx) })
}

func ignoreNotFound(err error) error {
	if driver.IsNotFound(err) {
		return nil
	}
	return err
}

func ignoreUnknown(err error) error {
	if isUnknown(err) {
		return nil
	}
	return err
}
