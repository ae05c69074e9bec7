package registry

import (
	"context"
	"errors"
	"path"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
)

// gcCandidate is something marking did not keep, awaiting its batch.
type gcCandidate struct {
	kind   string // "tag" (evicted), "manifest", "link", "blob", "marker" (a tag's or a pull's)
	repo   string
	tag    string // for a tag
	digest digest.Digest
	path   string
	size   int64
	ms     *ManifestStore // for manifests
	// kept, if set, is called when the re-check keeps the candidate.
	kept func(context.Context) error
}

type recheck int

const (
	recheckRemoved recheck = iota
	recheckKept
	recheckGone
)

// remove queues a candidate for deletion; a dry run only counts it.
func (c *collector) remove(ctx context.Context, cand gcCandidate) error {
	if c.opts.DryRun {
		c.removed(cand)
		return nil
	}
	c.pending = append(c.pending, cand)
	if len(c.pending) >= gcBatchSize {
		return c.flush(ctx)
	}
	return nil
}

// endSweep finishes a sweep that walked with set open, given the walk's
// error: a folder that does not exist was merely empty, and the removals
// still pending go out.
func (c *collector) endSweep(ctx context.Context, walkErr error, set *keyIter) error {
	if walkErr != nil && !driver.IsNotFound(walkErr) {
		return walkErr
	}
	if err := set.Err(); err != nil {
		return err
	}
	return c.flush(ctx)
}

// flush runs one sweep batch over the pending candidates: flag the batch,
// read the pins, re-check and delete each, clear the flag.
func (c *collector) flush(ctx context.Context) error {
	batch := c.pending
	c.pending = nil
	if len(batch) == 0 {
		return nil
	}
	st := c.state
	st.Batch++
	st.InBatch = true
	st.Until = c.reg.now().Add(gcBatchTTL)
	var err error
	if c.state, err = c.reg.writeGCState(ctx, st); err != nil {
		return err
	}
	began := time.Now()
	outcome := make([]recheck, len(batch))
	pins, err := c.loadPins(ctx)
	// Deletes stop at half the batch's time, well before writers stop
	// waiting for it: a request still in flight then (a DELETE held up by
	// a slow or throttled store, and retried) is cancelled rather than
	// left to land after a writer relied on what it removes.
	dctx, cancel := context.WithDeadline(ctx, began.Add(gcBatchTTL/2))
	defer cancel()
	var cut atomic.Bool
	if err == nil {
		err = forEach(len(batch), func(i int) error {
			outcome[i] = recheckKept
			if dctx.Err() != nil {
				return nil // past what writers wait for: stop deleting
			}
			o, err := c.recheckAndDelete(dctx, &batch[i], pins)
			if err != nil && dctx.Err() != nil && ctx.Err() == nil {
				cut.Store(true) // kept, as far as this run knows
				return nil
			}
			outcome[i] = o
			return err
		})
	}
	if cut.Load() && err == nil {
		// A cancelled request may still reach the store a little later:
		// the batch shows until its deadline, as writers expect, not over
		// at once.
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(began.Add(gcBatchTTL))):
		}
	}
	if leaseLost(ctx) {
		// The state is the new holder's now; a batch left showing counts
		// as over at its deadline (gcState.sweeping).
		return errors.Join(err, errLeaseLost)
	}
	st = c.state
	st.InBatch = false
	st.Until = time.Time{}
	var werr error
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), gcStateWriteTimeout)
	c.state, werr = c.reg.writeGCState(sctx, st)
	scancel()
	if err = errors.Join(err, werr); err != nil {
		return err
	}
	for i := range batch {
		switch outcome[i] {
		case recheckRemoved:
			c.removed(batch[i])
		case recheckKept:
			if batch[i].kept != nil {
				if err := batch[i].kept(ctx); err != nil {
					return err
				}
			}
		case recheckGone:
			if batch[i].kind == "blob" { // walked, and stored no more
				c.walkedBlobs--
				c.walkedBytes -= batch[i].size
			}
		}
	}
	return nil
}

// loadPins reads the digests writers pinned during this run.
func (c *collector) loadPins(ctx context.Context) (map[digestKey]struct{}, error) {
	pins := map[digestKey]struct{}{}
	err := c.reg.driver.Walk(ctx, gcRunPinsPath(c.state.Run), "", func(fi driver.FileInfo) error {
		if d, ok := digestAt(fi.Path, 1); ok {
			if k, ok := keyOf(d); ok {
				pins[k] = struct{}{}
			}
		}
		return nil
	})
	if driver.IsNotFound(err) {
		err = nil
	}
	return pins, err
}

