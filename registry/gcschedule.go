package registry

import (
	"context"
	"errors"
	"math/rand/v2"
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
	// Failed, when set, hears of every turn that failed: "gc" or "purge".
	Failed func(task string)
}

// Maintain runs the scheduled collector and upload purger until ctx ends.
// Every replica may run it: the leases in the backend let one collection
// and one purge through at a time, and the others skip their turn. Results
// and failures are logged; a failure waits for the next turn.
//
// Collections follow the end of the last one, recorded in the storage
// (/gc/state), not each process's uptime: every replica looks often
// (gcCheck) and runs one once GCInterval has passed since the last ended,
// so replicas restarted more often than GCInterval still collect, and N
// replicas collect once per interval, not N times.
func (r *Registry) Maintain(ctx context.Context, m Maintenance) {
	if m.PurgeInterval <= 0 {
		m.PurgeInterval = max(min(m.PurgeAge/10, time.Hour), time.Second)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if m.PurgeAge > 0 {
			// The first after a random part of the interval: a process
			// restarted more often than the interval still purges.
			every(ctx, m.PurgeInterval, rand.N(m.PurgeInterval), func() {
				n, err := r.PurgeUploads(ctx, m.PurgeAge)
				if r.logTurn("upload purge", err, "purged", n) && m.Failed != nil {
					m.Failed("purge")
				}
			})
		}
	}()
	if m.GCInterval > 0 {
		check := gcCheck(m.GCInterval)
		every(ctx, check, rand.N(check), func() {
			s, err := r.readGCState(ctx)
			due := r.now().Add(-m.GCInterval)
			if err != nil || s.Ended.After(due) {
				return // not due, or the storage will not tell: the next look
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
			failed := r.logTurn("garbage collection", err, "manifests", rep.ManifestsRemoved, "links", rep.LinksRemoved,
				"blobs", rep.BlobsRemoved, "bytes", rep.BytesReclaimed, "repositories", rep.RepositoriesRemoved, "duration", rep.Duration)
			if failed && m.Failed != nil {
				m.Failed("gc")
			}
		})
	}
	<-done
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

// gcCheck is how often a replica looks whether a collection is due: a
// 24th of the interval (an hour of a day), within minGCCheck and ten
// minutes.
func gcCheck(interval time.Duration) time.Duration {
	return min(max(interval/24, minGCCheck), 10*time.Minute)
}

// minGCCheck is a variable for tests.
var minGCCheck = time.Second

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
