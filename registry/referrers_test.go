package registry

import (
	"context"
	"errors"
	"fmt"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	sbomType = "application/vnd.example.sbom.v1"
	sigType  = "application/vnd.example.signature.v1"
)

// artifact returns an artifact manifest about subject, with the empty
// config the image spec recommends for artifacts.
func (f *fixture) artifact(subject v1.Descriptor, artifactType string, annotations map[string]string) v1.Manifest {
	f.t.Helper()
	return v1.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    MediaTypeOCIManifest,
		ArtifactType: artifactType,
		Config:       f.blob(v1.MediaTypeEmptyJSON, []byte("{}")),
		Layers:       []v1.Descriptor{f.blob("application/octet-stream", randomContent(32))},
		Subject:      &subject,
		Annotations:  annotations,
	}
}

// Referrers lists every referrer of subject: ReferrersPage, page after
// page, as a client following the Link headers gets them.
func (ms *ManifestStore) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]v1.Descriptor, error) {
	out := []v1.Descriptor{}
	var last digest.Digest
	for {
		page, next, err := ms.ReferrersPage(ctx, subject, artifactType, last)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		if next == last {
			return nil, errors.New("registry: referrers of " + subject.String() + " do not page on past " + last.String())
		}
		last = next
	}
}

func TestReferrers(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "signed/app")
		payload, d := f.pushImage("v1")
		subject := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: d, Size: int64(len(payload))}

		sbom := f.put("sbom", mustJSON(t, f.artifact(subject, sbomType, map[string]string{"org.example.format": "spdx"})))
		sig := mustJSON(t, f.artifact(subject, sigType, nil))
		sigM := f.put(digest.FromBytes(sig).String(), sig)
		if sigM.Subject == nil || sigM.Subject.Digest != d {
			t.Fatalf("put did not report the subject: %+v", sigM.Subject)
		}
		// No artifactType: the config's media type stands in for it.
		plain := f.image()
		plain.Subject = &subject
		plainM := f.put("plain", mustJSON(t, plain))
		// An index referrer without artifactType has none in the listing.
		idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: []v1.Descriptor{},
			Subject: &subject, Annotations: map[string]string{"k": "v"}}
		idxM := f.put("idx", mustJSON(t, idx))
		// A referrer of something else is not listed.
		f.put("unrelated", mustJSON(t, f.artifact(v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromString("x"), Size: 1}, sbomType, nil)))

		want := map[digest.Digest]v1.Descriptor{
			sbom.Descriptor.Digest: {MediaType: MediaTypeOCIManifest, Digest: sbom.Descriptor.Digest, Size: sbom.Descriptor.Size, ArtifactType: sbomType,
				Annotations: map[string]string{"org.example.format": "spdx"}},
			sigM.Descriptor.Digest:   {MediaType: MediaTypeOCIManifest, Digest: sigM.Descriptor.Digest, Size: sigM.Descriptor.Size, ArtifactType: sigType},
			plainM.Descriptor.Digest: {MediaType: MediaTypeOCIManifest, Digest: plainM.Descriptor.Digest, Size: plainM.Descriptor.Size, ArtifactType: testConfigType},
			idxM.Descriptor.Digest:   {MediaType: MediaTypeOCIIndex, Digest: idxM.Descriptor.Digest, Size: idxM.Descriptor.Size, Annotations: map[string]string{"k": "v"}},
		}
		got, err := f.ms.Referrers(f.ctx, d, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d referrers, want %d: %+v", len(got), len(want), got)
		}
		for _, g := range got {
			if !sameDescriptor(g, want[g.Digest]) {
				t.Fatalf("referrer %+v, want %+v", g, want[g.Digest])
			}
		}

		filtered, err := f.ms.Referrers(f.ctx, d, sigType)
		if err != nil || len(filtered) != 1 || filtered[0].Digest != sigM.Descriptor.Digest {
			t.Fatalf("filtered by %s: %+v %v", sigType, filtered, err)
		}
		none, err := f.ms.Referrers(f.ctx, d, "application/vnd.example.none")
		if err != nil || none == nil || len(none) != 0 {
			t.Fatalf("filter matching nothing: %#v %v", none, err)
		}

		// Deleting a referrer removes its entry; the others stay.
		if err := f.ms.Delete(f.ctx, sigM.Descriptor.Digest.String()); err != nil {
			t.Fatal(err)
		}
		got, _ = f.ms.Referrers(f.ctx, d, "")
		if len(got) != len(want)-1 || slices.ContainsFunc(got, func(g v1.Descriptor) bool { return g.Digest == sigM.Descriptor.Digest }) {
			t.Fatalf("after deleting the signature: %+v", got)
		}
		_, err = f.ms.Referrers(f.ctx, "sha256:short", "")
		wantErrCode(t, err, CodeDigestInvalid)
	})
}

