// Garbage collection while serving: the safety argument.
//
// The collector runs beside pushes, on any number of replicas, with no
// read-only window and no lock that writers take. It keeps this invariant:
//
//	Nothing a published manifest, a committed upload or a mount relies on is
//	removed, unless the write that relied on it fails rather than succeeds.
//
// One run (one at a time across replicas, through a lease in the backend):
//
//  1. Announce: clear old pins, write /gc/state {run, window W}, sleep W.
//  2. Mark, repository by repository: roots are tags, manifests younger
//     than the untagged grace, and (unless untagged manifests are
//     collected) every manifest without a subject. On a mirror that
//     evicts (evict.go), the tags not pulled lately go first, and the
//     manifests pulled lately are roots too. From the roots follow
//     index children and referrers: a signature or SBOM is kept exactly
//     while its subject is, transitively: found through the repository's
//     index of referrers, or by the subject in its record where the index
//     lacks it. What kept manifests use joins the blob mark set, linked
//     or not: a repository's link to a blob may be gone (a client's
//     DELETE of the blob, a lost file) while a kept manifest still needs
//     its bytes. A kept manifest whose bytes do not hash to its digest
//     stops the run: what it uses is unknown.
//  3. Sweep, in batches: unkept manifests older than the untagged grace;
//     tag markers of manifests gone; links no kept manifest uses, older
//     than the grace (the links that stay join the blob mark set too);
//     last, blobs not in that set and older than the grace. A batch writes
//     /gc/state {inBatch, until}, reads the run's pins, re-checks every
//     candidate (gone, written again since listed, or pinned: keep),
//     deletes before its deadline, then writes /gc/state {batch done}.
//  4. Remove catalog markers of repositories left empty (a writer links
//     before it checks the marker, the collector checks for links after
//     it removed the marker: one of them puts it back), and write
//     /gc/state {last: run}.
//
// A writer (gcguard.go) reads /gc/state before its checks and again after
// it published. If a run is active it first pins its digests under
// /gc/pins/<run> and waits out the batch in progress then, if any (a
// batch begun later reads its pins). For a write w and a
// run r:
//
//   - w finished before r announced itself: r's marking reads what w
//     published (listings are strongly consistent on every backend).
//   - w began before r announced itself and published within W: r marks
//     only after W, so it reads what w published; w knows this case by the
//     state having changed with less than W elapsed, and no run but the
//     one it showed running having ended since (one with a shorter window
//     may have come and gone).
//   - w began while r was active: w's pins were written before its checks.
//     Every batch began either after them, and reads them and keeps the
//     digests, or before; w waited for that one to end, so its checks see
//     what it deleted. A blob committed onto bytes just collected is
//     placed again from the upload's data; a manifest whose blob went is
//     refused with MANIFEST_BLOB_UNKNOWN.
//   - otherwise (w took longer than W, or runs came and went): w pins in
//     the current run, waits out its batch and verifies what it published,
//     repairing links; if a blob is gone it withdraws the write and fails,
//     so the client uploads again: rare, and never silent.
//
// At its core this is Dekker's mutual exclusion on two objects: the
// collector writes its batch flag before it reads pins, a writer writes
// pins before it reads the flag, so at least one sees the other. So a blob
// committed during a run (new bytes, or deduplicated onto stored bytes), a
// cross-repository mount, a manifest whose links were checked just before
// a batch deletes them, and an old unreferenced blob that a new push uses
// again are each either pinned in time or seen gone by their writer.
// Objects written again during a run also look young to the re-check,
// which protects the layers a client uploads ahead of its manifest. A
// manifest push during a run pins all its manifest reaches, down through
// children and referrers, not only what it names (guardClosure): marking
// may have passed over an old manifest the push makes reachable again.
//
// Assumed: clock skew between replicas well below half the batch deadline
// (60 s), and a lease that holds (a collector stalled past its lease is
// still bounded by its batch deadline, which the next run waits out before
// it announces itself). Caches: a link the collector
// removes is invalidated in the registry's cache, so a replica with a
// private cache must not share its store with another collector (serve
// with Redis, or collect inside the one serving process).
//
// Memory: the mark sets of digests spill sorted runs to a temporary
// directory beyond 256 Ki digests (8.6 MB) each and are merged with sorted
// walks of the store, so memory does not grow with the number of blobs.
// A file system lists a folder in order by reading its names whole, so
// there memory grows with the largest folder (a repository's links).
// Held per repository: its referrer entries (and the referrers its index
// lacks) and up to 128 Ki followed manifests, and on a mirror that evicts
// its pull markers and tags (about 100 bytes each); per batch: the run's
// pins.
// Measured on the filesystem driver at 100,000 blobs in 10,000 manifests:
// 27 MB peak resident.

package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
)

