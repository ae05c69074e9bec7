package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// hookDriver runs a function once, before or after the first call of an
// operation on a path.
type hookDriver struct {
	driver.Driver
	mu     sync.Mutex
	hooks  map[string]func() // "delete /path", "put /path", "get /path", "create /path", "stat /path"
	before map[string]bool
	fail   map[string]error
}

func newHookDriver(d driver.Driver) *hookDriver {
	return &hookDriver{Driver: d, hooks: map[string]func(){}, before: map[string]bool{}, fail: map[string]error{}}
}

func (h *hookDriver) on(op, p string, before bool, fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hooks[op+" "+p] = fn
	h.before[op+" "+p] = before
}

func (h *hookDriver) run(op, p string, before bool) {
	h.mu.Lock()
	key := op + " " + p
	fn := h.hooks[key]
	if fn == nil || h.before[key] != before {
		h.mu.Unlock()
		return
	}
	delete(h.hooks, key)
	h.mu.Unlock()
	fn()
}

func (h *hookDriver) failing(op, p string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fail[op+" "+p]
}

func (h *hookDriver) Delete(ctx context.Context, p string) error {
	if err := h.failing("delete", p); err != nil {
		return err
	}
	h.run("delete", p, true)
	err := h.Driver.Delete(ctx, p)
	h.run("delete", p, false)
	return err
}

// RemoveObjectIf is a delete too.
func (h *hookDriver) RemoveObjectIf(ctx context.Context, p string, content []byte) (bool, error) {
	if err := h.failing("delete", p); err != nil {
		return false, err
	}
	h.run("delete", p, true)
	removed, err := driver.RemoveObjectIf(ctx, h.Driver, p, content)
	h.run("delete", p, false)
	return removed, err
}

func (h *hookDriver) PutContent(ctx context.Context, p string, b []byte) error {
	h.run("put", p, true)
	err := h.Driver.PutContent(ctx, p, b)
	h.run("put", p, false)
	return err
}

func (h *hookDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	h.run("get", p, true)
	return h.Driver.GetContent(ctx, p)
}

func (h *hookDriver) Create(ctx context.Context, p string, b []byte) error {
	h.run("create", p, true)
	err := h.Driver.Create(ctx, p, b)
	h.run("create", p, false)
	return err
}

func (h *hookDriver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	h.run("stat", p, true)
	fi, err := h.Driver.Stat(ctx, p)
	h.run("stat", p, false)
	return fi, err
}

// noDanglingTags fails if a tag of the repository names a manifest the
// repository does not have.
func noDanglingTags(t *testing.T, f *fixture) {
	t.Helper()
	tags, _, err := f.ms.Tags(f.ctx, "", 0)
	if err != nil && !errors.Is(err, ErrNameUnknown) {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if _, err := f.ms.Get(f.ctx, tag); err != nil {
			t.Fatalf("tag %s points at nothing: %v", tag, err)
		}
	}
}

func hookedFixture(t *testing.T) (*fixture, *hookDriver) {
	h := newHookDriver(driver.Instrument(inmemory.New(), nil))
	return newFixture(t, New(h, Options{}), "race"), h
}

// A blob unlinked from one repository stays readable in another; the
// collector takes its bytes only when no link is left.
func TestBlobUnlinkKeepsOtherRepositories(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "deletes")
		other := newFixture(t, reg, "other")
		desc := f.blob(testLayerType, randomContent(20))
		if _, err := other.repo.Blobs().Mount(f.ctx, "deletes", desc.Digest); err != nil {
			t.Fatal(err)
		}
		if err := f.repo.Blobs().Delete(f.ctx, desc.Digest); err != nil {
			t.Fatal(err)
		}
		if _, err := f.repo.Blobs().Stat(f.ctx, desc.Digest); !errors.Is(err, ErrBlobUnknown) {
			t.Fatalf("unlinked blob: %v", err)
		}
		opts := quickGC(false)
		opts.Grace = time.Hour // the other repository's link is young
		collect(t, reg, opts)
		if _, err := other.repo.Blobs().Stat(f.ctx, desc.Digest); err != nil || !hasBlob(t, reg, desc.Digest) {
			t.Fatalf("blob gone from the other repository: %v", err)
		}
		if err := other.repo.Blobs().Delete(f.ctx, desc.Digest); err != nil {
			t.Fatal(err)
		}
		collect(t, reg, quickGC(false))
		if hasBlob(t, reg, desc.Digest) {
			t.Fatal("blob without links survived")
		}
	})
}

