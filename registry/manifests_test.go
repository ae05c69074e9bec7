package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
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
	"github.com/lading-registry/lading/storage/driver/filesystem"
	"github.com/lading-registry/lading/storage/driver/inmemory"
	"github.com/lading-registry/lading/storage/driver/s3"
)

// manifestDrivers are the backends the manifest tests run on.
// Instrument checks every path the registry makes against the path rules.
var manifestDrivers = map[string]func(t *testing.T) driver.Driver{
	"inmemory": func(*testing.T) driver.Driver { return driver.Instrument(inmemory.New(), nil) },
	"filesystem": func(t *testing.T) driver.Driver {
		d, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return driver.Instrument(d, nil)
	},
	"s3": func(t *testing.T) driver.Driver {
		srv := testenv.S3(t)
		d, err := s3.New(t.Context(), s3.Config{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, ForcePathStyle: true,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
		if err != nil {
			t.Fatal(err)
		}
		return driver.Instrument(d, nil)
	},
}

// forEachDriver runs fn on a fresh registry over every backend, with the
// payload cache that serve turns on by default, and on the filesystem as
// `lading serve` has it alone (with the tag cache).
func forEachDriver(t *testing.T, fn func(t *testing.T, reg *Registry)) {
	forEachDriverWith(t, Options{}, fn)
}

// forEachDriverWith is forEachDriver for registries made with opts.
func forEachDriverWith(t *testing.T, opts Options, fn func(t *testing.T, reg *Registry)) {
	opts.ManifestCacheSize = 1 << 20
	for name, mk := range manifestDrivers {
		t.Run(name, func(t *testing.T) { fn(t, New(mk(t), opts)) })
	}
	t.Run("filesystem-sole", func(t *testing.T) {
		sole := opts
		sole.SoleServer = true
		fn(t, New(manifestDrivers["filesystem"](t), sole))
	})
}

// fixture is one repository under test.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	repo *Repository
	ms   *ManifestStore
}

func newFixture(t *testing.T, reg *Registry, name string) *fixture {
	t.Helper()
	repo, err := reg.Repository(name)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: context.Background(), repo: repo, ms: repo.Manifests()}
}

// blob pushes content and returns its descriptor with mediaType.
func (f *fixture) blob(mediaType string, content []byte) v1.Descriptor {
	f.t.Helper()
	d := digest.FromBytes(content)
	if _, err := f.repo.Blobs().Put(f.ctx, d, bytes.NewReader(content)); err != nil {
		f.t.Fatalf("put blob: %v", err)
	}
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(content))}
}

func randomContent(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// image returns an OCI image manifest whose config and layer are pushed.
func (f *fixture) image() v1.Manifest {
	f.t.Helper()
	return v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: MediaTypeOCIManifest,
		Config:    f.blob(testConfigType, []byte(`{"architecture":"amd64","os":"linux","r":"`+rand.Text()+`"}`)),
		Layers:    []v1.Descriptor{f.blob(testLayerType, randomContent(100))},
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// put stores payload under reference and fails the test on error.
func (f *fixture) put(reference string, payload []byte, tags ...string) *Manifest {
	f.t.Helper()
	m, err := f.ms.Put(f.ctx, reference, "", payload, tags...)
	if err != nil {
		f.t.Fatalf("put %s: %v", reference, err)
	}
	return m
}

// pushImage pushes a fresh image under reference and returns its bytes.
func (f *fixture) pushImage(reference string) ([]byte, digest.Digest) {
	f.t.Helper()
	payload := mustJSON(f.t, f.image())
	m := f.put(reference, payload)
	return payload, m.Descriptor.Digest
}

// legacyDocker rewrites the record of d as earlier versions stored untyped
// bytes pushed as a Docker manifest, which is now refused.
func (f *fixture) legacyDocker(d digest.Digest) {
	f.t.Helper()
	rec, err := f.ms.record(f.ctx, d)
	if err != nil {
		f.t.Fatal(err)
	}
	rec.MediaType, rec.ArtifactType, rec.Subject = MediaTypeDockerManifest, "", nil
	if err := f.ms.writeRecord(f.ctx, rec); err != nil {
		f.t.Fatal(err)
	}
}

// wantUnknown checks that Stat and Get of each reference are
// MANIFEST_UNKNOWN, the manifest being in the state why says.
func (f *fixture) wantUnknown(why string, refs ...string) {
	f.t.Helper()
	for _, ref := range refs {
		if _, err := f.ms.Stat(f.ctx, ref); !errors.Is(err, ErrManifestUnknown) {
			f.t.Errorf("Stat %s %s: %v, want MANIFEST_UNKNOWN", ref, why, err)
		}
		if _, err := f.ms.Get(f.ctx, ref); !errors.Is(err, ErrManifestUnknown) {
			f.t.Errorf("Get %s %s: %v, want MANIFEST_UNKNOWN", ref, why, err)
		}
	}
}

func wantErrCode(t *testing.T, err error, code Code) {
	t.Helper()
	e, ok := AsError(err)
	if !ok || e.Code != code {
		t.Fatalf("got error %v, want code %s", err, code)
	}
}

func TestPutGetStat(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "library/app")
		payload, d := f.pushImage("v1")
		for _, ref := range []string{"v1", d.String()} {
			m, err := f.ms.Get(f.ctx, ref)
			if err != nil {
				t.Fatalf("get %s: %v", ref, err)
			}
			if !bytes.Equal(m.Payload, payload) || m.Descriptor.Digest != d || m.Descriptor.MediaType != MediaTypeOCIManifest {
				t.Fatalf("get %s: descriptor %+v", ref, m.Descriptor)
			}
			desc, err := f.ms.Stat(f.ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if desc.Size != int64(len(payload)) || desc.Digest != d || desc.MediaType != MediaTypeOCIManifest {
				t.Fatalf("stat %s: %+v", ref, desc)
			}
		}
		// A repeated push of the same bytes is a no-op that succeeds.
		f.put(d.String(), payload)
		// The manifest's bytes are content like any blob of the repository.
		if desc, err := f.repo.Blobs().Stat(f.ctx, d); err != nil || desc.Size != int64(len(payload)) {
			t.Fatalf("manifest bytes not linked as a blob: %v %+v", err, desc)
		}
	})
}

