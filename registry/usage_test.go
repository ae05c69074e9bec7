package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
)

// usageStore fills reg with two repositories sharing a layer of 1000
// bytes, each with a config, a layer of its own and a manifest; team/a
// holds an index of its image too, tagged, and team/b, whose layer is
// larger, two tags. A blob of 300 bytes is stored that no repository
// links. It returns the report Usage must give.
func usageStore(t *testing.T, reg *Registry) UsageReport {
	t.Helper()
	a, b := newFixture(t, reg, "team/a"), newFixture(t, reg, "team/b")
	shared := randomContent(1000)
	image := func(f *fixture, own int, tags ...string) (cfg, layer, man int64, d v1.Descriptor) {
		m := v1.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: MediaTypeOCIManifest,
			Config:    f.blob(testConfigType, []byte(`{"repository":"`+f.repo.name+`"}`)),
			Layers:    []v1.Descriptor{f.blob(testLayerType, shared), f.blob(testLayerType, randomContent(own))},
		}
		put := f.put("v1", mustJSON(t, m), tags...)
		return m.Config.Size, int64(own), put.Descriptor.Size, put.Descriptor
	}
	cfgA, layerA, manA, descA := image(a, 2000)
	index := int64(len(a.put("multi", mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{descA}})).Payload))
	cfgB, layerB, manB, _ := image(b, 5000, "latest")
	stray := randomContent(300)
	if err := reg.driver.PutContent(context.Background(), blobPath(digest.FromBytes(stray)), stray); err != nil {
		t.Fatal(err)
	}
	return UsageReport{
		Repositories: []RepositoryUsage{
			{Name: "team/b", LinkedBlobs: 4, LinkedBytes: cfgB + 1000 + layerB + manB, ExclusiveBlobs: 3, ExclusiveBytes: cfgB + layerB + manB, Manifests: 1, Tags: 2},
			{Name: "team/a", LinkedBlobs: 5, LinkedBytes: cfgA + 1000 + layerA + manA + index, ExclusiveBlobs: 4, ExclusiveBytes: cfgA + layerA + manA + index, Manifests: 2, Tags: 2},
		},
		StoredBlobs:   9,
		StoredBytes:   cfgA + layerA + manA + index + cfgB + layerB + manB + 1000 + 300,
		UnlinkedBlobs: 1,
		UnlinkedBytes: 300,
	}
}

func usageOf(t *testing.T, reg *Registry, opts UsageOptions) (UsageReport, []UsageProblem) {
	t.Helper()
	var problems []UsageProblem
	opts.Problem = func(p UsageProblem) { problems = append(problems, p) }
	rep, err := reg.Usage(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	rep.Duration = 0
	return rep, problems
}

func wantUsage(t *testing.T, got, want UsageReport) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("usage:\n got %+v\nwant %+v", got, want)
	}
}

// Each repository's linked and exclusive blobs are counted, a shared
// blob once in the store, and the blob no repository links as such;
// limited to some repositories, the others' links still make a blob
// shared.
func TestUsage(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		want := usageStore(t, reg)
		got, problems := usageOf(t, reg, UsageOptions{})
		if len(problems) > 0 {
			t.Fatalf("problems in a sound store: %+v", problems)
		}
		wantUsage(t, got, want)

		got, _ = usageOf(t, reg, UsageOptions{Repositories: []string{"*/a", "other/**"}})
		want.Repositories = want.Repositories[1:]
		wantUsage(t, got, want)

		if _, err := reg.Usage(context.Background(), UsageOptions{Repositories: []string{"team//a"}}); err == nil {
			t.Fatal("a pattern with an empty component was taken")
		}
	})
}

