package s3

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/storage/driver"
)

// noBatchDelete answers every DeleteObjects as MinIO did before 2025 when
// the request carries no Content-MD5, which the SDK no longer sends.
type noBatchDelete struct {
	next    s3.HTTPClient
	batches atomic.Int32
}

func (n *noBatchDelete) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.URL.Query().Has("delete") {
		n.batches.Add(1)
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>MissingContentMD5</Code><Message>Missing required header for this request: Content-Md5.</Message></Error>`
		return &http.Response{StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
	}
	return n.next.Do(req)
}

// A server that refuses batch deletes still has its objects deleted, one
// request each, and is not asked for a batch again.
func TestDeleteWithoutBatchDeletes(t *testing.T) {
	ctx := context.Background()
	nb := &noBatchDelete{}
	d := newTestDriver(t, testenv.S3(t), "", func(o *s3.Options) { nb.next, o.HTTPClient = o.HTTPClient, nb })
	for _, dir := range []string{"/a", "/b"} {
		for _, p := range []string{"/x", "/y/z", "/w"} {
			if err := d.PutContent(ctx, dir+p, []byte("content")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := d.Delete(ctx, "/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := d.Stat(ctx, "/a"); !driver.IsNotFound(err) {
		t.Fatalf("after Delete: %v", err)
	}
	if err := d.Delete(ctx, "/b"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := d.Stat(ctx, "/b"); !driver.IsNotFound(err) {
		t.Fatalf("after the second Delete: %v", err)
	}
	if n := nb.batches.Load(); n != 1 {
		t.Errorf("%d batch deletes sent, want the one that was refused", n)
	}
}