func sameDescriptor(a, b v1.Descriptor) bool {
	if a.MediaType != b.MediaType || a.Digest != b.Digest || a.Size != b.Size || a.ArtifactType != b.ArtifactType || len(a.Annotations) != len(b.Annotations) {
		return false
	}
	for k, v := range b.Annotations {
		if a.Annotations[k] != v {
			return false
		}
	}
	return true
}

func TestReferrerBeforeSubject(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "early")
		image := mustJSON(t, f.image())
		subject := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromBytes(image), Size: int64(len(image))}
		sig := f.put("sig", mustJSON(t, f.artifact(subject, sigType, nil)))

		got, err := f.ms.Referrers(f.ctx, subject.Digest, "")
		if err != nil || len(got) != 1 || got[0].Digest != sig.Descriptor.Digest {
			t.Fatalf("referrers of an absent subject: %+v %v", got, err)
		}
		f.put("image", image)
		got, _ = f.ms.Referrers(f.ctx, subject.Digest, sigType)
		if len(got) != 1 || got[0].Digest != sig.Descriptor.Digest {
			t.Fatalf("after the subject arrived: %+v", got)
		}
	})
}

func TestReferrersOfUnknownRepositoryAreEmpty(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "nobody/here")
		got, err := f.ms.Referrers(f.ctx, digest.FromString(strings.Repeat("s", 3)), "")
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("%#v %v", got, err)
		}
	})
}

// TestReferrersPages lists many referrers in pages bounded by size and by
// entries read: each page fits its bound, and the pages, followed from one
// to the next, give every referrer once, in digest order.
func TestReferrersPages(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "paged")
		payload, d := f.pushImage("v1")
		subject := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: d, Size: int64(len(payload))}
		var want []digest.Digest
		var sigs []digest.Digest
		for i := range 23 {
			at := sbomType
			if i%4 == 0 {
				at = sigType
			}
			m := f.put(fmt.Sprintf("r%d", i), mustJSON(t, f.artifact(subject, at, map[string]string{"n": strings.Repeat("x", 10*i)})))
			want = append(want, m.Descriptor.Digest)
			if at == sigType {
				sigs = append(sigs, m.Descriptor.Digest)
			}
		}
		slices.Sort(want)
		slices.Sort(sigs)
		// Objects Lading did not write, first and among the entries, are
		// passed over.
		for _, junk := range []string{"/sha256/0", "/sha256/" + want[2].Encoded()[:10], "/sha256/" + want[2].Encoded() + "x", "/zz/1"} {
			if err := reg.driver.PutContent(f.ctx, referrersPath("paged", d)+junk, mustJSON(t, v1.Descriptor{ArtifactType: sigType})); err != nil {
				t.Fatal(err)
			}
		}

		lower := func(bytes, read, batch int) {
			wasBytes, wasRead, wasBatch := maxReferrersBytes, maxReferrersRead, referrersBatch
			maxReferrersBytes, maxReferrersRead, referrersBatch = bytes, read, batch
			t.Cleanup(func() { maxReferrersBytes, maxReferrersRead, referrersBatch = wasBytes, wasRead, wasBatch })
		}
		follow := func(artifactType string) (all []digest.Digest, pages int) {
			var last digest.Digest
			for {
				page, next, err := f.ms.ReferrersPage(f.ctx, d, artifactType, last)
				if err != nil {
					t.Fatal(err)
				}
				size := 0
				for _, desc := range page {
					size += len(mustJSON(t, desc)) + 1
					all = append(all, desc.Digest)
				}
				if size > maxReferrersBytes && len(page) > 1 {
					t.Fatalf("page of %d bytes over its bound of %d", size, maxReferrersBytes)
				}
				pages++
				if next == "" {
					return all, pages
				}
				if next == last {
					t.Fatal("a page led back to itself")
				}
				last = next
			}
		}

		all, pages := follow("")
		if !slices.Equal(all, want) || pages != 1 {
			t.Fatalf("one page: %d pages, %v, want %v", pages, all, want)
		}
		// About three descriptors a page, read three entries at a time.
		lower(3*len(mustJSON(t, v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: d, Size: 1000, ArtifactType: sbomType, Annotations: map[string]string{"n": strings.Repeat("x", 100)}})), 10000, 3)
		all, pages = follow("")
		if !slices.Equal(all, want) || pages < 5 {
			t.Fatalf("paged by size: %d pages, %v, want %v", pages, all, want)
		}
		filtered, _ := follow(sigType)
		if !slices.Equal(filtered, sigs) {
			t.Fatalf("paged with a filter: %v, want %v", filtered, sigs)
		}
		// Few matches among many entries: pages end after the entries read.
		lower(1<<20, 5, 2)
		filtered, pages = follow(sigType)
		if !slices.Equal(filtered, sigs) || pages < 4 {
			t.Fatalf("paged by entries read: %d pages, %v, want %v", pages, filtered, sigs)
		}
		// Past the end, and a bad marker.
		if page, next, err := f.ms.ReferrersPage(f.ctx, d, "", want[len(want)-1]); err != nil || len(page) != 0 || next != "" {
			t.Fatalf("after the last referrer: %v %q %v", page, next, err)
		}
		_, _, err := f.ms.ReferrersPage(f.ctx, d, "", "sha256:short")
		wantErrCode(t, err, CodeDigestInvalid)
	})
}

