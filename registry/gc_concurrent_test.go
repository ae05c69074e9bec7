package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/s3"
)

// churn is a run of the collector in a loop while writers push images that
// share base layers and delete earlier ones, on one or more replicas.
type churn struct {
	replicas []*Registry
	repos    []string
	writers  int
	pushes   int // per writer
	// baseLayers are shared by all images; the more there are, the more
	// often one is garbage when a push uses it again.
	baseLayers int
	// ownRepo gives each writer a repository of its own; layers are still
	// shared through the content store and mounts.
	ownRepo bool
	grace   time.Duration // of the looping collector
	window  time.Duration
	// slack is how much older the backend may report an object than it is
	// (S3 keeps whole seconds).
	slack time.Duration

	base    [][]byte // shared layers
	retries atomic.Int64
	runs    atomic.Int64
	mu      sync.Mutex
	live    map[string]map[string]bool // repository → tags that must pull
}

func (c *churn) run(t *testing.T) {
	ctx := context.Background()
	c.live = map[string]map[string]bool{}
	for range c.baseLayers {
		c.base = append(c.base, randomContent(2048))
	}
	stop := make(chan struct{})
	var collectors sync.WaitGroup
	var gcErr atomic.Value
	var running atomic.Int32 // replicas share this process: overlap shows
	for i, reg := range c.replicas {
		collectors.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				opts := GCOptions{Grace: c.grace, DeleteUntagged: true, Window: c.window, TempDir: t.TempDir()}
				opts.Progress = func(p GCProgress) {
					switch p.Phase {
					case "announce":
						if running.Add(1) > 1 {
							gcErr.Store(errors.New("two collections ran at once"))
						}
					case "done":
						running.Add(-1)
					}
				}
				_, err := reg.CollectGarbage(ctx, opts)
				if err != nil && !errors.Is(err, ErrCollectorBusy) {
					gcErr.Store(fmt.Errorf("replica %d: %w", i, err))
					return
				}
				if err == nil {
					c.runs.Add(1)
				}
			}
		})
	}
	var writers sync.WaitGroup
	errs := make(chan error, c.writers)
	for w := range c.writers {
		writers.Go(func() {
			if err := c.write(ctx, w); err != nil {
				errs <- fmt.Errorf("writer %d: %w", w, err)
			}
		})
	}
	writers.Wait()
	close(stop)
	collectors.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err, _ := gcErr.Load().(error); err != nil {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d collections, %d pushes retried", c.runs.Load(), c.retries.Load())
	if c.runs.Load() == 0 {
		t.Fatal("no collection ran during the pushes")
	}

	reg := c.replicas[0]
	for repo, tags := range c.live {
		r, _ := reg.Repository(repo)
		for tag := range tags {
			if err := pullable(ctx, r, tag); err != nil {
				t.Errorf("tagged image not pullable after collecting while pushing: %v", err)
			}
		}
	}
	// One more run with the same grace, now that nothing moves: what no tag
	// reaches and is older than the grace must be gone.
	before := time.Now()
	if _, err := reg.CollectGarbage(ctx, GCOptions{Grace: c.grace, DeleteUntagged: true, Window: c.window, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	reachable := c.reachable(t, reg)
	err := reg.driver.Walk(ctx, blobsRoot, "", func(fi driver.FileInfo) error {
		d, _ := digestAt(fi.Path, 2)
		if !reachable[d] && fi.ModTime.Before(before.Add(-c.grace-c.slack)) {
			t.Errorf("unreferenced blob %s older than the grace survived (modified %v)", d, fi.ModTime)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// write pushes images, each a fresh config and layer plus a shared base
// layer (uploaded again or mounted from another repository), and deletes
// some of its earlier images by tag or by digest.
func (c *churn) write(ctx context.Context, w int) error {
	rng := mrand.New(mrand.NewPCG(uint64(w), 7))
	type pushed struct {
		repo, tag string
		d         digest.Digest
	}
	var mine []pushed
	for i := range c.pushes {
		reg := c.replicas[(w+i)%len(c.replicas)]
		repoName := c.repos[(w+i)%len(c.repos)]
		if c.ownRepo {
			repoName = c.repos[w%len(c.repos)]
		}
		repo, _ := reg.Repository(repoName)
		tag := fmt.Sprintf("w%d-%d", w, i)
		var d digest.Digest
		var err error
		for attempt := 0; ; attempt++ {
			d, err = c.push(ctx, repo, rng, tag)
			// A grace shorter than a push lets the collector take layers
			// uploaded ahead of their manifest; the client uploads again.
			retry := IsUnknown(err) || errors.Is(err, ErrManifestBlobUnknown) || errors.Is(err, ErrBlobUploadUnknown) ||
				// versitygw keeps objects as files and directories, and
				// concurrent uploads race there on making and pruning
				// directories, which no real object store has.
				err != nil && strings.Contains(err.Error(), "ExistingObjectIsDirectory")
			if err == nil || attempt == 20 || !retry {
				break
			}
			c.retries.Add(1)
		}
		if err != nil {
			return fmt.Errorf("push %s:%s: %w", repoName, tag, err)
		}
		c.setLive(repoName, tag, true)
		mine = append(mine, pushed{repoName, tag, d})
		if len(mine) > 2 && rng.IntN(2) == 0 {
			victim := mine[0]
			mine = mine[1:]
			r, _ := reg.Repository(victim.repo)
			ref := victim.tag
			if rng.IntN(2) == 0 {
				ref = victim.d.String()
			}
			c.setLive(victim.repo, victim.tag, false)
			if err := r.Manifests().Delete(ctx, ref); err != nil && !IsUnknown(err) {
				return fmt.Errorf("delete %s@%s: %w", victim.repo, ref, err)
			}
		}
	}
	return nil
}

func (c *churn) setLive(repo, tag string, live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live[repo] == nil {
		c.live[repo] = map[string]bool{}
	}
	if live {
		c.live[repo][tag] = true
	} else {
		delete(c.live[repo], tag)
	}
}

func (c *churn) push(ctx context.Context, repo *Repository, rng *mrand.Rand, tag string) (digest.Digest, error) {
	blobs := repo.Blobs()
	put := func(content []byte) (v1.Descriptor, error) {
		d := digest.FromBytes(content)
		_, err := blobs.Put(ctx, d, bytes.NewReader(content))
		return v1.Descriptor{MediaType: testLayerType, Digest: d, Size: int64(len(content))}, err
	}
	base := c.base[rng.IntN(len(c.base))]
	baseDesc := v1.Descriptor{MediaType: testLayerType, Digest: digest.FromBytes(base), Size: int64(len(base))}
	mounted := false
	if rng.IntN(2) == 0 {
		from := c.repos[rng.IntN(len(c.repos))]
		_, err := blobs.Mount(ctx, from, baseDesc.Digest)
		mounted = err == nil
		if err != nil && !IsUnknown(err) {
			return "", err
		}
	}
	if !mounted {
		if _, err := put(base); err != nil {
			return "", err
		}
	}
	own, err := put(randomContent(512))
	if err != nil {
		return "", err
	}
	config, err := put([]byte(`{"architecture":"amd64","os":"linux","n":"` + rand.Text() + `"}`))
	if err != nil {
		return "", err
	}
	config.MediaType = testConfigType
	m := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIManifest, Config: config, Layers: []v1.Descriptor{baseDesc, own}}
	payload, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	got, err := repo.Manifests().Put(ctx, tag, "", payload)
	if err != nil {
		return "", err
	}
	return got.Descriptor.Digest, nil
}

// reachable is every blob some tag reaches, computed independently of the
// collector.
func (c *churn) reachable(t *testing.T, reg *Registry) map[digest.Digest]bool {
	ctx := context.Background()
	out := map[digest.Digest]bool{}
	names, _, err := reg.Catalog(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		repo, _ := reg.Repository(name)
		tags, _, err := repo.Manifests().Tags(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range tags {
			m, err := repo.Manifests().Get(ctx, tag)
			if err != nil {
				t.Fatalf("%s:%s: %v", name, tag, err)
			}
			out[m.Descriptor.Digest] = true
			for _, ref := range storedReferences(m.Payload, m.Descriptor.MediaType) {
				out[ref.desc.Digest] = true
			}
		}
	}
	return out
}

func TestGCWhilePushingFilesystem(t *testing.T) {
	reg := New(manifestDrivers["filesystem"](t), Options{})
	c := &churn{
		replicas:   []*Registry{reg},
		repos:      []string{"app/one", "app/two", "app/three"},
		writers:    8,
		pushes:     25,
		baseLayers: 24,
		// Far shorter than anything real, so that layers and links go
		// garbage while writers use them: only the writers' guards
		// protect them.
		grace:  10 * time.Millisecond,
		window: 20 * time.Millisecond,
	}
	c.run(t)
}

// Two replicas share a bucket and nothing else: each runs the collector in
// a loop (the lease in the bucket lets one at a time through) while the
// writers alternate between them.
func TestGCWhilePushingS3(t *testing.T) {
	srv := testenv.S3(t)
	var replicas []*Registry
	for range 2 {
		d, err := s3.New(t.Context(), s3.Config{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, ForcePathStyle: true,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
		if err != nil {
			t.Fatal(err)
		}
		drv := driver.Instrument(d, nil)
		replicas = append(replicas, New(drv, Options{Locker: NewBackendLocker(drv, 30*time.Second)}))
	}
	// Each writer pushes to a repository of its own, which makes the
	// directory races of versitygw (see write) rare.
	var repos []string
	for w := range 8 {
		repos = append(repos, fmt.Sprintf("app/w%d", w))
	}
	c := &churn{
		replicas:   replicas,
		repos:      repos,
		ownRepo:    true,
		writers:    8,
		pushes:     6,
		baseLayers: 8,
		// S3 keeps times in whole seconds, so objects look up to a
		// second older than they are: the tiny grace is tinier still.
		grace:  10 * time.Millisecond,
		window: 100 * time.Millisecond,
		slack:  time.Second,
	}
	c.run(t)
}
