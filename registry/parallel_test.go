package registry

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestForEachBoundsAndReportsTheFirstFailure(t *testing.T) {
	var running, peak atomic.Int64
	err := forEach(40, func(i int) error {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		// The later failure finishes first: the earlier one must still win.
		if i == 5 {
			time.Sleep(20 * time.Millisecond)
			return fmt.Errorf("item %d", i)
		}
		if i == 12 {
			return fmt.Errorf("item %d", i)
		}
		time.Sleep(time.Millisecond)
		return nil
	})
	if err == nil || err.Error() != "item 5" {
		t.Fatalf("got %v, want item 5", err)
	}
	if p := peak.Load(); p > readConcurrency || p < 2 {
		t.Fatalf("peak concurrency %d, want 2..%d", p, readConcurrency)
	}
	if err := forEach(0, func(int) error { return errors.New("never") }); err != nil {
		t.Fatal(err)
	}
}
