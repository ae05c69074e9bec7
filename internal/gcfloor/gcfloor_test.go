package gcfloor

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, stacks, floor uint64
		want                int
	}{
		{0, 0, 16 * mib, 400},                // nothing measured yet: the minimum sets the goal
		{1 * mib, 0, 16 * mib, 400},          // goal max(5, 16) MiB
		{5 * mib, 0, 16 * mib, 220},          // goal max(16.0, 8.8) MiB
		{8 * mib, 0, 16 * mib, 100},          // Go's own goal is the floor
		{40 * mib, 0, 16 * mib, 100},         // and past it
		{1 * mib, 0, 64 * mib, 1600},         // a larger floor
		{16 * mib, 0, 16 * mib, 100},         // live heap at the floor
		{100 * mib, 0, 16 * mib, 100},        // and far past it
		{1 * mib, 3 * mib, 16 * mib, 375},    // stacks count at GOGC%: max(1+4×3.75, 15) MiB
		{1 * mib, 18 * mib, 16 * mib, 100},   // many goroutines: Go's own goal, 20 MiB, is past the floor
		{1 * mib, 0, 1 << 50, math.MaxInt32}, // an absurd floor stays a valid GOGC
	} {
		scannable := c.live + c.stacks
		p := percentFor(c.live, scannable, c.floor)
		if p != c.want {
			t.Errorf("percentFor(%d MiB live, %d MiB scannable, %d MiB) = %d, want %d", c.live/mib, scannable/mib, c.floor/mib, p, c.want)
		}
		if p == math.MaxInt32 {
			continue // as far as GOGC goes
		}
		// The goal the runtime derives from the answer is the floor, or
		// its own goal at GOGC=100 when that is more (within rounding).
		goal := max(c.live+scannable*uint64(p)/100, minimumPer100*uint64(p)/100)
		want := max(c.floor, c.live+scannable)
		if goal < want-want/50 || goal > want+want/50 {
			t.Errorf("live %d MiB, scannable %d MiB, floor %d MiB: goal %d MiB, want %d MiB", c.live/mib, scannable/mib, c.floor/mib, goal/mib, want/mib)
		}
	}
}

// gogc returns GOGC as set now.
func gogc() int {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}

// collect runs collections until the cleanups that follow them had their
// turn.
func collect() {
	for range 50 {
		runtime.GC()
		time.Sleep(2 * time.Millisecond)
	}
}

// TestStartFollowsTheLiveHeap runs real collections: a large live heap
// brings GOGC to 100, a small one raises it again, and stop gives back the
// value Start found.
func TestStartFollowsTheLiveHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	stop := Start(32 << 20)
	defer stop() // when a check fails; a second stop does nothing
	if p := gogc(); p <= 150 {
		t.Fatalf("GOGC with a small live heap = %d, want more than 150", p)
	}
	big := make([][]byte, 64)
	for i := range big {
		big[i] = make([]byte, 1<<20)
	}
	collect()
	if p := gogc(); p != 100 {
		t.Fatalf("GOGC with a 64 MiB live heap = %d, want 100", p)
	}
	runtime.KeepAlive(big)
	big = nil
	collect()
	if p := gogc(); p <= 100 {
		t.Fatalf("GOGC once the heap is small again = %d, want more than 100", p)
	}
	stop()
	if p := gogc(); p != 150 {
		t.Fatalf("GOGC after stop = %d, want 150, as found", p)
	}
	collect() // no cleanup changes it any more
	if p := gogc(); p != 150 {
		t.Fatalf("GOGC after stop and collections = %d, want 150", p)
	}
}

func TestGOGCFromTheEnvironmentWins(t *testing.T) {
	t.Setenv("GOGC", "150")
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	stop := Start(32 << 20)
	defer stop()
	collect()
	if p := gogc(); p != 150 {
		t.Fatalf("GOGC = %d with GOGC=150 in the environment", p)
	}
}