// What cannot be read, or is not what its place holds, is counted apart
// and named, and the count goes on; a failing storage ends it.
func TestUsageGoesOnPastDamage(t *testing.T) {
	for _, name := range []string{"inmemory", "filesystem"} {
		t.Run(name, func(t *testing.T) {
			denied := &deniedDriver{Driver: manifestDrivers[name](t)}
			reg := New(denied, Options{})
			want := usageStore(t, reg)
			c := newFixture(t, reg, "team/c")
			c.pushImage("v1")
			lost := digest.FromString("lost")
			overwrite(t, reg.driver, layerLinkPath("team/a", lost), nil)
			overwrite(t, reg.driver, tagsPath("team/b")+"/.v1.swp", nil)
			// A folder of blobs holding none of those counted.
			var unused string
			for i := 0; unused == ""; i++ {
				d := digest.FromString(fmt.Sprint("unused", i))
				if _, err := reg.driver.List(context.Background(), path.Dir(blobPath(d))); driver.IsNotFound(err) {
					unused = path.Dir(blobPath(d))
					overwrite(t, reg.driver, blobPath(d), []byte("unused"))
				}
			}
			denied.folders = []string{repoPath("team/c") + "/_layers", unused}

			got, problems := usageOf(t, reg, UsageOptions{Repositories: []string{"team/a", "team/b"}})
			var paths []string
			for _, p := range problems {
				paths = append(paths, p.Path)
			}
			slices.Sort(paths)
			wantPaths := []string{unused, layerLinkPath("team/a", lost), repoPath("team/c") + "/_layers", tagsPath("team/b") + "/.v1.swp"}
			slices.Sort(wantPaths)
			if !slices.Equal(paths, wantPaths) {
				t.Fatalf("problems %+v, want at %v", problems, wantPaths)
			}
			for _, p := range problems {
				if strings.HasSuffix(p.Path, "/_layers") && !strings.Contains(p.Detail, "permission denied") {
					t.Errorf("%s: cause not named: %q", p.Path, p.Detail)
				}
			}
			// team/c's blobs are stored (and unlinked, as far as the count
			// could read).
			img, err := c.ms.Get(context.Background(), "v1")
			if err != nil {
				t.Fatal(err)
			}
			var m v1.Manifest
			if err := json.Unmarshal(img.Payload, &m); err != nil {
				t.Fatal(err)
			}
			cBytes := m.Config.Size + m.Layers[0].Size + img.Descriptor.Size
			want.StoredBlobs += 3
			want.StoredBytes += cBytes
			want.UnlinkedBlobs += 3
			want.UnlinkedBytes += cBytes
			want.Damaged = 4
			wantUsage(t, got, want)

			denied.fail = driver.UnavailableError{Driver: name, Err: errors.New("connection refused")}
			if _, err := reg.Usage(context.Background(), UsageOptions{}); !driver.IsUnavailable(err) {
				t.Fatalf("usage over a storage that fails: %v", err)
			}
		})
	}
}

// lateDriver hides a blob from walks, as one pushed after the count
// walked the blobs.
type lateDriver struct {
	driver.Driver
	late string
}

func (d *lateDriver) Walk(ctx context.Context, p, from string, fn driver.WalkFunc) error {
	return d.Driver.Walk(ctx, p, from, func(fi driver.FileInfo) error {
		if fi.Path == d.late {
			return nil
		}
		return fn(fi)
	})
}

// A blob pushed while the count runs is counted once a link names it.
func TestUsageCountsABlobPushedDuringTheCount(t *testing.T) {
	late := &lateDriver{Driver: manifestDrivers["inmemory"](t)}
	reg := New(late, Options{})
	want := usageStore(t, reg)
	m, err := newFixture(t, reg, "team/b").ms.Get(context.Background(), "v1")
	if err != nil {
		t.Fatal(err)
	}
	late.late = blobPath(m.Descriptor.Digest)
	got, problems := usageOf(t, reg, UsageOptions{})
	if len(problems) > 0 {
		t.Fatalf("problems: %+v", problems)
	}
	wantUsage(t, got, want)
}

// BenchmarkUsageMemory measures what the count keeps a blob: run with
// -bench UsageMemory -benchtime 1x.
func BenchmarkUsageMemory(b *testing.B) {
	const n = 1 << 20
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		u := &usage{blobs: map[digestKey]blobUsage{}}
		for i := range n {
			k, _ := keyOf(digest.FromString(path.Join("blob", fmt.Sprint(i))))
			u.store(k, int64(i))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/blob")
		runtime.KeepAlive(u)
	}
}
