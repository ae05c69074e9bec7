package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// forEachGCDriver runs fn on the local backends; the concurrent tests run
// the collector on S3.
func forEachGCDriver(t *testing.T, fn func(t *testing.T, reg *Registry)) {
	for _, name := range []string{"inmemory", "filesystem"} {
		t.Run(name, func(t *testing.T) { fn(t, New(manifestDrivers[name](t), Options{})) })
	}
}

// quickGC is a collection with no grace, as a test wants after its pushes.
func quickGC(untagged bool) GCOptions {
	return GCOptions{DeleteUntagged: untagged, Window: time.Millisecond}
}

func collect(t *testing.T, reg *Registry, opts GCOptions) GCReport {
	t.Helper()
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	rep, err := reg.CollectGarbage(context.Background(), opts)
	if err != nil {
		t.Fatalf("collect garbage: %v", err)
	}
	return rep
}

// storedBlobs lists the digests under /blobs.
func storedBlobs(t *testing.T, reg *Registry) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	err := reg.driver.Walk(context.Background(), blobsRoot, "", func(fi driver.FileInfo) error {
		d, ok := digestAt(fi.Path, 2)
		if !ok {
			t.Errorf("unexpected object %s", fi.Path)
		}
		out = append(out, d)
		return nil
	})
	if err != nil && !driver.IsNotFound(err) {
		t.Fatal(err)
	}
	return out
}

// pullable fails unless reference resolves to a manifest whose bytes, and
// every blob it points at, read back with the right digest.
func pullable(ctx context.Context, repo *Repository, reference string) error {
	m, err := repo.Manifests().Get(ctx, reference)
	if err != nil {
		return fmt.Errorf("%s:%s: %w", repo.name, reference, err)
	}
	if m.Descriptor.Digest.Algorithm().FromBytes(m.Payload) != m.Descriptor.Digest {
		return fmt.Errorf("%s:%s: manifest bytes do not match %s", repo.name, reference, m.Descriptor.Digest)
	}
	var doc manifestDoc
	if err := json.Unmarshal(m.Payload, &doc); err != nil {
		return err
	}
	descs := slices.Clone(doc.Layers)
	if doc.Config != nil {
		descs = append(descs, *doc.Config)
	}
	for _, c := range doc.Manifests {
		if err := pullable(ctx, repo, c.Digest.String()); err != nil {
			return err
		}
	}
	for _, desc := range descs {
		br, err := repo.Blobs().Open(ctx, desc.Digest)
		if err != nil {
			return fmt.Errorf("%s:%s: blob %s: %w", repo.name, reference, desc.Digest, err)
		}
		h := desc.Digest.Algorithm().Digester()
		_, err = io.Copy(h.Hash(), br)
		br.Close()
		if err != nil {
			return fmt.Errorf("%s:%s: reading %s: %w", repo.name, reference, desc.Digest, err)
		}
		if h.Digest() != desc.Digest {
			return fmt.Errorf("%s:%s: blob %s reads as %s", repo.name, reference, desc.Digest, h.Digest())
		}
	}
	return nil
}

func mustPullable(t *testing.T, f *fixture, reference string) {
	t.Helper()
	if err := pullable(f.ctx, f.repo, reference); err != nil {
		t.Fatal(err)
	}
}

func hasBlob(t *testing.T, reg *Registry, d digest.Digest) bool {
	t.Helper()
	_, err := reg.driver.Stat(context.Background(), blobPath(d))
	if err != nil && !driver.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func TestGCKeepsTaggedAndUntaggedByDefault(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "team/app")
		f.pushImage("v1")
		untaggedImg := f.image()
		untagged := f.put(digest.FromBytes(mustJSON(t, untaggedImg)).String(), mustJSON(t, untaggedImg))
		stray := f.blob(testLayerType, randomContent(77)) // uploaded, never used

		var removed []GCItem
		opts := quickGC(false)
		opts.Removed = func(it GCItem) { removed = append(removed, it) }
		rep := collect(t, reg, opts)
		if rep.BlobsRemoved != 1 || rep.LinksRemoved != 1 || rep.ManifestsRemoved != 0 || rep.BytesReclaimed != 77 {
			t.Fatalf("report %+v, want exactly the stray blob and its link removed", rep)
		}
		if len(removed) != 2 || removed[1].Kind != "blob" || removed[1].Digest != stray.Digest || removed[1].Size != 77 {
			t.Fatalf("removed %+v", removed)
		}
		mustPullable(t, f, "v1")
		mustPullable(t, f, untagged.Descriptor.Digest.String())
		if hasBlob(t, reg, stray.Digest) {
			t.Fatal("stray blob survived")
		}
		// Nothing left to do: a second run removes nothing.
		if rep := collect(t, reg, quickGC(false)); rep.BlobsRemoved+rep.LinksRemoved+rep.ManifestsRemoved != 0 {
			t.Fatalf("second run removed %+v", rep)
		}
	})
}