// A digest delete that stops at any step leaves no tag pointing at nothing.
func TestDeleteFailingAtEachStepLeavesNoDanglingTag(t *testing.T) {
	for _, step := range []string{"tag", "record"} {
		t.Run(step, func(t *testing.T) {
			f, h := hookedFixture(t)
			payload, d := f.pushImage("v1")
			f.put(d.String(), payload, "v2")
			broken := errors.New("backend went away")
			switch step {
			case "tag":
				h.fail["delete "+tagPath("race", "v2")] = broken
			case "record":
				h.fail["delete "+manifestLinkPath("race", d)] = broken
			}
			if err := f.ms.Delete(f.ctx, d.String()); !errors.Is(err, broken) {
				t.Fatalf("delete: %v", err)
			}
			noDanglingTags(t, f)
		})
	}
}

// meanwhile starts op, from inside a storage hook, and returns once op has
// ended or waits for a manifest's lock (which the hooked request may hold
// until it is done); wait then gives op's outcome.
func meanwhile(t *testing.T, f *fixture, op func() error) (wait func() error) {
	waiting := make(chan struct{})
	var once sync.Once
	f.repo.reg.lockWaited = func(string) { once.Do(func() { close(waiting) }) }
	done := make(chan error, 1)
	go func() { done <- op() }()
	select {
	case err := <-done:
		return func() error { return err }
	case <-waiting:
		return func() error { return <-done }
	case <-time.After(10 * time.Second):
		t.Error("the other request neither ended nor waited for the lock")
		return func() error { return <-done }
	}
}

