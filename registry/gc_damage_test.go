package registry

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
)

// hasLink reports whether repository repo links d.
func hasLink(t *testing.T, reg *Registry, repo string, d digest.Digest) bool {
	t.Helper()
	_, err := reg.driver.Stat(context.Background(), layerLinkPath(repo, d))
	if err != nil && !driver.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// A tagged manifest whose stored bytes are damaged cannot tell what it
// references: the run stops before it removes anything, and says which
// manifest and what to run. Before, the layers and config of the image
// went, though its tags still named it.
func TestGCStopsAtADamagedManifest(t *testing.T) {
	damages := map[string]func(payload []byte, img v1.Manifest) []byte{
		"not json": func([]byte, v1.Manifest) []byte { return []byte("not json at all") },
		"layer digest changed": func(payload []byte, img v1.Manifest) []byte {
			hex := []byte(img.Layers[0].Digest.Encoded())
			changed := bytes.Clone(hex)
			changed[10] = "10"[min(hex[10]-'0', 1)] // one digit other than it was
			return bytes.Replace(payload, hex, changed, 1)
		},
		// A tag is published once its manifest's bytes are durable: their
		// loss is damage, not a push a crash cut short.
		"bytes missing": func([]byte, v1.Manifest) []byte { return nil },
	}
	for name, damage := range damages {
		for _, untagged := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/untagged=%v", name, untagged), func(t *testing.T) {
				forEachGCDriver(t, func(t *testing.T, reg *Registry) {
					f := newFixture(t, reg, "app")
					img := f.image()
					payload := mustJSON(t, img)
					m := f.put("v1", payload, "a", "b", "c")
					stray := f.blob(testLayerType, randomContent(33)) // garbage, were the run to go on
					var err error
					if damaged := damage(payload, img); damaged != nil {
						err = reg.driver.PutContent(f.ctx, blobPath(m.Descriptor.Digest), damaged)
					} else {
						err = reg.driver.Delete(f.ctx, blobPath(m.Descriptor.Digest))
					}
					if err != nil {
						t.Fatal(err)
					}

					opts := quickGC(untagged)
					opts.TempDir = t.TempDir()
					var removed []GCItem
					opts.Removed = func(it GCItem) { removed = append(removed, it) }
					_, err = reg.CollectGarbage(f.ctx, opts)
					if err == nil {
						t.Fatal("a collection over a damaged manifest succeeded")
					}
					for _, want := range []string{`"app"`, m.Descriptor.Digest.String(), "lading fsck"} {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("error %q does not say %s", err, want)
						}
					}
					if len(removed) != 0 {
						t.Errorf("removed %+v", removed)
					}
					for _, d := range []digest.Digest{img.Config.Digest, img.Layers[0].Digest, stray.Digest} {
						if !hasBlob(t, reg, d) || !hasLink(t, reg, "app", d) {
							t.Errorf("%s lost its blob or its link", d)
						}
					}
				})
			})
		}
	}
}

// A scheduled run that meets a damaged manifest counts as failed, for the
// metric an operator alerts on, and removes nothing either.
func TestMaintainReportsADamagedManifest(t *testing.T) {
	reg := New(manifestDrivers["filesystem"](t), Options{Logger: slog.New(slog.DiscardHandler)})
	f := newFixture(t, reg, "app")
	img := f.image()
	m := f.put("v1", mustJSON(t, img))
	if err := reg.driver.PutContent(f.ctx, blobPath(m.Descriptor.Digest), []byte("not json at all")); err != nil {
		t.Fatal(err)
	}
	var failed atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		reg.Maintain(ctx, Maintenance{GCInterval: 20 * time.Millisecond, GC: GCOptions{Window: time.Millisecond, TempDir: t.TempDir()},
			Failed: func(task string) {
				if task == "gc" {
					failed.Add(1)
				}
			}})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for failed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the failed collection went untold")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-stopped
	if !hasBlob(t, reg, img.Layers[0].Digest) || !hasLink(t, reg, "app", img.Layers[0].Digest) {
		t.Fatal("the layer of the damaged manifest was collected")
	}
}

