package registry

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lading-registry/lading/storage/driver/inmemory"
)

func TestCatalogOrderAndPagination(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		// Separators sort below letters and digits, so nested names and
		// names with '-', '.', '_' interleave in ways a naive listing of
		// nested directories gets wrong.
		want := []string{"a", "a-b", "a.b", "a/b", "a/b/c", "a/b-c", "a0", "a_b", "a__b", "ab", "a--b", "b", "b/a", "z9/x.y_z"}
		for i, name := range want {
			f := newFixture(t, reg, name)
			if i%2 == 0 {
				f.pushImage("v1") // registered by a manifest push
			} else {
				f.blob(testLayerType, []byte(name)) // registered by a blob
			}
		}
		slices.Sort(want)
		all, more, err := reg.Catalog(t.Context(), "", 0)
		if err != nil || more || !slices.Equal(all, want) {
			t.Fatalf("catalog %v (more=%v, %v), want %v", all, more, err, want)
		}
		list := func(last string, n int) ([]string, bool, error) { return reg.Catalog(t.Context(), last, n) }
		checkPaging(t, want, []int{1, 2, 4, len(want)}, list)
		page, _, err := reg.Catalog(t.Context(), "a/b", 3)
		if err != nil || !slices.Equal(page, []string{"a/b-c", "a/b/c", "a0"}) {
			t.Fatalf("after a/b: %v %v", page, err)
		}
		_, _, err = reg.Catalog(t.Context(), "Not/A/Name", 3)
		wantErrCode(t, err, CodeNameInvalid)
	})
}

func TestCatalogEmpty(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		names, more, err := reg.Catalog(t.Context(), "", 10)
		if err != nil || names == nil || len(names) != 0 || more {
			t.Fatalf("empty catalog: %#v %v %v", names, more, err)
		}
	})
}

func TestCatalogPageCost(t *testing.T) {
	counter := &walkCounter{Driver: inmemory.New()}
	reg := New(counter, Options{})
	for i := range 300 {
		newFixture(t, reg, fmt.Sprintf("org/r%03d", i)).blob(testLayerType, []byte{byte(i)})
	}
	counter.visited.Store(0)
	page, more, err := reg.Catalog(t.Context(), "org/r100", 5)
	if err != nil || !more || !slices.Equal(page, []string{"org/r101", "org/r102", "org/r103", "org/r104", "org/r105"}) {
		t.Fatalf("page %v more=%v err=%v", page, more, err)
	}
	if v := counter.visited.Load(); v > 6 {
		t.Fatalf("a page of 5 visited %d objects", v)
	}
}

// A name whose catalog entry a file system cannot hold (each '-', '.' and
// '/' stored as two bytes, past 255) is NAME_INVALID there before anything
// is written; an object store holds it.
func TestNameTooLongForTheStorage(t *testing.T) {
	name := strings.Repeat("b", 200) + "-" + strings.Repeat("c", 54) // 255 characters, 256 bytes stored
	if err := ValidateName(name); err != nil {
		t.Fatalf("the grammar refuses %q: %v", name, err)
	}
	fsReg := New(manifestDrivers["filesystem"](t), Options{})
	_, err := fsReg.Repository(name)
	wantErrCode(t, err, CodeNameInvalid)
	if _, err := fsReg.Repository(name[:254]); err != nil {
		t.Fatalf("255 bytes stored: %v", err)
	}
	memReg := New(manifestDrivers["inmemory"](t), Options{})
	repo, err := memReg.Repository(name)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: t.Context(), repo: repo, ms: repo.Manifests()}
	f.pushImage("v1")
	if names, _, err := memReg.Catalog(t.Context(), "", 0); err != nil || !slices.Contains(names, name) {
		t.Fatalf("catalog %v %v", names, err)
	}
}