// A push of a tag onto a manifest being deleted by digest, at each point of
// the delete, and a delete at a point of the push: whichever goes first,
// the outcome is one of the two orders (the manifest gone with its tags, or
// there with the pushed tag), never a tag naming nothing, an acknowledged
// push without its tag, or a referrers list naming a deleted manifest. The
// other request starts inside a hook, which returns once that request has
// finished (the interleaving the manifest's lock prevents: before it, a
// push landing between the delete's removal of the record and its second
// pass lost its tag) or waits for the lock.
func TestPushDuringDigestDelete(t *testing.T) {
	// oneOrder fails unless the manifest is either gone with its tag, or
	// there and tagged.
	oneOrder := func(t *testing.T, f *fixture, d digest.Digest, tag string) {
		t.Helper()
		noDanglingTags(t, f)
		_, recErr := f.ms.Get(f.ctx, d.String())
		tagged := pullable(f.ctx, f.repo, tag) == nil
		switch {
		case recErr == nil && !tagged:
			t.Fatalf("the manifest stands without the pushed tag %s", tag)
		case recErr != nil && !errors.Is(recErr, ErrManifestUnknown):
			t.Fatal(recErr)
		}
	}
	cases := []struct {
		name   string
		op     func(d digest.Digest) (op, p string)
		before bool
	}{
		{"before the record goes", func(d digest.Digest) (string, string) { return "delete", manifestLinkPath("race", d) }, true},
		{"after the record went", func(d digest.Digest) (string, string) { return "delete", manifestLinkPath("race", d) }, false},
		{"while its tags go", func(d digest.Digest) (string, string) { return "delete", tagPath("race", "v1") }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, h := hookedFixture(t)
			payload, d := f.pushImage("v1")
			op, p := tc.op(d)
			var push func() error
			h.on(op, p, tc.before, func() {
				push = meanwhile(t, f, func() error {
					_, err := f.ms.Put(f.ctx, d.String(), "", payload, "late")
					return err
				})
			})
			if err := f.ms.Delete(f.ctx, d.String()); err != nil {
				t.Fatal(err)
			}
			if push == nil {
				t.Fatal("the hook did not run")
			}
			if err := push(); err != nil {
				t.Fatalf("push during delete: %v", err)
			}
			oneOrder(t, f, d, "late")
		})
	}
	// A referrer: its entry in the subject's list goes and comes with it.
	for _, before := range []bool{true, false} {
		when := map[bool]string{true: "before", false: "after"}[before]
		t.Run("a referrer pushed again "+when+" its record goes", func(t *testing.T) {
			f, h := hookedFixture(t)
			subject, sd := f.pushImage("v1")
			art := mustJSON(t, f.artifact(v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: sd, Size: int64(len(subject))}, sbomType, nil))
			ad := digest.FromBytes(art)
			f.put(ad.String(), art)
			var push func() error
			h.on("delete", manifestLinkPath("race", ad), before, func() {
				push = meanwhile(t, f, func() error {
					_, err := f.ms.Put(f.ctx, ad.String(), MediaTypeOCIManifest, art)
					return err
				})
			})
			if err := f.ms.Delete(f.ctx, ad.String()); err != nil {
				t.Fatal(err)
			}
			if push == nil {
				t.Fatal("the hook did not run")
			}
			if err := push(); err != nil {
				t.Fatalf("push during delete: %v", err)
			}
			refs, err := f.ms.Referrers(f.ctx, sd, "")
			if err != nil {
				t.Fatal(err)
			}
			_, recErr := f.ms.Get(f.ctx, ad.String())
			if listed := len(refs) == 1 && refs[0].Digest == ad; listed != (recErr == nil) {
				t.Fatalf("referrer there: %v; listed: %v", recErr == nil, refs)
			}
		})
	}
	t.Run("delete inside the push", func(t *testing.T) {
		f, h := hookedFixture(t)
		payload, d := f.pushImage("v1")
		var del func() error
		h.on("put", tagPath("race", "late"), false, func() {
			del = meanwhile(t, f, func() error { return f.ms.Delete(f.ctx, d.String()) })
		})
		if _, err := f.ms.Put(f.ctx, d.String(), "", payload, "late"); err != nil {
			t.Fatal(err)
		}
		if del == nil {
			t.Fatal("the hook did not run")
		}
		if err := del(); err != nil {
			t.Fatalf("delete during push: %v", err)
		}
		oneOrder(t, f, d, "late")
	})
	// A push held up past lockManifestWait gets a clean 429, one whose
	// client leaves stops waiting, and the collector does not wait.
	t.Run("a held manifest", func(t *testing.T) {
		f, _ := hookedFixture(t)
		payload, d := f.pushImage("v1")
		unlock, _, err := f.ms.lockManifest(f.ctx, d, false)
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		defer func(w time.Duration) { lockManifestWait = w }(lockManifestWait)
		lockManifestWait = 100 * time.Millisecond
		if _, err := f.ms.Put(f.ctx, d.String(), "", payload, "late"); !errors.Is(err, &Error{Code: CodeTooManyRequests}) {
			t.Fatalf("push past the wait: %v", err)
		}
		lockManifestWait = time.Minute
		ctx, cancel := context.WithTimeout(f.ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := f.ms.Put(ctx, d.String(), "", payload, "late"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("push whose client gives up: %v", err)
		}
		if err := f.ms.delete(f.ctx, d.String(), false); !errors.Is(err, &Error{Code: CodeTooManyRequests}) {
			t.Fatalf("the collector's delete of a held manifest: %v", err)
		}
		mustPullable(t, f, "v1")
	})
	// Pushes of one manifest under many tags take turns, all acknowledged
	// and all tagged.
	t.Run("pushes of one manifest", func(t *testing.T) {
		f, _ := hookedFixture(t)
		payload, d := f.pushImage("v1")
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				if _, err := f.ms.Put(f.ctx, d.String(), "", payload, fmt.Sprintf("t%d", i)); err != nil {
					t.Errorf("push %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		for i := range 16 {
			mustPullable(t, f, fmt.Sprintf("t%d", i))
		}
	})
	// Another process's hold (the Locker's) is polled until it goes.
	t.Run("held by another process", func(t *testing.T) {
		f, _ := hookedFixture(t)
		payload, d := f.pushImage("v1")
		unlock, err := f.repo.reg.locker.TryLock(f.ctx, manifestLockKey("race", d))
		if err != nil {
			t.Fatal(err)
		}
		// The other process lets go once the push has found the key held.
		var waited atomic.Bool
		var once sync.Once
		f.repo.reg.lockWaited = func(string) { once.Do(func() { waited.Store(true); go unlock() }) }
		if _, err := f.ms.Put(f.ctx, d.String(), "", payload, "late"); err != nil {
			t.Fatalf("push once the other process let go: %v", err)
		}
		if !waited.Load() {
			t.Fatal("the push did not wait for the other process's hold")
		}
		mustPullable(t, f, "late")
	})
}

// A manifest push whose blob is collected between its checks and its end
// (a write slower than the window) is withdrawn and fails, rather than
// leave a tag on a manifest that cannot be pulled.
func TestSlowPushLosingItsBlobFails(t *testing.T) {
	f, h := hookedFixture(t)
	img := f.image()
	layer := img.Layers[0].Digest
	// A run announces itself (window 0: every write after it verifies) and
	// collects the layer while the push writes its record.
	reg := f.repo.reg
	payload := mustJSON(t, img)
	d := digest.FromBytes(payload)
	h.on("put", manifestLinkPath("race", d), true, func() {
		if _, err := reg.writeGCState(f.ctx, gcState{Run: "r1"}); err != nil {
			t.Error(err)
		}
		_ = reg.driver.Delete(f.ctx, layerLinkPath("race", layer))
		_ = reg.driver.Delete(f.ctx, blobPath(layer))
	})
	_, err := f.ms.Put(f.ctx, "v1", "", payload)
	wantErrCode(t, err, CodeManifestBlobUnknown)
	noDanglingTags(t, f)
	if _, err := f.ms.Get(f.ctx, d.String()); !errors.Is(err, ErrManifestUnknown) {
		t.Fatalf("withdrawn manifest still there: %v", err)
	}
}

// A lease released between a contender's failed create and its read must
// not be deleted by that contender: a third process may hold it by then.
func TestLeaseNotStolenWhenReleasedMeanwhile(t *testing.T) {
	ctx := context.Background()
	shared := driver.Instrument(inmemory.New(), nil)
	unlockA, err := NewBackendLocker(shared, 0).TryLock(ctx, "gc")
	if err != nil {
		t.Fatal(err)
	}
	var unlockC func()
	gap := &readInGap{Driver: shared, path: lockPath("gc"), gap: func() {
		unlockA()
		if unlockC, err = NewBackendLocker(shared, 0).TryLock(ctx, "gc"); err != nil {
			t.Errorf("third contender: %v", err)
		}
	}}
	if _, err := NewBackendLocker(gap, 0).TryLock(ctx, "gc"); !errors.Is(err, ErrLocked) {
		t.Fatalf("contender took a lease another holds: %v", err)
	}
	if raw, err := shared.GetContent(ctx, lockPath("gc")); err != nil || !strings.Contains(string(raw), "token") {
		t.Fatalf("the third contender's lease was removed: %q %v", raw, err)
	}
	unlockC()
}

// readInGap's first read of path runs gap and answers not-found, as a read
// that landed between one holder's release and the next one's create.
type readInGap struct {
	driver.Driver
	path string
	gap  func()
}

func (r *readInGap) GetContent(ctx context.Context, p string) ([]byte, error) {
	if p == r.path && r.gap != nil {
		r.gap()
		r.gap = nil
		return nil, driver.PathNotFoundError{Driver: "test", Path: p}
	}
	return r.Driver.GetContent(ctx, p)
}

// Digest deletes leave their tag markers; the collector removes those of
// digests the repository no longer holds, and only those.
func TestGCRemovesTagMarkersOfDeletedManifests(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "markers")
		_, gone := f.pushImage("a")
		_, kept := f.pushImage("b")
		if err := f.ms.Delete(f.ctx, gone.String()); err != nil {
			t.Fatal(err)
		}
		collect(t, reg, quickGC(false))
		if left, err := listAll(f.ctx, reg.driver, tagRefsPath("markers", gone)); err != nil || len(left) != 0 {
			t.Fatalf("markers of a deleted manifest: %v %v", left, err)
		}
		if left, err := listAll(f.ctx, reg.driver, tagRefsPath("markers", kept)); err != nil || len(left) != 1 {
			t.Fatalf("markers of a kept manifest: %v %v", left, err)
		}
		// The kept manifest's tag still goes with a digest delete.
		if err := f.ms.Delete(f.ctx, kept.String()); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ms.Get(f.ctx, "b"); !errors.Is(err, ErrManifestUnknown) {
			t.Fatalf("tag after its manifest's delete: %v", err)
		}
	})
}

