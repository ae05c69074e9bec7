package s3

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// requestCounter counts the HTTP requests (retries included) a client
// sends, by S3 operation, and the bytes they carry.
type requestCounter struct {
	next s3.HTTPClient
	mu   sync.Mutex
	ops  map[string]int
	sent int64
}

func countRequests(c *requestCounter) func(*s3.Options) {
	return func(o *s3.Options) {
		c.next = o.HTTPClient
		o.HTTPClient = c
	}
}

func (c *requestCounter) Do(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.ops == nil {
		c.ops = map[string]int{}
	}
	c.ops[awsmiddleware.GetOperationName(req.Context())]++
	c.sent += max(req.ContentLength, 0)
	c.mu.Unlock()
	return c.next.Do(req)
}

func (c *requestCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops, c.sent = nil, 0
}

func (c *requestCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.ops {
		n += v
	}
	return n
}

func (c *requestCounter) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops[op]
}

func (c *requestCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(c.ops)) {
		parts = append(parts, fmt.Sprintf("%s=%d", op, c.ops[op]))
	}
	return strings.Join(parts, " ")
}

// hiddenKeys lists the writer tree, which the driver never shows.
func hiddenKeys(t testing.TB, d *Driver) []string {
	t.Helper()
	objs, err := d.keysUnder(context.Background(), d.hiddenPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// uploads lists the bucket's unfinished multipart uploads.
func uploads(t testing.TB, d *Driver) []types.MultipartUpload {
	t.Helper()
	out, err := d.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: d.bucket})
	if err != nil {
		t.Fatal(err)
	}
	return out.Uploads
}

// wantSum checks the object at path by its SHA-256, so large objects are
// compared without holding them twice.
func wantSum(t testing.TB, d *Driver, path string, want [sha256.Size]byte) {
	t.Helper()
	r, err := d.Reader(context.Background(), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := [sha256.Size]byte(h.Sum(nil)); got != want {
		t.Fatalf("content of %s (%d bytes) differs from what was written", path, n)
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i/4093) ^ seed
	}
	return b
}