func TestGetUnknown(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "present")
		f.pushImage("v1")
		missing := digest.FromString("missing").String()
		for _, ref := range []string{"nope", missing} {
			_, err := f.ms.Get(f.ctx, ref)
			wantErrCode(t, err, CodeManifestUnknown)
			_, err = f.ms.Stat(f.ctx, ref)
			wantErrCode(t, err, CodeManifestUnknown)
		}
		_, err := f.ms.Get(f.ctx, "sha256:baddigeststring")
		wantErrCode(t, err, CodeDigestInvalid)
		_, err = f.ms.Get(f.ctx, "bad tag")
		wantErrCode(t, err, CodeTagInvalid)

		absent := newFixture(t, reg, "absent")
		for _, ref := range []string{"v1", missing} {
			_, err := absent.ms.Get(f.ctx, ref)
			wantErrCode(t, err, CodeNameUnknown)
		}
		// The manifest of one repository is unknown to another.
		other := newFixture(t, reg, "other")
		other.pushImage("x")
		_, d := f.pushImage("v2")
		_, err = other.ms.Get(f.ctx, d.String())
		wantErrCode(t, err, CodeManifestUnknown)
	})
}

func TestPutRefusals(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "refusals")
		good := mustJSON(t, f.image())
		missingBlob := v1.Descriptor{MediaType: testLayerType, Digest: digest.FromString("never pushed"), Size: 12}

		t.Run("digest mismatch", func(t *testing.T) {
			_, err := f.ms.Put(f.ctx, digest.FromString("other").String(), "", good)
			wantErrCode(t, err, CodeDigestInvalid)
		})
		t.Run("trailing bytes change the digest", func(t *testing.T) {
			_, err := f.ms.Put(f.ctx, digest.FromBytes(good).String(), "", append(bytes.Clone(good), ' ', ' '))
			wantErrCode(t, err, CodeDigestInvalid)
		})
		t.Run("malformed digest", func(t *testing.T) {
			_, err := f.ms.Put(f.ctx, "sha256:baddigeststring", "", good)
			wantErrCode(t, err, CodeDigestInvalid)
		})
		t.Run("unsupported digest algorithm", func(t *testing.T) {
			_, err := f.ms.Put(f.ctx, digest.SHA384.FromBytes(good).String(), "", good)
			wantErrCode(t, err, CodeDigestInvalid)
		})
		t.Run("invalid tag", func(t *testing.T) {
			_, err := f.ms.Put(f.ctx, "-leading-dash", "", good)
			wantErrCode(t, err, CodeTagInvalid)
		})
		t.Run("invalid extra tag", func(t *testing.T) {
			_, err := f.ms.Put(f.ctx, digest.FromBytes(good).String(), "", good, "ok", strings.Repeat("x", 129))
			wantErrCode(t, err, CodeTagInvalid)
			_, err = f.ms.Stat(f.ctx, "ok")
			wantErrCode(t, err, CodeManifestUnknown) // nothing written
		})
		t.Run("content type disagrees", func(t *testing.T) {
			_, err := f.ms.Put(f.ctx, "ct", MediaTypeDockerManifest, good)
			wantErrCode(t, err, CodeManifestInvalid)
		})
		t.Run("missing config", func(t *testing.T) {
			m := f.image()
			m.Config = v1.Descriptor{MediaType: testConfigType, Digest: digest.FromString("no config"), Size: 9}
			_, err := f.ms.Put(f.ctx, "t", "", mustJSON(t, m))
			wantErrCode(t, err, CodeManifestBlobUnknown)
			e, _ := AsError(err)
			if detail, _ := e.Detail.(map[string]string); detail["digest"] != m.Config.Digest.String() {
				t.Fatalf("detail %v does not name the missing config", e.Detail)
			}
		})
		t.Run("missing layer", func(t *testing.T) {
			m := f.image()
			m.Layers = append(m.Layers, missingBlob)
			_, err := f.ms.Put(f.ctx, "t", "", mustJSON(t, m))
			wantErrCode(t, err, CodeManifestBlobUnknown)
		})
		t.Run("layer with urls is still required", func(t *testing.T) {
			m := f.image()
			l := missingBlob
			l.URLs = []string{"https://example.com/blob"}
			m.Layers = append(m.Layers, l)
			_, err := f.ms.Put(f.ctx, "t", "", mustJSON(t, m))
			wantErrCode(t, err, CodeManifestBlobUnknown)
		})
		t.Run("blob of another repository", func(t *testing.T) {
			other := newFixture(t, reg, "elsewhere")
			m := f.image()
			m.Layers = append(m.Layers, other.blob(testLayerType, []byte("only there")))
			_, err := f.ms.Put(f.ctx, "t", "", mustJSON(t, m))
			wantErrCode(t, err, CodeManifestBlobUnknown)
		})
		t.Run("wrong layer size", func(t *testing.T) {
			m := f.image()
			m.Layers[0].Size++
			_, err := f.ms.Put(f.ctx, "t", "", mustJSON(t, m))
			wantErrCode(t, err, CodeManifestInvalid)
		})
		t.Run("missing index child", func(t *testing.T) {
			idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex,
				Manifests: []v1.Descriptor{{MediaType: MediaTypeOCIManifest, Digest: digest.FromString("absent child"), Size: 3}}}
			_, err := f.ms.Put(f.ctx, "t", "", mustJSON(t, idx))
			wantErrCode(t, err, CodeManifestBlobUnknown)
		})
		t.Run("too large", func(t *testing.T) {
			big := make([]byte, DefaultMaxManifestSize+1)
			_, err := f.ms.Put(f.ctx, "big", "", big)
			wantErrCode(t, err, CodeManifestTooLarge)
		})
		if _, err := f.ms.Stat(f.ctx, "t"); !errors.Is(err, ErrManifestUnknown) {
			t.Fatalf("a refused manifest left tag t: %v", err)
		}
	})
}