// A link left in the cache after the collector removed it (a reader's
// refill racing the invalidation) does not let a manifest through.
func TestPushIgnoresStaleCachedLink(t *testing.T) {
	reg := New(driver.Instrument(inmemory.New(), nil), Options{Cache: &mapCache{m: map[string][]byte{}}})
	f := newFixture(t, reg, "cached")
	img := f.image()
	layer := img.Layers[0].Digest
	if _, err := f.repo.Blobs().Stat(f.ctx, layer); err != nil { // cached now
		t.Fatal(err)
	}
	_ = reg.driver.Delete(f.ctx, layerLinkPath("cached", layer))
	_ = reg.driver.Delete(f.ctx, blobPath(layer))
	_, err := f.ms.Put(f.ctx, "v1", "", mustJSON(t, img))
	wantErrCode(t, err, CodeManifestBlobUnknown)
}

// mapCache is the simplest Cache (the cache package imports this one).
type mapCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (c *mapCache) Get(_ context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[key]; ok {
		return v, nil
	}
	return nil, ErrCacheMiss
}

func (c *mapCache) Set(_ context.Context, key string, v []byte, _ time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = v
	return nil
}

func (c *mapCache) Delete(_ context.Context, keys ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		delete(c.m, k)
	}
	return nil
}

// A manifest whose own bytes are collected just after the push wrote them
// (the run announced itself with no window, so the push verifies) is
// written again from the payload in hand: the push succeeds and pulls.
func TestPushRewritesItsCollectedPayload(t *testing.T) {
	f, h := hookedFixture(t)
	img := f.image()
	reg := f.repo.reg
	payload := mustJSON(t, img)
	d := digest.FromBytes(payload)
	h.on("put", layerLinkPath("race", d), true, func() {
		if _, err := reg.writeGCState(f.ctx, gcState{Run: "r1"}); err != nil {
			t.Error(err)
		}
		if err := reg.driver.Delete(f.ctx, blobPath(d)); err != nil {
			t.Error(err)
		}
	})
	if _, err := f.ms.Put(f.ctx, "v1", "", payload); err != nil {
		t.Fatal(err)
	}
	m, err := f.ms.Get(f.ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Payload) != string(payload) {
		t.Fatal("pulled payload differs from the pushed one")
	}
	if _, err := f.repo.Blobs().Stat(f.ctx, d); err != nil {
		t.Fatalf("manifest bytes not linked: %v", err)
	}
}

