package ops

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lading-registry/lading/internal/imagetest"
	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthOnFilesystem(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	p, addr := serve(t, nil, "--root", root)
	base := "http://" + addr
	img := pushRandom(t, addr+"/ops/app:v1")
	layers, _ := img.Layers()
	layer, _ := layers[0].Digest()
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, base+path); code != http.StatusOK || body != "ok\n" {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}

	// The data folder disappears (an unmounted volume, a mistaken rm):
	// not ready, still alive; back, ready again.
	moved := root + ".moved"
	if err := os.Rename(root, moved); err != nil {
		t.Fatal(err)
	}
	waitReady(t, base, http.StatusServiceUnavailable)
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz without the data folder: %d", code)
	}
	// An unmount leaves an empty mount point: a folder, not the data's.
	if err := os.Mkdir(root, 0o750); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the reuse of the last answer
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with an empty folder in place of the data: %d %q", code, body)
	}
	// Pulls, listings and pushes say the storage is out, to be tried
	// again, not that the image does not exist.
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/v2/ops/app/manifests/v1"},
		{http.MethodHead, "/v2/ops/app/blobs/" + layer.String()},
		{http.MethodGet, "/v2/_catalog"},
		{http.MethodGet, "/v2/ops/app/tags/list"},
		{http.MethodPost, "/v2/ops/app/blobs/uploads/"},
	} {
		req, _ := http.NewRequest(r.method, base+r.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s with an empty folder in place of the data: %d, Retry-After %q, want 503 with one",
				r.method, r.path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the empty folder was written into: %v", entries)
	}
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(moved, root); err != nil {
		t.Fatal(err)
	}
	waitReady(t, base, http.StatusOK)
	ref, _ := name.ParseReference(addr + "/ops/app:v1")
	if got, err := remote.Image(ref); err != nil {
		t.Errorf("pull with the data back: %v", err)
	} else {
		imagetest.Same(t, img, got)
	}
	if p.stop(t) != 0 {
		t.Error("exit status after SIGTERM is not 0")
	}
}

// TestReadyFollowsStorage serves from a real S3 server, then stops it:
// /readyz turns 503 while /healthz stays 200, since restarting the process
// would not bring the storage back.
func TestReadyFollowsStorage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs lading and an S3 server")
	}
	s3, stopS3, err := testenv.StartS3()
	if err != nil {
		testenv.FailOrSkip(t, err)
	}
	t.Cleanup(stopS3)

	p, addr := serve(t, testserver.S3Env(s3))
	base := "http://" + addr
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with S3 up: %d", code)
	}
	pushRandom(t, addr+"/ops/s3:v1")
	m := scrape(t, base+"/metrics")
	if m.sum("lading_storage_operation_duration_seconds_count", "driver=s3") == 0 || m.sum("lading_storage_operation_errors_total") != 0 {
		t.Errorf("S3 operations not timed, or failing, during a push")
	}

	stopS3()
	waitReady(t, base, http.StatusServiceUnavailable)
	// A pull meanwhile fails as the server's fault, and metrics say so.
	if code, body := get(t, base+"/v2/ops/s3/manifests/v1"); code < 500 {
		t.Errorf("pull with S3 down: %d, want a 5xx", code)
	} else {
		t.Logf("pull with S3 down: %d %s", code, body)
	}
	m = scrape(t, base+"/metrics")
	if m.sum("lading_storage_operation_errors_total", "driver=s3", "op=List") == 0 {
		t.Error("failed S3 listings not counted")
	}
	if m.sum("lading_http_requests_total", "route=manifest", "method=GET") == 0 ||
		m.sum("lading_http_requests_total", "route=manifest", "method=GET", "status=200") != 0 {
		t.Error("the failed pull is not counted as such")
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with S3 down: %d, want 200", code)
	}
	if !p.logged(`msg="not ready"`, 2*time.Second) {
		t.Error("the reason for 503 is not logged")
	}
	if strings.Contains(p.output(), s3.SecretKey) {
		t.Error("the S3 secret key appears in the log")
	}
	if p.stop(t) != 0 {
		t.Error("exit status after SIGTERM is not 0")
	}
}

// waitReady polls /readyz until it answers want; results are reused for a
// second, and a failing storage call may take a few more.
func waitReady(t *testing.T, base string, want int) {
	t.Helper()
	var code int
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, _ = get(t, base+"/readyz"); code == want {
			return
		}
	}
	t.Fatalf("/readyz answers %d, want %d", code, want)
}