func TestGCUntaggedDryRunThenReal(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "team/app")
		shared := f.blob(testLayerType, randomContent(50))
		img := func() v1.Manifest {
			m := f.image()
			m.Layers = append(m.Layers, shared)
			return m
		}
		keep := f.put("keep", mustJSON(t, img()))
		gone := f.put("gone", mustJSON(t, img()))
		if err := f.ms.Delete(f.ctx, "gone"); err != nil { // untagged now
			t.Fatal(err)
		}
		other := newFixture(t, reg, "team/other")
		_, otherD := other.pushImage("only")
		if err := other.ms.Delete(f.ctx, otherD.String()); err != nil {
			t.Fatal(err)
		}
		before := storedBlobs(t, reg)

		opts := quickGC(true)
		opts.DryRun = true
		var listed []GCItem
		opts.Removed = func(it GCItem) { listed = append(listed, it) }
		dry := collect(t, reg, opts)
		if after := storedBlobs(t, reg); !slices.Equal(before, after) {
			t.Fatal("a dry run deleted blobs")
		}
		mustPullable(t, f, gone.Descriptor.Digest.String())

		done := collect(t, reg, quickGC(true))
		// gone: manifest, its bytes, config and own layer; other: config, layer,
		// manifest bytes (its record went with the API delete).
		if done.ManifestsRemoved != 1 || done.BlobsRemoved != 6 || done.LinksRemoved != 6 || done.RepositoriesRemoved != 1 {
			t.Fatalf("report %+v", done)
		}
		dry.Duration, done.Duration, dry.DryRun = 0, 0, false
		dry.Stored.At, done.Stored.At = time.Time{}, time.Time{}
		dry.RepositoriesRemoved = done.RepositoriesRemoved // a dry run cannot see repositories empty out
		if dry != done {
			t.Fatalf("dry run reported %+v, the real run %+v", dry, done)
		}
		if len(listed) != dry.ManifestsRemoved+dry.LinksRemoved+dry.BlobsRemoved {
			t.Fatalf("dry run listed %d items for %+v", len(listed), dry)
		}
		mustPullable(t, f, "keep")
		if _, err := f.ms.Get(f.ctx, gone.Descriptor.Digest.String()); !errors.Is(err, ErrManifestUnknown) {
			t.Fatalf("untagged manifest still there: %v", err)
		}
		if !hasBlob(t, reg, shared.Digest) || !hasBlob(t, reg, keep.Descriptor.Digest) {
			t.Fatal("shared blob or kept manifest bytes collected")
		}
		names, _, err := reg.Catalog(f.ctx, "", 0)
		if err != nil || !slices.Equal(names, []string{"team/app"}) {
			t.Fatalf("catalog %v %v, want the emptied repository gone", names, err)
		}
	})
}

func TestGCGrace(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "young")
		stray := f.blob(testLayerType, randomContent(10))
		payload := mustJSON(t, f.image())
		d := f.put(digest.FromBytes(payload).String(), payload)
		opts := quickGC(true)
		opts.Grace = time.Hour
		if rep := collect(t, reg, opts); rep.BlobsRemoved+rep.LinksRemoved+rep.ManifestsRemoved != 0 {
			t.Fatalf("young content collected: %+v", rep)
		}
		// Clock moved past the grace: all of it goes.
		reg.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		rep := collect(t, reg, opts)
		if rep.ManifestsRemoved != 1 || hasBlob(t, reg, stray.Digest) || hasBlob(t, reg, d.Descriptor.Digest) {
			t.Fatalf("old content kept: %+v", rep)
		}
	})
}

func TestGCIndexKeepsChildren(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "multi")
		var children []v1.Descriptor
		for range 2 {
			payload := mustJSON(t, f.image())
			m := f.put(digest.FromBytes(payload).String(), payload)
			children = append(children, m.Descriptor)
		}
		idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: children}
		f.put("latest", mustJSON(t, idx))
		rep := collect(t, reg, quickGC(true))
		if rep.ManifestsRemoved+rep.BlobsRemoved != 0 {
			t.Fatalf("index children collected: %+v", rep)
		}
		mustPullable(t, f, "latest")
	})
}

func TestGCReferrersLiveAndDieWithSubject(t *testing.T) {
	for _, untagged := range []bool{false, true} {
		t.Run(fmt.Sprintf("untagged=%v", untagged), func(t *testing.T) {
			forEachGCDriver(t, func(t *testing.T, reg *Registry) {
				f := newFixture(t, reg, "signed")
				payload, d := f.pushImage("v1")
				subject := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: d, Size: int64(len(payload))}
				sigPayload := mustJSON(t, f.artifact(subject, sigType, nil))
				sig := f.put(digest.FromBytes(sigPayload).String(), sigPayload)
				// A signature of the SBOM of the image: kept transitively.
				sbomPayload := mustJSON(t, f.artifact(subject, sbomType, nil))
				sbom := f.put(digest.FromBytes(sbomPayload).String(), sbomPayload)
				sbomSig := mustJSON(t, f.artifact(sbom.Descriptor, sigType, nil))
				sbomSigM := f.put(digest.FromBytes(sbomSig).String(), sbomSig)

				if rep := collect(t, reg, quickGC(untagged)); rep.ManifestsRemoved+rep.BlobsRemoved != 0 {
					t.Fatalf("referrers of a tagged subject collected: %+v", rep)
				}
				for _, m := range []*Manifest{sig, sbom, sbomSigM} {
					mustPullable(t, f, m.Descriptor.Digest.String())
				}
				if refs, err := f.ms.Referrers(f.ctx, d, ""); err != nil || len(refs) != 2 {
					t.Fatalf("referrers %v %v", refs, err)
				}

				if err := f.ms.Delete(f.ctx, d.String()); err != nil {
					t.Fatal(err)
				}
				rep := collect(t, reg, quickGC(untagged))
				if rep.ManifestsRemoved != 3 {
					t.Fatalf("report %+v, want the three referrers removed", rep)
				}
				for _, m := range []*Manifest{sig, sbom, sbomSigM} {
					if _, err := f.ms.Get(f.ctx, m.Descriptor.Digest.String()); !errors.Is(err, ErrManifestUnknown) && !errors.Is(err, ErrNameUnknown) {
						t.Fatalf("referrer %s survived its subject: %v", m.Descriptor.Digest, err)
					}
				}
				if blobs := storedBlobs(t, reg); len(blobs) != 0 {
					t.Fatalf("blobs left: %v", blobs)
				}
			})
		})
	}
}