func TestManifestAtTheSizeLimit(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "large")
		m := f.image()
		m.Annotations = map[string]string{"pad": ""}
		pad := DefaultMaxManifestSize - len(mustJSON(t, m))
		m.Annotations["pad"] = strings.Repeat("A", pad)
		payload := mustJSON(t, m)
		if len(payload) != DefaultMaxManifestSize {
			t.Fatalf("built %d bytes", len(payload))
		}
		got := f.put("large", payload)
		if got.Descriptor.Size != DefaultMaxManifestSize {
			t.Fatalf("size %d", got.Descriptor.Size)
		}
		m.Annotations["pad"] += "A"
		_, err := f.ms.Put(f.ctx, "larger", "", mustJSON(t, m))
		wantErrCode(t, err, CodeManifestTooLarge)
	})
}

func TestAcceptedExemptions(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "exempt")
		m := f.image()
		m.Layers = append(m.Layers,
			v1.Descriptor{MediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Digest: digest.FromString("nd"), Size: 123456,
				URLs: []string{"https://store.example.com/blobs/nd"}},
			v1.Descriptor{MediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Digest: digest.FromString("foreign"), Size: 5})
		m.Subject = &v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromString("subject not pushed"), Size: 123}
		f.put("exempt", mustJSON(t, m))

		// An empty image and an empty index need nothing at all.
		empty := f.image()
		empty.Layers = []v1.Descriptor{}
		f.put("no-layers", mustJSON(t, empty))
		f.put("empty-index", mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{}}))
	})
}

