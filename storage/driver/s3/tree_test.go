package s3

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/storage/driver"
)

// TestListingCostsThePage checks that resuming a Walk deep into a large
// tree, or listing a directory with a large subtree, costs requests for
// what is returned, not for what lies before or below it.
func TestListingCostsThePage(t *testing.T) {
	var counter requestCounter
	d := newTestDriver(t, testenv.S3(t), "", countRequests(&counter))
	ctx := context.Background()
	const n = 1100 // more than one listing page of 1000
	paths := make([]string, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				if err := d.PutContent(ctx, paths[i], nil); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range n {
		paths[i] = fmt.Sprintf("/t/d/%04d", i)
		work <- i
	}
	close(work)
	wg.Wait()
	if err := d.PutContent(ctx, "/t/x", nil); err != nil {
		t.Fatal(err)
	}

	counter.reset()
	var got []string
	err := d.Walk(ctx, "/t", paths[1050], func(fi driver.FileInfo) error {
		got = append(got, fi.Path)
		if len(got) == 10 {
			return driver.ErrStopWalk
		}
		return nil
	})
	if err != nil || !slices.Equal(got, paths[1051:1061]) {
		t.Fatalf("Walk from %s = %q, %v", paths[1050], got, err)
	}
	if r := counter.total(); r != 1 {
		t.Errorf("resumed Walk of 10 objects took %d requests: %s", r, &counter)
	}

	counter.reset()
	children, err := d.List(ctx, "/t")
	if err != nil || !slices.Equal(children, []string{"/t/d", "/t/x"}) {
		t.Fatalf("List(/t) = %q, %v", children, err)
	}
	if r := counter.total(); r != 1 {
		t.Errorf("List of 2 children over %d objects took %d requests", n, r)
	}
}

// Keys no path could have made (a hand's, another tool's: "foo~", a name
// with a space) are left out of listings, as the file system leaves out
// such names: a caller would meet a path every other call refuses.
func TestListingsSkipKeysNoPathMakes(t *testing.T) {
	d := newTestDriver(t, testenv.S3(t), "p")
	ctx := context.Background()
	for _, p := range []string{"/t/a", "/t/b/c"} {
		if err := d.PutContent(ctx, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, stray := range []string{"/t/a~", "/t/b c/x", "/t/b/c~"} {
		if _, err := d.client.PutObject(ctx, d.putInput(d.key("/t")+stray[len("/t"):], nil)); err != nil {
			t.Fatal(err)
		}
	}
	var walked []string
	if err := d.Walk(ctx, "/t", "", func(fi driver.FileInfo) error { walked = append(walked, fi.Path); return nil }); err != nil ||
		!slices.Equal(walked, []string{"/t/a", "/t/b/c"}) {
		t.Errorf("Walk = %q, %v", walked, err)
	}
	if listed, err := d.List(ctx, "/t"); err != nil || !slices.Equal(listed, []string{"/t/a", "/t/b"}) {
		t.Errorf("List = %q, %v", listed, err)
	}
}
