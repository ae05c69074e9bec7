package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// A sole server's own writes are seen at once: a tag moved, deleted, or
// taken away by a digest delete resolves anew on the next read.
func TestTagCacheSeesThisProcesssWrites(t *testing.T) {
	clock := time.Now()
	reg := New(manifestDrivers["filesystem"](t), Options{ManifestCacheSize: 1 << 20, SoleServer: true, Now: func() time.Time { return clock }})
	f := newFixture(t, reg, "library/app")
	want := func(ref string, d string) {
		t.Helper()
		for range 2 { // the read that fills, then the one it serves
			m, err := f.ms.Get(f.ctx, ref)
			if err != nil || m.Descriptor.Digest.String() != d {
				t.Fatalf("Get %s = %s, %v; want %s", ref, served(m), err, d)
			}
		}
	}
	_, a := f.pushImage("t")
	want("t", a.String())
	bPayload, b := f.pushImage("t")
	want("t", b.String())
	if err := f.ms.Delete(f.ctx, "t"); err != nil {
		t.Fatal(err)
	}
	f.wantUnknown("after the tag's delete", "t")
	f.put("t", bPayload)
	want("t", b.String())
	if err := f.ms.Delete(f.ctx, b.String()); err != nil {
		t.Fatal(err)
	}
	f.wantUnknown("after its manifest's delete", "t")
}

// Another process's change to a tag (lading fsck, say) is seen once the
// cached resolution is older than tagTrust.
func TestTagCacheSeesOtherProcessesWithinTrust(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	drv := manifestDrivers["filesystem"](t)
	here := newFixture(t, New(drv, Options{ManifestCacheSize: 1 << 20, SoleServer: true, Now: now}), "library/app")
	there := newFixture(t, New(drv, Options{}), "library/app")
	_, a := here.pushImage("t")
	if m, err := here.ms.Get(here.ctx, "t"); err != nil || m.Descriptor.Digest != a {
		t.Fatalf("Get t = %s, %v", served(m), err)
	}
	_, b := there.pushImage("t")
	if m, err := here.ms.Get(here.ctx, "t"); err != nil || m.Descriptor.Digest != a {
		t.Fatalf("Get t within the trust = %s, %v; want the resolution kept", served(m), err)
	}
	mu.Lock()
	clock = clock.Add(tagTrust)
	mu.Unlock()
	if m, err := here.ms.Get(here.ctx, "t"); err != nil || m.Descriptor.Digest != b {
		t.Fatalf("Get t past the trust = %s, %v; want %s", served(m), err, b)
	}
	if err := there.ms.Delete(there.ctx, "t"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	clock = clock.Add(tagTrust)
	mu.Unlock()
	if _, err := here.ms.Get(here.ctx, "t"); !errors.Is(err, ErrManifestUnknown) {
		t.Fatalf("Get t deleted elsewhere, past the trust: %v", err)
	}
}

// A resolution read before a tag's write ends is never kept after it.
func TestTagCacheFillLosesToAWrite(t *testing.T) {
	c := newTagCache()
	now := time.Now()
	old := manifestRecord{}
	old.Digest = "sha256:" + "aa"
	since := c.begin()
	c.forget("r", "r:t") // a write ended while the read was under way
	c.fill("r:t", since, old, now)
	if _, ok := c.get("r:t", now); ok {
		t.Fatal("a resolution read across a write was kept")
	}
	since = c.begin()
	c.fill("r:t", since, old, now)
	if _, ok := c.get("r:t", now); !ok {
		t.Fatal("a resolution read with no write under way was not kept")
	}
	if _, ok := c.get("r:t", now.Add(tagTrust)); ok {
		t.Fatal("a resolution older than tagTrust was used")
	}
	c.forget("r", "r:t")
	if _, ok := c.get("r:t", now); ok {
		t.Fatal("a resolution outlived its tag's write")
	}
}

// Readers racing writers of one tag on a sole server end on the last write.
func TestTagCacheUnderRacingWrites(t *testing.T) {
	reg := New(manifestDrivers["filesystem"](t), Options{ManifestCacheSize: 1 << 20, SoleServer: true})
	f := newFixture(t, reg, "race")
	payloads := make([][]byte, 8)
	for i := range payloads {
		payloads[i] = mustJSON(t, f.image())
	}
	ctx, cancel := context.WithCancel(f.ctx)
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for ctx.Err() == nil {
				f.ms.Get(ctx, "latest")
			}
		})
	}
	for _, p := range payloads {
		f.put("latest", p)
		m, err := f.ms.Get(f.ctx, "latest")
		if err != nil || m.Descriptor.Digest != digest.FromBytes(p) {
			cancel()
			t.Fatalf("Get after a push = %s, %v; want the push's %s", served(m), err, digest.FromBytes(p))
		}
	}
	cancel()
	readers.Wait()
}

