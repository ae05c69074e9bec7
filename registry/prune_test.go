package registry

import (
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/storage/driver"
)

// pruneClock is the registry's clock in the prune tests: the real one
// until a test sets it, which ages every tag at once (the drivers take
// their objects' times from the real clock).
type pruneClock struct{ at atomic.Pointer[time.Time] }

func (c *pruneClock) now() time.Time {
	if at := c.at.Load(); at != nil {
		return *at
	}
	return time.Now()
}

func (c *pruneClock) set(at time.Time) { c.at.Store(&at) }

// forEachPruneDriver runs fn on a fresh registry over every backend, with
// the tags matching immutable held immutable, and a clock to move.
func forEachPruneDriver(t *testing.T, immutable string, fn func(t *testing.T, reg *Registry, clock *pruneClock, tick func())) {
	rules, err := glob.ParseTagRules(immutable)
	if err != nil {
		t.Fatal(err)
	}
	run := func(name, driverName string, sole bool) {
		t.Run(name, func(t *testing.T) {
			clock := &pruneClock{}
			reg := New(manifestDrivers[driverName](t), Options{ManifestCacheSize: 1 << 20, SoleServer: sole, ImmutableTags: rules, Now: clock.now})
			fn(t, reg, clock, func() { pushTick(driverName) })
		})
	}
	for name := range manifestDrivers {
		run(name, name, false)
	}
	run("filesystem-sole", "filesystem", true)
}

// pushTick waits until a write gets a later time than the writes before
// it: S3 tells LastModified to the second, a file system to its clock's
// tick.
func pushTick(driverName string) {
	if driverName == "s3" {
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
		return
	}
	time.Sleep(10 * time.Millisecond)
}

// pushedAt is when the storage says tag was last written.
func (f *fixture) pushedAt(tag string) time.Time {
	f.t.Helper()
	fi, err := driver.StatObject(f.ctx, f.ms.driver(), tagPath(f.repo.name, tag))
	if err != nil {
		f.t.Fatal(err)
	}
	return fi.ModTime
}

// wantTags checks that exactly tags remain.
func (f *fixture) wantTags(tags ...string) {
	f.t.Helper()
	got, _, err := f.ms.Tags(f.ctx, "", 0)
	if err != nil {
		f.t.Fatal(err)
	}
	slices.Sort(tags)
	if !slices.Equal(got, tags) {
		f.t.Errorf("%s has tags %v, want %v", f.repo.name, got, tags)
	}
}

func prunedNames(rep PruneReport) []string {
	var names []string
	for _, p := range rep.Removed {
		names = append(names, p.Tag)
	}
	return names
}

func TestPruneTags(t *testing.T) {
	forEachPruneDriver(t, "v*", func(t *testing.T, reg *Registry, clock *pruneClock, tick func()) {
		cases := []struct {
			name string
			opts PruneOptions
			want PruneReport
			kept []string
		}{
			{"count", PruneOptions{Tags: []string{"sha-*"}, Keep: 2},
				PruneReport{Matched: 4, KeptByCount: 2}, []string{"latest", "v1", "sha-1", "sha-2"}},
			{"age", PruneOptions{Tags: []string{"sha-*"}, OlderThan: time.Hour},
				PruneReport{Matched: 4, KeptByAge: 2}, []string{"latest", "v1", "sha-1", "sha-2"}},
			{"both", PruneOptions{Keep: 1, OlderThan: time.Hour},
				PruneReport{Matched: 6, KeptByCount: 1, KeptByAge: 1, KeptImmutable: 1}, []string{"v1", "sha-1", "sha-2"}},
			{"patterns", PruneOptions{Tags: []string{"sha-1", "lat*", "nothing-?"}},
				PruneReport{Matched: 2}, []string{"v1", "sha-2", "sha-3", "sha-4"}},
			{"immutable", PruneOptions{Tags: []string{"v*"}},
				PruneReport{Matched: 1, KeptImmutable: 1}, []string{"latest", "v1", "sha-1", "sha-2", "sha-3", "sha-4"}},
		}
		// Every repository gets the same tags, oldest first: latest and
		// v1, then sha-4 down to sha-1 (the newest), so that an order by
		// name is not the order by time.
		fixtures := make([]*fixture, len(cases))
		digests := make([]map[string]digest.Digest, len(cases))
		for i, c := range cases {
			fixtures[i] = newFixture(t, reg, "prune/"+c.name)
			digests[i] = map[string]digest.Digest{}
		}
		for _, tags := range [][]string{{"latest", "v1"}, {"sha-4"}, {"sha-3"}, {"sha-2"}, {"sha-1"}} {
			for i, f := range fixtures {
				for _, tag := range tags {
					_, digests[i][tag] = f.pushImage(tag)
				}
			}
			tick()
		}
		pushed := make([]map[string]time.Time, len(cases))
		for i, f := range fixtures {
			pushed[i] = map[string]time.Time{}
			for tag := range digests[i] {
				pushed[i][tag] = f.pushedAt(tag)
			}
		}
		// sha-2 is an hour old exactly; what is older goes.
		clock.set(fixtures[0].pushedAt("sha-2").Add(time.Hour))
		for i, c := range cases {
			f := fixtures[i]
			rep, err := f.ms.PruneTags(f.ctx, c.opts)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			var wantRemoved []string
			for _, tag := range []string{"latest", "sha-1", "sha-2", "sha-3", "sha-4", "v1"} {
				if !slices.Contains(c.kept, tag) {
					wantRemoved = append(wantRemoved, tag)
				}
			}
			if got := prunedNames(rep); !slices.Equal(got, wantRemoved) {
				t.Errorf("%s: removed %v, want %v", c.name, got, wantRemoved)
			}
			for _, p := range rep.Removed {
				if p.Digest != digests[i][p.Tag] || !sameTime(p.Pushed, pushed[i][p.Tag]) {
					t.Errorf("%s: removed %+v, want digest %s pushed at %v", c.name, p, digests[i][p.Tag], pushed[i][p.Tag])
				}
			}
			rep.Removed = nil
			if !reflect.DeepEqual(rep, c.want) {
				t.Errorf("%s: report %+v, want %+v", c.name, rep, c.want)
			}
			f.wantTags(c.kept...)
			// The manifests stay, untagged, for the collector.
			for tag, d := range digests[i] {
				if _, err := f.ms.Stat(f.ctx, d.String()); err != nil {
					t.Errorf("%s: manifest of %s: %v", c.name, tag, err)
				}
			}
		}
	})
}

