package replicas

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

// A blob's description cached by one replica is invalidated for all when
// another deletes the blob: Redis is shared, not a private cache.
func TestCacheInvalidationAcrossReplicas(t *testing.T) {
	skipShort(t)
	a, b := startPair(t, testenv.S3(t), testenv.Redis(t))
	const repo = "cache/blobs"
	data := randomBytes(t, 4096)
	d := pushBlob(t, a, repo, data)
	blobA, blobB := a.URL+"/v2/"+repo+"/blobs/"+d.String(), b.URL+"/v2/"+repo+"/blobs/"+d.String()

	hitsA, hitsB := cacheHits(t, a), cacheHits(t, b)
	for _, url := range []string{blobA, blobA, blobB} {
		if got := headStatus(t, url); got != http.StatusOK {
			t.Fatalf("HEAD %s: %d", url, got)
		}
	}
	// A's second HEAD, and B's first, answer from what A's first put in Redis.
	if got := cacheHits(t, a) - hitsA; got < 1 {
		t.Fatalf("A answered no HEAD from the cache (%v hits)", got)
	}
	if got := cacheHits(t, b) - hitsB; got < 1 {
		t.Fatalf("B did not find what A cached (%v hits)", got)
	}

	resp, body := do(t, http.MethodDelete, blobB, nil, nil)
	expect(t, resp, body, http.StatusAccepted)
	if got := headStatus(t, blobA); got != http.StatusNotFound {
		t.Fatalf("HEAD through A after the delete through B: %d, want 404", got)
	}
	resp, body = do(t, http.MethodGet, blobA, nil, nil)
	expect(t, resp, body, http.StatusNotFound)
}

// With Redis configured but gone, replicas lose their cache and fall back
// to the backend's locks: slower, never wrong, and never a 5xx (which
// testserver turns into a failure).
func TestRedisDown(t *testing.T) {
	skipShort(t)
	t.Run("stopped while serving", func(t *testing.T) {
		s3 := testenv.S3(t)
		redisAddr, stopRedis := stoppableRedis(t)
		a, b := startPair(t, s3, redisAddr)
		before := randomImage(t)
		pushImage(t, a, "down/image:before", before)
		pullSame(t, b, "down/image:before", before) // fills the cache

		stopRedis()
		pullSame(t, a, "down/image:before", before)
		pullSame(t, b, "down/image:before", before)
		actAsOne(t, a, b)
	})
	t.Run("unreachable from the start", func(t *testing.T) {
		a, b := startPair(t, testenv.S3(t), deadAddr(t))
		actAsOne(t, a, b)
		// Said at start and when locks fall back, so that a wrong address
		// or password does not go unnoticed.
		for _, want := range []string{"redis does not answer", "lock failed in Redis"} {
			if !strings.Contains(a.Logs(), want) {
				t.Errorf("the log of a replica whose Redis never answers does not say %q", want)
			}
		}
		// And counted, for an alert.
		for _, op := range []string{"cache", "lock"} {
			if n := metric(t, a, `lading_redis_fallbacks_total{op="`+op+`"}`) + metric(t, b, `lading_redis_fallbacks_total{op="`+op+`"}`); n <= 0 {
				t.Errorf("%s fallbacks counted: %v", op, n)
			}
		}
	})
}

// actAsOne checks what two replicas must do together: an image pushed
// through one pulls through the other, an upload moves between them, they
// never interleave chunks, and a delete through one shows through the other.
func actAsOne(t *testing.T, a, b *testserver.Server) {
	img := randomImage(t)
	pushImage(t, b, "down/image:v1", img)
	pullSame(t, a, "down/image:v1", img)
	uploadAcross(t, a, b)
	racingChunks(t, a, b)
	deleteBlobAcross(t, a, b)
}

func deleteBlobAcross(t *testing.T, a, b *testserver.Server) {
	const repo = "down/blobs"
	d := pushBlob(t, a, repo, randomBytes(t, 1024))
	blobA := a.URL + "/v2/" + repo + "/blobs/" + d.String()
	if got := headStatus(t, blobA); got != http.StatusOK {
		t.Fatalf("HEAD through A: %d", got)
	}
	resp, body := do(t, http.MethodDelete, b.URL+"/v2/"+repo+"/blobs/"+d.String(), nil, nil)
	expect(t, resp, body, http.StatusAccepted)
	if got := headStatus(t, blobA); got != http.StatusNotFound {
		t.Fatalf("HEAD through A after the delete through B: %d, want 404", got)
	}
}

// stoppableRedis is testenv.Redis with a stop the test may call early.
func stoppableRedis(t *testing.T) (string, func()) {
	t.Helper()
	addr, stop, err := testenv.StartRedis()
	if err != nil {
		testenv.FailOrSkip(t, err)
	}
	stop = sync.OnceFunc(stop)
	t.Cleanup(stop)
	return addr, stop
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// cacheHits reads srv's count of link cache hits from /metrics.
func cacheHits(t *testing.T, srv *testserver.Server) float64 {
	t.Helper()
	return metric(t, srv, `lading_cache_hits_total{cache="links"}`)
}

// metric reads one series of srv's /metrics; -1 when it is not there.
func metric(t *testing.T, srv *testserver.Server, series string) float64 {
	t.Helper()
	resp, body := do(t, http.MethodGet, srv.URL+"/metrics", nil, nil)
	expect(t, resp, body, http.StatusOK)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", sc.Text(), err)
			}
			return n
		}
	}
	return -1
}
