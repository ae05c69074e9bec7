package hardening

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testserver"
)

// TestRacingChunks sends a second chunk to a session while a first is
// still arriving: the second is refused with 416 and the session's range,
// and the session holds exactly the first chunk.
func TestRacingChunks(t *testing.T) {
	srv := start(t, testserver.Options{})
	c := newClient(srv.URL, 4)
	defer c.close()
	for round := range 3 {
		a, b := randomBytes(2<<20), randomBytes(2<<20)
		loc, err := c.startSession("race/chunks")
		if err != nil {
			t.Fatal(err)
		}
		// The first chunk comes through a pipe and stops half way, once the
		// server has written its first buffer: the second arrives while the
		// first surely holds the session.
		pr, pw := io.Pipe()
		first := make(chan error, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodPatch, srv.URL+loc, pr)
			resp, err := c.http.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					err = fmt.Errorf("first chunk: %d", resp.StatusCode)
				}
			}
			first <- err
		}()
		const half = 1<<20 + 64<<10
		if _, err := pw.Write(a[:half]); err != nil {
			t.Fatal(err)
		}
		waitHeld(t, srv.Root, "race/chunks", loc, 1<<20)
		r, err := c.do(http.MethodPatch, loc, b)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusRequestedRangeNotSatisfiable || r.header.Get("Location") == "" || r.header.Get("Range") == "" {
			t.Fatalf("round %d: second chunk during the first: %s (Location %q, Range %q)", round, r, r.header.Get("Location"), r.header.Get("Range"))
		}
		if _, err := pw.Write(a[half:]); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if err := c.commit(loc, digest.FromBytes(a)); err != nil {
			t.Fatalf("round %d: the session does not hold exactly the first chunk: %v", round, err)
		}
	}

	// Without pacing, many chunks racing on one session: each is taken
	// whole or refused, and the session is some order of the taken ones.
	chunks := make([][]byte, 8)
	for i := range chunks {
		chunks[i] = randomBytes(512 << 10)
	}
	loc, err := c.startSession("race/chunks")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var taken [][]byte
	var wg sync.WaitGroup
	for _, chunk := range chunks {
		wg.Go(func() {
			r, err := c.do(http.MethodPatch, loc, chunk)
			switch {
			case err != nil:
				t.Error(err)
			case r.status == http.StatusAccepted:
				mu.Lock()
				taken = append(taken, chunk)
				mu.Unlock()
			case r.status != http.StatusRequestedRangeNotSatisfiable:
				t.Errorf("racing chunk: %s", r)
			}
		})
	}
	wg.Wait()
	off, _, err := c.sessionOffset(loc)
	if err != nil || off != int64(len(taken))*512<<10 {
		t.Fatalf("session at %d after %d chunks taken (%v)", off, len(taken), err)
	}
	if err := c.commit(loc, wholeChunks(t, srv.Root, "race/chunks", loc, taken)); err != nil {
		t.Fatal(err)
	}
}

// waitHeld returns once a chunk is being written to the session: its
// data file on disk has grown to at least n bytes. (Asking the API would
// not do: a probe chunk would take the session itself.)
func waitHeld(t *testing.T, root, repo, loc string, n int64) {
	t.Helper()
	data := sessionDataPath(root, repo, loc)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if fi, err := os.Stat(data); err == nil && fi.Size() >= n {
			return
		}
	}
	t.Fatal("the first chunk never reached the disk")
}

func sessionDataPath(root, repo, loc string) string {
	id := path.Base(strings.SplitN(loc, "?", 2)[0])
	return filepath.Join(root, "repositories", repo, "_uploads", id+".data")
}

