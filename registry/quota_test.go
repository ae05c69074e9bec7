package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/storage/driver"
)

func quotaRule(t *testing.T, pattern string, limit int64, each bool) QuotaRule {
	t.Helper()
	g, err := glob.Compile(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return QuotaRule{Pattern: pattern, Repositories: g, Limit: limit, Each: each}
}

// forEachQuotaDriver runs fn on a fresh registry with rules over every
// backend, with a clock to move: a count is stale once the clock is set
// past quotaFresh.
func forEachQuotaDriver(t *testing.T, rules []QuotaRule, fn func(t *testing.T, reg *Registry, clock *pruneClock)) {
	clock := &pruneClock{}
	forEachDriverWith(t, Options{Quotas: rules, Now: clock.now}, func(t *testing.T, reg *Registry) {
		clock.at.Store(nil)
		fn(t, reg, clock)
	})
}

// later sets the clock past the bound, so every count is taken again.
func later(clock *pruneClock) {
	clock.set(clock.now().Add(quotaFresh + time.Second))
}

// upload pushes content through a session, as a client's POST then PUT
// with the bytes do, and returns the session with the digest.
func (f *fixture) upload(content []byte) (*Upload, digest.Digest, error) {
	d := digest.FromBytes(content)
	up, err := f.repo.Blobs().Upload(f.ctx, UploadOptions{})
	if err != nil {
		return nil, d, err
	}
	_, err = up.AppendCommit(f.ctx, bytes.NewReader(content), 0, d)
	return up, d, err
}

// uploaded is upload, failing the test on an error.
func (f *fixture) uploaded(n int) digest.Digest {
	f.t.Helper()
	_, d, err := f.upload(randomContent(n))
	if err != nil {
		f.t.Fatalf("upload of %d bytes into %s: %v", n, f.repo.name, err)
	}
	return d
}

// wantQuotaDenied checks that err is a quota's DENIED naming each of
// parts.
func wantQuotaDenied(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	e, ok := AsError(err)
	if !ok || e.Code != CodeDenied {
		t.Fatalf("%s: %v, want DENIED", what, err)
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Errorf("%s: %q does not name %q", what, e.Message, p)
		}
	}
}

// wantNotLinked checks that the repository does not hold d.
func (f *fixture) wantNotLinked(d digest.Digest) {
	f.t.Helper()
	if _, err := f.repo.Blobs().Stat(f.ctx, d); !errors.Is(err, ErrBlobUnknown) {
		f.t.Fatalf("a refused blob: Stat in %s = %v, want BLOB_UNKNOWN", f.repo.name, err)
	}
}

// A rule without each caps the total of the repositories it takes:
// commits go while they fit, the one that would pass the limit is refused
// and leaves nothing linked and no session; at the limit no upload
// starts; a blob the repository links already is always taken; a
// repository outside the rule, and manifests, are never refused.
func TestQuotaCapsTheTotal(t *testing.T) {
	forEachQuotaDriver(t, []QuotaRule{quotaRule(t, "team/**", 1000, false)}, func(t *testing.T, reg *Registry, _ *pruneClock) {
		a, b := newFixture(t, reg, "team/a"), newFixture(t, reg, "team/b")
		cfg := a.blob(testConfigType, []byte("{}"))
		shared := a.uploaded(400)
		b.blob(testLayerType, randomContent(400))

		content := randomContent(300)
		up, refused, err := a.upload(content)
		wantQuotaDenied(t, "a commit past the total", err, `quota "team/**" would be exceeded: the repositories it takes hold 802 B of their 1000 B, and this blob of 300 B`)
		a.wantNotLinked(refused)
		if _, err := a.repo.Blobs().Resume(a.ctx, up.ID()); !errors.Is(err, ErrBlobUploadUnknown) {
			t.Fatalf("the refused session: %v, want BLOB_UPLOAD_UNKNOWN", err)
		}
		_, err = b.repo.Blobs().Put(b.ctx, refused, bytes.NewReader(content))
		wantQuotaDenied(t, "a blob in one request past the total", err, "300 B")
		b.wantNotLinked(refused)

		b.uploaded(198) // to the limit, not past it
		_, err = a.repo.Blobs().Upload(a.ctx, UploadOptions{})
		wantQuotaDenied(t, "an upload at the limit", err, `quota "team/**" is full`, "1000 B")
		_, err = b.repo.Blobs().Mount(b.ctx, "team/a", shared)
		wantQuotaDenied(t, "a mount at the limit", err, "1000 B of their 1000 B, and this blob of 400 B")
		b.wantNotLinked(shared)

		// What a repository links already adds nothing.
		if _, err := a.repo.Blobs().Mount(a.ctx, "", shared); err != nil {
			t.Fatalf("a mount of a blob linked already: %v", err)
		}
		if _, err := a.repo.Blobs().Put(a.ctx, shared, bytes.NewReader(mustRead(t, a, shared))); err != nil {
			t.Fatalf("a push of a blob linked already: %v", err)
		}
		// Manifests go past it: a full repository still moves its tags.
		a.put("v1", mustJSON(t, v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIManifest, Config: cfg,
			Layers: []v1.Descriptor{{MediaType: testLayerType, Digest: shared, Size: 400}}}))

		other := newFixture(t, reg, "lib/app")
		other.uploaded(5000)
	})
}