func TestIndexAndNestedIndex(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "multi/arch")
		var children []v1.Descriptor
		for i := range 2 {
			payload, d := f.pushImage("child-" + strconv.Itoa(i))
			children = append(children, v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: d, Size: int64(len(payload)),
				Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}})
		}
		idx := mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: children})
		inner := f.put(digest.FromBytes(idx).String(), idx)
		outer := mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex,
			Manifests: []v1.Descriptor{{MediaType: MediaTypeOCIIndex, Digest: inner.Descriptor.Digest, Size: inner.Descriptor.Size}}})
		f.put("index-of-index", outer)
		got, err := f.ms.Get(f.ctx, "index-of-index")
		if err != nil || got.Descriptor.MediaType != MediaTypeOCIIndex || !bytes.Equal(got.Payload, outer) {
			t.Fatalf("get: %v %+v", err, got)
		}
		// An index may also list plain blobs of the repository.
		b := f.blob("application/vnd.example.thing", []byte("thing"))
		f.put("blob-index", mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{b}}))
	})
}

func TestSHA512Manifest(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "sha512")
		payload := mustJSON(t, f.image())
		d := digest.SHA512.FromBytes(payload)
		m := f.put(d.String(), payload, "five-twelve")
		if m.Descriptor.Digest != d {
			t.Fatalf("stored as %s, want %s", m.Descriptor.Digest, d)
		}
		for _, ref := range []string{d.String(), "five-twelve"} {
			got, err := f.ms.Get(f.ctx, ref)
			if err != nil || got.Descriptor.Digest != d || !bytes.Equal(got.Payload, payload) {
				t.Fatalf("get %s: %v", ref, err)
			}
		}
		// The same bytes under sha256 are a second, independent record.
		if _, err := f.ms.Stat(f.ctx, digest.FromBytes(payload).String()); !errors.Is(err, ErrManifestUnknown) {
			t.Fatalf("sha256 form: %v", err)
		}
		if err := f.ms.Delete(f.ctx, d.String()); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ms.Stat(f.ctx, "five-twelve"); !errors.Is(err, ErrManifestUnknown) {
			t.Fatalf("tag survived: %v", err)
		}
	})
}

func TestDockerTypesByteExact(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "docker/hub")
		cfg := f.blob("application/vnd.docker.container.image.v1+json", []byte(`{"os":"linux"}`))
		layer := f.blob("application/vnd.docker.image.rootfs.diff.tar.gzip", randomContent(64))
		// Hand-written, with the key order and spacing a client chose: the
		// registry must hand back these bytes, not a re-encoding.
		manifest := []byte("{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"" + MediaTypeDockerManifest + "\",\n" +
			"   \"config\": {\"mediaType\": \"" + cfg.MediaType + "\", \"size\": " + strconv.FormatInt(cfg.Size, 10) + ", \"digest\": \"" + cfg.Digest.String() + "\"},\n" +
			"   \"layers\": [\n      {\"mediaType\": \"" + layer.MediaType + "\", \"size\": " + strconv.FormatInt(layer.Size, 10) + ", \"digest\": \"" + layer.Digest.String() + "\"}\n   ]\n}\n")
		m, err := f.ms.Put(f.ctx, "latest", MediaTypeDockerManifest, manifest)
		if err != nil {
			t.Fatal(err)
		}
		list := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifestList + `","manifests":[{"mediaType":"` + MediaTypeDockerManifest +
			`","size":` + strconv.FormatInt(m.Descriptor.Size, 10) + `,"digest":"` + m.Descriptor.Digest.String() + `","platform":{"architecture":"amd64","os":"linux"}}]}`)
		if _, err := f.ms.Put(f.ctx, "list", MediaTypeDockerManifestList, list); err != nil {
			t.Fatal(err)
		}
		for ref, want := range map[string]struct {
			payload   []byte
			mediaType string
		}{"latest": {manifest, MediaTypeDockerManifest}, "list": {list, MediaTypeDockerManifestList}} {
			got, err := f.ms.Get(f.ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Payload, want.payload) || got.Descriptor.MediaType != want.mediaType || got.Descriptor.Digest != digest.FromBytes(want.payload) {
				t.Fatalf("%s: got %s %s", ref, got.Descriptor.MediaType, got.Payload)
			}
		}
	})
}

