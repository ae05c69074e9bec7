// Package proxy_test runs lading as a pull-through cache of another
// lading, both real processes, and pulls through it with
// go-containerregistry.
package proxy_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/lading-registry/lading/internal/imagetest"
	"github.com/lading-registry/lading/internal/testserver"
	authtest "github.com/lading-registry/lading/test/auth"
)

func TestMain(m *testing.M) { os.Exit(testserver.Main(m)) }

const tagTTL = time.Second

// front stands between the mirror and the upstream, so the upstream can
// go away and come back on another port, and its blobs can be damaged on
// the way.
type front struct {
	srv      *httptest.Server
	mu       sync.Mutex
	target   *url.URL // nil: down, every connection is cut
	corrupt  atomic.Bool
	blobGets atomic.Int64
	// manifestGets, when not 0, answers every manifest GET with that
	// status (HEADs pass), as a registry rate-limiting pulls alone.
	manifestGets atomic.Int32
	// manifestType, when set, replaces the Content-Type of manifests.
	manifestType atomic.Value
	// manifestHeads counts the manifest HEADs that came through.
	manifestHeads atomic.Int64
}

func newFront(t *testing.T, upstream string) *front {
	f := &front{}
	f.setTarget(t, upstream)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *front) setTarget(t *testing.T, upstream string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.target = nil
	if upstream != "" {
		u, err := url.Parse(upstream)
		if err != nil {
			t.Fatal(err)
		}
		f.target = u
	}
}

func (f *front) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	target := f.target
	f.mu.Unlock()
	if target == nil {
		// As an upstream that is gone: no answer at all.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	blobGet := r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
	if blobGet {
		f.blobGets.Add(1)
	}
	manifest := strings.Contains(r.URL.Path, "/manifests/")
	if manifest && r.Method == http.MethodHead {
		f.manifestHeads.Add(1)
	}
	if status := f.manifestGets.Load(); manifest && r.Method == http.MethodGet && status != 0 {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(int(status))
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the token realm is the front's
		},
		ModifyResponse: func(resp *http.Response) error {
			if blobGet && resp.StatusCode == http.StatusOK && f.corrupt.Load() {
				resp.Body = &flipFirst{ReadCloser: resp.Body}
			}
			if ct, _ := f.manifestType.Load().(string); manifest && ct != "" {
				resp.Header.Set("Content-Type", ct)
			}
			return nil
		},
	}
	rp.ServeHTTP(w, r)
}

// flipFirst flips the first byte of a body.
type flipFirst struct {
	io.ReadCloser
	done bool
}

func (f *flipFirst) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if n > 0 && !f.done {
		p[0] ^= 0xff
		f.done = true
	}
	return n, err
}

type setup struct {
	files    *authtest.Files
	upstream *testserver.Server
	front    *front
	mirror   *testserver.Server
	pusher   authn.Authenticator
	upEnv    []string
}

// start runs an upstream, the front and a mirror of it, with env added to
// the mirror's environment.
func start(t *testing.T, token bool, env ...string) *setup {
	s := &setup{files: authtest.Write(t, map[string]string{"mirror": "mirror-secret", "pusher": "push-secret"}, "")}
	s.upEnv = s.files.BasicEnv()
	if token {
		s.upEnv = s.files.TokenEnv()
	}
	s.upstream = testserver.Start(t, testserver.Options{Env: s.upEnv})
	s.front = newFront(t, s.upstream.URL)
	s.mirror = testserver.Start(t, testserver.Options{Allow5xx: true, Env: append([]string{
		"LADING_PROXY_REMOTEURL=" + s.front.srv.URL,
		"LADING_PROXY_USERNAME=mirror",
		"LADING_PROXY_PASSWORD=mirror-secret",
		"LADING_PROXY_TAGTTL=" + tagTTL.String(),
	}, env...)})
	s.pusher = &authn.Basic{Username: "pusher", Password: "push-secret"}
	return s
}

