package proxy

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// countingDriver counts the pull notes written (PutState).
type countingDriver struct {
	driver.Driver
	mu     sync.Mutex
	states map[string]int
}

func (d *countingDriver) PutState(ctx context.Context, path string, content []byte) error {
	d.mu.Lock()
	d.states[path]++
	d.mu.Unlock()
	return d.Driver.PutState(ctx, path, content)
}

func (d *countingDriver) counts() (paths, writes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.states {
		paths, writes = paths+1, writes+n
	}
	return paths, writes
}

// Pulls of many manifests at once from many requests are each noted, once
// within noteEvery however often they are pulled, and Close waits for the
// writes under way.
func TestPullsNotedOnce(t *testing.T) {
	drv := &countingDriver{Driver: inmemory.New(), states: map[string]int{}}
	m, err := New(registry.New(drv, registry.Options{}), Options{RemoteURL: "http://127.0.0.1:1", EvictAfter: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const manifests = 300
	ds := make([]digest.Digest, manifests)
	for i := range ds {
		ds[i] = digest.FromBytes([]byte(rand.Text()))
	}
	var wg sync.WaitGroup
	for range 8 { // requests pulling every manifest, at once
		wg.Go(func() {
			for _, d := range ds {
				m.Pulled("team/app", d)
			}
		})
	}
	wg.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if paths, _ := drv.counts(); paths == manifests {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d of %d pulled manifests noted", paths, manifests)
		}
	}
	m.Close()
	if paths, writes := drv.counts(); writes != manifests {
		t.Errorf("%d notes written for %d manifests pulled 8 times each, want one each", writes, paths)
	}
	m.Pulled("team/app", ds[0]) // noted lately: nothing to write
	if _, writes := drv.counts(); writes != manifests {
		t.Errorf("a pull noted lately was noted again")
	}
}
