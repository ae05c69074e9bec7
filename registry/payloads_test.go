package registry

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/storage/driver/inmemory"
)

// A record keeps its subject's descriptor whole, annotations and data up
// to a manifest's size: the record cache and the tag cache weigh records
// by it, so a pusher's large subjects stay within their memory bound.
func TestRecordCachesWeighRecords(t *testing.T) {
	const budget = 1 << 20 // a quarter for records
	reg := New(inmemory.New(), Options{ManifestCacheSize: budget})
	f := newFixture(t, reg, "library/app")
	base := f.image()
	const n, big = 64, 512 << 10
	for i := range n {
		m := base
		m.Subject = &v1.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromString(strings.Repeat("s", i+1)), Size: 1,
			Annotations: map[string]string{"x": strings.Repeat(string(rune('a'+i%26)), big)}}
		f.put(digest.FromBytes(mustJSON(t, m)).String(), mustJSON(t, m))
	}
	reg.manifests.records.CleanUp()
	var held int64
	for _, e := range reg.manifests.records.All() {
		held += e.size
	}
	if held > budget/4 {
		t.Errorf("the record cache holds %d KiB of records under a budget of %d KiB", held>>10, budget/4>>10)
	}
	tc := newTagCache()
	for i := range n {
		rec := manifestRecord{Subject: &v1.Descriptor{Annotations: map[string]string{"x": strings.Repeat("a", big)}}}
		tc.entries.Set(strings.Repeat("t", i+1), tagEntry{rec: rec})
	}
	tc.entries.CleanUp()
	if n := tc.entries.EstimatedSize(); n*big > tagCacheBytes {
		t.Errorf("the tag cache holds %d records of %d KiB under a bound of %d KiB", n, big>>10, tagCacheBytes>>10)
	}
}