// served names the manifest a Get returned.
func served(m *Manifest) string {
	if m == nil {
		return "nothing"
	}
	return m.Descriptor.Digest.String()
}

// Untyped bytes that an earlier version stored as a Docker manifest, pushed
// again, get an OCI record, which a cached tag of them must not hide.
func TestTagCacheSeesARecordRewritten(t *testing.T) {
	drv := manifestDrivers["filesystem"](t)
	img := newFixture(t, New(drv, Options{}), "library/app").image()
	img.MediaType = ""
	payload := mustJSON(t, img)
	d := digest.FromBytes(payload)
	old := newFixture(t, New(drv, Options{}), "library/app")
	if _, err := old.ms.Put(old.ctx, "t", MediaTypeOCIManifest, payload); err != nil {
		t.Fatal(err)
	}
	old.legacyDocker(d)
	f := newFixture(t, New(drv, Options{ManifestCacheSize: 1 << 20, SoleServer: true}), "library/app")
	if got, err := f.ms.Stat(f.ctx, "t"); err != nil || got.MediaType != MediaTypeDockerManifest { // fills
		t.Fatalf("Stat t = %s, %v; want the legacy record", got.MediaType, err)
	}
	if _, err := f.ms.Put(f.ctx, d.String(), "", payload); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{d.String(), "t"} {
		if got, err := f.ms.Stat(f.ctx, ref); err != nil || got.MediaType != MediaTypeOCIManifest {
			t.Fatalf("Stat %s = %s, %v; want the record as pushed last", ref, got.MediaType, err)
		}
	}
}

// A sole server keeps a large repository's tags in order between its own
// writes: a client paging through them costs one listing, not one per page;
// a push or a delete here shows in the next page, another process's once
// the list is older than tagTrust.
func TestTagListKeptBetweenWrites(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	var walks atomic.Int64
	drv := driver.Instrument(inmemory.New(), func(op string, _ time.Duration, _ error) {
		if op == "Walk" {
			walks.Add(1)
		}
	})
	f := newFixture(t, New(drv, Options{SoleServer: true, Now: now}), "big")
	_, d := f.pushImage("seed")
	want := []string{"seed"}
	for i := range keptListMin + 10 {
		tag := fmt.Sprintf("t%05d", i)
		if err := f.ms.tag(f.ctx, tag, d); err != nil {
			t.Fatal(err)
		}
		want = append(want, tag)
	}
	pages := func() []string {
		t.Helper()
		var got []string
		last := ""
		for {
			page, more, err := f.ms.Tags(f.ctx, last, 100)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if !more {
				return got
			}
			last = page[len(page)-1]
		}
	}
	check := func(when string) {
		t.Helper()
		slices.Sort(want)
		before := walks.Load()
		if got := pages(); !slices.Equal(got, want) {
			t.Fatalf("%s: %d tags listed, want %d (%q...)", when, len(got), len(want), got[:min(len(got), 5)])
		}
		if n := walks.Load() - before; n != 1 {
			t.Fatalf("%s: %d listings for %d pages, want 1", when, n, len(want)/100+1)
		}
	}
	check("first")
	f.pushImage("t00003-new")
	want = append(want, "t00003-new")
	check("after a push")
	if err := f.ms.Delete(f.ctx, "t00007"); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(s string) bool { return s == "t00007" })
	check("after a delete")

	other := newFixture(t, New(drv, Options{}), "big")
	other.pushImage("zzz")
	if got := pages(); slices.Contains(got, "zzz") {
		t.Fatal("another process's tag seen within the trust: the list was not kept")
	}
	mu.Lock()
	clock = clock.Add(tagTrust)
	mu.Unlock()
	want = append(want, "zzz")
	check("past the trust")
}