// A tagged referrer is a root of its own, whatever happens to its subject.
func TestGCTaggedReferrerStays(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "signed")
		payload, d := f.pushImage("v1")
		subject := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: d, Size: int64(len(payload))}
		f.put("sig", mustJSON(t, f.artifact(subject, sigType, nil)))
		if err := f.ms.Delete(f.ctx, d.String()); err != nil {
			t.Fatal(err)
		}
		collect(t, reg, quickGC(true))
		mustPullable(t, f, "sig")
	})
}

func TestGCOneAtATime(t *testing.T) {
	reg := New(driver.Instrument(inmemory.New(), nil), Options{})
	unlock, err := NewBackendLocker(reg.driver, 0).TryLock(context.Background(), gcLeaseKey)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := reg.CollectGarbage(context.Background(), quickGC(false)); !errors.Is(err, ErrCollectorBusy) {
		t.Fatalf("second collector: %v", err)
	}
	if _, err := reg.PurgeUploads(context.Background(), time.Hour); err != nil {
		t.Fatalf("upload purge is serialised apart from collection: %v", err)
	}
}

// deleteHook runs fn before each Delete of path.
type deleteHook struct {
	driver.Driver
	path string
	fn   func()
}

func (h *deleteHook) Delete(ctx context.Context, path string) error {
	if path == h.path && h.fn != nil {
		h.fn()
		h.fn = nil
	}
	return h.Driver.Delete(ctx, path)
}

// A blob about to be collected is uploaded again elsewhere while its batch
// runs: the commit waits for the batch, finds the bytes gone, and places the
// upload's own data.
func TestGCCommitOntoCollectedBlob(t *testing.T) {
	for _, name := range []string{"inmemory", "filesystem"} {
		t.Run(name, func(t *testing.T) {
			content := randomContent(64)
			d := digest.FromBytes(content)
			hook := &deleteHook{Driver: manifestDrivers[name](t), path: blobPath(d)}
			reg := New(hook, Options{})
			old := newFixture(t, reg, "old")
			old.blob(testLayerType, content) // unreferenced: garbage
			fresh := newFixture(t, reg, "fresh")
			done := make(chan error, 1)
			hook.fn = func() {
				go func() {
					_, err := fresh.repo.Blobs().Put(context.Background(), d, bytes.NewReader(content))
					done <- err
				}()
				time.Sleep(50 * time.Millisecond) // let the commit reach its wait
			}
			rep := collect(t, reg, quickGC(true))
			if rep.BlobsRemoved != 1 {
				t.Fatalf("report %+v", rep)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got, err := fresh.repo.Blobs().Open(fresh.ctx, d); err != nil {
				t.Fatalf("blob committed during its collection is gone: %v", err)
			} else {
				b, _ := io.ReadAll(got)
				got.Close()
				if !bytes.Equal(b, content) {
					t.Fatal("wrong bytes")
				}
			}
		})
	}
}

// statOnceHook runs fn once, right after the first Stat of path.
type statOnceHook struct {
	driver.Driver
	mu   sync.Mutex
	path string
	fn   func()
}

func (h *statOnceHook) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	fi, err := h.Driver.Stat(ctx, p)
	h.mu.Lock()
	fn := h.fn
	if p != h.path {
		fn = nil
	} else {
		h.fn = nil
	}
	h.mu.Unlock()
	if fn != nil {
		fn()
	}
	return fi, err
}

// A commit retried after one cut short past its move finds the bytes at
// their address; a collection removes them, unlinked, before the retry's
// guard. The retry must fail as a lost session, not store an empty blob
// under the digest of the 5000 bytes (which every later push of them
// would then take as stored).
func TestGCRetriedCommitOfCollectedBytes(t *testing.T) {
	ctx := context.Background()
	data := randomContent(5000)
	d := digest.FromBytes(data)
	h := &statOnceHook{Driver: inmemory.New(), path: blobPath(d)}
	reg := New(h, Options{})
	repo, _ := reg.Repository("r")
	u, err := repo.Blobs().Upload(ctx, UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(ctx, bytes.NewReader(data), 0); err != nil {
		t.Fatal(err)
	}
	// The first commit moved the bytes and stopped before its link.
	if err := h.Driver.Move(ctx, uploadDataPath("r", u.ID()), blobPath(d)); err != nil {
		t.Fatal(err)
	}
	h.fn = func() {
		if rep := collect(t, reg, quickGC(true)); rep.BlobsRemoved != 1 {
			t.Errorf("the collection removed %d blobs, want the unlinked one", rep.BlobsRemoved)
		}
	}
	if desc, err := u.Commit(ctx, d, int64(len(data))); !errors.Is(err, ErrBlobUploadUnknown) {
		t.Fatalf("commit: %+v, %v; want BLOB_UPLOAD_UNKNOWN, the session's bytes being gone", desc, err)
	}
	if _, err := h.Driver.Stat(ctx, blobPath(d)); !driver.IsNotFound(err) {
		t.Fatalf("something is stored under %s: %v", d, err)
	}
	// The bytes pushed again are stored whole.
	if _, err := repo.Blobs().Put(ctx, d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if fi, err := h.Driver.Stat(ctx, blobPath(d)); err != nil || fi.Size != int64(len(data)) {
		t.Fatalf("pushed again: %+v, %v", fi, err)
	}
}

// slowDelete holds the Delete of path as a request stuck on its way to
// the store, until hold has passed (then it lands) or its context ends.
type slowDelete struct {
	driver.Driver
	path    string
	hold    time.Duration
	started chan struct{}
}

func (s *slowDelete) Delete(ctx context.Context, p string) error {
	if p == s.path {
		close(s.started)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.hold):
		}
	}
	return s.Driver.Delete(ctx, p)
}