func TestPruneTagsDryRun(t *testing.T) {
	forEachPruneDriver(t, "", func(t *testing.T, reg *Registry, _ *pruneClock, tick func()) {
		f := newFixture(t, reg, "app")
		_, d1 := f.pushImage("one")
		tick()
		f.pushImage("two")
		rep, err := f.ms.PruneTags(f.ctx, PruneOptions{Keep: 1, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Removed) != 1 || rep.Removed[0].Tag != "one" || rep.Removed[0].Digest != d1 || rep.KeptByCount != 1 {
			t.Fatalf("dry run reported %+v, want one (%s) to go", rep, d1)
		}
		f.wantTags("one", "two")
	})
}

// A tag pushed again between the listing and the removal stays: moved to
// another manifest, or pushed again onto its own (which makes it young);
// one removed meanwhile is no failure.
func TestPruneTagsKeepsTagsPushedMeanwhile(t *testing.T) {
	forEachPruneDriver(t, "", func(t *testing.T, reg *Registry, _ *pruneClock, tick func()) {
		f := newFixture(t, reg, "app")
		f.pushImage("moved")
		again, d := f.pushImage("again")
		f.pushImage("deleted")
		f.pushImage("old")
		f.pushImage("kept")
		other := mustJSON(t, f.image())
		tick()
		rep, err := f.ms.PruneTags(f.ctx, PruneOptions{Tags: []string{"moved", "again", "deleted", "old"}, listed: func() {
			f.put("moved", other)
			f.put("again", again)
			if err := f.ms.Delete(f.ctx, "deleted"); err != nil {
				t.Error(err)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		if got := prunedNames(rep); !slices.Equal(got, []string{"old"}) || rep.Changed != 3 {
			t.Errorf("removed %v with %d changed, want old alone and 3 changed", got, rep.Changed)
		}
		f.wantTags("again", "kept", "moved")
		if got, err := f.ms.Stat(f.ctx, "moved"); err != nil || got.Digest != digest.FromBytes(other) {
			t.Errorf("moved names %s (%v), want the manifest pushed last", got.Digest, err)
		}
		if got, err := f.ms.Stat(f.ctx, "again"); err != nil || got.Digest != d {
			t.Errorf("again names %s (%v), want %s", got.Digest, err, d)
		}
	})
}

// A tag whose manifest stays locked past the wait (a push of it under
// way) is left for the next run, not a failure.
func TestPruneTagsLeavesATagWhoseManifestIsBusy(t *testing.T) {
	defer func(w time.Duration) { lockManifestWait = w }(lockManifestWait)
	lockManifestWait = 50 * time.Millisecond
	forEachPruneDriver(t, "", func(t *testing.T, reg *Registry, _ *pruneClock, _ func()) {
		f := newFixture(t, reg, "app")
		_, d := f.pushImage("busy")
		f.pushImage("free")
		unlock, _, err := f.ms.lockManifest(f.ctx, d, false)
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		rep, err := f.ms.PruneTags(f.ctx, PruneOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := prunedNames(rep); !slices.Equal(got, []string{"free"}) || rep.Changed != 1 {
			t.Errorf("removed %v with %d changed, want free alone and 1 changed", got, rep.Changed)
		}
		f.wantTags("busy")
	})
}

// A signature stored under the referrers tag scheme (cosign's
// sha256-<hex>.sig) is not pruned by its own age, which would take a
// kept image's signature; a rule that names the scheme's prefix prunes it.
func TestPruneTagsLeavesSignatureTags(t *testing.T) {
	reg := New(manifestDrivers["inmemory"](t), Options{})
	f := newFixture(t, reg, "signed")
	_, signed := f.pushImage("1.0")
	sig := "sha256-" + signed.Encoded() + ".sig"
	f.pushImage(sig)
	f.pushImage("sha256-not-a-digest") // no scheme tag: pruned as any other
	// A sha512 subject's, its hex cut to 64 characters.
	sig512 := "sha512-" + digest.SHA512.FromString("x").Encoded()[:64]
	f.pushImage(sig512)

	rep, err := f.ms.PruneTags(f.ctx, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.KeptSchema != 2 || !slices.Equal(prunedNames(rep), []string{"1.0", "sha256-not-a-digest"}) {
		t.Fatalf("a rule over every tag: %+v", rep)
	}
	f.wantTags(sig, sig512)
	rep, err = f.ms.PruneTags(f.ctx, PruneOptions{Tags: []string{"sha256-*", "sha512-*"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(prunedNames(rep), []string{sig, sig512}) {
		t.Fatalf("a rule naming the scheme: %+v", rep)
	}
	f.wantTags()
}