// GCOptions configure one collection.
type GCOptions struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Grace protects blobs and repository links younger than this, which
	// covers layers uploaded ahead of their manifest.
	Grace time.Duration
	// DeleteUntagged also removes manifests that no tag, kept index or kept
	// subject reaches. Without it only referrers of deleted subjects go.
	DeleteUntagged bool
	// UntaggedGrace protects manifests younger than this; 0 means Grace.
	UntaggedGrace time.Duration
	// Unpulled, on a mirror, evicts what was not pulled for this long
	// (evict.go): tags first, then the manifests untagged, as
	// DeleteUntagged does, but for those pulled within it. 0: none.
	Unpulled time.Duration
	// Progress, when set, is called as the run advances.
	Progress func(GCProgress)
	// Removed, when set, is called for each item removed (with DryRun,
	// each item that would be).
	Removed func(GCItem)
	// TempDir holds the spilled mark sets; empty means os.TempDir().
	TempDir string
	// Window is how long a run waits after announcing itself before it
	// marks; writes that take longer verify what they published. 0 means
	// DefaultGCWindow.
	Window time.Duration

	// dueBefore, when set, skips the run if one has ended since (Maintain).
	dueBefore time.Time
}

// errNotDue says a scheduled collection was skipped: another replica's
// ended since it was found due.
var errNotDue = errors.New("registry: a collection has run since this one was due")

// DefaultGCWindow comfortably exceeds the time between a push's checks and
// its last write.
const DefaultGCWindow = 5 * time.Second

// gcBatchTTL bounds one sweep batch; the collector stops deleting at half
// of it, so writers may wait that long at most. A variable for the tests.
var gcBatchTTL = 60 * time.Second

// gcStateWriteTimeout bounds the writes of the collector's state made
// past its own cancellation (a batch's end, a run's end): under the
// twelfth of the lease's term by which it reports a lease it cannot renew.
const gcStateWriteTimeout = 5 * time.Second

// gcBatchSize is how many candidates one batch re-checks and deletes.
const gcBatchSize = 1024

// GCItem is one thing a collection removed.
type GCItem struct {
	// Kind is "tag" (evicted, see Unpulled), "manifest", "link", "blob"
	// or "repository".
	Kind       string
	Repository string
	// Tag is the tag evicted; Digest, for a tag, the manifest it named.
	Tag    string
	Digest digest.Digest
	Size   int64
}

// GCProgress tells how far a run has come.
type GCProgress struct {
	Phase        string // "announce", "mark", "blobs", "done"
	Repositories int
	Manifests    int
	Links        int
	Blobs        int
	Removed      int
}

// GCReport summarises a run. A dry run's RepositoriesRemoved counts only
// the repositories empty before it: removing nothing, it cannot see one
// empty out.
type GCReport struct {
	DryRun bool
	// TagsEvicted are a mirror's tags removed as not pulled (Unpulled).
	TagsEvicted         int
	ManifestsRemoved    int
	LinksRemoved        int
	BlobsRemoved        int
	RepositoriesRemoved int
	BytesReclaimed      int64
	// Stored is what the run left stored (a dry run: would leave).
	Stored   GCStored
	Duration time.Duration
}

// GCStored counts the blobs a collection left stored, each once however
// many repositories link it: the store's size, as of At.
type GCStored struct {
	Blobs int       `json:"blobs"`
	Bytes int64     `json:"bytes"`
	At    time.Time `json:"at"`
}

// LastStored returns what the last completed collection, any replica's,
// left stored; ok is false before the first.
func (r *Registry) LastStored(ctx context.Context) (s GCStored, ok bool, err error) {
	st, err := r.readGCState(ctx)
	if err != nil || st.Stored == nil {
		return GCStored{}, false, err
	}
	return *st.Stored, true, nil
}

// ErrCollectorBusy means another collection holds the lease.
var ErrCollectorBusy = errors.New("registry: another garbage collection is running")

const gcLeaseKey = "gc"

