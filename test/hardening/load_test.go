package hardening

import (
	"bufio"
	"bytes"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testserver"
)

// loadDuration is how long TestLoad runs: $LADING_TEST_LOAD_DURATION, else 10s
// (the acceptance run is LADING_TEST_LOAD_DURATION=60s).
func loadDuration(t *testing.T) time.Duration {
	s := os.Getenv("LADING_TEST_LOAD_DURATION")
	if s == "" {
		return 10 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("LADING_TEST_LOAD_DURATION=%q: want a positive duration", s)
	}
	return d
}

// usage is what the server process holds at one moment.
type usage struct {
	fds, threads, goroutines int // goroutines is -1 when /metrics is not served
}

func (u usage) String() string {
	return fmt.Sprintf("%d fds, %d threads, %d goroutines", u.fds, u.threads, u.goroutines)
}

// sample reads the process's descriptors and threads from /proc and its
// goroutines from the Go collector on /metrics, over a connection of its
// own that is closed at once.
func sample(t *testing.T, srv *testserver.Server) usage {
	t.Helper()
	u := usage{goroutines: -1}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	req.Close = true
	if resp, err := http.DefaultClient.Do(req); err == nil {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
				u.goroutines, _ = strconv.Atoi(v)
			}
		}
		resp.Body.Close()
	}
	proc := fmt.Sprintf("/proc/%d", srv.PID())
	fds, err := os.ReadDir(proc + "/fd")
	if err != nil {
		t.Skipf("no /proc to watch the server in: %v", err)
	}
	u.fds = len(fds)
	status, err := os.ReadFile(proc + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			u.threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return u
}

// loadStats counts operations and keeps the first errors.
type loadStats struct {
	ops    [opKinds]atomic.Int64
	errors atomic.Int64
	mu     sync.Mutex
	first  []error
}

const (
	opPull = iota
	opRange
	opHead
	opPush
	opChunked
	opImage
	opKinds
)

var opNames = [opKinds]string{"pull", "range", "head", "push", "chunked push", "image push+pull"}

func (s *loadStats) fail(err error) {
	if s.errors.Add(1) <= 5 {
		s.mu.Lock()
		s.first = append(s.first, err)
		s.mu.Unlock()
	}
}

func (s *loadStats) String() string {
	var b strings.Builder
	total := int64(0)
	for k := range opKinds {
		n := s.ops[k].Load()
		total += n
		fmt.Fprintf(&b, "%s %d, ", opNames[k], n)
	}
	fmt.Fprintf(&b, "total %d, errors %d", total, s.errors.Load())
	return b.String()
}

// TestLoad runs 64 clients mixing pulls (whole, ranged, HEAD) and pushes
// (whole, chunked, images) against one server, requires zero errors, and
// then requires the server to give back the descriptors and goroutines
// the load took once the clients hang up.
func TestLoad(t *testing.T) {
	const clients = 64
	dur := loadDuration(t)
	srv := start(t, testserver.Options{})
	c := newClient(srv.URL, clients)

	// Blobs to pull, and a warm-up that starts every kind of work once.
	seeds := make([][]byte, 32)
	seedDigests := make([]digest.Digest, len(seeds))
	for i := range seeds {
		seeds[i] = randomBytes(4<<10 + i*8<<10)
		d, err := c.pushMonolithic("load/seed", seeds[i])
		if err != nil {
			t.Fatal(err)
		}
		seedDigests[i] = d
	}
	warm := &loadStats{}
	for k := range opKinds {
		loadOp(c, k, 0, 0, mrand.New(mrand.NewPCG(1, 2)), seeds, seedDigests, warm)
	}
	if warm.errors.Load() > 0 {
		t.Fatalf("warm-up: %v", warm.first)
	}
	c.close()
	time.Sleep(500 * time.Millisecond)
	before := sample(t, srv)

	stats := &loadStats{}
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for w := range clients {
		rng := mrand.New(mrand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline); n++ {
				k := []int{opPull, opPull, opPull, opRange, opHead, opPush, opPush, opPush, opChunked, opImage}[rng.IntN(10)]
				loadOp(c, k, w, n, rng, seeds, seedDigests, stats)
			}
		})
	}
	wg.Wait()
	during := sample(t, srv)
	c.close()

	// Settle: the server closes its side of the hung-up connections and
	// their goroutines end.
	var after usage
	for settle := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		after = sample(t, srv)
		if (after.fds <= before.fds && after.goroutines <= before.goroutines) || time.Now().After(settle) {
			break
		}
	}
	t.Logf("%d clients for %v: %s (%.0f ops/s)", clients, dur, stats, float64(totalOps(stats))/dur.Seconds())
	t.Logf("server before: %s; at the end of the load: %s; after settling: %s", before, during, after)
	if n := stats.errors.Load(); n > 0 {
		t.Errorf("%d errors under load; the first: %v", n, stats.first)
	}
	// Two descriptors of slack: the runtime may open one lazily (an epoll
	// or a pipe) the first time some work needs it.
	if after.fds > before.fds+2 {
		t.Errorf("descriptors grew from %d to %d", before.fds, after.fds)
	}
	if before.goroutines < 0 {
		t.Log("no /metrics on the listener: goroutines not checked")
	} else if after.goroutines > before.goroutines+2 {
		t.Errorf("goroutines grew from %d to %d", before.goroutines, after.goroutines)
	}
}