// A push that a short-windowed run came and went during, then a run with
// a long window began, is verified: the long window says nothing of the
// short run, which may have marked before the push published.
func TestSettleVerifiesAcrossTwoRuns(t *testing.T) {
	f, h := hookedFixture(t)
	reg := f.repo.reg
	img := f.image()
	layer := img.Layers[0].Digest
	payload := mustJSON(t, img)
	d := digest.FromBytes(payload)
	h.on("put", manifestLinkPath("race", d), true, func() {
		// Run a (window 1ms) marks before the record and collects the
		// layer; run b, with the default window, begins.
		reg.writeGCState(f.ctx, gcState{Run: "a", Window: time.Millisecond})
		_ = reg.driver.Delete(f.ctx, layerLinkPath("race", layer))
		_ = reg.driver.Delete(f.ctx, blobPath(layer))
		reg.writeGCState(f.ctx, gcState{Last: "a", Window: time.Millisecond})
		reg.writeGCState(f.ctx, gcState{Run: "b", Last: "a", Window: DefaultGCWindow})
	})
	stateReuse = 0 // the push reads the state itself
	defer func() { stateReuse = 50 * time.Millisecond }()
	_, err := f.ms.Put(f.ctx, "v1", "", payload)
	wantErrCode(t, err, CodeManifestBlobUnknown)
	noDanglingTags(t, f)
}

