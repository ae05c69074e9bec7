package registry

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"strings"
	"time"

	"github.com/lading-registry/lading/storage/driver"
)

const purgeLeaseKey = "purge-uploads"

// PurgeUploads removes upload sessions started longer than olderThan ago,
// with their data (on S3 the driver's Delete aborts their multipart
// uploads too). A leftover with data but no readable state goes by the age
// of its newest object, and a writer of a session never saved by the age
// of its last write (purgeUnsavedWriters; on S3 a monolithic push streaming
// for longer than olderThan counts as not writing). A session some request
// is writing to right now is skipped. One purge runs at a time across
// replicas, through a lease in the backend; a purge that finds another
// running returns at once with ErrCollectorBusy.
func (r *Registry) PurgeUploads(ctx context.Context, olderThan time.Duration) (purged int, err error) {
	ctx, release, err := r.holdLease(ctx, purgeLeaseKey)
	if err != nil {
		return 0, err
	}
	defer release(&err)
	cutoff := r.now().Add(-olderThan)
	n := 0
	err = r.eachRepository(ctx, func(name string) error {
		entries, err := r.driver.List(ctx, uploadsPath(name))
		if driver.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		last := ""
		for _, e := range entries {
			if validUploadID(path.Base(e)) {
				purged, err := r.purgeFolderUpload(ctx, e, cutoff)
				if err != nil {
					return err
				}
				if purged {
					n++
				}
				continue
			}
			id, ok := uploadEntryID(e)
			if !ok || id == last {
				// Not a session's, or its second object (they sort together).
				continue
			}
			last = id
			purged, err := r.purgeUpload(ctx, name, id, cutoff)
			if err != nil {
				return err
			}
			if purged {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	orphans, err := r.purgeUnsavedWriters(ctx, cutoff)
	if err != nil {
		return n + orphans, err
	}
	return n + orphans, r.purgeExpiredLeases(ctx)
}

// leaseSweepMargin is how long past its expiry a lease in /locks must be
// before the purge removes it: far more than clocks disagree.
const leaseSweepMargin = time.Minute

// purgeExpiredLeases removes leases long expired. One is broken when its
// key is locked again; the key of a manifest, or a session, whose holder
// crashed may never be, and its lease would lie there for good.
func (r *Registry) purgeExpiredLeases(ctx context.Context) error {
	l := &backendLocker{d: r.driver}
	entries, err := r.driver.List(ctx, "/locks")
	if driver.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, p := range entries {
		raw, held, err := l.readRaw(ctx, p)
		// Leases keep the wall clock (NewBackendLocker), not r.now.
		if driver.IsNotFound(err) || err == nil && !held.Expires.Before(time.Now().Add(-leaseSweepMargin)) {
			continue
		}
		if err != nil {
			return err
		}
		// Only as read: it may be broken and taken again meanwhile.
		if _, err := driver.RemoveObjectIf(ctx, r.driver, p, raw); err != nil {
			return err
		}
	}
	return nil
}

// purgeUnsavedWriters removes what writers left of sessions that were
// never saved (a monolithic push cut off by a crash saves none) or that
// are gone, once they last wrote before cutoff: on S3 a multipart upload
// and the writer's hidden objects, which no listing of the sessions shows
// and no repository may list (a repository is registered only once a blob
// is linked).
func (r *Registry) purgeUnsavedWriters(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	err := driver.PendingWriters(ctx, r.driver, reposRoot, func(p string, lastWrite time.Time) error {
		dir, base := path.Split(p)
		repo, ok := strings.CutSuffix(strings.TrimPrefix(dir, reposRoot+"/"), "/_uploads/")
		id, isData := strings.CutSuffix(base, uploadDataSuffix)
		if !ok || !isData || !validUploadID(id) || uploadDataPath(repo, id) != p || !lastWrite.Before(cutoff) {
			return nil
		}
		unlock, err := r.locker.TryLock(ctx, uploadLockKey(repo, id))
		if errors.Is(err, ErrLocked) {
			return nil
		}
		if err != nil {
			return err
		}
		defer unlock()
		// A session with a state is the purge's above, by its own age.
		if _, err := driver.StatObject(ctx, r.driver, uploadStatePath(repo, id)); !driver.IsNotFound(err) {
			return err
		}
		if err := r.driver.Delete(ctx, p); err != nil && !driver.IsNotFound(err) {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// purgeFolderUpload removes a session of the layout before sessions were
// two objects (a folder per session, layout.go), once its newest object is
// older than cutoff. No request resumes such a session any more; the age
// spares one a server of that version may still be writing.
func (r *Registry) purgeFolderUpload(ctx context.Context, dir string, cutoff time.Time) (bool, error) {
	newest := time.Time{}
	err := r.driver.Walk(ctx, dir, "", func(fi driver.FileInfo) error {
		if fi.ModTime.After(newest) {
			newest = fi.ModTime
		}
		return nil
	})
	if err != nil || newest.IsZero() || !newest.Before(cutoff) {
		return false, err
	}
	if err := r.driver.Delete(ctx, dir); err != nil && !driver.IsNotFound(err) {
		return false, err
	}
	return true, nil
}

// purgeUpload removes one session if it is stale, under the session's own
// lock so that no chunk is being written while it goes.
func (r *Registry) purgeUpload(ctx context.Context, repo, id string, cutoff time.Time) (bool, error) {
	unlock, err := r.locker.TryLock(ctx, uploadLockKey(repo, id))
	if errors.Is(err, ErrLocked) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unlock()
	stale, err := r.uploadStale(ctx, repo, id, cutoff)
	if err != nil || !stale {
		return false, err
	}
	err = r.deleteUpload(ctx, repo, id, true)
	if driver.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (r *Registry) uploadStale(ctx context.Context, repo, id string, cutoff time.Time) (bool, error) {
	// Without a readable state (a new session, which is its data alone, or
	// a crash leftover) a session is judged by its newest object.
	paths := []string{uploadDataPath(repo, id)}
	raw, err := r.driver.GetContent(ctx, uploadStatePath(repo, id))
	if err == nil {
		var st uploadState
		if json.Unmarshal(raw, &st) == nil && !st.StartedAt.IsZero() {
			return st.StartedAt.Before(cutoff), nil
		}
		paths = append(paths, uploadStatePath(repo, id))
	} else if !driver.IsNotFound(err) {
		return false, err
	}
	newest := time.Time{}
	for _, p := range paths {
		fi, err := driver.StatObject(ctx, r.driver, p)
		if err != nil && !driver.IsNotFound(err) {
			return false, err
		}
		if err == nil && fi.ModTime.After(newest) {
			newest = fi.ModTime
		}
	}
	return !newest.IsZero() && newest.Before(cutoff), nil
}