func TestDeleteByTagAndDigest(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "deletes")
		payload, d := f.pushImage("a")
		f.put("b", payload)
		f.put(d.String(), payload, "c")
		_, keep := f.pushImage("keep")
		// A tag that pointed at d and moved on must survive d's delete, and
		// so must a tag deleted and pushed again elsewhere.
		f.put("moved", payload)
		f.put("moved", mustJSON(t, f.image()))

		if err := f.ms.Delete(f.ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ms.Stat(f.ctx, "a"); !errors.Is(err, ErrManifestUnknown) {
			t.Fatalf("deleted tag still resolves: %v", err)
		}
		if _, err := f.ms.Stat(f.ctx, d.String()); err != nil {
			t.Fatalf("tag delete removed the manifest: %v", err)
		}
		wantErrCode(t, f.ms.Delete(f.ctx, "a"), CodeManifestUnknown)

		if err := f.ms.Delete(f.ctx, d.String()); err != nil {
			t.Fatal(err)
		}
		for _, ref := range []string{"b", "c", d.String()} {
			if _, err := f.ms.Get(f.ctx, ref); !errors.Is(err, ErrManifestUnknown) {
				t.Fatalf("%s after delete: %v", ref, err)
			}
		}
		tags, _, err := f.ms.Tags(f.ctx, "", 0)
		if err != nil || !slices.Equal(tags, []string{"keep", "moved"}) {
			t.Fatalf("tags after delete: %v %v", tags, err)
		}
		if _, err := f.ms.Get(f.ctx, keep.String()); err != nil {
			t.Fatal(err)
		}
		wantErrCode(t, f.ms.Delete(f.ctx, d.String()), CodeManifestUnknown)
		wantErrCode(t, f.ms.Delete(f.ctx, "sha256:zz"), CodeDigestInvalid)
		wantErrCode(t, f.ms.Delete(f.ctx, "bad/tag"), CodeTagInvalid)
		wantErrCode(t, newFixture(t, reg, "no/such/repo").ms.Delete(f.ctx, "x"), CodeNameUnknown)

		// The manifest can be pushed again after its delete.
		f.put("again", payload)
	})
}

// An interrupted digest delete that already removed the tags leaves the
// manifest reachable by digest and deletable again, never a dangling tag.
func TestInterruptedDeleteLeavesNoDanglingTag(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "interrupted")
		_, d := f.pushImage("t1")
		if err := f.ms.untag(f.ctx, d); err != nil { // the first step alone
			t.Fatal(err)
		}
		if _, err := f.ms.Stat(f.ctx, "t1"); !errors.Is(err, ErrManifestUnknown) {
			t.Fatalf("tag after untag: %v", err)
		}
		if _, err := f.ms.Stat(f.ctx, d.String()); err != nil {
			t.Fatal(err)
		}
		if err := f.ms.Delete(f.ctx, d.String()); err != nil {
			t.Fatal(err)
		}
	})
}

// Concurrent pushes to one tag leave it on one complete manifest, and a
// reader during the race always gets a whole manifest that hashes to the
// digest it is served under.
func TestConcurrentTagPuts(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "race")
		const writers = 16
		payloads := make([][]byte, writers)
		for i := range payloads {
			payloads[i] = mustJSON(t, f.image())
		}
		f.put("latest", payloads[0])

		done := make(chan struct{})
		var readers sync.WaitGroup
		readErr := make(chan error, 4)
		for range 4 {
			readers.Go(func() {
				for {
					select {
					case <-done:
						return
					default:
					}
					m, err := f.ms.Get(f.ctx, "latest")
					if err == nil && digest.FromBytes(m.Payload) != m.Descriptor.Digest {
						err = errors.New("payload does not match its digest")
					}
					if err != nil {
						readErr <- err
						return
					}
				}
			})
		}
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				if _, err := f.ms.Put(f.ctx, "latest", MediaTypeOCIManifest, payloads[i]); err != nil {
					t.Errorf("writer %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		close(done)
		readers.Wait()
		select {
		case err := <-readErr:
			t.Fatalf("reader during the race: %v", err)
		default:
		}
		m, err := f.ms.Get(f.ctx, "latest")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range payloads {
			found = found || bytes.Equal(p, m.Payload)
		}
		if !found {
			t.Fatal("tag points at none of the pushed manifests")
		}
	})
}

