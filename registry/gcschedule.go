package registry

import (
	"context"
	"errors"
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
}

// Maintain runs the scheduled collector and upload purger until ctx ends.
// Every replica may run it: the leases in the backend let one collection
// and one purge through at a time, and the others skip their turn. Results
// and failures are logged; a failure waits for the next turn.
func (r *Registry) Maintain(ctx context.Context, m Maintenance) {
	if m.PurgeInterval <= 0 {
		m.PurgeInterval = max(min(m.PurgeAge/10, time.Hour), time.Second)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if m.PurgeAge > 0 {
			every(ctx, m.PurgeInterval, func() {
				n, err := r.PurgeUploads(ctx, m.PurgeAge)
				r.logTurn("upload purge", err, "purged", n)
			})
		}
	}()
	if m.GCInterval > 0 {
		every(ctx, m.GCInterval, func() {
			rep, err := r.CollectGarbage(ctx, m.GC)
			if err == nil && m.Collected != nil {
				m.Collected(rep)
			}
			r.logTurn("garbage collection", err, "manifests", rep.ManifestsRemoved, "links", rep.LinksRemoved,
				"blobs", rep.BlobsRemoved, "bytes", rep.BytesReclaimed, "repositories", rep.RepositoriesRemoved, "duration", rep.Duration)
		})
	}
	<-done
}

func (r *Registry) logTurn(what string, err error, attrs ...any) {
	switch {
	case errors.Is(err, ErrCollectorBusy):
		r.log.Debug(what+" skipped: another replica runs one", attrs...)
	case errors.Is(err, context.Canceled):
	case err != nil:
		r.log.Error(what+" failed", append(attrs, "err", err)...)
	default:
		r.log.Info(what, attrs...)
	}
}

// every calls fn after each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
