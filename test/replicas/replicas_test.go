// Package replicas runs several `lading serve` processes on one S3 bucket
// (versitygw) and checks that they behave as one registry, with the
// backend's own locks or with a shared Redis.
package replicas

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

func TestTwoReplicas(t *testing.T) {
	skipShort(t)
	for _, mode := range []struct {
		name  string
		redis bool
	}{{"backend locks", false}, {"redis", true}} {
		t.Run(mode.name, func(t *testing.T) {
			s3 := testenv.S3(t)
			var redisAddr string
			if mode.redis {
				redisAddr = testenv.Redis(t)
			}
			a, b := startPair(t, s3, redisAddr)
			t.Run("upload begun on A continues on B, committed on A", func(t *testing.T) {
				uploadAcross(t, a, b)
			})
			t.Run("image pushed through A pulls through B", func(t *testing.T) {
				img := randomImage(t)
				pushImage(t, a, "across/image:v1", img)
				pullSame(t, b, "across/image:v1", img)
			})
			t.Run("tag deleted through B is gone through A", func(t *testing.T) {
				tagDeletedAcross(t, a, b)
			})
			t.Run("concurrent chunks through A and B never interleave", func(t *testing.T) {
				racingChunks(t, a, b)
			})
		})
	}
}

// uploadAcross sends a chunked upload to alternating replicas: POST on A,
// PATCH on B, PATCH on A, and the closing PUT with a last chunk on A.
func uploadAcross(t *testing.T, a, b *testserver.Server) {
	const repo = "across/chunks"
	data := randomBytes(t, 3<<20+12345)
	cuts := []int{0, 1 << 20, 2<<20 + 7, len(data)}
	loc := startUpload(t, a, repo)

	for i, srv := range []*testserver.Server{b, a} {
		chunk := data[cuts[i]:cuts[i+1]]
		resp, body := do(t, http.MethodPatch, srv.URL+loc, chunk, chunkHeader(cuts[i], len(chunk)))
		expect(t, resp, body, http.StatusAccepted)
		if got, want := resp.Header.Get("Range"), "0-"+strconv.Itoa(cuts[i+1]-1); got != want {
			t.Fatalf("after PATCH %d through %s: Range %q, want %q", i, srv.Addr, got, want)
		}
		loc = resp.Header.Get("Location")
	}
	// The other replica sees where the session stands.
	resp, body := do(t, http.MethodGet, b.URL+loc, nil, nil)
	expect(t, resp, body, http.StatusNoContent)
	if got, want := resp.Header.Get("Range"), "0-"+strconv.Itoa(cuts[2]-1); got != want {
		t.Fatalf("status through B: Range %q, want %q", got, want)
	}

	d := digest.FromBytes(data)
	last := data[cuts[2]:]
	resp, body = do(t, http.MethodPut, a.URL+withParam(loc, "digest="+d.String()), last, chunkHeader(cuts[2], len(last)))
	expect(t, resp, body, http.StatusCreated)
	getBlob(t, b, repo, d, data)
	getBlob(t, a, repo, d, data)
}

func tagDeletedAcross(t *testing.T, a, b *testserver.Server) {
	img := randomImage(t)
	pushImage(t, a, "across/tags:doomed", img)
	pushImage(t, a, "across/tags:kept", img)
	manifest := a.URL + "/v2/across/tags/manifests/doomed"
	if got := headStatus(t, manifest); got != http.StatusOK {
		t.Fatalf("HEAD of the new tag through A: %d", got)
	}
	if err := remote.Delete(ref(t, b, "across/tags:doomed")); err != nil {
		t.Fatalf("delete tag through B: %v", err)
	}
	// At once: no retry, no wait.
	if got := headStatus(t, manifest); got != http.StatusNotFound {
		t.Fatalf("HEAD of the deleted tag through A: %d, want 404", got)
	}
	tags, err := remote.List(ref(t, a, "across/tags:kept").Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tags, []string{"kept"}) {
		t.Fatalf("tags through A after the delete: %q, want [kept]", tags)
	}
	pullSame(t, a, "across/tags:kept", img)
}

// racingChunks sends two chunks for the same offset of one session, one
// through each replica, while the first is still arriving. Exactly one may
// land; the other is told 416 and its bytes are nowhere in the blob.
func racingChunks(t *testing.T, a, b *testserver.Server) {
	const repo = "across/race"
	const size = 256 << 10
	loc := startUpload(t, a, repo)
	first, second := randomBytes(t, size), randomBytes(t, size)

	// The chunk through A arrives in two halves with a pause between, so
	// A holds the session while the chunk through B comes in whole.
	pr, pw := io.Pipe()
	statusA := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPatch, a.URL+loc, pr)
		req.ContentLength = size
		for k, v := range chunkHeader(0, size) {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			statusA <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statusA <- resp.StatusCode
	}()
	if _, err := pw.Write(first[:size/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)

	respB, bodyB := do(t, http.MethodPatch, b.URL+loc, second, chunkHeader(0, size))
	pw.Write(first[size/2:])
	pw.Close()
	codeA := <-statusA

	// Both chunks start where the session stands (0), so a 416 can only
	// come from the session's lock, not from the range check.
	var winner []byte
	switch {
	case codeA == http.StatusAccepted && respB.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		winner = first
	case codeA == http.StatusRequestedRangeNotSatisfiable && respB.StatusCode == http.StatusAccepted:
		winner = second
	default:
		t.Fatalf("racing chunks: A answered %d, B answered %d (%s); want one 202 and one 416", codeA, respB.StatusCode, bodyB)
	}
	d := digest.FromBytes(winner)
	resp, body := do(t, http.MethodPut, b.URL+withParam(loc, "digest="+d.String()), nil, nil)
	expect(t, resp, body, http.StatusCreated)
	getBlob(t, a, repo, d, winner)
	if bytes.Equal(winner, second) {
		t.Log("the chunk through B won: the pause did not hold A's request in the registry")
	}
}