// A list read while tags of other repositories change is kept: on a busy
// registry writes elsewhere never stop. One read across a write of its own
// repository is not.
func TestTagListKeptDespiteWritesElsewhere(t *testing.T) {
	c := newTagCache()
	names := make([]string, keptListMin)
	for i := range names {
		names[i] = fmt.Sprintf("t%05d", i)
	}
	now := time.Now()
	if !c.beginList("big") || c.beginList("big") {
		t.Fatal("the claim is not one reader's")
	}
	c.forget("other", "other:x")
	c.endList("big", names, now)
	if got, ok := c.list("big", now); !ok || len(got) != len(names) {
		t.Fatal("a list read while another repository's tag changed was not kept")
	}
	c.forget("big", "big:t00001")
	c.beginList("big")
	c.forget("big", "big:t00002")
	c.endList("big", names, now)
	if _, ok := c.list("big", now); ok {
		t.Fatal("a list read across a write of its own tags was kept")
	}
}

// panicOnWalk panics in Walk while armed, as a failing driver might.
type panicOnWalk struct {
	driver.Driver
	armed atomic.Bool
}

func (p *panicOnWalk) Walk(ctx context.Context, path, from string, fn driver.WalkFunc) error {
	if p.armed.Load() {
		panic("walk failed")
	}
	return p.Driver.Walk(ctx, path, from, fn)
}

// A read of the whole list that panics (the server recovers it) releases
// its claim: the next request reads and keeps the list.
func TestTagListClaimReleasedOnPanic(t *testing.T) {
	mem := inmemory.New()
	seed := newFixture(t, New(mem, Options{}), "big")
	_, d := seed.pushImage("seed")
	for i := range keptListMin {
		if err := seed.ms.tag(seed.ctx, fmt.Sprintf("t%05d", i), d); err != nil {
			t.Fatal(err)
		}
	}
	drv := &panicOnWalk{Driver: mem}
	reg := New(drv, Options{SoleServer: true})
	ms := newFixture(t, reg, "big").ms
	drv.armed.Store(true)
	func() {
		defer func() { recover() }()
		ms.Tags(context.Background(), "", 10)
	}()
	drv.armed.Store(false)
	if _, _, err := ms.Tags(context.Background(), "", 10); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.tags.list("big", reg.now()); !ok {
		t.Fatal("no list kept after a read that panicked")
	}
}

// failingRemoval removes an object but reports it was not removed, with an
// error, as a file system's conditional removal can once it moved the
// object aside and could neither read nor restore it.
type failingRemoval struct {
	driver.Driver
	armed atomic.Bool
}

func (f *failingRemoval) RemoveObjectIf(ctx context.Context, path string, content []byte) (bool, error) {
	if !f.armed.Load() {
		return driver.RemoveObjectIf(ctx, f.Driver, path, content)
	}
	if err := f.Driver.Delete(ctx, path); err != nil {
		return false, err
	}
	return false, errors.New("moved aside, then lost")
}

// A tag a failed untag took away anyway is not listed from memory.
func TestUntagForgetsWhateverTheRemovalSays(t *testing.T) {
	drv := &failingRemoval{Driver: inmemory.New()}
	f := newFixture(t, New(drv, Options{SoleServer: true}), "big")
	_, gone := f.pushImage("gone")
	_, d := f.pushImage("seed")
	for i := range keptListMin {
		if err := f.ms.tag(f.ctx, fmt.Sprintf("t%05d", i), d); err != nil {
			t.Fatal(err)
		}
	}
	if tags, _, err := f.ms.Tags(f.ctx, "", 0); err != nil || !slices.Contains(tags, "gone") {
		t.Fatalf("before: %v", err)
	}
	drv.armed.Store(true)
	if err := f.ms.Delete(f.ctx, gone.String()); err == nil {
		t.Fatal("the failing removal did not fail the delete")
	}
	if tags, _, err := f.ms.Tags(f.ctx, "", 0); err != nil || slices.Contains(tags, "gone") {
		t.Fatalf("a tag removed from the store is still listed from memory (%v)", err)
	}
}