// A batch's delete still on its way when writers stop waiting for the
// batch is cancelled: a push that waited the batch out and linked the
// bytes keeps them. Before, the late delete landed after the push was
// acknowledged.
func TestGCDeleteCutAtTheBatchDeadline(t *testing.T) {
	defer func(ttl time.Duration) { gcBatchTTL = ttl }(gcBatchTTL)
	gcBatchTTL = 2 * time.Second
	content := randomContent(64)
	d := digest.FromBytes(content)
	slow := &slowDelete{Driver: inmemory.New(), path: blobPath(d), hold: 3 * time.Second, started: make(chan struct{})}
	reg := New(slow, Options{})
	old := newFixture(t, reg, "old")
	old.blob(testLayerType, content) // unreferenced: garbage
	fresh := newFixture(t, reg, "fresh")
	pushed := make(chan error, 1)
	go func() {
		<-slow.started
		_, err := fresh.repo.Blobs().Put(context.Background(), d, bytes.NewReader(content))
		pushed <- err
	}()
	rep := collect(t, reg, quickGC(true))
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	if rep.BlobsRemoved != 0 {
		t.Errorf("report %+v: the cut delete counted", rep)
	}
	br, err := fresh.repo.Blobs().Open(fresh.ctx, d)
	if err != nil {
		t.Fatalf("the blob acknowledged during the batch is gone: %v", err)
	}
	b, _ := io.ReadAll(br)
	br.Close()
	if !bytes.Equal(b, content) {
		t.Fatal("wrong bytes")
	}
}

