package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// walkCounter counts the objects its driver's walks visit and the objects
// it reads, to show that a page (or a delete) costs what it touches rather
// than what the store holds.
type walkCounter struct {
	driver.Driver
	visited, reads atomic.Int64
}

func (w *walkCounter) GetContent(ctx context.Context, path string) ([]byte, error) {
	w.reads.Add(1)
	return w.Driver.GetContent(ctx, path)
}

func (w *walkCounter) Walk(ctx context.Context, path, from string, fn driver.WalkFunc) error {
	return w.Driver.Walk(ctx, path, from, func(fi driver.FileInfo) error {
		w.visited.Add(1)
		return fn(fi)
	})
}

// checkPaging follows list from the start in pages of each n, as a client
// following Link headers would: the pages must add up to want, and every
// page but the last must be full.
func checkPaging(t *testing.T, want []string, ns []int, list func(last string, n int) ([]string, bool, error)) {
	t.Helper()
	for _, n := range ns {
		var all []string
		last := ""
		for {
			page, more, err := list(last, n)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page...)
			if !more {
				break
			}
			if len(page) != n {
				t.Fatalf("n=%d: a page of %d before the end", n, len(page))
			}
			last = page[len(page)-1]
		}
		if !slices.Equal(all, want) {
			t.Fatalf("n=%d: %v, want %v", n, all, want)
		}
	}
}

func TestTagsPagination(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "paged")
		payload, _ := f.pushImage("seed")
		want := []string{"seed", "1.0", "1.0-rc1", "1.0.1", "10", "2", "A", "Latest", "_x", "latest", "v1", "v1-alpha", "v1.0", "v1_0"}
		for _, tag := range want[1:] {
			f.put(tag, payload)
		}
		slices.Sort(want)
		list := func(last string, n int) ([]string, bool, error) { return f.ms.Tags(f.ctx, last, n) }

		all, _, err := f.ms.Tags(f.ctx, "", 0)
		if err != nil || !slices.Equal(all, want) {
			t.Fatalf("all tags %v (%v), want %v", all, err, want)
		}
		checkPaging(t, want, []int{1, 3, 5, len(want), len(want) + 1}, list)
		// The exact end of the list: a full last page says no more.
		page, more, err := f.ms.Tags(f.ctx, want[len(want)-3], 2)
		if err != nil || more || !slices.Equal(page, want[len(want)-2:]) {
			t.Fatalf("last page %v more=%v err=%v", page, more, err)
		}
		// last need not be a tag that exists.
		page, _, _ = f.ms.Tags(f.ctx, "1.0.0", 2)
		if !slices.Equal(page, []string{"1.0.1", "10"}) {
			t.Fatalf("after a missing tag: %v", page)
		}
		page, more, _ = f.ms.Tags(f.ctx, "zzz", 2)
		if len(page) != 0 || more {
			t.Fatalf("past the end: %v %v", page, more)
		}
		_, _, err = f.ms.Tags(f.ctx, "bad tag", 2)
		wantErrCode(t, err, CodeTagInvalid)
	})
}

func TestTagsOfEmptyAndUnknownRepositories(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "untagged")
		_, d := f.pushImage("only")
		if err := f.ms.Delete(f.ctx, d.String()); err != nil {
			t.Fatal(err)
		}
		tags, more, err := f.ms.Tags(f.ctx, "", 10)
		if err != nil || tags == nil || len(tags) != 0 || more {
			t.Fatalf("repository without tags: %#v %v %v", tags, more, err)
		}
		// A repository that holds only blobs exists too.
		blobsOnly := newFixture(t, reg, "blobs/only")
		blobsOnly.blob(testLayerType, []byte("x"))
		if tags, _, err := blobsOnly.ms.Tags(f.ctx, "", 0); err != nil || len(tags) != 0 {
			t.Fatalf("blob-only repository: %v %v", tags, err)
		}
		_, _, err = newFixture(t, reg, "never/pushed").ms.Tags(f.ctx, "", 10)
		wantErrCode(t, err, CodeNameUnknown)
	})
}

// crowded returns a repository holding one image under count tags t0000,
// t0001, ..., on a counting driver whose counters start at zero.
func crowded(t *testing.T, count int) (*fixture, *walkCounter) {
	counter := &walkCounter{Driver: inmemory.New()}
	f := newFixture(t, New(counter, Options{}), "crowded")
	payload, _ := f.pushImage("t0000")
	for i := 1; i < count; i++ {
		f.put(fmt.Sprintf("t%04d", i), payload)
	}
	counter.visited.Store(0)
	counter.reads.Store(0)
	return f, counter
}

func TestTagsPageCost(t *testing.T) {
	f, counter := crowded(t, 1000)
	page, more, err := f.ms.Tags(f.ctx, "t0500", 10)
	if err != nil || !more || len(page) != 10 || page[0] != "t0501" {
		t.Fatalf("page %v more=%v err=%v", page, more, err)
	}
	if v := counter.visited.Load(); v > 11 {
		t.Fatalf("a page of 10 visited %d objects", v)
	}
}

func TestDigestDeleteCost(t *testing.T) {
	f, counter := crowded(t, 500)
	_, d := f.pushImage("mine")
	counter.visited.Store(0)
	counter.reads.Store(0)
	if err := f.ms.Delete(f.ctx, d.String()); err != nil {
		t.Fatal(err)
	}
	if v, r := counter.visited.Load(), counter.reads.Load(); v > 2 || r > 3 {
		t.Fatalf("deleting a manifest with one tag visited %d objects and read %d among 500 tags", v, r)
	}
	if _, err := f.ms.Stat(f.ctx, "mine"); !errors.Is(err, ErrManifestUnknown) {
		t.Fatalf("tag survived: %v", err)
	}
}