// Untyped bytes pushed as a Docker manifest are refused (Docker's formats
// require mediaType): the same bytes always get the same record, so an OCI
// push's subject and its referrer entry stay.
func TestUntypedBytesKeepTheirOCIRecord(t *testing.T) {
	forEachDriver(t, func(t *testing.T, reg *Registry) {
		f := newFixture(t, reg, "retyped")
		_, subject := f.pushImage("subject")
		img := f.image()
		img.MediaType = ""
		img.Subject = &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: subject, Size: 1}
		payload := mustJSON(t, img)
		d := digest.FromBytes(payload)
		if _, err := f.ms.Put(f.ctx, d.String(), MediaTypeOCIManifest, payload); err != nil {
			t.Fatal(err)
		}
		_, err := f.ms.Put(f.ctx, d.String(), MediaTypeDockerManifest, payload)
		wantErrCode(t, err, CodeManifestInvalid)
		if got, err := f.ms.Stat(f.ctx, d.String()); err != nil || got.MediaType != MediaTypeOCIManifest {
			t.Fatalf("Stat after the refused Docker push: %v, %v", got.MediaType, err)
		}
		if refs, err := f.ms.Referrers(f.ctx, subject, ""); err != nil || len(refs) != 1 {
			t.Fatalf("referrers after the refused Docker push: %v %v", refs, err)
		}
	})
}

// referrerReads counts the bytes of referrer entries its driver reads.
type referrerReads struct {
	driver.Driver
	n atomic.Int64
}

func (r *referrerReads) GetContent(ctx context.Context, p string) ([]byte, error) {
	b, err := r.Driver.GetContent(ctx, p)
	if strings.Contains(p, "/_referrers/") {
		r.n.Add(int64(len(b)))
	}
	return b, err
}

// A page of referrers reads about a page's worth of entries, however large
// each is: an entry holds its referrer's annotations, and a batch of 256
// entries of 4 MiB each took one listing 500 MiB.
func TestReferrersPageReadsAPagesWorth(t *testing.T) {
	reads := &referrerReads{Driver: inmemory.New()}
	f := newFixture(t, New(reads, Options{}), "big")
	payload, d := f.pushImage("v1")
	subject := v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: d, Size: int64(len(payload))}
	for i := range 64 {
		f.put(fmt.Sprintf("r%d", i), mustJSON(t, f.artifact(subject, sigType, map[string]string{"n": strings.Repeat("x", 16<<10+i)})))
	}
	defer func(was int) { maxReferrersBytes = was }(maxReferrersBytes)
	maxReferrersBytes = 64 << 10
	reads.n.Store(0)
	page, next, err := f.ms.ReferrersPage(f.ctx, d, "", "")
	if err != nil || len(page) == 0 || next == "" {
		t.Fatalf("%d referrers, next %q, %v; want a first page of several", len(page), next, err)
	}
	if n := reads.n.Load(); n > 3*int64(maxReferrersBytes) {
		t.Errorf("a page of %d referrers (%d KiB at most) read %d KiB of entries", len(page), maxReferrersBytes>>10, n>>10)
	}
}