func ref(t *testing.T, addr, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(addr+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (s *setup) push(t *testing.T, repoTag string, img v1.Image) v1.Hash {
	t.Helper()
	if err := remote.Write(ref(t, s.upstream.Addr, repoTag), img, remote.WithAuth(s.pusher)); err != nil {
		t.Fatalf("push %s upstream: %v", repoTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func randomImage(t *testing.T, size int64) v1.Image {
	t.Helper()
	img, err := random.Image(size, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pull reads an image through the mirror and checks it is want, byte for byte.
func (s *setup) pull(t *testing.T, reference string, want v1.Image) {
	t.Helper()
	got, err := remote.Image(ref(t, s.mirror.Addr, reference))
	if err != nil {
		t.Fatalf("pull %s through the mirror: %v", reference, err)
	}
	imagetest.Same(t, want, got)
}

func digestOf(t *testing.T, addr, reference string) v1.Hash {
	t.Helper()
	desc, err := remote.Head(ref(t, addr, reference))
	if err != nil {
		t.Fatalf("HEAD %s on %s: %v", reference, addr, err)
	}
	return desc.Digest
}

func TestMirrorFollowsAndOutlivesItsUpstream(t *testing.T) {
	s := start(t, false)

	// An image and a multi-platform index, pulled through the mirror.
	img := randomImage(t, 4096)
	imgDigest := s.push(t, "team/app:v1", img)
	s.pull(t, "team/app:v1", img)
	s.pull(t, "team/app@"+imgDigest.String(), img)

	idx, err := random.Index(2048, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref(t, s.upstream.Addr, "team/multi:latest"), idx, remote.WithAuth(s.pusher)); err != nil {
		t.Fatal(err)
	}
	gotIdx, err := remote.Index(ref(t, s.mirror.Addr, "team/multi:latest"))
	if err != nil {
		t.Fatalf("pull index through the mirror: %v", err)
	}
	wantRaw, _ := idx.RawManifest()
	gotRaw, err := gotIdx.RawManifest()
	if err != nil || !bytes.Equal(wantRaw, gotRaw) {
		t.Fatalf("index through the mirror differs: %v", err)
	}
	im, _ := idx.IndexManifest()
	for _, child := range im.Manifests {
		want, err := idx.Image(child.Digest)
		if err != nil {
			t.Fatal(err)
		}
		s.pull(t, "team/multi@"+child.Digest.String(), want)
	}

	// Tags come from the upstream.
	tags, err := remote.List(ref(t, s.mirror.Addr, "team/app:v1").Context())
	if err != nil || strings.Join(tags, ",") != "v1" {
		t.Fatalf("tags through the mirror: %v %v", tags, err)
	}

	// The upstream goes away: what was pulled is still served, by tag
	// (checked upstream again, past the TTL) and by digest.
	s.upstream.Kill()
	s.front.setTarget(t, "")
	time.Sleep(tagTTL + 200*time.Millisecond)
	s.pull(t, "team/app:v1", img)
	s.pull(t, "team/app@"+imgDigest.String(), img)
	if _, err := remote.Index(ref(t, s.mirror.Addr, "team/multi:latest")); err != nil {
		t.Fatalf("index while the upstream is down: %v", err)
	}
	tags, err = remote.List(ref(t, s.mirror.Addr, "team/app:v1").Context())
	if err != nil || strings.Join(tags, ",") != "v1" {
		t.Fatalf("tags while the upstream is down: %v %v", tags, err)
	}
	// What was never pulled cannot be: 503, not 404.
	_, err = remote.Image(ref(t, s.mirror.Addr, "team/never:v1"))
	wantStatus(t, err, http.StatusServiceUnavailable)

	// It comes back, and the tag moves there: the mirror follows once the
	// TTL has passed.
	s.upstream = testserver.Start(t, testserver.Options{Root: s.upstream.Root, Env: s.upEnv})
	s.front.setTarget(t, s.upstream.URL)
	img2 := randomImage(t, 4096)
	img2Digest := s.push(t, "team/app:v1", img2)
	time.Sleep(tagTTL + 200*time.Millisecond)
	if got := digestOf(t, s.mirror.Addr, "team/app:v1"); got != img2Digest {
		t.Fatalf("mirror serves %s for a tag moved to %s", got, img2Digest)
	}
	s.pull(t, "team/app:v1", img2)
	s.pull(t, "team/app@"+imgDigest.String(), img) // the old one stays by digest

	// A tag deleted upstream is gone from the mirror too, and does not
	// come back in the next outage (503: the mirror cannot tell).
	s.push(t, "team/app:old", img)
	s.pull(t, "team/app:old", img)
	if err := remote.Delete(ref(t, s.upstream.Addr, "team/app:old"), remote.WithAuth(s.pusher)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(tagTTL + 200*time.Millisecond)
	_, err = remote.Head(ref(t, s.mirror.Addr, "team/app:old"))
	wantStatus(t, err, http.StatusNotFound)
	s.front.setTarget(t, "")
	_, err = remote.Head(ref(t, s.mirror.Addr, "team/app:old"))
	wantStatus(t, err, http.StatusServiceUnavailable)
	s.front.setTarget(t, s.upstream.URL)

	metrics := get(t, s.mirror.URL+"/metrics")
	for _, want := range []string{
		`lading_proxy_upstream_requests_total{op="manifest_head",outcome="unavailable"}`,
		`lading_proxy_upstream_requests_total{op="blob_get",outcome="ok"}`,
		`lading_proxy_lookups_total{kind="manifest",result="stale"}`,
		`lading_proxy_upstream_bytes_total{kind="blob"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(s.mirror.Logs(), "mirror-secret") {
		t.Error("the mirror logged the upstream password")
	}
}

// TestMirrorEvictsWhatIsNotPulled ages one of two pulled images' tag and
// pull note past proxy.evictafter, as time would, and runs `lading gc`
// with the mirror's configuration: that image goes from the mirror's disk
// and is fetched again at its next pull; the other stays and is served
// from the disk.
func TestMirrorEvictsWhatIsNotPulled(t *testing.T) {
	s := start(t, false, "LADING_PROXY_EVICTAFTER=1h")
	kept, evicted := randomImage(t, 2048), randomImage(t, 2048)
	s.push(t, "team/app:kept", kept)
	evictedDigest := s.push(t, "team/app:evicted", evicted)
	s.pull(t, "team/app:kept", kept)
	s.pull(t, "team/app:evicted", evicted)

	repoDir := filepath.Join(s.mirror.Root, "repositories", "team", "app")
	note := filepath.Join(repoDir, "_pulled", "sha256", evictedDigest.Hex)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		// Written off the request's path.
		if _, err := os.Stat(note); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no note of the pull: %v", err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{note, filepath.Join(repoDir, "_tags", "evicted")} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	blobFile := func(h v1.Hash) string { return filepath.Join(s.mirror.Root, "blobs", h.Algorithm, h.Hex[:2], h.Hex) }
	blobsOf := func(img v1.Image) []v1.Hash {
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		hs := []v1.Hash{m.Config.Digest}
		for _, l := range m.Layers {
			hs = append(hs, l.Digest)
		}
		return hs
	}

	gc := exec.Command(testserver.Binary(t), "gc", "--root", s.mirror.Root, "--grace", "0s", "--window", "10ms")
	gc.Env = append(os.Environ(), "LADING_PROXY_REMOTEURL="+s.front.srv.URL, "LADING_PROXY_EVICTAFTER=1h")
	out, err := gc.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed 1 tags not pulled for 1h0m0s, 1 manifests") {
		t.Fatalf("lading gc: %v\n%s", err, out)
	}
	for _, h := range blobsOf(evicted) {
		if _, err := os.Stat(blobFile(h)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("blob %s of the evicted image: %v, want it gone", h, err)
		}
	}
	for _, h := range blobsOf(kept) {
		if _, err := os.Stat(blobFile(h)); err != nil {
			t.Errorf("blob %s of the kept image: %v", h, err)
		}
	}

	before := s.front.blobGets.Load()
	s.pull(t, "team/app:kept", kept)
	if got := s.front.blobGets.Load(); got != before {
		t.Errorf("the kept image made %d blob GETs upstream, want none", got-before)
	}
	s.pull(t, "team/app:evicted", evicted)
	if got, want := s.front.blobGets.Load()-before, int64(len(blobsOf(evicted))); got != want {
		t.Errorf("the evicted image made %d blob GETs upstream, want %d", got, want)
	}
}

// A tag the upstream moved, whose new manifest cannot be fetched (GETs
// failing while HEADs pass), is served as held, without asking again
// within the TTL; one sent with a Content-Type that is no manifest type is
// stored by its own.
func TestMirrorServesTheHeldTagWhenTheFetchFails(t *testing.T) {
	s := start(t, false)
	first, second := randomImage(t, 1024), randomImage(t, 1024)
	s.push(t, "team/app:v1", first)
	s.pull(t, "team/app:v1", first)
	s.push(t, "team/app:v1", second)

	s.front.manifestGets.Store(http.StatusServiceUnavailable)
	time.Sleep(tagTTL + 200*time.Millisecond)
	s.pull(t, "team/app:v1", first)
	heads := s.front.manifestHeads.Load()
	s.pull(t, "team/app:v1", first)
	if got := s.front.manifestHeads.Load(); got != heads {
		t.Errorf("%d manifest HEADs upstream within the TTL of a stale answer, want none", got-heads)
	}

	s.front.manifestGets.Store(0)
	time.Sleep(tagTTL + 200*time.Millisecond)
	s.pull(t, "team/app:v1", second)

	s.front.manifestType.Store("application/json")
	third := randomImage(t, 1024)
	s.push(t, "team/other:v1", third)
	s.pull(t, "team/other:v1", third)
}

func TestMirrorRefusesWrites(t *testing.T) {
	s := start(t, false)
	err := remote.Write(ref(t, s.mirror.Addr, "team/app:v1"), randomImage(t, 512))
	wantStatus(t, err, http.StatusMethodNotAllowed)
	var te *transport.Error
	if !errors.As(err, &te) || len(te.Errors) == 0 || te.Errors[0].Code != "UNSUPPORTED" {
		t.Fatalf("push to the mirror: %v", err)
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/v2/team/app/blobs/uploads/"},
		{http.MethodPut, "/v2/team/app/manifests/v1"},
		{http.MethodDelete, "/v2/team/app/manifests/v1"},
		{http.MethodDelete, "/v2/team/app/blobs/sha256:" + strings.Repeat("a", 64)},
	} {
		req, _ := http.NewRequest(c.method, s.mirror.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), `"UNSUPPORTED"`) ||
			strings.Contains(resp.Header.Get("Allow"), c.method) || !strings.Contains(string(body), "pull-through cache") {
			t.Errorf("%s %s: %d Allow %q %s", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
}

func TestMirrorStoresNoDamagedBlob(t *testing.T) {
	s := start(t, false)
	img := randomImage(t, 64<<10)
	s.push(t, "team/damaged:v1", img)
	s.front.corrupt.Store(true)
	got, err := remote.Image(ref(t, s.mirror.Addr, "team/damaged:v1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := imagetest.Diff(img, got); err == nil {
		t.Fatal("a blob damaged upstream pulled whole through the mirror")
	}
	// Nothing was stored: with the upstream gone, the blobs are not there.
	s.front.corrupt.Store(false)
	s.front.setTarget(t, "")
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		resp := httpGet(t, s.mirror.URL+"/v2/team/damaged/blobs/"+d.String())
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("damaged blob %s: %d from the mirror with the upstream down, want 503 (not stored)", d, resp.StatusCode)
		}
	}
	// Nor is any layer in the mirror's storage.
	for _, l := range layers {
		d, _ := l.Digest()
		if _, err := os.Stat(filepath.Join(s.mirror.Root, "blobs", "sha256", d.Hex[:2], d.Hex)); err == nil {
			t.Fatalf("damaged layer %s stored", d)
		}
	}
	// Once the upstream serves it right, it pulls whole.
	s.front.setTarget(t, s.upstream.URL)
	s.pull(t, "team/damaged:v1", img)
}

func TestMirrorConcurrentPulls(t *testing.T) {
	s := start(t, false)
	img := randomImage(t, 4<<20)
	s.push(t, "team/busy:v1", img)
	before := s.front.blobGets.Load()
	const clients = 8
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			got, err := remote.Image(ref(t, s.mirror.Addr, "team/busy:v1"))
			if err == nil {
				err = imagetest.Diff(img, got)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// 3 blobs (a config and two layers), each fetched once: the clients
	// asking for one while it was being fetched waited for that fetch.
	if fetched := s.front.blobGets.Load() - before; fetched != 3 {
		t.Fatalf("%d clients pulling one image of 3 blobs at once: %d blob GETs upstream, want 3", clients, fetched)
	}
	// Stored once and for all: another pull fetches nothing.
	before = s.front.blobGets.Load()
	s.pull(t, "team/busy:v1", img)
	if n := s.front.blobGets.Load() - before; n != 0 {
		t.Fatalf("a pull of a cached image fetched %d blobs upstream", n)
	}
}

// The upstream's bearer tokens (Docker Hub's way), not Basic.
func TestMirrorOfATokenUpstream(t *testing.T) {
	s := start(t, true)
	img := randomImage(t, 2048)
	d := s.push(t, "team/app:v1", img)
	s.pull(t, "team/app:v1", img)
	s.pull(t, "team/app@"+d.String(), img)
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != status {
		t.Fatalf("got %v, want status %d", err, status)
	}
}

func httpGet(t *testing.T, u string) *http.Response {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp := httpGet(t, u)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return string(b)
}