// A crash on a driver that defers durability can keep a record without its
// bytes: the manifest then reads as absent, by Stat as by Get. Drivers that
// write the bytes durably first skip the stat this costs.
func TestRecordWithoutBytesReadsAsAbsent(t *testing.T) {
	for name, mk := range manifestDrivers {
		t.Run(name, func(t *testing.T) {
			drv := mk(t)
			reg := New(drv, Options{})
			if want := name == "filesystem"; reg.deferring != want {
				t.Fatalf("deferring = %v on %s, want %v", reg.deferring, name, want)
			}
			if !reg.deferring {
				return
			}
			f := newFixture(t, reg, "library/app")
			_, d := f.pushImage("v1")
			if err := drv.Delete(f.ctx, blobPath(d)); err != nil {
				t.Fatal(err)
			}
			f.wantUnknown("without its bytes", "v1", d.String())
			// Nor may an index name it as a child.
			idx := mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex,
				Manifests: []v1.Descriptor{{MediaType: MediaTypeOCIManifest, Digest: d, Size: 1}}})
			if _, err := f.ms.Put(f.ctx, "index", "", idx); !errors.Is(err, ErrManifestBlobUnknown) {
				t.Errorf("index of a child without its bytes: %v, want MANIFEST_BLOB_UNKNOWN", err)
			}
		})
	}
}

// The payload cache serves bytes by digest without a read, but never a
// manifest the repository no longer holds: its record is checked every time.
func TestPayloadCache(t *testing.T) {
	for name, mk := range manifestDrivers {
		t.Run(name, func(t *testing.T) {
			drv := mk(t)
			for _, size := range []int64{1 << 20, 0} {
				reg := New(drv, Options{ManifestCacheSize: size})
				cached := size > 0
				f := newFixture(t, reg, "library/app"+strconv.FormatInt(size, 10))
				payload, d := f.pushImage("v1")
				if err := drv.Delete(f.ctx, blobPath(d)); err != nil {
					t.Fatal(err)
				}
				for _, ref := range []string{"v1", d.String()} {
					m, err := f.ms.Get(f.ctx, ref)
					switch {
					case cached && (err != nil || !bytes.Equal(m.Payload, payload)):
						t.Fatalf("Get %s from the cache: %v", ref, err)
					case !cached && err == nil:
						t.Fatalf("Get %s of bytes gone, with nothing cached: no error", ref)
					}
					if _, err := f.ms.Stat(f.ctx, ref); cached && err != nil {
						t.Fatalf("Stat %s of cached bytes: %v", ref, err)
					}
				}
				if err := f.ms.Delete(f.ctx, d.String()); err != nil {
					t.Fatal(err)
				}
				f.wantUnknown("after its delete", "v1", d.String())
			}
		})
	}
}

// The record cache trusts a record whose size is unchanged (manifestCache),
// which holds because a record differs only by its media type and the
// accepted media types all differ in length.
func TestAcceptedMediaTypesDifferInLength(t *testing.T) {
	seen := map[int]string{}
	for _, mt := range acceptedMediaTypes {
		if other, ok := seen[len(mt)]; ok {
			t.Fatalf("%s and %s have the same length: the record cache could not tell their records apart", mt, other)
		}
		seen[len(mt)] = mt
	}
}

// A record rewritten by another process (a replica) is read again: a
// manifest an earlier version stored as Docker (untyped bytes), deleted
// there and pushed again, is served here as the OCI manifest it now is.
func TestRecordCacheSeesAnotherProcesssRewrite(t *testing.T) {
	forEachDriver(t, func(t *testing.T, here *Registry) {
		if here.tags != nil {
			t.Skip("a sole server's storage has no other writer (TestTagCacheSeesOtherProcessesWithinTrust)")
		}
		there := New(here.driver, Options{})
		f := newFixture(t, here, "library/app")
		m := f.image()
		m.MediaType = "" // so the request's Content-Type decides
		payload := mustJSON(t, m)
		d := digest.FromBytes(payload)
		if _, err := f.ms.Put(f.ctx, "v1", MediaTypeOCIManifest, payload); err != nil {
			t.Fatal(err)
		}
		f.legacyDocker(d)
		if got, err := f.ms.Stat(f.ctx, d.String()); err != nil || got.MediaType != MediaTypeDockerManifest {
			t.Fatalf("Stat = %v, %v", got.MediaType, err)
		}
		other := newFixture(t, there, "library/app")
		if err := other.ms.Delete(f.ctx, d.String()); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ms.Get(f.ctx, d.String()); !errors.Is(err, ErrManifestUnknown) {
			t.Fatalf("Get after another process deleted it: %v", err)
		}
		if _, err := other.ms.Put(f.ctx, "v1", "", payload); err != nil {
			t.Fatal(err)
		}
		for _, ref := range []string{"v1", d.String()} {
			got, err := f.ms.Get(f.ctx, ref)
			if err != nil || got.Descriptor.MediaType != MediaTypeOCIManifest || !bytes.Equal(got.Payload, payload) {
				t.Fatalf("Get %s after another process pushed it again: %v, %v", ref, got.Descriptor.MediaType, err)
			}
		}
	})
}

