package replicas

import (
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

// TestMeasure prints the numbers behind the scale-out documentation: blob
// throughput on S3 against the filesystem, and what a chunked upload costs
// in S3 requests. It moves hundreds of MiB, so it runs only when asked:
//
//	LADING_TEST_MEASURE=1 go test -run TestMeasure -v ./test/replicas/
func TestMeasure(t *testing.T) {
	if os.Getenv("LADING_TEST_MEASURE") != "1" {
		t.Skip("set LADING_TEST_MEASURE=1 to measure")
	}
	t.Run("throughput", measureThroughput)
	t.Run("requests", measureRequests)
	t.Run("small-requests", measureSmallRequests)
}

// measureSmallRequests counts the S3 requests of the two writes a push
// makes most: a small blob (POST, then PUT with the body) and a manifest
// PUT under a tag, each the average of several on a warm repository.
func measureSmallRequests(t *testing.T) {
	s3 := testenv.S3(t)
	counter := countS3(t, s3)
	srv := startReplica(t, counter.s3, "", testserver.Options{})
	const n = 10
	postPut := func(data []byte) digest.Digest {
		d := digest.FromBytes(data)
		loc := startUpload(t, srv, "measure/small")
		resp, body := do(t, http.MethodPut, srv.URL+withParam(loc, "digest="+d.String()), data, nil)
		expect(t, resp, body, http.StatusCreated)
		return d
	}
	config, layer := randomBytes(t, 512), randomBytes(t, 4096)
	cd, ld := postPut(config), postPut(layer)
	counter.reset()
	for range n {
		postPut(randomBytes(t, 4096))
	}
	total, byKind := counter.snapshot()
	t.Logf("4 KiB blob, POST and PUT: %.1f S3 requests each\n%s", float64(total)/n, byKind)
	counter.reset()
	for i := range n {
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
			`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":512},`+
			`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":4096}],"annotations":{"n":"%d"}}`, cd, ld, i)
		resp, body := do(t, http.MethodPut, fmt.Sprintf("%s/v2/measure/small/manifests/t%d", srv.URL, i), []byte(m),
			map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
		expect(t, resp, body, http.StatusCreated)
	}
	total, byKind = counter.snapshot()
	t.Logf("manifest PUT under a new tag: %.1f S3 requests each\n%s", float64(total)/n, byKind)
}

const measureBlob = 256 << 20

func measureThroughput(t *testing.T) {
	s3 := testenv.S3(t)
	backends := []struct {
		name string
		srv  *testserver.Server
	}{
		{"filesystem", testserver.Start(t, testserver.Options{Binary: ladingBinary(t)})},
		{"s3 (versitygw)", startReplica(t, s3, "", testserver.Options{})},
	}
	var table strings.Builder
	w := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "driver\tpush MiB/s\t(PATCH s\tcommit s)\tpull MiB/s\n")
	d := streamDigest(measureBlob)
	for _, b := range backends {
		patch, commit := pushStream(t, b.srv, "measure/big", measureBlob, d)
		pull := timeIt(func() { pullStream(t, b.srv, "measure/big", d, measureBlob) })
		fmt.Fprintf(w, "%s\t%.0f\t%.2f\t%.2f\t%.0f\n", b.name, mibps(measureBlob, patch+commit), patch.Seconds(), commit.Seconds(), mibps(measureBlob, pull))
	}
	w.Flush()
	t.Logf("%d MiB blob, one PATCH and a PUT, one client on 127.0.0.1:\n%s", measureBlob>>20, table.String())
}

func measureRequests(t *testing.T) {
	const chunk, chunks = 1 << 20, 64
	for _, mode := range []struct {
		name  string
		redis bool
	}{{"backend locks", false}, {"redis locks", true}} {
		s3 := testenv.S3(t)
		counter := countS3(t, s3)
		var redisAddr string
		if mode.redis {
			redisAddr = testenv.Redis(t)
		}
		srv := startReplica(t, counter.s3, redisAddr, testserver.Options{})
		data := randomBytes(t, chunk*chunks)
		counter.reset()
		start := time.Now()
		loc := startUpload(t, srv, "measure/chunks")
		for i := range chunks {
			resp, body := do(t, http.MethodPatch, srv.URL+loc, data[i*chunk:(i+1)*chunk], chunkHeader(i*chunk, chunk))
			expect(t, resp, body, http.StatusAccepted)
			loc = resp.Header.Get("Location")
		}
		d := digest.FromBytes(data)
		resp, body := do(t, http.MethodPut, srv.URL+withParam(loc, "digest="+d.String()), nil, nil)
		expect(t, resp, body, http.StatusCreated)
		took := time.Since(start)
		total, byKind := counter.snapshot()
		t.Logf("%s: %d MiB as %d PATCHes of %d KiB: %d S3 requests (%.1f per chunk), %.0f MiB/s\n%s",
			mode.name, chunk*chunks>>20, chunks, chunk>>10, total, float64(total)/chunks, mibps(chunk*chunks, took), byKind)
		getBlob(t, srv, "measure/chunks", d, data)
	}
}

