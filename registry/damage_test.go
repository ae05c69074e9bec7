package registry

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

// A store damaged on disk (a fault, a partial copy): what Lading serves
// and how a push of the right content mends it.

// damagedRoot opens a registry over root, as a fresh process would.
func damagedRoot(t *testing.T, root string) *Registry {
	t.Helper()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return New(driver.Instrument(d, nil), Options{ManifestCacheSize: 1 << 20})
}

// onDisk is the file behind a registry path.
func onDisk(root, path string) string { return filepath.Join(root, filepath.FromSlash(path)) }

func TestPushMendsABlobOfTheWrongSize(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	data := randomContent(300 << 10)
	d := digest.FromBytes(data)
	put := func(reg *Registry) {
		t.Helper()
		if _, err := newFixture(t, reg, "app").repo.Blobs().Put(ctx, d, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	put(damagedRoot(t, root))
	if err := os.Truncate(onDisk(root, blobPath(d)), 100000); err != nil {
		t.Fatal(err)
	}
	reg := damagedRoot(t, root)
	put(reg)
	br, err := newFixture(t, reg, "app").repo.Blobs().Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	got, err := io.ReadAll(br)
	if err != nil || !bytes.Equal(got, data) || br.Descriptor().Size != int64(len(data)) {
		t.Fatalf("after a push of the right bytes: %d bytes (size %d), %v", len(got), br.Descriptor().Size, err)
	}
}

func TestDamagedManifestIsNotServedAndAPushMendsIt(t *testing.T) {
	for _, damage := range []struct {
		name string
		fn   func([]byte) []byte
	}{
		{"same length", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1)
		}},
		{"not JSON", func([]byte) []byte { return []byte("not json at all\n") }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			root := t.TempDir()
			f := newFixture(t, damagedRoot(t, root), "app")
			payload, d := f.pushImage("v1")
			file := onDisk(root, blobPath(d))
			if err := os.WriteFile(file, damage.fn(payload), 0o644); err != nil {
				t.Fatal(err)
			}
			f = newFixture(t, damagedRoot(t, root), "app")
			for _, ref := range []string{"v1", d.String()} {
				if m, err := f.ms.Get(f.ctx, ref); err == nil || !strings.Contains(err.Error(), "damaged") {
					t.Fatalf("get %s of damaged bytes: %v, %v", ref, m != nil, err)
				}
			}
			f.put("v1", payload)
			f = newFixture(t, damagedRoot(t, root), "app") // not from memory
			m, err := f.ms.Get(f.ctx, "v1")
			if err != nil || !bytes.Equal(m.Payload, payload) {
				t.Fatalf("get after a push of the right bytes: %v", err)
			}
			if stored, _ := os.ReadFile(file); !bytes.Equal(stored, payload) {
				t.Fatalf("stored bytes after the push: %q", stored)
			}
		})
	}
}

// A damaged referrer entry is left out of its subject's list, which still
// names the other referrers; a push of the referrer writes it again.
func TestDamagedReferrerEntryIsLeftOut(t *testing.T) {
	root := t.TempDir()
	f := newFixture(t, damagedRoot(t, root), "app")
	payload, d := f.pushImage("v1")
	subject := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: d, Size: int64(len(payload))}
	sbom := f.put("sbom", mustJSON(t, f.artifact(subject, sbomType, nil)))
	sigBytes := mustJSON(t, f.artifact(subject, sigType, nil))
	sig := f.put("sig", sigBytes)
	other := f.put("other", mustJSON(t, f.artifact(subject, sigType, nil)))
	for _, garbage := range [][]byte{[]byte("garbage\n"), mustJSON(t, other.Descriptor)} { // not JSON; another referrer's entry
		if err := os.WriteFile(onDisk(root, referrerPath("app", d, sig.Descriptor.Digest)), garbage, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := f.ms.Referrers(f.ctx, d, "")
		if err != nil || len(got) != 2 || slices.ContainsFunc(got, func(g v1.Descriptor) bool { return g.Digest == sig.Descriptor.Digest }) ||
			!slices.ContainsFunc(got, func(g v1.Descriptor) bool { return g.Digest == sbom.Descriptor.Digest }) {
			t.Fatalf("referrers with a damaged entry: %+v, %v", got, err)
		}
	}
	f.put("sig", sigBytes)
	if got, err := f.ms.Referrers(f.ctx, d, ""); err != nil || len(got) != 3 {
		t.Fatalf("referrers after the referrer's push: %+v, %v", got, err)
	}
}

