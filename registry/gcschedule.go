package registry

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// Maintenance schedules the collector and the upload purger inside a
// serving process.
type Maintenance struct {
	// GCInterval is the time between collections; 0 runs none.
	GCInterval time.Duration
	// GC configures each collection.
	GC GCOptions
	// PurgeAge removes upload sessions started longer ago; 0 purges none.
	PurgeAge time.Duration
	// PurgeInterval is the time between purges; 0 means a tenth of
	// PurgeAge, at most an hour.
	PurgeInterval time.Duration
	// Collected, when set, hears of every collection this process ran.
	Collected func(GCReport)
	// StoredSeen, when set, hears what the last completed collection, any
	// replica's, left stored, each time the schedule reads it.
	StoredSeen func(GCStored)
	// RetentionInterval is the time between applications of Retention's
	// rules; 0 applies none.
	RetentionInterval time.Duration
	// Retention configures each application.
	Retention RetentionOptions
	// Retained, when set, hears of every application of the rules this
	// process ran, and how it ended; not of one cut short by the stop.
	Retained func(RetentionReport, error)
	// Failed, when set, hears of every turn that failed: "gc", "purge"
	// or "retention".
	Failed func(task string)
}

// Maintain runs the scheduled collector, upload purger and retention
// rules until ctx ends. Every replica may run it: the leases in the backend
// let one collection, one purge and one application of the rules through
// at a time, and the others skip their turn. Results and failures are
// logged; a failure waits for the next turn.
//
// Collections follow the end of the last one, recorded in the storage
// (/gc/state), not each process's uptime: every replica looks often
// (dueCheck) and runs one once GCInterval has passed since the last ended,
// so replicas restarted more often than GCInterval still collect, and N
// replicas collect once per interval, not N times. The retention rules
// are scheduled the same way, from /retention/state.
func (r *Registry) Maintain(ctx context.Context, m Maintenance) {
	if m.PurgeInterval <= 0 {
		m.PurgeInterval = max(min(m.PurgeAge/10, time.Hour), time.Second)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if m.PurgeAge > 0 {
		// The first after a random part of the interval: a process
		// restarted more often than the interval still purges.
		wg.Go(func() {
			every(ctx, m.PurgeInterval, rand.N(m.PurgeInterval), func() {
				n, err := r.PurgeUploads(ctx, m.PurgeAge)
				if r.logTurn("upload purge", err, "purged", n) && m.Failed != nil {
					m.Failed("purge")
				}
			})
		})
	}
	if m.RetentionInterval > 0 {
		var hold time.Time
		wg.Go(func() { onSchedule(ctx, m.RetentionInterval, func() { r.retainIfDue(ctx, m, &hold) }) })
	}
	if m.GCInterval > 0 {
		onSchedule(ctx, m.GCInterval, func() {
			due, ok := r.due(ctx, m.GCInterval, func(ctx context.Context) (time.Time, error) {
				st, err := r.readGCState(ctx)
				if err == nil && st.Stored != nil && m.StoredSeen != nil {
					m.StoredSeen(*st.Stored)
				}
				return st.Ended, err
			})
			if !ok {
				return
			}
			opts := m.GC
			opts.dueBefore = due
			rep, err := r.CollectGarbage(ctx, opts)
			if errors.Is(err, errNotDue) {
				return
			}
			if err == nil && m.Collected != nil {
				m.Collected(rep)
			}
			failed := r.logTurn("garbage collection", err, "tags_evicted", rep.TagsEvicted, "manifests", rep.ManifestsRemoved, "links", rep.LinksRemoved,
				"blobs", rep.BlobsRemoved, "bytes", rep.BytesReclaimed, "repositories", rep.RepositoriesRemoved, "duration", rep.Duration)
			if failed && m.Failed != nil {
				m.Failed("gc")
			}
		})
	}
}

// retainIfDue applies the retention rules once RetentionInterval has
// passed since the last run, any replica's, ended. A run that could not
// record its end holds this process's next until an interval has passed
// (hold), which the storage cannot tell: else every look would run again.
func (r *Registry) retainIfDue(ctx context.Context, m Maintenance, hold *time.Time) {
	if r.now().Before(*hold) {
		return
	}
	due, ok := r.due(ctx, m.RetentionInterval, r.retentionEnded)
	if !ok {
		return
	}
	opts := m.Retention
	opts.dueBefore = due
	rep, err := r.ApplyRetention(ctx, opts)
	if errors.Is(err, errNotDue) {
		return
	}
	if errors.Is(err, errStateNotRecorded) {
		*hold = r.now().Add(m.RetentionInterval)
	}
	failed := r.logTurn("retention run", err, "repositories", rep.Repositories, "failed", rep.Failed, "matched", rep.Matched,
		"removed", rep.Removed, "kept", rep.Kept, "duration", rep.Duration, "dryrun", rep.DryRun)
	if failed && m.Failed != nil {
		m.Failed("retention")
	}
	if (failed || err == nil) && m.Retained != nil {
		m.Retained(rep, err)
	}
}

// onSchedule calls look every dueCheck(interval), the first time after a
// random part of it.
func onSchedule(ctx context.Context, interval time.Duration, look func()) {
	check := dueCheck(interval)
	every(ctx, check, rand.N(check), look)
}

// due reports whether interval has passed since the last run ended, as
// ended reads it from the storage (any replica's run), and the time that
// end must be before: the run checks again under its lease, as another
// replica may have run since. A storage that will not tell makes no run
// due: the next look asks again.
func (r *Registry) due(ctx context.Context, interval time.Duration, ended func(context.Context) (time.Time, error)) (time.Time, bool) {
	last, err := ended(ctx)
	due := r.now().Add(-interval)
	return due, err == nil && !last.After(due)
}

func (r *Registry) retentionEnded(ctx context.Context) (time.Time, error) {
	s, err := r.readRetentionState(ctx)
	return s.Ended, err
}

// logTurn logs how a turn of maintenance ended, and reports whether it
// failed.
func (r *Registry) logTurn(what string, err error, attrs ...any) (failed bool) {
	switch {
	case errors.Is(err, ErrCollectorBusy):
		r.log.Debug(what+" skipped: another replica runs one", attrs...)
	case errors.Is(err, context.Canceled) && !errors.Is(err, errLeaseLost):
		// The process stopping; a lost lease cancels the work too, and is
		// worth an operator's look.
	case err != nil:
		r.log.Error(what+" failed", append(attrs, "err", err)...)
		return true
	default:
		r.log.Info(what, attrs...)
	}
	return false
}

// dueCheck is how often a replica looks whether a scheduled run (a
// collection, the retention rules) is due: a 24th of the interval (an
// hour of a day), within minDueCheck and ten minutes.
func dueCheck(interval time.Duration) time.Duration {
	return min(max(interval/24, minDueCheck), 10*time.Minute)
}

// minDueCheck is a variable for tests.
var minDueCheck = time.Second

// every calls fn after first, then after each interval, until ctx ends.
func every(ctx context.Context, interval, first time.Duration, fn func()) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
			t.Reset(interval)
		}
	}
}