// A digest delete racing a push that moves one of its tags to another
// manifest leaves the tag where the push put it.
func TestDigestDeleteKeepsATagMovedMeanwhile(t *testing.T) {
	f, h := hookedFixture(t)
	_, old := f.pushImage("latest")
	newPayload := mustJSON(t, f.image())
	h.on("delete", tagPath("race", "latest"), true, func() {
		if _, err := f.ms.Put(f.ctx, "latest", "", newPayload); err != nil {
			t.Errorf("push: %v", err)
		}
	})
	if err := f.ms.Delete(f.ctx, old.String()); err != nil {
		t.Fatal(err)
	}
	m, err := f.ms.Get(f.ctx, "latest")
	if err != nil || m.Descriptor.Digest != digest.FromBytes(newPayload) {
		t.Fatalf("latest after the old digest's delete: %v", err)
	}
}

// persisting records the paths a push asks to make durable with its own.
type persisting struct {
	driver.Driver
	mu    sync.Mutex
	paths map[string]bool
	log   []string // removals persisted and objects deleted, in order
}

func (p *persisting) Delete(ctx context.Context, path string) error {
	p.mu.Lock()
	p.log = append(p.log, "delete "+path)
	p.mu.Unlock()
	return p.Driver.Delete(ctx, path)
}

func (p *persisting) Persist(ctx context.Context, path string) error {
	p.mu.Lock()
	p.paths[path] = true
	p.mu.Unlock()
	return driver.Persist(ctx, p.Driver, path)
}

func (p *persisting) DefersUnderBatch() bool { return driver.Defers(p.Driver) }

// persistingFixture is repository r on a file system whose Persist and
// PersistRemovals calls are recorded.
func persistingFixture(t *testing.T) (*persisting, *fixture) {
	fsd, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := &persisting{Driver: fsd, paths: map[string]bool{}}
	return d, newFixture(t, New(d, Options{}), "r")
}

// A manifest push makes what it names durable with itself: a blob or
// child manifest still being committed by another push must not be lost
// in a crash under a manifest acknowledged meanwhile.
func TestManifestPushPersistsItsReferences(t *testing.T) {
	d, f := persistingFixture(t)
	img := f.image()
	child := f.put(digest.FromBytes(mustJSON(t, img)).String(), mustJSON(t, img))
	for _, ref := range []v1.Descriptor{img.Config, img.Layers[0]} {
		for _, p := range []string{blobPath(ref.Digest), layerLinkPath("r", ref.Digest)} {
			if !d.paths[p] {
				t.Errorf("the image push did not make %s durable with itself", p)
			}
		}
	}
	idx := mustJSON(t, v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex,
		Manifests: []v1.Descriptor{child.Descriptor}})
	f.put("list", idx)
	for _, p := range []string{blobPath(child.Descriptor.Digest), manifestLinkPath("r", child.Descriptor.Digest)} {
		if !d.paths[p] {
			t.Errorf("the index push did not make %s durable with itself", p)
		}
	}
}

func (p *persisting) PersistRemovals(ctx context.Context, dir string) error {
	p.mu.Lock()
	p.paths["removals "+dir] = true
	p.log = append(p.log, "removals "+dir)
	p.mu.Unlock()
	return driver.PersistRemovals(ctx, p.Driver, dir)
}

// Deletes through the API are durable when acknowledged: a crash must not
// bring back a tag, a manifest or a blob link a client was told is gone.
func TestDeletesPersistTheirRemovals(t *testing.T) {
	d, f := persistingFixture(t)
	img := f.image()
	m := f.put("v1", mustJSON(t, img))
	f.put("v2", mustJSON(t, img))
	if err := f.ms.Delete(f.ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	if !d.paths["removals "+tagsPath("r")] {
		t.Error("a tag delete did not make its removal durable")
	}
	clear(d.paths)
	d.log = nil
	if err := f.ms.Delete(f.ctx, m.Descriptor.Digest.String()); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{tagsPath("r"), path.Dir(manifestLinkPath("r", m.Descriptor.Digest))} {
		if !d.paths["removals "+dir] {
			t.Errorf("a manifest delete did not make the removals in %s durable", dir)
		}
	}
	// The tags' removal is durable before the record goes: a crash between
	// must not keep tags naming nothing.
	tags := slices.Index(d.log, "removals "+tagsPath("r"))
	record := slices.Index(d.log, "delete "+manifestLinkPath("r", m.Descriptor.Digest))
	if tags < 0 || record < 0 || tags > record {
		t.Errorf("removals persisted and deletes, in order: %q; the tags' must come before the record's", d.log)
	}
	if err := f.repo.Blobs().Delete(f.ctx, img.Layers[0].Digest); err != nil {
		t.Fatal(err)
	}
	if dir := path.Dir(layerLinkPath("r", img.Layers[0].Digest)); !d.paths["removals "+dir] {
		t.Error("a blob delete did not make its removal durable")
	}
}

// statCounter counts the stats its driver is asked for.
type statCounter struct {
	driver.Driver
	n atomic.Int64
}

func (s *statCounter) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	s.n.Add(1)
	return s.Driver.Stat(ctx, p)
}