// mustRead returns the bytes of a blob f links.
func mustRead(t *testing.T, f *fixture, d digest.Digest) []byte {
	t.Helper()
	r, err := f.repo.Blobs().Open(f.ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A rule with each gives every repository the limit to itself.
func TestQuotaEachRepository(t *testing.T) {
	forEachQuotaDriver(t, []QuotaRule{quotaRule(t, "**", 1000, true)}, func(t *testing.T, reg *Registry, _ *pruneClock) {
		a, b := newFixture(t, reg, "team/a"), newFixture(t, reg, "team/b")
		a.uploaded(900)
		_, _, err := a.upload(randomContent(200))
		wantQuotaDenied(t, "past a repository's own limit", err, `quota "**" would be exceeded: team/a holds 900 B of its 1000 B`, "200 B")
		b.uploaded(900)
		b.uploaded(100)
		_, err = b.repo.Blobs().Upload(b.ctx, UploadOptions{})
		wantQuotaDenied(t, "an upload at a repository's limit", err, "team/b holds 1000 B of its 1000 B")
		a.uploaded(100)
	})
}

// A repository is governed by the first rule that matches it, and by no
// other.
func TestQuotaFirstRuleWins(t *testing.T) {
	rules := []QuotaRule{quotaRule(t, "team/big/**", 3000, false), quotaRule(t, "team/**", 500, true)}
	forEachQuotaDriver(t, rules, func(t *testing.T, reg *Registry, _ *pruneClock) {
		big, small := newFixture(t, reg, "team/big/x"), newFixture(t, reg, "team/small")
		small.uploaded(400)
		big.uploaded(1000)
		newFixture(t, reg, "team/big/y").uploaded(1500)
		_, _, err := big.upload(randomContent(600))
		wantQuotaDenied(t, "past the first rule", err, `quota "team/big/**"`, "2.4 KiB of their 2.9 KiB")
		_, _, err = small.upload(randomContent(600))
		wantQuotaDenied(t, "past the second rule", err, `quota "team/**"`, "team/small holds 400 B of its 500 B")
		small.uploaded(100)
	})
}

// Usage is what Usage (lading du) reports as LinkedBytes: deletes and
// the collection lower it, which a count shows once the one before is
// older than the bound; within it, this process's count stands.
func TestQuotaFreedByDeleteAndCollection(t *testing.T) {
	forEachQuotaDriver(t, []QuotaRule{quotaRule(t, "team/**", 2000, false)}, func(t *testing.T, reg *Registry, clock *pruneClock) {
		a := newFixture(t, reg, "team/a")
		layer := a.blob(testLayerType, randomContent(1500))
		m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIManifest,
			Config: a.blob(testConfigType, []byte(`{"os":"linux"}`)), Layers: []v1.Descriptor{layer}}
		a.put("v1", mustJSON(t, m))
		later(clock) // the manifest's bytes count once counted
		rep, _ := usageOf(t, reg, UsageOptions{})
		want := rep.Repositories[0].LinkedBytes
		if got := quotaUsage(t, reg, "team/a"); got != want {
			t.Fatalf("usage %d, lading du's LinkedBytes %d", got, want)
		}
		_, _, err := a.upload(randomContent(600))
		wantQuotaDenied(t, "before the delete", err)

		if err := a.ms.Delete(a.ctx, "v1"); err != nil {
			t.Fatal(err)
		}
		clock.set(clock.now().Add(time.Second))
		if _, err := reg.CollectGarbage(a.ctx, GCOptions{DeleteUntagged: true, Window: time.Millisecond, TempDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
		if got := quotaUsage(t, reg, "team/a"); got != want {
			t.Fatalf("usage %d within the bound, want the count before, %d", got, want)
		}
		_, _, err = a.upload(randomContent(600))
		wantQuotaDenied(t, "within the bound", err)
		later(clock)
		if got := quotaUsage(t, reg, "team/a"); got != 0 {
			t.Fatalf("usage %d once counted again, want 0", got)
		}
		a.uploaded(600)
	})
}

// quotaUsage is the usage repo's rule is checked against once a count
// begun by a stale one has ended (see recount).
func quotaUsage(t *testing.T, reg *Registry, repo string) int64 {
	t.Helper()
	c := recount(t, reg, repo)
	reg.quotas.mu.Lock()
	defer reg.quotas.mu.Unlock()
	return c.usage()
}

// recount waits for the count of repo's rule that a request finding it
// stale began in the background, or counts it now if it is stale and no
// request did.
func recount(t *testing.T, reg *Registry, repo string) *quotaCount {
	t.Helper()
	q := reg.quotas
	key, ok := q.govern(repo)
	if !ok {
		t.Fatalf("no rule governs %s", repo)
	}
	c, err := q.fresh(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	_, err, _ = q.flight.Do(strconv.Itoa(key.rule)+"/"+key.repo, func() (any, error) {
		return nil, q.count(context.Background(), key, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A second process on the same storage counts its own pushes at once and
// the first's once its count is older than the bound: within it, the two
// together may pass the limit.
func TestQuotaSecondProcess(t *testing.T) {
	rules := []QuotaRule{quotaRule(t, "team/**", 1000, false)}
	forEachQuotaDriver(t, rules, func(t *testing.T, first *Registry, clock *pruneClock) {
		second := New(first.driver, Options{Quotas: rules, Now: clock.now})
		a1, a2 := newFixture(t, first, "team/a"), newFixture(t, second, "team/a")
		a2.uploaded(100) // counted: nothing yet
		a1.uploaded(800)
		a2.uploaded(200) // the second has not seen the first's 800
		_, _, err := a2.upload(randomContent(800))
		wantQuotaDenied(t, "past what the second pushed itself", err, "300 B of their 1000 B")

		later(clock)
		// (A push on the stale count may or may not find the next one
		// ended: TestQuotaSlowCountHoldsNoPush holds a count to see.)
		recount(t, second, "team/a")
		recount(t, first, "team/a")
		_, err = a2.repo.Blobs().Upload(a2.ctx, UploadOptions{})
		wantQuotaDenied(t, "once the second counts again", err, `is full: the repositories it takes hold 1.1 KiB of their 1000 B`)
		_, err = a1.repo.Blobs().Upload(a1.ctx, UploadOptions{})
		wantQuotaDenied(t, "once the first counts again", err, "1.1 KiB")
	})
}

// Commits of one process at once cannot pass the limit together: each
// holds its bytes from its check to its end.
func TestQuotaConcurrentCommits(t *testing.T) {
	forEachQuotaDriver(t, []QuotaRule{quotaRule(t, "team/**", 1000, false)}, func(t *testing.T, reg *Registry, _ *pruneClock) {
		a := newFixture(t, reg, "team/a")
		quotaUsage(t, reg, "team/a") // counted before they race
		var taken atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, _, err := a.upload(randomContent(300))
				switch {
				case err == nil:
					taken.Add(1)
				case !errors.Is(err, ErrDenied):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if taken.Load() != 3 {
			t.Fatalf("%d commits of 300 bytes under a limit of 1000, want 3", taken.Load())
		}
	})
}

// layerCountingDriver counts the listings of repositories' links and the
// stats of blobs.
type layerCountingDriver struct {
	driver.Driver
	walks, blobStats atomic.Int64
}

func (c *layerCountingDriver) Walk(ctx context.Context, dir, from string, fn driver.WalkFunc) error {
	if strings.HasSuffix(dir, "/_layers") {
		c.walks.Add(1)
	}
	return c.Driver.Walk(ctx, dir, from, fn)
}

func (c *layerCountingDriver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if strings.HasPrefix(p, blobsRoot+"/") {
		c.blobStats.Add(1)
	}
	return c.Driver.Stat(ctx, p)
}

// Requests that find a count stale at once share one; a count lists the
// links and states only the blobs this process has not met.
func TestQuotaCountsAreSharedAndCheap(t *testing.T) {
	for _, name := range []string{"inmemory", "filesystem"} {
		t.Run(name, func(t *testing.T) {
			clock := &pruneClock{}
			counting := &layerCountingDriver{Driver: manifestDrivers[name](t)}
			reg := New(counting, Options{Quotas: []QuotaRule{quotaRule(t, "team/**", 1<<20, false)}, Now: clock.now})
			other := New(counting.Driver, Options{})
			a, b := newFixture(t, other, "team/a"), newFixture(t, other, "team/b")
			for range 5 {
				a.uploaded(100)
				b.uploaded(100)
			}
			begin := func() {
				t.Helper()
				var wg sync.WaitGroup
				for range 8 {
					wg.Go(func() {
						if _, err := newFixture(t, reg, "team/c").repo.Blobs().Upload(context.Background(), UploadOptions{}); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
			}
			begin()
			if got := counting.walks.Load(); got != 2 {
				t.Errorf("8 uploads at once listed links %d times, want once for each of 2 repositories", got)
			}
			if got := counting.blobStats.Load(); got != 10 {
				t.Errorf("the first count stated %d blobs, want each of 10 once", got)
			}
			a.uploaded(100)
			later(clock)
			counting.walks.Store(0)
			counting.blobStats.Store(0)
			begin()
			recount(t, reg, "team/c") // the count begun by the first of them
			if got := counting.walks.Load(); got != 2 {
				t.Errorf("counting again listed links %d times, want 2", got)
			}
			if got := counting.blobStats.Load(); got != 1 {
				t.Errorf("counting again stated %d blobs, want only the one pushed since", got)
			}
			if got := quotaUsage(t, reg, "team/a"); got != 1100 {
				t.Errorf("usage %d, want 1100", got)
			}
		})
	}
}

// CountQuotas counts each rule capping a total and tells QuotaUsed;
// QuotaRefused hears of each refusal.
func TestCountQuotas(t *testing.T) {
	used, refused := map[string]int64{}, map[string]int{}
	reg := New(manifestDrivers["inmemory"](t), Options{
		Quotas:       []QuotaRule{quotaRule(t, "team/**", 1000, false), quotaRule(t, "**", 1000, true)},
		QuotaUsed:    func(rule string, n int64) { used[rule] = n },
		QuotaRefused: func(rule string) { refused[rule]++ },
	})
	newFixture(t, New(reg.driver, Options{}), "team/a").uploaded(300)
	if err := reg.CountQuotas(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(used) != 1 || used["team/**"] != 300 {
		t.Fatalf("told %v, want team/** at 300 only", used)
	}
	newFixture(t, reg, "lib/a").uploaded(900)
	_, _, err := newFixture(t, reg, "lib/a").upload(randomContent(200))
	wantQuotaDenied(t, "past each", err)
	_, _, err = newFixture(t, reg, "team/b").upload(randomContent(800))
	wantQuotaDenied(t, "past the total", err)
	if len(refused) != 2 || refused["**"] != 1 || refused["team/**"] != 1 {
		t.Fatalf("refusals told %v, want one of each rule", refused)
	}
}

// gatedLinks holds the listings of repositories' links while armed: a
// count that takes as long as the test wants.
type gatedLinks struct {
	driver.Driver
	armed atomic.Bool
	gate  chan struct{}
}

func (g *gatedLinks) Walk(ctx context.Context, dir, from string, fn driver.WalkFunc) error {
	if strings.HasSuffix(dir, "/_layers") && g.armed.Load() {
		<-g.gate
	}
	return g.Driver.Walk(ctx, dir, from, fn)
}

// A push finding the count stale goes on with it while the next is
// counted: a count slower than the bound (thousands of repositories on an
// object store) holds up no push.
func TestQuotaSlowCountHoldsNoPush(t *testing.T) {
	clock := &pruneClock{}
	drv := &gatedLinks{Driver: manifestDrivers["inmemory"](t), gate: make(chan struct{})}
	reg := New(drv, Options{Quotas: []QuotaRule{quotaRule(t, "team/**", 1<<20, false)}, Now: clock.now})
	a := newFixture(t, reg, "team/a")
	a.uploaded(10) // the first count, which the push waits for
	drv.armed.Store(true)
	later(clock)
	pushed := make(chan struct{})
	go func() {
		defer close(pushed)
		a.uploaded(10)
	}()
	select {
	case <-pushed:
	case <-time.After(10 * time.Second):
		t.Fatal("a push waited for the count its stale one began")
	}
	close(drv.gate)
	// The push linked while the count listed: it may be found by the
	// count and added again (the usage errs high, never low).
	if got := quotaUsage(t, reg, "team/a"); got != 20 && got != 30 {
		t.Errorf("usage %d once counted, want 20 (or 30, counted twice)", got)
	}
}

// sameLookDriver holds the first two looks at a repository's link of a
// blob until both have looked: two commits of one blob at once, each
// finding it not linked yet.
type sameLookDriver struct {
	driver.Driver
	n    atomic.Int64
	both chan struct{}
}

func (s *sameLookDriver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	fi, err := s.Driver.Stat(ctx, p)
	if strings.Contains(p, "/_layers/") {
		if s.n.Add(1) == 2 {
			close(s.both)
		}
		select {
		case <-s.both:
		case <-time.After(5 * time.Second):
		}
	}
	return fi, err
}

// Two commits of one blob into one repository at once count it once:
// parallel jobs pushing images over a shared base layer.
func TestQuotaSameBlobAtOnceCountsOnce(t *testing.T) {
	drv := &sameLookDriver{Driver: manifestDrivers["inmemory"](t), both: make(chan struct{})}
	reg := New(drv, Options{Quotas: []QuotaRule{quotaRule(t, "team/**", 1000, false)}})
	a := newFixture(t, reg, "team/a")
	quotaUsage(t, reg, "team/a")
	content := randomContent(400)
	d := digest.FromBytes(content)
	var wg sync.WaitGroup
	for range 2 {
		up, err := a.repo.Blobs().Upload(a.ctx, UploadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if _, err := up.AppendCommit(a.ctx, bytes.NewReader(content), 0, d); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := quotaUsage(t, reg, "team/a"); got != 400 {
		t.Errorf("usage %d after one blob of 400 B committed twice at once, want 400", got)
	}
	a.uploaded(300) // 700 of 1000
}

// Under a rule with each, the counts of repositories no longer pushed to
// are dropped once there are many, and counted again when needed.
func TestQuotaIdleCountsDropped(t *testing.T) {
	maxQuotaCounts = 4
	defer func() { maxQuotaCounts = 1 << 14 }()
	clock := &pruneClock{}
	reg := New(manifestDrivers["inmemory"](t), Options{Quotas: []QuotaRule{quotaRule(t, "**", 1000, true)}, Now: clock.now})
	for i := range 10 {
		newFixture(t, reg, fmt.Sprintf("ci/branch-%d", i)).uploaded(100)
		later(clock) // each count stale before the next repository's
	}
	reg.quotas.mu.Lock()
	n := len(reg.quotas.counts)
	reg.quotas.mu.Unlock()
	if n > 4 {
		t.Errorf("%d counts kept for 10 repositories pushed to once, over a bound of 4", n)
	}
	if got := quotaUsage(t, reg, "ci/branch-0"); got != 100 {
		t.Errorf("a dropped count counted again: %d, want 100", got)
	}
}