// Referrers missing from the index of referrers (a partial restore lost
// _referrers; fsck reports each) are kept with their subject all the same,
// by the subject their records name: down a chain of referrers too, and
// past the manifests marking remembers. A referrer whose subject went
// still goes.
func TestGCKeepsReferrersMissingFromTheIndex(t *testing.T) {
	defer func(n int) { maxVisited = n }(maxVisited)
	for _, limit := range []int{maxVisited, 1} {
		for _, untagged := range []bool{false, true} {
			t.Run(fmt.Sprintf("visited=%d/untagged=%v", limit, untagged), func(t *testing.T) {
				maxVisited = limit
				forEachGCDriver(t, func(t *testing.T, reg *Registry) {
					f := newFixture(t, reg, "app")
					f.pushImage("a") // walked first, so that past a memory of 1 the subject is forgotten
					payload, d := f.pushImage("v1")
					subject := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: d, Size: int64(len(payload))}
					var kept []digest.Digest
					for _, typ := range []string{sigType, sbomType} {
						p := mustJSON(t, f.artifact(subject, typ, nil))
						kept = append(kept, f.put(digest.FromBytes(p).String(), p).Descriptor.Digest)
					}
					// A signature of the SBOM: its subject is a referrer itself.
					sbom := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: kept[1]}
					p := mustJSON(t, f.artifact(sbom, sigType, nil))
					kept = append(kept, f.put(digest.FromBytes(p).String(), p).Descriptor.Digest)
					// A signature of an image deleted since.
					gonePayload, gone := f.pushImage("gone")
					p = mustJSON(t, f.artifact(v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: gone, Size: int64(len(gonePayload))}, sigType, nil))
					orphan := f.put(digest.FromBytes(p).String(), p).Descriptor.Digest
					if err := f.ms.Delete(f.ctx, gone.String()); err != nil {
						t.Fatal(err)
					}
					if err := reg.driver.Delete(f.ctx, repoPath("app")+"/_referrers"); err != nil {
						t.Fatal(err)
					}

					var removed []GCItem
					opts := quickGC(untagged)
					opts.Removed = func(it GCItem) {
						if it.Kind == "manifest" {
							removed = append(removed, it)
						}
					}
					collect(t, reg, opts)
					for _, d := range kept {
						mustPullable(t, f, d.String())
					}
					if len(removed) != 1 || removed[0].Digest != orphan {
						t.Fatalf("removed %+v, want the signature of the deleted image alone", removed)
					}
				})
			})
		}
	}
}

// Records lost (a partial restore without _manifests) while tags, an index
// and the referrers index still name the manifests: the collector keeps
// what their bytes reference, as it does under a damaged record, instead
// of taking the names for names of nothing.
func TestGCKeepsWhatNamesReachWithoutRecords(t *testing.T) {
	for _, untagged := range []bool{false, true} {
		t.Run(fmt.Sprintf("untagged=%v", untagged), func(t *testing.T) {
			forEachGCDriver(t, func(t *testing.T, reg *Registry) {
				f := newFixture(t, reg, "app")
				img := f.image()
				m := f.put("v1", mustJSON(t, img))
				child, c := f.indexedChild()
				sigImg := f.artifact(c.Descriptor, sigType, nil)
				sig := f.put(digest.FromBytes(mustJSON(t, sigImg)).String(), mustJSON(t, sigImg))
				if err := reg.driver.Delete(f.ctx, repoPath("app")+"/_manifests"); err != nil {
					t.Fatal(err)
				}
				collect(t, reg, quickGC(untagged))
				for _, d := range []digest.Digest{m.Descriptor.Digest, c.Descriptor.Digest, sig.Descriptor.Digest,
					img.Config.Digest, img.Layers[0].Digest, child.Config.Digest, child.Layers[0].Digest, sigImg.Layers[0].Digest} {
					if !hasBlob(t, reg, d) {
						t.Errorf("%s was collected, though a name still reaches it", d)
					}
				}
				for _, d := range []digest.Digest{img.Layers[0].Digest, child.Layers[0].Digest} {
					if !hasLink(t, reg, "app", d) {
						t.Errorf("the link of %s was collected", d)
					}
				}
			})
		})
	}
}

// A manifest an index still names, left with neither record nor bytes (as
// fsck's repair of lost bytes leaves it), keeps its signatures and SBOMs
// for when it is pushed again, those the referrers index lists too when
// the records are lost (a partial restore).
func TestGCKeepsReferrersOfANamedManifestWithoutBytes(t *testing.T) {
	for _, untagged := range []bool{false, true} {
		t.Run(fmt.Sprintf("untagged=%v", untagged), func(t *testing.T) {
			forEachGCDriver(t, func(t *testing.T, reg *Registry) {
				f := newFixture(t, reg, "app")
				_, c := f.indexedChild()
				sbom := f.artifact(c.Descriptor, sbomType, nil)
				s := f.put(digest.FromBytes(mustJSON(t, sbom)).String(), mustJSON(t, sbom))
				for _, p := range []string{repoPath("app") + "/_manifests", blobPath(c.Descriptor.Digest)} {
					if err := reg.driver.Delete(f.ctx, p); err != nil {
						t.Fatal(err)
					}
				}
				collect(t, reg, quickGC(untagged))
				for _, d := range []digest.Digest{s.Descriptor.Digest, sbom.Layers[0].Digest} {
					if !hasBlob(t, reg, d) {
						t.Errorf("%s of the SBOM was collected", d)
					}
				}
			})
		})
	}
}