// A push naming many missing blobs is refused for the first of them, in
// document order, without a look at every other (two requests each on an
// object store).
func TestPushStopsAtTheFirstMissingReference(t *testing.T) {
	counter := &statCounter{Driver: inmemory.New()}
	f := newFixture(t, New(counter, Options{}), "many")
	m := f.image()
	for i := range 2000 {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: testLayerType, Digest: digest.FromString(fmt.Sprint("missing", i)), Size: 1})
	}
	counter.n.Store(0)
	_, err := f.ms.Put(f.ctx, "v1", "", mustJSON(t, m))
	wantErrCode(t, err, CodeManifestBlobUnknown)
	if want := digest.FromString("missing0").String(); !strings.Contains(err.Error(), want) {
		t.Errorf("refused with %v, want the first missing layer %s", err, want)
	}
	if n := counter.n.Load(); n > 200 {
		t.Errorf("%d stats for a push refused at its second layer", n)
	}
}

// On an object store a manifest push sends its bytes while it takes the
// manifest's lock, a round trip each: one fewer in a row.
func TestManifestBytesGoWhileTheLockIsTaken(t *testing.T) {
	drv := newHookDriver(inmemory.New())
	reg := New(drv, Options{Locker: NewBackendLocker(drv, 0)})
	if reg.deferring {
		t.Fatal("the in-memory driver defers its writes: this test needs one that does not")
	}
	f := newFixture(t, reg, "r")
	payload := mustJSON(t, f.image())
	d := digest.FromBytes(payload)
	begun := make(chan struct{})
	drv.on("create", blobPath(d), true, func() { close(begun) })
	drv.on("create", lockPath(manifestLockKey("r", d)), true, func() {
		select {
		case <-begun:
		case <-time.After(5 * time.Second):
			t.Error("the manifest's bytes were not sent while its lock was taken")
		}
	})
	f.put("v1", payload)
	if got, err := f.ms.Get(f.ctx, "v1"); err != nil || got.Descriptor.Digest != d {
		t.Fatalf("get v1 = %v, %v", got, err)
	}
}

// A push on an object store checks what it names while it takes the
// manifest's lock; one that had to wait for another request holding it
// (for up to lockManifestWait) checks again before it writes, so a layer
// removed meanwhile is MANIFEST_BLOB_UNKNOWN, not named by a new manifest.
func TestManifestPushThatWaitedChecksAgain(t *testing.T) {
	drv := newHookDriver(inmemory.New())
	reg := New(drv, Options{})
	f := newFixture(t, reg, "r")
	img := f.image()
	payload := mustJSON(t, img)
	d := digest.FromBytes(payload)
	layer := img.Layers[0].Digest
	checked := make(chan struct{})
	drv.on("stat", layerLinkPath("r", layer), false, func() { close(checked) })
	unlock, _, err := f.ms.lockManifest(f.ctx, d, true) // another request's
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.ms.Put(f.ctx, "v1", "", payload)
		done <- err
	}()
	select {
	case <-checked:
	case <-time.After(10 * time.Second):
		unlock()
		t.Fatal("the push did not check its layer before it had the lock")
	}
	if err := f.repo.Blobs().Delete(f.ctx, layer); err != nil {
		t.Fatal(err)
	}
	unlock()
	wantErrCode(t, <-done, CodeManifestBlobUnknown)
}

// A panic in work a push began apart from its request is that work's
// error, not the end of the process.
func TestStartedWorkPanicIsItsError(t *testing.T) {
	err := start(context.Background(), func(context.Context) error { panic("broken") }).wait()
	if err == nil || !strings.Contains(err.Error(), "panic: broken") {
		t.Fatalf("wait = %v, want the panic as an error", err)
	}
}
