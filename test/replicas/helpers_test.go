package replicas

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/imagetest"
	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

// binDir holds the lading binary built once for every test of the package:
// each test starts two or more processes.
var binDir string

func TestMain(m *testing.M) {
	var err error
	binDir, err = os.MkdirTemp("", "lading-replicas-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

var buildOnce = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv("LADING_TEST_BINARY"); bin != "" {
		return bin, nil
	}
	bin := filepath.Join(binDir, "lading")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/lading")
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/lading: %v\n%s", err, b)
	}
	return bin, nil
})

func ladingBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startReplica runs one `lading serve` on the bucket of s3; redisAddr, when
// not empty, gives it the shared Redis.
func startReplica(t *testing.T, s3 testenv.S3Server, redisAddr string, opts testserver.Options) *testserver.Server {
	t.Helper()
	opts.Binary = ladingBinary(t)
	opts.Env = append(testserver.S3Env(s3), opts.Env...)
	if redisAddr != "" {
		opts.Env = append(opts.Env, "LADING_REDIS_ADDR="+redisAddr)
	}
	return testserver.Start(t, opts)
}

// startPair runs replicas A and B on one bucket, and nothing else shared
// but redisAddr when it is set.
func startPair(t *testing.T, s3 testenv.S3Server, redisAddr string) (a, b *testserver.Server) {
	t.Helper()
	return startReplica(t, s3, redisAddr, testserver.Options{}), startReplica(t, s3, redisAddr, testserver.Options{})
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs lading processes against S3")
	}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// do sends one request and returns the response with its body read.
func do(t testing.TB, method, url string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, got
}

// expect fails t unless resp has the given status.
func expect(t testing.TB, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, body)
	}
}

// startUpload opens an upload session on srv and returns its Location path.
func startUpload(t testing.TB, srv *testserver.Server, repo string) string {
	t.Helper()
	resp, body := do(t, http.MethodPost, srv.URL+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	expect(t, resp, body, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/") {
		t.Fatalf("Location %q is not a path on the registry", loc)
	}
	return loc
}

// withParam adds a query parameter to a Location, which may carry its own.
func withParam(loc, kv string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + kv
	}
	return loc + "?" + kv
}

func chunkHeader(at, n int) map[string]string {
	return map[string]string{
		"Content-Type":  "application/octet-stream",
		"Content-Range": fmt.Sprintf("%d-%d", at, at+n-1),
	}
}

// pushBlob uploads data to repo through srv in one request.
func pushBlob(t testing.TB, srv *testserver.Server, repo string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	resp, body := do(t, http.MethodPost, srv.URL+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data,
		map[string]string{"Content-Type": "application/octet-stream"})
	expect(t, resp, body, http.StatusCreated)
	return d
}

// getBlob fails t unless srv serves exactly want as blob d of repo.
func getBlob(t testing.TB, srv *testserver.Server, repo string, d digest.Digest, want []byte) {
	t.Helper()
	resp, body := do(t, http.MethodGet, srv.URL+"/v2/"+repo+"/blobs/"+d.String(), nil, nil)
	expect(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, want) {
		t.Fatalf("blob %s through %s: %d bytes differ from the %d pushed", d, srv.Addr, len(body), len(want))
	}
}

func headStatus(t testing.TB, url string) int {
	t.Helper()
	resp, _ := do(t, http.MethodHead, url, nil, nil)
	return resp.StatusCode
}

func ref(t testing.TB, srv *testserver.Server, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(srv.Addr + "/" + s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randomImage(t testing.TB) v1.Image {
	t.Helper()
	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pushImage writes img through srv with the client behind crane and ko.
func pushImage(t testing.TB, srv *testserver.Server, s string, img v1.Image) {
	t.Helper()
	if err := remote.Write(ref(t, srv, s), img); err != nil {
		t.Fatalf("push %s through %s: %v", s, srv.Addr, err)
	}
}

// pullSame fails t unless srv serves s as img byte for byte: manifest,
// config and every compressed layer.
func pullSame(t testing.TB, srv *testserver.Server, s string, want v1.Image) {
	t.Helper()
	got, err := remote.Image(ref(t, srv, s))
	if err != nil {
		t.Fatalf("pull %s through %s: %v", s, srv.Addr, err)
	}
	if err := imagetest.Diff(want, got); err != nil {
		t.Fatalf("through %s: %v", srv.Addr, err)
	}
}
