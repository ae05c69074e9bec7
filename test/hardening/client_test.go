// Package hardening drives a real `lading serve` with hostile, concurrent,
// interrupted and sustained traffic: crashes mid-push, racing writers,
// bodies cut short, paths aimed outside the storage root, and load with a
// watch on the process's descriptors and goroutines.
package hardening

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testserver"
)

// start runs lading for one test.
func start(t *testing.T, opts testserver.Options) *testserver.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs lading")
	}
	return testserver.Start(t, opts)
}

// client speaks the distribution API and returns errors rather than
// failing the test, so that it can run in many goroutines.
type client struct {
	base string
	http *http.Client
}

func newClient(base string, conns int) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	return &client{base: base, http: &http.Client{Transport: tr, Timeout: time.Minute}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// reply is a response read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) String() string {
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

// do sends one request; header is key, value, key, value...
func (c *client) do(method, target string, body []byte, header ...string) (reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	if !strings.HasPrefix(target, "http") {
		target = c.base + target
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		return reply{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// expect sends a request and fails unless the answer has status want.
func (c *client) expect(want int, method, target string, body []byte, header ...string) (reply, error) {
	r, err := c.do(method, target, body, header...)
	if err != nil {
		return r, fmt.Errorf("%s %s: %w", method, target, err)
	}
	if r.status != want {
		return r, fmt.Errorf("%s %s: %s, want %d", method, target, r, want)
	}
	return r, nil
}

// pushMonolithic uploads content in one POST.
func (c *client) pushMonolithic(repo string, content []byte) (digest.Digest, error) {
	d := digest.FromBytes(content)
	_, err := c.expect(http.StatusCreated, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), content)
	return d, err
}

// startSession opens an upload session and returns its Location.
func (c *client) startSession(repo string) (string, error) {
	r, err := c.expect(http.StatusAccepted, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return "", err
	}
	return r.header.Get("Location"), nil
}

// patch sends one chunk at offset and returns the session's new Location.
func (c *client) patch(loc string, offset int64, chunk []byte) (string, error) {
	cr := strconv.FormatInt(offset, 10) + "-" + strconv.FormatInt(offset+int64(len(chunk))-1, 10)
	r, err := c.expect(http.StatusAccepted, http.MethodPatch, loc, chunk, "Content-Range", cr, "Content-Type", "application/octet-stream")
	if err != nil {
		return "", err
	}
	if want := "0-" + strconv.FormatInt(offset+int64(len(chunk))-1, 10); r.header.Get("Range") != want {
		return "", fmt.Errorf("PATCH %s: Range %q, want %q", loc, r.header.Get("Range"), want)
	}
	return r.header.Get("Location"), nil
}

// commit ends a session with PUT ?digest=.
func (c *client) commit(loc string, d digest.Digest) error {
	_, err := c.expect(http.StatusCreated, http.MethodPut, withQuery(loc, "digest="+d.String()), nil)
	return err
}

// pushChunked uploads content in chunks of size chunk.
func (c *client) pushChunked(repo string, content []byte, chunk int) (digest.Digest, error) {
	loc, err := c.startSession(repo)
	if err != nil {
		return "", err
	}
	for off := 0; off < len(content); off += chunk {
		if loc, err = c.patch(loc, int64(off), content[off:min(off+chunk, len(content))]); err != nil {
			return "", err
		}
	}
	d := digest.FromBytes(content)
	return d, c.commit(loc, d)
}

// sessionOffset asks where a session stands: its size, or -1 with the
// error code's reply when the session is unknown.
func (c *client) sessionOffset(loc string) (int64, reply, error) {
	r, err := c.do(http.MethodGet, loc, nil)
	if err != nil {
		return 0, r, err
	}
	switch r.status {
	case http.StatusNoContent:
	case http.StatusNotFound:
		return -1, r, nil
	default:
		return 0, r, fmt.Errorf("GET %s: %s", loc, r)
	}
	rng := r.header.Get("Range")
	end, err := strconv.ParseInt(strings.TrimPrefix(rng, "0-"), 10, 64)
	if err != nil || !strings.HasPrefix(rng, "0-") {
		return 0, r, fmt.Errorf("GET %s: Range %q", loc, rng)
	}
	if end == 0 {
		// "0-0" is both an empty session and one of one byte; the spec's
		// clients treat it as empty, and these tests never send one byte.
		return 0, r, nil
	}
	return end + 1, r, nil
}

// verifyBlob reads a blob back and checks every byte against its digest:
// ok is false when the registry does not have it, and an error means it
// served something else.
func (c *client) verifyBlob(repo string, d digest.Digest) (ok bool, err error) {
	r, err := c.do(http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil)
	if err != nil {
		return false, err
	}
	switch {
	case r.status == http.StatusNotFound && errorCode(r.body) == "BLOB_UNKNOWN":
		return false, nil
	case r.status != http.StatusOK:
		return false, fmt.Errorf("GET blob %s/%s: %s", repo, d, r)
	case digest.FromBytes(r.body) != d:
		return false, fmt.Errorf("GET blob %s/%s served %d bytes of digest %s", repo, d, len(r.body), digest.FromBytes(r.body))
	}
	return true, nil
}

// putManifest pushes an image manifest of config and layers under tag.
func (c *client) putManifest(repo, tag string, payload []byte) error {
	_, err := c.expect(http.StatusCreated, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, payload,
		"Content-Type", "application/vnd.oci.image.manifest.v1+json")
	return err
}

// imageManifest is a manifest naming blobs already pushed; note makes
// otherwise equal manifests differ.
func imageManifest(config digest.Digest, configSize int, layer digest.Digest, layerSize int, note string) []byte {
	return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}],`+
		`"annotations":{"note":%q}}`, config, configSize, layer, layerSize, note)
}

func errorCode(body []byte) string {
	var doc struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &doc) != nil || len(doc.Errors) == 0 {
		return ""
	}
	return doc.Errors[0].Code
}

func withQuery(loc, kv string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + kv
	}
	return loc + "?" + kv
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