// recheckAndDelete deletes a candidate unless it has gone, was written
// again since marking listed it, or is pinned.
func (c *collector) recheckAndDelete(ctx context.Context, cand *gcCandidate, pins map[digestKey]struct{}) (recheck, error) {
	drv := c.reg.driver
	fi, err := driver.StatObject(ctx, drv, cand.path)
	if driver.IsNotFound(err) {
		return recheckGone, nil
	}
	if err != nil {
		return recheckKept, err
	}
	cutoff := c.cutoff
	if cand.kind == "manifest" {
		cutoff = c.untaggedCutoff
	}
	if !fi.ModTime.Before(cutoff) {
		return recheckKept, nil
	}
	if k, ok := keyOf(cand.digest); !ok {
		return recheckKept, nil
	} else if _, pinned := pins[k]; pinned {
		return recheckKept, nil
	}
	switch cand.kind {
	case "manifest":
		if _, err := cand.ms.record(ctx, cand.digest); err != nil && !IsUnknown(err) && !driver.IsNotFound(err) {
			// Damaged (fsck reports it) or unreadable now: leave it be.
			c.reg.log.Warn("garbage collection: manifest record kept", "repository", cand.repo, "digest", cand.digest, "err", err)
			return recheckKept, nil
		}
		err = cand.ms.delete(ctx, cand.digest.String(), false)
		if IsUnknown(err) {
			return recheckGone, nil
		}
		if errors.Is(err, &Error{Code: CodeTooManyRequests}) {
			return recheckKept, nil // being pushed, or deleted by a client
		}
	// Links, markers and blobs are single objects: removed as such, one
	// request on an object store where Delete would first look for
	// anything below the path.
	case "link":
		err = driver.RemoveObject(ctx, drv, cand.path)
		c.reg.cacheDelete(ctx, linkKey(cand.repo, cand.digest.String()))
	case "marker":
		if _, err := driver.StatObject(ctx, drv, manifestLinkPath(cand.repo, cand.digest)); !driver.IsNotFound(err) {
			return recheckKept, err // pushed again
		}
		err = driver.RemoveObject(ctx, drv, cand.path)
	case "blob":
		cand.size = fi.Size
		err = driver.RemoveObject(ctx, drv, cand.path)
	}
	if driver.IsNotFound(err) {
		return recheckGone, nil
	}
	if err != nil {
		return recheckKept, err
	}
	return recheckRemoved, nil
}

func (c *collector) removed(cand gcCandidate) {
	switch cand.kind {
	case "tag":
		c.report.TagsEvicted++
	case "manifest":
		c.report.ManifestsRemoved++
	case "link":
		c.report.LinksRemoved++
	case "blob":
		c.report.BlobsRemoved++
		c.report.BytesReclaimed += cand.size
	case "repository":
		c.report.RepositoriesRemoved++
	case "marker":
		return // bookkeeping of the tags, not content
	}
	c.prog.Removed++
	if c.opts.Removed != nil {
		c.opts.Removed(GCItem{Kind: cand.kind, Repository: cand.repo, Tag: cand.tag, Digest: cand.digest, Size: cand.size})
	}
}

// sweepBlobs removes blobs that no kept manifest uses and no surviving link
// names, merging the sorted mark set with the sorted walk of /blobs.
func (c *collector) sweepBlobs(ctx context.Context) error {
	marked, err := c.marked.Iterate()
	if err != nil {
		return err
	}
	defer marked.Close()
	err = c.reg.driver.Walk(ctx, blobsRoot, "", func(fi driver.FileInfo) error {
		c.prog.Blobs++
		c.progress("blobs")
		d, ok := digestAt(fi.Path, 2)
		if !ok || blobPath(d) != fi.Path {
			return nil // not ours to judge
		}
		c.walkedBlobs++
		c.walkedBytes += fi.Size
		k, ok := keyOf(d)
		if !ok || marked.Contains(k) || !fi.ModTime.Before(c.cutoff) {
			return nil
		}
		return c.remove(ctx, gcCandidate{kind: "blob", digest: d, path: fi.Path, size: fi.Size})
	})
	return c.endSweep(ctx, err, marked)
}

// sweepCatalog removes the catalog markers of repositories that hold no
// manifest, tag or link. A writer links before it checks the marker, and
// the collector checks for links after it removed the marker, so one of
// them puts it back when content arrives meanwhile.
func (c *collector) sweepCatalog(ctx context.Context) error {
	drv := c.reg.driver
	return drv.Walk(ctx, catalog, "", func(fi driver.FileInfo) error {
		name, ok := unescapeName(path.Base(fi.Path))
		if !ok || ValidateName(name) != nil {
			return nil
		}
		empty, err := c.reg.repoEmpty(ctx, name)
		if err != nil || !empty {
			return err
		}
		if c.opts.DryRun {
			c.removed(gcCandidate{kind: "repository", repo: name})
			return nil
		}
		if err := driver.RemoveObject(ctx, drv, fi.Path); err != nil {
			return err
		}
		if empty, err = c.reg.repoEmpty(ctx, name); err != nil || !empty {
			return errors.Join(err, drv.PutContent(context.WithoutCancel(ctx), fi.Path, nil))
		}
		c.removed(gcCandidate{kind: "repository", repo: name})
		return nil
	})
}

// repoEmpty reports whether a repository holds no manifest, tag or link.
func (r *Registry) repoEmpty(ctx context.Context, name string) (bool, error) {
	for _, dir := range []string{"/_manifests", "/_tags", "/_layers"} {
		_, err := r.driver.List(ctx, repoPath(name)+dir)
		if err == nil {
			return false, nil
		}
		if !driver.IsNotFound(err) {
			return false, err
		}
	}
	return true, nil
}