// An index may list a plain blob, which has no record: the collector keeps
// it and goes on, taking it for no manifest rather than a damaged one.
func TestGCOverAnIndexListingABlob(t *testing.T) {
	for _, untagged := range []bool{false, true} {
		t.Run(fmt.Sprintf("untagged=%v", untagged), func(t *testing.T) {
			forEachGCDriver(t, func(t *testing.T, reg *Registry) {
				f := newFixture(t, reg, "app")
				_, img := f.pushImage("v1")
				desc, err := f.ms.Stat(f.ctx, img.String())
				if err != nil {
					t.Fatal(err)
				}
				blob := f.blob("application/octet-stream", randomContent(5000))
				f.put("multi", mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{desc, blob}}))
				collect(t, reg, quickGC(untagged))
				if !hasBlob(t, reg, blob.Digest) || !hasLink(t, reg, "app", blob.Digest) {
					t.Error("the blob the index lists was collected")
				}
			})
		})
	}
}

// An index is pushed only over children whose bytes are durable, and the
// collector keeps those while it keeps the index: a child's bytes missing
// under its record are damage, which stops the run before the child's
// layers go.
func TestGCStopsAtAnIndexChildWithoutBytes(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "app")
		child, c := f.indexedChild()
		if err := reg.driver.Delete(f.ctx, blobPath(c.Descriptor.Digest)); err != nil {
			t.Fatal(err)
		}
		opts := quickGC(false)
		opts.TempDir = t.TempDir()
		if _, err := reg.CollectGarbage(f.ctx, opts); err == nil || !strings.Contains(err.Error(), c.Descriptor.Digest.String()) {
			t.Fatalf("a collection over an index child without its bytes: %v", err)
		}
		if !hasBlob(t, reg, child.Layers[0].Digest) || !hasLink(t, reg, "app", child.Layers[0].Digest) {
			t.Fatal("the layer of the child was collected")
		}
	})
}

// A manifest pushed under a larger manifest limit than the one in force
// now, reached without its record (a child deleted by digest while its
// index stays; a tagged one whose record a partial restore lost), keeps
// its layers: a tag names only manifests, and an index's word for its
// child's size stands for the limit at its push.
func TestGCReadsAManifestPushedUnderALargerLimit(t *testing.T) {
	for _, by := range []string{"index", "tag"} {
		t.Run(by, func(t *testing.T) {
			drv := manifestDrivers["inmemory"](t)
			f := newFixture(t, New(drv, Options{MaxManifestSize: 8 << 20}), "app")
			img := f.image()
			img.Annotations = map[string]string{"pad": strings.Repeat("x", 5<<20)}
			if by == "tag" {
				f.put("v1", mustJSON(t, img))
				if err := drv.Delete(f.ctx, manifestLinkPath("app", digest.FromBytes(mustJSON(t, img)))); err != nil {
					t.Fatal(err)
				}
			} else {
				c := f.put(digest.FromBytes(mustJSON(t, img)).String(), mustJSON(t, img))
				f.put("multi", mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{c.Descriptor}}))
				if err := f.ms.Delete(f.ctx, c.Descriptor.Digest.String()); err != nil {
					t.Fatal(err)
				}
			}
			reg := New(drv, Options{}) // the default limit again
			collect(t, reg, quickGC(false))
			if !hasBlob(t, reg, img.Layers[0].Digest) || !hasLink(t, reg, "app", img.Layers[0].Digest) {
				t.Fatal("the layer was collected")
			}
		})
	}
}

// indexedChild pushes an image by digest and an index over it, tagged
// multi, and returns the image and its push.
func (f *fixture) indexedChild() (v1.Manifest, *Manifest) {
	f.t.Helper()
	child := f.image()
	c := f.put(digest.FromBytes(mustJSON(f.t, child)).String(), mustJSON(f.t, child))
	f.put("multi", mustJSON(f.t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{c.Descriptor}}))
	return child, c
}