// lapsingLocker's locks report their loss at once.
type lapsingLocker struct{ Locker }

func (l lapsingLocker) TryLockLost(ctx context.Context, key string) (func(), <-chan struct{}, error) {
	unlock, err := l.TryLock(ctx, key)
	lost := make(chan struct{})
	close(lost)
	return unlock, lost, err
}

// A manifest's lock that lapsed while a push held it is told in the log.
func TestLapsedManifestLockIsLogged(t *testing.T) {
	var logs bytes.Buffer
	reg := New(driver.Instrument(inmemory.New(), nil), Options{Locker: lapsingLocker{NewLocalLocker()}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	f := newFixture(t, reg, "race")
	f.pushImage("v1")
	if !strings.Contains(logs.String(), "lock lapsed") {
		t.Fatalf("no warning of the lapse: %q", logs.String())
	}
}

// slowStat holds every stat of path for a while, as an object store's
// request retried for minutes.
type slowStat struct {
	driver.Driver
	path string
	for_ time.Duration
}

func (s slowStat) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if p == s.path {
		time.Sleep(s.for_)
	}
	return s.Driver.Stat(ctx, p)
}

// A lookup slower than a shared cache's refusal after a delete does not
// cache what it read: a delete on another replica meanwhile would come back
// for the entry's whole TTL.
func TestSlowLookupIsNotCached(t *testing.T) {
	defer func(d time.Duration) { cacheFillWithin = d }(cacheFillWithin)
	// A stat held the whole bound is slower than it whatever the machine
	// does; a quick one has a second, which no stall on a loaded machine
	// takes.
	cacheFillWithin = time.Second
	mem := inmemory.New()
	c := &mapCache{m: map[string][]byte{}}
	f := newFixture(t, New(mem, Options{}), "slow")
	layer := f.blob(testLayerType, randomContent(10))
	reg := New(slowStat{Driver: mem, path: blobPath(layer.Digest), for_: cacheFillWithin}, Options{Cache: c})
	repo, _ := reg.Repository("slow")
	if _, err := repo.Blobs().Stat(f.ctx, layer.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(f.ctx, linkKey("slow", layer.Digest.String())); !errors.Is(err, ErrCacheMiss) {
		t.Fatalf("a lookup that took %v was cached (err %v)", cacheFillWithin, err)
	}
	reg = New(mem, Options{Cache: c})
	repo, _ = reg.Repository("slow")
	if _, err := repo.Blobs().Stat(f.ctx, layer.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(f.ctx, linkKey("slow", layer.Digest.String())); err != nil {
		t.Fatalf("a quick lookup was not cached: %v", err)
	}
}