// wholeChunks reads the session's data where the filesystem driver keeps
// it and checks that it is the taken chunks, each whole, in some order;
// it returns the digest to commit with.
func wholeChunks(t *testing.T, root, repo, loc string, taken [][]byte) digest.Digest {
	t.Helper()
	data, err := os.ReadFile(sessionDataPath(root, repo, loc))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != len(taken)*len(taken[0]) {
		t.Fatalf("session holds %d bytes, %d chunks taken", len(data), len(taken))
	}
	left := slices.Clone(taken)
	for off := 0; off < len(data); off += len(taken[0]) {
		i := slices.IndexFunc(left, func(c []byte) bool { return bytes.Equal(c, data[off:off+len(c)]) })
		if i < 0 {
			t.Fatalf("bytes at %d are no whole taken chunk: chunks interleaved", off)
		}
		left = slices.Delete(left, i, i+1)
	}
	return digest.FromBytes(data)
}

// TestSameBlobEverywhere pushes one blob fifty times at once into ten
// repositories, half whole and half in chunks: every push succeeds and
// every repository serves the blob intact.
func TestSameBlobEverywhere(t *testing.T) {
	srv := start(t, testserver.Options{})
	c := newClient(srv.URL, 50)
	defer c.close()
	blob := randomBytes(3<<20 + 17)
	d := digest.FromBytes(blob)
	var wg sync.WaitGroup
	for i := range 50 {
		repo := fmt.Sprintf("same/r%d", i%10)
		wg.Go(func() {
			var got digest.Digest
			var err error
			if i%2 == 0 {
				got, err = c.pushMonolithic(repo, blob)
			} else {
				got, err = c.pushChunked(repo, blob, 1<<20)
			}
			if err != nil || got != d {
				t.Errorf("push %d into %s: %v", i, repo, err)
			}
		})
	}
	wg.Wait()
	for i := range 10 {
		repo := fmt.Sprintf("same/r%d", i)
		if ok, err := c.verifyBlob(repo, d); !ok || err != nil {
			t.Errorf("%s: %v %v", repo, ok, err)
		}
	}
}

// TestTagRace pushes twenty different manifests to one tag at once, a few
// times: every push succeeds, and the tag ends on one of them, whole, with
// GET, HEAD and the digest reference agreeing.
func TestTagRace(t *testing.T) {
	srv := start(t, testserver.Options{})
	c := newClient(srv.URL, 20)
	defer c.close()
	const repo = "race/tag"
	config, layer := []byte(`{"architecture":"amd64","os":"linux"}`), randomBytes(10<<10)
	cd, err := c.pushMonolithic(repo, config)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := c.pushMonolithic(repo, layer)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		payloads := make([][]byte, 20)
		for i := range payloads {
			payloads[i] = imageManifest(cd, len(config), ld, len(layer), fmt.Sprintf("round %d writer %d", round, i))
		}
		var wg sync.WaitGroup
		for _, p := range payloads {
			wg.Go(func() {
				if err := c.putManifest(repo, "contested", p); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		r, err := c.expect(http.StatusOK, http.MethodGet, "/v2/"+repo+"/manifests/contested", nil, "Accept", "application/vnd.oci.image.manifest.v1+json")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(payloads, func(p []byte) bool { return bytes.Equal(p, r.body) }) {
			t.Fatalf("round %d: the tag serves none of the pushed manifests: %q", round, r.body)
		}
		d := digest.FromBytes(r.body)
		head, err := c.expect(http.StatusOK, http.MethodHead, "/v2/"+repo+"/manifests/contested", nil, "Accept", "application/vnd.oci.image.manifest.v1+json")
		if err != nil {
			t.Fatal(err)
		}
		if r.header.Get("Docker-Content-Digest") != d.String() || head.header.Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("round %d: GET says %s, HEAD %s, body is %s", round, r.header.Get("Docker-Content-Digest"), head.header.Get("Docker-Content-Digest"), d)
		}
		for _, p := range payloads {
			if _, err := c.expect(http.StatusOK, http.MethodGet, "/v2/"+repo+"/manifests/"+digest.FromBytes(p).String(), nil); err != nil {
				t.Fatalf("round %d: a pushed manifest by digest: %v", round, err)
			}
		}
	}
}