// s3Counter is a reverse proxy in front of an S3 server that counts the
// requests passing through, by operation and by what the key holds.
type s3Counter struct {
	s3     testenv.S3Server // as the proxy, for lading to use
	mu     sync.Mutex
	counts map[string]int
}

func countS3(t *testing.T, s3 testenv.S3Server) *s3Counter {
	target, err := url.Parse(s3.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c := &s3Counter{counts: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// The Host header stays the proxy's, which is what the client signed.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.counts[s3Operation(r)+" "+keyKind(r)]++
		c.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.s3 = s3
	c.s3.Endpoint = srv.URL
	return c
}

func (c *s3Counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.counts)
}

// snapshot returns the total and a table of counts.
func (c *s3Counter) snapshot() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	total := 0
	for _, k := range slices.Sorted(maps.Keys(c.counts)) {
		fmt.Fprintf(&b, "  %4d  %s\n", c.counts[k], k)
		total += c.counts[k]
	}
	return total, b.String()
}

// s3Operation names the S3 API call r makes.
func s3Operation(r *http.Request) string {
	q := r.URL.Query()
	copySource := r.Header.Get("X-Amz-Copy-Source") != ""
	switch r.Method {
	case http.MethodGet:
		switch {
		case q.Has("list-type"):
			return "ListObjectsV2"
		case q.Has("uploads"):
			return "ListMultipartUploads"
		case q.Has("uploadId"):
			return "ListParts"
		}
		return "GetObject"
	case http.MethodHead:
		return "HeadObject"
	case http.MethodPut:
		switch {
		case q.Has("partNumber") && copySource:
			return "UploadPartCopy"
		case q.Has("partNumber"):
			return "UploadPart"
		case copySource:
			return "CopyObject"
		case r.Header.Get("If-None-Match") != "":
			return "PutObject(If-None-Match)"
		}
		return "PutObject"
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			return "CreateMultipartUpload"
		case q.Has("uploadId"):
			return "CompleteMultipartUpload"
		case q.Has("delete"):
			return "DeleteObjects"
		}
	case http.MethodDelete:
		if q.Has("uploadId") {
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	}
	return r.Method + " " + r.URL.RawQuery
}

// keyKind tells what registry state a request touches, from its key or
// listing prefix.
func keyKind(r *http.Request) string {
	key := r.URL.Path
	if p := r.URL.Query().Get("prefix"); p != "" {
		key += "/" + p
	}
	switch {
	case strings.Contains(key, "/locks/"):
		return "(lock)"
	case strings.Contains(key, "~writers"):
		return "(writer state)"
	case strings.HasSuffix(key, ".state"):
		return "(session state)"
	case strings.Contains(key, "/gc/"):
		return "(gc state)"
	case strings.Contains(key, "/catalog/"):
		return "(catalog)"
	case strings.Contains(key, "/_tags/"), strings.Contains(key, "/_tagrefs/"):
		return "(tag)"
	case strings.Contains(key, "/_manifests/"):
		return "(manifest record)"
	case strings.Contains(key, "/_uploads/"):
		return "(session data)"
	}
	return "(blob, link)"
}

// blobStream is n reproducible pseudo-random bytes, so a 256 MiB blob is
// never held in memory.
func blobStream(n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{'l', 'a', 'd', 'i', 'n', 'g'}), n)
}

func streamDigest(n int64) digest.Digest {
	h := sha256.New()
	io.Copy(h, blobStream(n))
	return digest.NewDigest(digest.SHA256, h)
}

// pushStream uploads n bytes of blobStream as one PATCH and a PUT, and
// returns how long each took (the PATCH's time includes the POST).
func pushStream(t *testing.T, srv *testserver.Server, repo string, n int64, d digest.Digest) (patch, commit time.Duration) {
	t.Helper()
	start := time.Now()
	loc := startUpload(t, srv, repo)
	req, err := http.NewRequest(http.MethodPatch, srv.URL+loc, blobStream(n))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH of %d bytes: %d", n, resp.StatusCode)
	}
	patch = time.Since(start)
	start = time.Now()
	put, body := do(t, http.MethodPut, srv.URL+withParam(resp.Header.Get("Location"), "digest="+d.String()), nil, nil)
	expect(t, put, body, http.StatusCreated)
	return patch, time.Since(start)
}

func pullStream(t *testing.T, srv *testserver.Server, repo string, d digest.Digest, n int64) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || got != n {
		t.Fatalf("GET blob: status %d, %d bytes, %v", resp.StatusCode, got, err)
	}
}

func timeIt(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }
