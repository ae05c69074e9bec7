// Package gcfloor keeps the garbage collector from running more often than
// a heap of a given size calls for.
//
// Go sets the next collection at the live heap plus GOGC% of the live heap,
// stacks and globals, and at least 4 MiB (scaled by GOGC%). A registry
// keeps little alive (a megabyte or two) while each request allocates a few
// kilobytes, so under load it collected about every 15 ms, and the
// collector took a tenth of two cores that the requests needed. Raising
// GOGC for good would let a large live heap (a full manifest cache) grow to
// many times its size; instead, after collections, GOGC is set so that the
// next one comes when the heap reaches the floor, or where Go's own rule
// puts it once that is further. GOMEMLIMIT still bounds it all.
package gcfloor

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// minimumPer100 is the runtime's least heap goal at GOGC=100, which it
// scales with GOGC (heapMinimum in runtime/mgcpacer.go).
const minimumPer100 = 4 << 20

// Start keeps the heap goal at floor bytes or more until stop is called,
// unless the environment sets GOGC, which then stays the operator's
// choice. Only one floor should run in a process, and while it runs it
// owns GOGC; stop gives back the value it found.
func Start(floor uint64) (stop func()) {
	if os.Getenv("GOGC") != "" || floor <= minimumPer100 {
		return func() {}
	}
	floor = min(floor, 1<<50) // a petabyte: no overflow below
	t := &tuner{floor: floor, percent: -1, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	t.arm()
	t.tune() // before the first collection, too
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.stopped {
			t.stopped = true
			debug.SetGCPercent(t.found)
		}
	}
}

type tuner struct {
	floor   uint64
	sample  []metrics.Sample
	mu      sync.Mutex
	stopped bool
	percent int // as last set; -1 before
	found   int // GOGC before the first change
}

// sentinel is unreachable from birth, so its cleanup runs after a later
// collection: usually the next, or the one after when it was allocated
// during marking. It holds a pointer so that it is not a tiny allocation,
// which could share a block with something longer lived.
type sentinel struct{ _ *int }

func (t *tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *tuner) {
		if t.tune() {
			t.arm()
		}
	}, t)
}

// tune sets GOGC from what the last collection found; false once stopped.
func (t *tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample)
	var v [3]uint64
	for i, s := range t.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	if p := percentFor(v[0], v[0]+v[1]+v[2], t.floor); p != t.percent {
		old := debug.SetGCPercent(p)
		if t.percent < 0 {
			t.found = old
		}
		t.percent = p
	}
	return true
}

// percentFor is the GOGC whose heap goal is the floor, or 100 when Go's
// own goal at 100 is already past it. The runtime's goal is
// max(live + scannable×GOGC/100, minimumPer100×GOGC/100), where scannable
// is the live heap with the stacks and globals (gcControllerState.commit).
func percentFor(live, scannable, floor uint64) int {
	p := floor * 100 / minimumPer100 // the minimum alone reaches the floor
	if scannable > 0 {
		p = min(p, (floor-min(live, floor))*100/scannable)
	}
	return int(min(max(p, 100), math.MaxInt32))
}