// CollectGarbage removes what nothing reachable uses, while the registry
// keeps serving; see the top of this file for how and why it is safe.
func (r *Registry) CollectGarbage(ctx context.Context, opts GCOptions) (rep GCReport, err error) {
	start := time.Now()
	if opts.UntaggedGrace <= 0 {
		opts.UntaggedGrace = opts.Grace
	}
	if opts.Window <= 0 {
		opts.Window = DefaultGCWindow
	}
	if opts.Unpulled > 0 {
		opts.DeleteUntagged = true
	}
	// A collector that loses its lease (stalled past it) stops: another
	// may be collecting now, and only one may write the state.
	ctx, release, err := r.holdLease(ctx, gcLeaseKey)
	if err != nil {
		return GCReport{}, err
	}
	defer release(&err)
	if !opts.dueBefore.IsZero() {
		// Scheduled: another replica may have run it meanwhile.
		s, err := r.readGCState(ctx)
		if err != nil {
			return GCReport{}, err
		}
		if s.Ended.After(opts.dueBefore) {
			return GCReport{}, errNotDue
		}
	}

	now := r.now()
	c := &collector{
		reg:            r,
		opts:           opts,
		cutoff:         now.Add(-opts.Grace),
		untaggedCutoff: now.Add(-opts.UntaggedGrace),
		unpulledCutoff: now.Add(-opts.Unpulled),
	}
	c.report.DryRun = opts.DryRun
	c.marked = newDigestSet(c.opts.TempDir, 0)
	defer c.marked.Close()

	if !opts.DryRun {
		defer func() { c.finish(ctx, err == nil) }()
		if err := c.announce(ctx); err != nil {
			return c.report, err
		}
	}
	c.progress("mark")
	err = r.eachRepository(ctx, func(name string) error {
		c.prog.Repositories++
		return c.collectRepository(ctx, name)
	})
	if err == nil {
		c.progress("blobs")
		err = c.sweepBlobs(ctx)
	}
	if err == nil {
		err = c.sweepCatalog(ctx)
	}
	c.report.Stored = GCStored{Blobs: c.walkedBlobs - c.report.BlobsRemoved, Bytes: c.walkedBytes - c.report.BytesReclaimed, At: r.now()}
	c.report.Duration = time.Since(start)
	c.progress("done")
	return c.report, err
}

// collector is one run's state.
type collector struct {
	reg            *Registry
	opts           GCOptions
	cutoff         time.Time
	untaggedCutoff time.Time
	unpulledCutoff time.Time // with Unpulled
	// walkedBlobs and walkedBytes count the blobs the sweep found stored.
	walkedBlobs  int
	walkedBytes  int64
	marked       *digestSet // blobs kept manifests use or surviving links name
	state        gcState
	pending      []gcCandidate
	report       GCReport
	prog         GCProgress
	lastProgress time.Time
}

// announce tells writers a run begins, then gives writes already past their
// first look at the state the window to publish.
func (c *collector) announce(ctx context.Context) error {
	c.progress("announce")
	prev, err := c.reg.readGCState(ctx)
	if err != nil {
		return err
	}
	if prev.sweeping(c.reg.now()) {
		// A batch whose collector lost its lease may still delete until
		// its deadline, and writers wait for it by the state: it stays
		// until then, or a batch's time at most, whatever that clock said.
		wait := min(prev.Until.Sub(c.reg.now()), gcBatchTTL)
		c.reg.log.Info("garbage collection: waiting out a batch left by a collector that lost its lease", "wait", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	// Pins left over only keep more than needed: failing to clear them
	// (a writer pinning meanwhile) is no reason to stop.
	if err := c.reg.driver.Delete(ctx, gcPinsPath); err != nil && !driver.IsNotFound(err) {
		c.reg.log.Debug("garbage collection: old pins kept", "err", err)
	}
	var id [8]byte
	rand.Read(id[:])
	c.state, err = c.reg.writeGCState(ctx, gcState{Run: hex.EncodeToString(id[:]), Last: prev.Last, Ended: prev.Ended, Window: c.opts.Window, Stored: prev.Stored})
	if err != nil {
		return err
	}
	t := time.NewTimer(c.opts.Window)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	return nil
}

// finish tells writers the run is over, even when it failed.
// A run that did not complete keeps the end time of the last that did,
// which schedules the next (Maintain): a collection cut short at every
// stop would otherwise never come round again.
func (c *collector) finish(ctx context.Context, completed bool) {
	if c.state.Run == "" || leaseLost(ctx) {
		// Without the lease the state is another collector's to write:
		// one left showing this run only makes writers pin.
		return
	}
	ctx = context.WithoutCancel(ctx)
	ended, stored := c.state.Ended, c.state.Stored // the last completed run's, carried by announce
	// The state write is bounded well within the lease's last margin: one
	// held up longer could land after another collector took the lease,
	// and overwrite its run with none.
	sctx, cancel := context.WithTimeout(ctx, gcStateWriteTimeout)
	defer cancel()
	if completed {
		ended, stored = c.reg.now(), &c.report.Stored
	}
	if _, err := c.reg.writeGCState(sctx, gcState{Last: c.state.Run, Ended: ended, Window: c.opts.Window, Stored: stored}); err != nil {
		// The start may not have been recorded either (a full disk refuses
		// both): the message must not claim it was.
		c.reg.log.Error("garbage collection: the run's end could not be recorded; if its start was, writers pin until the next run", "err", err)
	}
	if err := c.reg.driver.Delete(ctx, gcRunPinsPath(c.state.Run)); err != nil && !driver.IsNotFound(err) {
		c.reg.log.Debug("garbage collection: pins left for the next run", "err", err)
	}
}

func (c *collector) progress(phase string) {
	if c.opts.Progress == nil {
		return
	}
	if c.prog.Phase == phase && time.Since(c.lastProgress) < 200*time.Millisecond {
		return
	}
	c.prog.Phase = phase
	c.lastProgress = time.Now()
	c.opts.Progress(c.prog)
}
