package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
)

// The writers' half of collecting while serving (see gc.go for the whole
// argument). A write that makes content reachable (an upload's commit, a
// mount, a manifest push) is bracketed by guardWrite and settle:
//
//	g := guardWrite(digests)   read /gc/state; during a run pin the digests
//	                           and wait out a sweep batch in progress
//	... validate, publish ...
//	g.settle(verify)           read /gc/state again; if a run could have
//	                           missed the write, pin, wait, and verify
//
// Outside collections this costs two small reads of one object.

// gcState is what the collector tells writers, in one object written only by
// the collector holding the lease. Every write of it differs from the one
// before (run ids are random, batches count up), so a writer that reads the
// same bytes twice knows the collector did nothing in between.
type gcState struct {
	// Run is the collection in progress; empty when none is.
	Run string `json:"run,omitempty"`
	// Last is the collection that finished most recently, and Ended when
	// it did: replicas schedule the next from it (Maintain).
	Last  string    `json:"last,omitempty"`
	Ended time.Time `json:"ended,omitzero"`
	// Window is how long the collection waited after announcing itself
	// before it began marking.
	Window time.Duration `json:"window,omitempty"`
	// Batch counts the run's sweep batches; InBatch is set while one may
	// delete, until Until at the latest.
	Batch   int64     `json:"batch,omitempty"`
	InBatch bool      `json:"inBatch,omitempty"`
	Until   time.Time `json:"until,omitzero"`
	// Stored is what the last completed run (not a dry run) left stored.
	Stored *GCStored `json:"stored,omitempty"`

	raw []byte
}

func (s gcState) active() bool { return s.Run != "" }

// sweeping reports a batch that may still delete. A batch whose deadline
// has passed was abandoned: its collector stops deleting before then.
func (s gcState) sweeping(now time.Time) bool { return s.InBatch && now.Before(s.Until) }

func (r *Registry) readGCState(ctx context.Context) (gcState, error) {
	start := time.Now()
	raw, err := r.driver.GetContent(ctx, gcStatePath)
	var s gcState
	switch {
	case driver.IsNotFound(err):
	case err != nil:
		return gcState{}, err
	case json.Unmarshal(raw, &s) != nil:
		// Unreadable: assume a run, so writers pin, which costs little.
		s = gcState{Run: "unreadable", raw: raw}
	default:
		s.raw = raw
	}
	r.lastState.keep(s, start)
	return s, nil
}

// lastGCState is the latest read of /gc/state in this process and when it
// began. A write may begin with it instead of a read of its own (see
// guardWrite): one round trip fewer per push on an object store.
type lastGCState struct {
	mu sync.Mutex
	s  gcState
	at time.Time
}

// stateReuse is how old a read a write may begin with. Any age is safe; an
// old one only makes more writes settle the slow way during a collection,
// whose window (DefaultGCWindow) is a hundred times this. A variable for
// tests.
var stateReuse = 50 * time.Millisecond

func (l *lastGCState) keep(s gcState, at time.Time) {
	l.mu.Lock()
	if at.After(l.at) {
		l.s, l.at = s, at
	}
	l.mu.Unlock()
}

// recent returns the latest read if it began within stateReuse.
func (l *lastGCState) recent() (gcState, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at.IsZero() || time.Since(l.at) >= stateReuse {
		return gcState{}, time.Time{}, false
	}
	return l.s, l.at, true
}

func (r *Registry) writeGCState(ctx context.Context, s gcState) (gcState, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return s, err
	}
	s.raw = raw
	if err := r.driver.PutContent(ctx, gcStatePath, raw); err != nil {
		return s, err
	}
	// The state as of now (one collector writes it at a time), so that
	// this process's writes begin with it at once.
	r.lastState.keep(s, time.Now())
	return s, nil
}

