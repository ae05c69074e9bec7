// Package gcfloor keeps the garbage collector from running more often than
// a heap of a given size calls for.
//
// Go sizes the heap at twice what survived the last collection, and at
// least 4 MiB. A registry keeps little alive (a megabyte or two) while each
// request allocates a few kilobytes, so under load it collected about every
// 15 ms, and the collector took a tenth of two cores that the requests
// needed. Raising GOGC for good would let a large live heap (a full
// manifest cache) grow to many times its size; instead, after every
// collection, GOGC is set so that the next one comes when the heap reaches
// the floor, or twice the live heap once that is larger. GOMEMLIMIT still
// bounds it all.
package gcfloor

import (
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
// choice. Only one floor should run in a process.
func Start(floor uint64) (stop func()) {
	if os.Getenv("GOGC") != "" || floor <= minimumPer100 {
		return func() {}
	}
	t := &tuner{floor: floor, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.arm()
	t.tune() // before the first collection, too
	return func() {
		t.mu.Lock()
		t.stopped = true
		t.mu.Unlock()
		debug.SetGCPercent(100)
	}
}

type tuner struct {
	floor   uint64
	sample  []metrics.Sample
	mu      sync.Mutex
	stopped bool
	percent int
}

// sentinel is unreachable from birth; its cleanup thus runs after the next
// collection. It holds a pointer so that it is not a tiny allocation, which
// could share a block with something longer lived.
type sentinel struct{ _ *int }

func (t *tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *tuner) {
		if t.tune() {
			t.arm()
		}
	}, t)
}

// tune sets GOGC from the live heap of the last collection; false once
// stopped.
func (t *tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	if p := percentFor(live, t.floor); p != t.percent {
		t.percent = p
		debug.SetGCPercent(p)
	}
	return true
}

// percentFor is the GOGC whose heap goal, max(live×(1+GOGC/100),
// minimumPer100×GOGC/100), is the floor, or which is 100 once twice the
// live heap reaches it.
func percentFor(live, floor uint64) int {
	p := floor * 100 / minimumPer100 // the minimum alone reaches the floor
	if live > 0 {
		p = min(p, (floor-min(live, floor))*100/live)
	}
	return int(max(p, 100))
}
