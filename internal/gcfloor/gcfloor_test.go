package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		want        int
	}{
		{0, 16 * mib, 400},         // nothing measured yet: the minimum sets the goal
		{1 * mib, 16 * mib, 400},   // goal max(5, 16) MiB
		{5 * mib, 16 * mib, 220},   // goal max(16.0, 8.8) MiB
		{8 * mib, 16 * mib, 100},   // twice the live heap is the floor
		{40 * mib, 16 * mib, 100},  // above it, Go's own rule
		{1 * mib, 64 * mib, 1600},  // a larger floor
		{16 * mib, 16 * mib, 100},  // live heap at the floor
		{100 * mib, 16 * mib, 100}, // and far past it
	} {
		if got := percentFor(c.live, c.floor); got != c.want {
			t.Errorf("percentFor(%d MiB, %d MiB) = %d, want %d", c.live/mib, c.floor/mib, got, c.want)
		}
		// The goal the runtime derives from the answer is the floor, or
		// twice the live heap when that is more (within rounding).
		p := uint64(percentFor(c.live, c.floor))
		goal := max(c.live*(100+p)/100, minimumPer100*p/100)
		want := max(c.floor, 2*c.live)
		if goal < want-want/50 || goal > want+want/50 {
			t.Errorf("live %d MiB, floor %d MiB: goal %d MiB, want %d MiB", c.live/mib, c.floor/mib, goal/mib, want/mib)
		}
	}
}

// TestStartFollowsTheLiveHeap runs real collections: a small live heap
// raises GOGC, a large one brings it back to 100, and stop restores it.
func TestStartFollowsTheLiveHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	stop := Start(32 << 20)
	collect := func() int {
		// The cleanup runs on its own goroutine after the collection.
		for range 50 {
			runtime.GC()
			time.Sleep(2 * time.Millisecond)
		}
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p
	}
	if p := collect(); p <= 100 {
		t.Fatalf("GOGC with a small live heap = %d, want more than 100", p)
	}
	big := make([][]byte, 64)
	for i := range big {
		big[i] = make([]byte, 1<<20)
	}
	if p := collect(); p != 100 {
		t.Fatalf("GOGC with a 64 MiB live heap = %d, want 100", p)
	}
	runtime.KeepAlive(big)
	stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("GOGC after stop = %d, want 100", p)
	}
}

func TestGOGCFromTheEnvironmentWins(t *testing.T) {
	t.Setenv("GOGC", "150")
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	stop := Start(32 << 20)
	defer stop()
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	if p := debug.SetGCPercent(150); p != 150 {
		t.Fatalf("GOGC = %d with GOGC=150 in the environment", p)
	}
}