// awaitBatch returns the state once the sweep batch in progress at the
// call, which may have read the pins before the caller wrote its own, has
// ended: none is in progress, or a later batch or another run has begun.
// A batch begun since flagged itself in the state, after the caller's
// pins were written, and reads the pins only after that, so it keeps what
// they name. Waiting for no batch at all would hold a push for as long as
// the collector runs batches back to back, seconds on a large store.
func (r *Registry) awaitBatch(ctx context.Context) (gcState, error) {
	delay := 5 * time.Millisecond
	var at gcState // the batch in progress at the call
	for {
		s, err := r.readGCState(ctx)
		if err != nil || !s.sweeping(r.now()) {
			return s, err
		}
		if at.Run == "" {
			at = s
		} else if s.Run != at.Run || s.Batch != at.Batch {
			return s, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return s, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// gcGuard brackets one write; see guardWrite.
type gcGuard struct {
	reg      *Registry
	digests  []digest.Digest
	s0       gcState
	start    time.Time
	pinnedIn string // the run the digests are pinned in, if any
}

// guardWrite begins a write that will make digests reachable. It must come
// before the write checks that what it builds on exists, so that the check
// sees every delete that could have missed the write.
//
// The state it begins with may come from another request's read that began
// up to stateReuse earlier: the write then counts as begun when that read
// began, which makes it a write slower by that much, and every case of
// settle holds for a write of any length.
func (r *Registry) guardWrite(ctx context.Context, digests ...digest.Digest) (*gcGuard, error) {
	var err error
	s, at, ok := r.lastState.recent()
	if !ok {
		at = time.Now()
		if s, err = r.readGCState(ctx); err != nil {
			return nil, err
		}
	}
	g := &gcGuard{reg: r, digests: digests, start: at}
	if g.s0, err = g.pin(ctx, s); err != nil {
		return nil, err
	}
	return g, nil
}

// pin records the digests for the run s announces, then waits out a batch
// that may have looked for pins before these were written. It returns the
// state once the digests are pinned in the active run, or no run is active.
func (g *gcGuard) pin(ctx context.Context, s gcState) (gcState, error) {
	for s.active() && g.pinnedIn != s.Run {
		run := s.Run
		err := forEach(len(g.digests), func(i int) error {
			return g.reg.driver.PutContent(ctx, gcPinPath(run, g.digests[i]), nil)
		})
		if err != nil {
			// The run may have ended and its pins gone meanwhile; then
			// pinning for it is moot.
			now, rerr := g.reg.readGCState(ctx)
			if rerr != nil || now.Run == run {
				return s, err
			}
			s = now
			continue
		}
		g.pinnedIn = run
		if s, err = g.reg.awaitBatch(ctx); err != nil {
			return s, err
		}
	}
	return s, nil
}

// pinMore pins further digests in the run g is pinned in, then waits out a
// batch that may have looked for pins before them. Should another run be
// going on by then (or one have begun where none was), every digest is
// pinned in that one.
func (g *gcGuard) pinMore(ctx context.Context, more []digest.Digest) error {
	g.digests = append(g.digests, more...)
	if run := g.pinnedIn; run != "" {
		err := forEach(len(more), func(i int) error {
			return g.reg.driver.PutContent(ctx, gcPinPath(run, more[i]), nil)
		})
		if err != nil {
			// As in pin: moot if the run has ended and its pins gone.
			if s, rerr := g.reg.readGCState(ctx); rerr != nil || s.Run == run {
				return err
			}
		}
	}
	s, err := g.reg.awaitBatch(ctx)
	if err == nil && s.active() && s.Run != g.pinnedIn {
		_, err = g.pin(ctx, s)
	}
	return err
}

// oneRunSince reports whether s1's run is the only one begun since s0:
// none has ended in between but the one s0 showed running.
func oneRunSince(s0, s1 gcState) bool {
	if s0.active() {
		return s1.Last == s0.Run
	}
	return s1.Last == s0.Last
}

// settle ends a write once it is published. When a collection may have
// missed the write, it makes sure none deletes the digests from now on and
// calls verify, which must check that what the write built on still exists
// and repair it, or fail so the client writes again.
func (g *gcGuard) settle(ctx context.Context, verify func(context.Context) error) error {
	s1, err := g.reg.readGCState(ctx)
	if err != nil {
		return err
	}
	switch {
	case bytes.Equal(s1.raw, g.s0.raw) && !s1.sweeping(g.reg.now()):
		// The collector did nothing while we wrote.
		return nil
	case g.pinnedIn != "" && (s1.Run == g.pinnedIn || !s1.active() && s1.Last == g.pinnedIn):
		// Pinned before the checks, in the run still going on, or in the
		// last one with none begun since.
		return nil
	case time.Since(g.start) < s1.Window && oneRunSince(g.s0, s1):
		// Published within the window: the run that began meanwhile was
		// still waiting, and its marking will see the write. (Only if it
		// is the one run since: another, with a shorter window, may have
		// come and gone.)
		return nil
	}
	if _, err := g.pin(ctx, s1); err != nil {
		return err
	}
	return verify(ctx)
}