// Files Lading did not write among the tags and in the catalog (a file
// manager's, a copy's, a folder where a tag would be) are neither tags nor
// repositories: every listing and page of them goes on.
func TestStrayFilesAreNotListed(t *testing.T) {
	for _, sole := range []bool{false, true} {
		root := t.TempDir()
		d, err := filesystem.New(root)
		if err != nil {
			t.Fatal(err)
		}
		reg := New(driver.Instrument(d, nil), Options{SoleServer: sole})
		f := newFixture(t, reg, "app")
		_, md := f.pushImage("v1")
		f.pushImage("v2")
		for _, p := range []string{tagsPath("app") + "/.DS_Store", tagsPath("app") + "/v1x/sub/x", catalog + "/.DS_Store", catalog + "/sub/x"} {
			if err := os.MkdirAll(filepath.Dir(onDisk(root, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(onDisk(root, p), []byte(md), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		for last := ""; ; {
			page, more, err := f.ms.Tags(f.ctx, last, 1)
			if err != nil {
				t.Fatalf("sole %v: tags after %q: %v", sole, last, err)
			}
			got = append(got, page...)
			if !more {
				break
			}
			last = page[len(page)-1]
		}
		if !slices.Equal(got, []string{"v1", "v2"}) {
			t.Errorf("sole %v: tags %q, want v1 v2", sole, got)
		}
		var repos []string
		if err := reg.WalkCatalog(f.ctx, "", func(name string) bool { repos = append(repos, name); return true }); err != nil || !slices.Equal(repos, []string{"app"}) {
			t.Errorf("catalog %q, %v; want app", repos, err)
		}
	}
}

// On every driver, a push of the right bytes mends damaged manifest bytes:
// on an object store, the conditional create that finds them stored
// compares them.
func TestPushMendsDamagedManifestOnEveryDriver(t *testing.T) {
	for name, mk := range manifestDrivers {
		t.Run(name, func(t *testing.T) {
			drv := mk(t)
			open := func() *fixture { return newFixture(t, New(drv, Options{ManifestCacheSize: 1 << 20}), "app") }
			f := open()
			payload, d := f.pushImage("v1")
			if err := drv.PutContent(f.ctx, blobPath(d), bytes.Replace(payload, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1)); err != nil {
				t.Fatal(err)
			}
			f = open()
			if _, err := f.ms.Get(f.ctx, "v1"); err == nil || !strings.Contains(err.Error(), "damaged") {
				t.Fatalf("get of damaged bytes: %v", err)
			}
			f.put("v1", payload)
			f = open()
			if m, err := f.ms.Get(f.ctx, "v1"); err != nil || !bytes.Equal(m.Payload, payload) {
				t.Fatalf("get after a push of the right bytes: %v", err)
			}
		})
	}
}

// A damaged referrer entry, met again at every listing of its subject, is
// warned of once a minute, not at each.
func TestDamagedReferrerEntryWarnedOnceAMinute(t *testing.T) {
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	f := newFixture(t, New(driver.Instrument(d, nil), Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))}), "app")
	payload, md := f.pushImage("v1")
	sig := f.put("sig", mustJSON(t, f.artifact(v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: md, Size: int64(len(payload))}, sigType, nil)))
	if err := os.WriteFile(onDisk(root, referrerPath("app", md, sig.Descriptor.Digest)), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := f.ms.Referrers(f.ctx, md, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logged.String(), "referrer entry damaged"); n != 1 {
		t.Fatalf("%d warnings for three listings, want 1:\n%s", n, logged.String())
	}
}