// A pinned digest survives a batch that found it garbage.
func TestGCPinnedSurvives(t *testing.T) {
	reg := New(driver.Instrument(inmemory.New(), nil), Options{})
	f := newFixture(t, reg, "pinned")
	stray := f.blob(testLayerType, randomContent(9))
	ctx := context.Background()
	// The mount of the stray blob begins during the run, before the batch.
	var guard *gcGuard
	opts := quickGC(true)
	opts.TempDir = t.TempDir()
	c := &collector{reg: reg, opts: opts, cutoff: time.Now(), untaggedCutoff: time.Now()}
	c.marked = newDigestSet(c.opts.TempDir, 0)
	defer c.marked.Close()
	if err := c.announce(ctx); err != nil {
		t.Fatal(err)
	}
	g, err := reg.guardWrite(ctx, stray.Digest)
	if err != nil {
		t.Fatal(err)
	}
	guard = g
	if guard.pinnedIn != c.state.Run {
		t.Fatalf("writer did not pin during a run: %+v", guard)
	}
	if err := c.collectRepository(ctx, "pinned"); err != nil {
		t.Fatal(err)
	}
	if err := c.sweepBlobs(ctx); err != nil {
		t.Fatal(err)
	}
	c.finish(ctx, true)
	if c.report.LinksRemoved+c.report.BlobsRemoved != 0 || !hasBlob(t, reg, stray.Digest) {
		t.Fatalf("pinned digest collected: %+v", c.report)
	}
	if err := guard.settle(ctx, func(context.Context) error { t.Fatal("verify ran for a pinned write"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestMaintainCollectsAndPurges(t *testing.T) {
	reg := New(driver.Instrument(inmemory.New(), nil), Options{})
	f := newFixture(t, reg, "kept")
	f.pushImage("v1")
	stray := f.blob(testLayerType, randomContent(11))
	old := startUpload(t, reg, "kept", time.Now().Add(-2*time.Hour), randomContent(5))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		reg.Maintain(ctx, Maintenance{GCInterval: 20 * time.Millisecond, GC: GCOptions{Window: time.Millisecond, TempDir: t.TempDir()},
			PurgeAge: time.Hour, PurgeInterval: 20 * time.Millisecond})
		close(stopped)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for hasBlob(t, reg, stray.Digest) || uploadExists(t, reg, "kept", old.ID()) {
		if time.Now().After(deadline) {
			t.Fatal("scheduled collection or purge did not happen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-stopped
	mustPullable(t, f, "v1")
}

// A damaged manifest record neither stops a collection nor loses what its
// payload points at.
func TestGCSurvivesDamagedRecord(t *testing.T) {
	for _, untagged := range []bool{false, true} {
		reg := New(driver.Instrument(inmemory.New(), nil), Options{})
		f := newFixture(t, reg, "damaged")
		img := f.image()
		m := f.put("v1", mustJSON(t, img))
		if err := reg.driver.PutContent(f.ctx, manifestLinkPath("damaged", m.Descriptor.Digest), []byte("{not json")); err != nil {
			t.Fatal(err)
		}
		if untagged { // no tag either: a candidate the re-check must keep
			if err := reg.driver.Delete(f.ctx, tagPath("damaged", "v1")); err != nil {
				t.Fatal(err)
			}
		}
		rep := collect(t, reg, quickGC(untagged))
		if rep.ManifestsRemoved+rep.BlobsRemoved != 0 || !hasBlob(t, reg, img.Layers[0].Digest) {
			t.Fatalf("untagged=%v: %+v", untagged, rep)
		}
	}
}

// A run cancelled while it waits tells writers it is over.
func TestGCCancelledLeavesNoRunBehind(t *testing.T) {
	reg := New(driver.Instrument(inmemory.New(), nil), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := reg.CollectGarbage(ctx, GCOptions{Window: time.Hour}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("collect: %v", err)
	}
	s, err := reg.readGCState(context.Background())
	if err != nil || s.active() || s.Last == "" {
		t.Fatalf("state after a cancelled run: %+v %v", s, err)
	}
}

// Writes begun within stateReuse of a read of /gc/state share it, and one
// that began with a state from before a run that another replica announced
// settles the slow way: pinned in the run, then verified.
func TestGuardSharesStateReads(t *testing.T) {
	var reads atomic.Int64
	mem := inmemory.New()
	counted := driver.Instrument(mem, func(op string, _ time.Duration, _ error) {
		if op == "GetContent" {
			reads.Add(1)
		}
	})
	reg := New(counted, Options{})
	other := New(driver.Instrument(mem, nil), Options{}) // another replica
	defer func(was time.Duration) { stateReuse = was }(stateReuse)
	stateReuse = time.Hour // however slow the machine
	ctx := context.Background()
	d := digest.FromString("shared")

	before := time.Now()
	first, err := reg.guardWrite(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if !first.start.Before(time.Now()) || first.start.Before(before) {
		t.Fatalf("first write began at %v, outside its own read", first.start)
	}
	// A write sharing the read counts as begun when the read began.
	loop := time.Now()
	var shared time.Time
	for range 10 {
		g, err := reg.guardWrite(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if shared.IsZero() {
			shared = g.start
		}
		if !g.start.Equal(shared) || g.start.Before(first.start) || !g.start.Before(loop) {
			t.Fatalf("a write sharing the read began at %v, not when the read began (after %v, before %v)", g.start, first.start, loop)
		}
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads of the state for 11 writes begun at once, want 1", n)
	}

	// The other replica announces a run; a write here still begins with
	// the state from before it, and its window passes before it settles.
	opts := quickGC(true)
	opts.TempDir = t.TempDir()
	c := &collector{reg: other, opts: opts, cutoff: time.Now(), untaggedCutoff: time.Now()}
	if err := c.announce(ctx); err != nil {
		t.Fatal(err)
	}
	g, err := reg.guardWrite(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if g.pinnedIn != "" || !g.start.Equal(shared) {
		t.Fatalf("the write did not begin with the shared state: %+v", g)
	}
	time.Sleep(10 * opts.Window)
	verified := false
	if err := g.settle(ctx, func(context.Context) error { verified = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if !verified || g.pinnedIn != c.state.Run {
		t.Fatalf("a write begun before the run settled without pinning (%q) and verifying (%v)", g.pinnedIn, verified)
	}
	if _, err := mem.GetContent(ctx, gcPinPath(c.state.Run, d)); err != nil {
		t.Fatalf("no pin for the run: %v", err)
	}

	stateReuse = 0
	if g, err := reg.guardWrite(ctx, d); err != nil || g.pinnedIn != c.state.Run {
		t.Fatalf("a write begun after stateReuse did not see the run: %+v, %v", g, err)
	}
}

// A kept manifest keeps its bytes though its digest was deleted as a blob
// of the repository (its link gone): the tag still pulls whole after a
// collection.
func TestGCKeepsAManifestWhoseBlobLinkWasDeleted(t *testing.T) {
	f, _ := hookedFixture(t)
	_, d := f.pushImage("v1")
	if err := f.repo.Blobs().Delete(f.ctx, d); err != nil {
		t.Fatal(err)
	}
	collect(t, f.repo.reg, quickGC(false))
	mustPullable(t, f, "v1")
}

// Past the images marking remembers, indexes are still followed once: a
// chain of indexes each naming the next twice costs reads in proportion to
// its length, not to two to its power.
func TestGCMarksIndexesOncePastItsMemory(t *testing.T) {
	defer func(n int) { maxVisited = n }(maxVisited)
	maxVisited = 4
	cd := &countingGets{Driver: driver.Instrument(inmemory.New(), nil)}
	reg := New(cd, Options{})
	f := newFixture(t, reg, "chain")
	for i := range maxVisited { // fill the memory
		f.pushImage(fmt.Sprintf("i%d", i))
	}
	payload := mustJSON(t, f.image())
	below := f.put(digest.FromBytes(payload).String(), payload).Descriptor
	const chain = 12
	for i := range chain {
		p := mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{below, below}})
		ref := digest.FromBytes(p).String()
		if i == chain-1 {
			ref = "top"
		}
		below = f.put(ref, p).Descriptor
	}
	before := cd.gets.Load()
	collect(t, reg, quickGC(true))
	if reads := cd.gets.Load() - before; reads > 400 {
		t.Fatalf("%d reads to collect a chain of %d indexes", reads, chain)
	}
	mustPullable(t, f, "top")
}

// countingGets counts GetContent calls.
type countingGets struct {
	driver.Driver
	gets atomic.Int64
}

func (c *countingGets) GetContent(ctx context.Context, p string) ([]byte, error) {
	c.gets.Add(1)
	return c.Driver.GetContent(ctx, p)
}

// nestedIndex pushes an image and an index naming it, and returns the
// image and the bytes of an index naming that index, not pushed.
func (f *fixture) nestedIndex() (img v1.Descriptor, outer []byte) {
	f.t.Helper()
	imgPayload := mustJSON(f.t, f.image())
	img = f.put(digest.FromBytes(imgPayload).String(), imgPayload).Descriptor
	innerPayload := mustJSON(f.t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{img}})
	inner := f.put(digest.FromBytes(innerPayload).String(), innerPayload).Descriptor
	return img, mustJSON(f.t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{inner}})
}

// A push that makes an old untagged index reachable again after marking
// passed it over keeps everything the index reaches: its children's
// children and their layers, and the referrers of each, not only what the
// index names itself.
func TestGCKeepsWhatARevivedIndexReaches(t *testing.T) {
	for _, name := range []string{"inmemory", "filesystem"} {
		t.Run(name, func(t *testing.T) {
			reg := New(manifestDrivers[name](t), Options{})
			f := newFixture(t, reg, "revived")
			ctx := context.Background()
			img, outerPayload := f.nestedIndex()
			outer := f.put(digest.FromBytes(outerPayload).String(), outerPayload).Descriptor
			var sigs []digest.Digest
			for _, subject := range []v1.Descriptor{outer, img} {
				p := mustJSON(t, f.artifact(subject, sigType, nil))
				sigs = append(sigs, f.put(digest.FromBytes(p).String(), p).Descriptor.Digest)
			}

			opts := quickGC(true)
			opts.TempDir = t.TempDir()
			now := time.Now()
			c := &collector{reg: reg, opts: opts, cutoff: now, untaggedCutoff: now}
			c.marked = newDigestSet(opts.TempDir, 0)
			defer c.marked.Close()
			if err := c.announce(ctx); err != nil {
				t.Fatal(err)
			}
			repo, err := reg.stored("revived")
			if err != nil {
				t.Fatal(err)
			}
			m := &repoMarker{c: c, ms: repo.Manifests(), kept: newDigestSet(opts.TempDir, 0), uses: newDigestSet(opts.TempDir, 0),
				records: newDigestSet(opts.TempDir, 0), visited: map[digestKey]struct{}{}}
			defer m.kept.Close()
			defer m.uses.Close()
			defer m.records.Close()
			if err := m.indexReferrers(ctx); err != nil {
				t.Fatal(err)
			}
			if err := m.markRoots(ctx); err != nil {
				t.Fatal(err)
			}
			// Marking found nothing tagged; now a client tags the old index.
			f.put("revived", outerPayload)
			sweepTagMarkers := func(ctx context.Context) error {
				return m.sweepMarkers(ctx, tagRefsRoot(f.repo.name), m.tagMarkerDigest)
			}
			for _, sweep := range []func(context.Context) error{m.sweepManifests, sweepTagMarkers, m.sweepLinks, c.sweepBlobs} {
				if err := sweep(ctx); err != nil {
					t.Fatal(err)
				}
			}
			c.finish(ctx, true)
			mustPullable(t, f, "revived")
			for _, d := range sigs {
				mustPullable(t, f, d.String())
			}
		})
	}
}

// A push during a run that revives an index whose grandchild a batch removed
// before the push pinned anything fails: the index could not be pulled whole.
func TestGCRevivedIndexMissingAGrandchildFails(t *testing.T) {
	reg := New(driver.Instrument(inmemory.New(), nil), Options{})
	f := newFixture(t, reg, "revived")
	ctx := context.Background()
	img, outerPayload := f.nestedIndex()

	opts := quickGC(true)
	opts.TempDir = t.TempDir()
	c := &collector{reg: reg, opts: opts, cutoff: time.Now(), untaggedCutoff: time.Now()}
	c.marked = newDigestSet(opts.TempDir, 0)
	defer c.marked.Close()
	if err := c.announce(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.finish(ctx, true)
	// What a batch of this run removed before the push began.
	if err := f.ms.Delete(ctx, img.Digest.String()); err != nil {
		t.Fatal(err)
	}
	_, err := f.ms.Put(ctx, "revived", "", outerPayload)
	if !errors.Is(err, ErrManifestBlobUnknown) {
		t.Fatalf("push of an index whose grandchild is gone: %v, want MANIFEST_BLOB_UNKNOWN", err)
	}
	if _, err := f.ms.Get(ctx, "revived"); !errors.Is(err, ErrManifestUnknown) {
		t.Fatalf("the refused push left its tag: %v", err)
	}
}

// A push during which a whole run came and went settles the slow way,
// pinned in no run: its closure pins nowhere, and the push succeeds.
func TestGCSettleAfterARunCameAndWent(t *testing.T) {
	f, h := hookedFixture(t)
	reg := f.repo.reg
	imgPayload := mustJSON(t, f.image())
	img := f.put(digest.FromBytes(imgPayload).String(), imgPayload).Descriptor
	payload := mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{img}})
	h.on("put", manifestLinkPath(f.repo.name, digest.FromBytes(payload)), true, func() {
		reg.writeGCState(f.ctx, gcState{Run: "a", Window: time.Millisecond})
		reg.writeGCState(f.ctx, gcState{Last: "a", Window: time.Millisecond})
	})
	stateReuse = 0
	defer func() { stateReuse = 50 * time.Millisecond }()
	if _, err := f.ms.Put(f.ctx, "v1", "", payload); err != nil {
		t.Fatalf("push: %v", err)
	}
	mustPullable(t, f, "v1")
}

// Collections follow the last one's end recorded in the storage: replicas
// restarted more often than the interval still collect, and two replicas
// collect about once per interval between them, not each once.
func TestMaintainSchedulesAcrossReplicas(t *testing.T) {
	minDueCheck = 5 * time.Millisecond
	defer func() { minDueCheck = time.Second }()
	drv := driver.Instrument(inmemory.New(), nil)
	var runs, seen atomic.Int32
	m := Maintenance{GCInterval: 400 * time.Millisecond, GC: GCOptions{Window: time.Millisecond, TempDir: t.TempDir()},
		Collected: func(GCReport) { runs.Add(1) }, StoredSeen: func(GCStored) { seen.Add(1) }}

	// A replica that lives 100 ms at a time, four times.
	reg := New(drv, Options{})
	for range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		reg.Maintain(ctx, m)
		cancel()
	}
	if runs.Load() == 0 {
		t.Fatal("a replica restarted more often than the interval never collected")
	}

	// Two replicas for five intervals.
	runs.Store(0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		r := New(drv, Options{})
		wg.Go(func() { r.Maintain(ctx, m) })
	}
	wg.Wait()
	if n := runs.Load(); n < 3 || n > 7 {
		t.Fatalf("two replicas ran %d collections in five intervals, want about five", n)
	}
	// Each look read what the last collection left.
	if seen.Load() <= runs.Load() {
		t.Errorf("the schedule read what collections left %d times, in %d collections", seen.Load(), runs.Load())
	}
}

// A collection cut short does not count as one: the next comes at the
// next look, not an interval later.
func TestCutCollectionKeepsTheLastEnd(t *testing.T) {
	reg := New(driver.Instrument(inmemory.New(), nil), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := reg.CollectGarbage(ctx, GCOptions{Window: 10 * time.Second, TempDir: t.TempDir()}); err == nil {
		t.Fatal("a run cut in its window succeeded")
	}
	s, err := reg.readGCState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.active() || !s.Ended.IsZero() {
		t.Fatalf("state after a cut run: %+v, want no run and no end", s)
	}
	collect(t, reg, quickGC(false))
	if s, _ = reg.readGCState(context.Background()); s.Ended.IsZero() {
		t.Fatal("a completed run left no end")
	}
}

// A write that pinned during a sweep batch waits for that batch alone: the
// next one, begun after the pins were written, reads them. With batches
// run back to back, waiting for none to be in progress held pushes for
// seconds on a large store.
func TestPinWaitsForTheBatchInProgressOnly(t *testing.T) {
	reg := New(inmemory.New(), Options{})
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	if _, err := reg.writeGCState(ctx, gcState{Run: "r", Batch: 1, InBatch: true, Until: until}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		g   *gcGuard
		err error
	}
	done := make(chan result, 1)
	go func() {
		g, err := reg.guardWrite(ctx, digest.FromString("pinned"))
		done <- result{g, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("the write went on while the batch that may have missed its pin was in progress: %+v, %v", r.g, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	// The next batch begins as the first ends, and reads the pin.
	if _, err := reg.writeGCState(ctx, gcState{Run: "r", Batch: 2, InBatch: true, Until: until}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.g.pinnedIn != "r" || r.g.s0.Batch != 2 {
			t.Fatalf("guardWrite: %+v, %v", r.g, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write still waits, for a batch begun after its pin")
	}
	if _, err := reg.driver.GetContent(ctx, gcPinPath("r", digest.FromString("pinned"))); err != nil {
		t.Fatalf("no pin: %v", err)
	}
}

// A run that finds a batch still flagged by a collector that lost its
// lease leaves the state as it is until the batch's deadline: that
// collector may delete until then, and writers wait for it by the state.
func TestAnnounceWaitsOutAnAbandonedBatch(t *testing.T) {
	reg := New(inmemory.New(), Options{})
	ctx := context.Background()
	until := time.Now().Add(400 * time.Millisecond)
	if _, err := reg.writeGCState(ctx, gcState{Run: "old", Batch: 3, InBatch: true, Until: until}); err != nil {
		t.Fatal(err)
	}
	opts := quickGC(true)
	opts.TempDir = t.TempDir()
	c := &collector{reg: reg, opts: opts, cutoff: time.Now(), untaggedCutoff: time.Now()}
	announced := make(chan time.Time, 1)
	go func() {
		for {
			if s, err := reg.readGCState(ctx); err == nil && s.Run != "old" {
				announced <- time.Now()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if err := c.announce(ctx); err != nil {
		t.Fatal(err)
	}
	if at := <-announced; at.Before(until) {
		t.Fatalf("the run was announced %v before the abandoned batch's deadline", until.Sub(at))
	}
}

// A flagged batch's deadline far ahead (a clock that ran ahead, a bad
// write) holds the next run a batch's time at most.
func TestAnnounceWaitsABatchAtMost(t *testing.T) {
	defer func(ttl time.Duration) { gcBatchTTL = ttl }(gcBatchTTL)
	gcBatchTTL = 300 * time.Millisecond
	reg := New(inmemory.New(), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := reg.writeGCState(ctx, gcState{Run: "old", Batch: 1, InBatch: true, Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	opts := quickGC(true)
	opts.TempDir = t.TempDir()
	c := &collector{reg: reg, opts: opts, cutoff: time.Now(), untaggedCutoff: time.Now()}
	if err := c.announce(ctx); err != nil {
		t.Fatalf("announce: %v", err)
	}
	if s, err := reg.readGCState(ctx); err != nil || s.Run == "old" {
		t.Fatalf("state %+v, %v: the run was not announced", s, err)
	}
}

// A scheduled collection that ends with its lease lost is told in the log,
// though the loss reaches it as a cancelled context; a process stopping
// is not.
func TestLostLeaseOfAScheduledTurnIsLogged(t *testing.T) {
	var logs bytes.Buffer
	reg := New(driver.Instrument(inmemory.New(), nil), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	reg.logTurn("garbage collection", context.Canceled)
	if logs.Len() != 0 {
		t.Fatalf("a stop was logged: %q", logs.String())
	}
	reg.logTurn("garbage collection", errors.Join(errLeaseLost, context.Canceled))
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "lease lapsed") {
		t.Fatalf("a lost lease went unlogged: %q", logs.String())
	}
}

// refusesCreate fails every Create, as a bucket that refuses writes would
// the leases a scheduled collection and purge take first.
type refusesCreate struct{ driver.Driver }

func (refusesCreate) Create(context.Context, string, []byte) error {
	return errors.New("access denied")
}

// Scheduled turns that fail are told to Maintenance.Failed, by task, for
// the metric an operator alerts on.
func TestMaintainReportsFailedTurns(t *testing.T) {
	reg := New(driver.Instrument(refusesCreate{inmemory.New()}, nil), Options{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	failed := map[string]int{}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		reg.Maintain(ctx, Maintenance{GCInterval: 20 * time.Millisecond, GC: GCOptions{Window: time.Millisecond, TempDir: t.TempDir()},
			PurgeAge: time.Hour, PurgeInterval: 20 * time.Millisecond,
			Failed: func(task string) { mu.Lock(); failed[task]++; mu.Unlock() }})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		gc, purge := failed["gc"], failed["purge"]
		mu.Unlock()
		if gc > 0 && purge > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failed turns told: %v", failed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-stopped
}

// TestGCRecordsWhatItLeftStored checks a collection's count of the blobs it
// left against a count of usage, and that every replica reads the last
// completed run's, which a dry run does not replace.
func TestGCRecordsWhatItLeftStored(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "team/app")
		if _, ok, err := reg.LastStored(f.ctx); ok || err != nil {
			t.Fatalf("before any collection: %v %v", ok, err)
		}
		f.pushImage("v1")
		f.blob(testLayerType, randomContent(77)) // collected
		rep := collect(t, reg, quickGC(false))
		use, err := reg.Usage(f.ctx, UsageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Stored.Blobs != use.StoredBlobs || rep.Stored.Bytes != use.StoredBytes || rep.Stored.Blobs != 3 {
			t.Fatalf("run left %+v, usage counts %d blobs of %d bytes", rep.Stored, use.StoredBlobs, use.StoredBytes)
		}
		f.blob(testLayerType, randomContent(50)) // a dry run would take it
		dry := quickGC(false)
		dry.DryRun = true
		if d := collect(t, reg, dry); d.Stored.Blobs != 3 || d.Stored.Bytes != rep.Stored.Bytes {
			t.Errorf("dry run would leave %+v, want %+v", d.Stored, rep.Stored)
		}
		other := New(reg.driver, Options{})
		got, ok, err := other.LastStored(f.ctx)
		if err != nil || !ok || got.Blobs != rep.Stored.Blobs || got.Bytes != rep.Stored.Bytes || !got.At.Equal(rep.Stored.At) {
			t.Fatalf("another registry reads %+v %v %v, want %+v", got, ok, err, rep.Stored)
		}
	})
}

// fsck's repair of a collection left running keeps what the last
// completed one left stored.
func TestFsckRepairKeepsWhatTheLastCollectionLeftStored(t *testing.T) {
	f, _ := hookedFixture(t)
	reg := f.repo.reg
	stored := &GCStored{Blobs: 3, Bytes: 1234, At: time.Now().UTC()}
	if _, err := reg.writeGCState(f.ctx, gcState{Run: "dead", Window: DefaultGCWindow, Stored: stored}); err != nil {
		t.Fatal(err)
	}
	fsckProblems(t, reg, true)
	if got, ok, err := reg.LastStored(f.ctx); !ok || err != nil || got.Bytes != 1234 {
		t.Fatalf("after fsck --repair of the abandoned run: %+v %v %v, want %+v", got, ok, err, stored)
	}
}