func totalOps(s *loadStats) int64 {
	var n int64
	for k := range opKinds {
		n += s.ops[k].Load()
	}
	return n
}

// loadOp performs one operation of kind k as client w's n-th and checks
// what comes back.
func loadOp(c *client, k, w, n int, rng *mrand.Rand, seeds [][]byte, seedDigests []digest.Digest, s *loadStats) {
	repo := fmt.Sprintf("load/w%d", w%8)
	i := rng.IntN(len(seeds))
	var err error
	switch k {
	case opPull:
		var ok bool
		if ok, err = c.verifyBlob("load/seed", seedDigests[i]); err == nil && !ok {
			err = fmt.Errorf("seed blob %s missing", seedDigests[i])
		}
	case opRange:
		from := rng.IntN(len(seeds[i]))
		var r reply
		r, err = c.expect(http.StatusPartialContent, http.MethodGet, "/v2/load/seed/blobs/"+seedDigests[i].String(), nil,
			"Range", fmt.Sprintf("bytes=%d-", from))
		if err == nil && !bytes.Equal(r.body, seeds[i][from:]) {
			err = fmt.Errorf("range %d- of %s: wrong bytes", from, seedDigests[i])
		}
	case opHead:
		var r reply
		r, err = c.expect(http.StatusOK, http.MethodHead, "/v2/load/seed/blobs/"+seedDigests[i].String(), nil)
		if err == nil && r.header.Get("Content-Length") != strconv.Itoa(len(seeds[i])) {
			err = fmt.Errorf("HEAD %s: Content-Length %q", seedDigests[i], r.header.Get("Content-Length"))
		}
	case opPush:
		_, err = c.pushMonolithic(repo, randomBytes(1<<10+rng.IntN(32<<10)))
	case opChunked:
		_, err = c.pushChunked(repo, randomBytes(96<<10), 32<<10)
	case opImage:
		err = loadImage(c, repo, fmt.Sprintf("w%d-%d", w, n))
	}
	s.ops[k].Add(1)
	if err != nil {
		s.fail(err)
	}
}

// loadImage pushes a small image under tag and pulls its manifest back.
func loadImage(c *client, repo, tag string) error {
	config := []byte(`{"tag":"` + tag + `"}`)
	layer := randomBytes(2 << 10)
	cd, err := c.pushMonolithic(repo, config)
	if err != nil {
		return err
	}
	ld, err := c.pushMonolithic(repo, layer)
	if err != nil {
		return err
	}
	payload := imageManifest(cd, len(config), ld, len(layer), tag)
	if err := c.putManifest(repo, tag, payload); err != nil {
		return err
	}
	r, err := c.expect(http.StatusOK, http.MethodGet, "/v2/"+repo+"/manifests/"+tag, nil, "Accept", "application/vnd.oci.image.manifest.v1+json")
	if err == nil && !bytes.Equal(r.body, payload) {
		err = fmt.Errorf("manifest %s:%s served differently", repo, tag)
	}
	return err
}
