package registry_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"sync/atomic"
	"testing"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/s3"
)

// loseComplete lets one CompleteMultipartUpload reach the server, then
// cancels the caller's request context as a client hanging up would, so the
// registry never learns that the completion landed.
type loseComplete struct {
	next   awss3.HTTPClient
	armed  atomic.Bool
	cancel context.CancelFunc
}

func (l *loseComplete) Do(req *http.Request) (*http.Response, error) {
	resp, err := l.next.Do(req)
	if l.armed.Load() && awsmiddleware.GetOperationName(req.Context()) == "CompleteMultipartUpload" {
		l.armed.Store(false)
		l.cancel()
		if resp != nil {
			resp.Body.Close()
		}
		return nil, context.Canceled
	}
	return resp, err
}

// A final PUT on S3 whose completion lands but whose answer is lost (the
// client hangs up), then retried with other bytes of the same length under
// their own digest: the retry must not take the completed object, which
// holds the first bytes, for its own, or the registry publishes bytes
// under a digest never checked against them, and every later push of that
// digest links them.
func TestS3RetriedFinalChunkIsNotTheCompletedOne(t *testing.T) {
	srv := testenv.S3(t)
	lc := &loseComplete{}
	d, err := s3.New(t.Context(), s3.Config{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, ForcePathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}, func(o *awss3.Options) { lc.next = o.HTTPClient; o.HTTPClient = lc })
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(driver.Instrument(d, nil), registry.Options{})
	repo, err := reg.Repository("r")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	prefix := make([]byte, 6<<20)
	rand.Read(prefix)
	x := bytes.Repeat([]byte("X"), 1000)
	y := bytes.Repeat([]byte("Y"), 1000)
	dX := digest.FromBytes(append(append([]byte{}, prefix...), x...))
	dY := digest.FromBytes(append(append([]byte{}, prefix...), y...))

	u, err := repo.Blobs().Upload(ctx, registry.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(ctx, bytes.NewReader(prefix), 0); err != nil {
		t.Fatal(err)
	}
	// Final PUT with X: the completion lands, its answer is lost.
	u, _ = repo.Blobs().Resume(ctx, u.ID())
	cctx, cancel := context.WithCancel(ctx)
	lc.cancel = cancel
	lc.armed.Store(true)
	_, err = u.AppendCommit(cctx, bytes.NewReader(x), int64(len(prefix)), dX)
	t.Logf("first final PUT: %v", err)
	if err == nil {
		t.Fatal("the completion's answer was not lost: the test set up nothing")
	}
	// Retried final PUT with other bytes of the same length.
	u, err = repo.Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	t.Logf("resumed at %d", u.Offset())
	desc, err := u.AppendCommit(ctx, bytes.NewReader(y), int64(len(prefix)), dY)
	t.Logf("second final PUT as %s: %v %v", dY, desc.Size, err)
	if err != nil {
		return // refused, the session lost: the client pushes the blob again
	}
	got := readBlob(t, repo, dY)
	if digest.FromBytes(got) != dY {
		t.Fatalf("blob %s holds bytes whose digest is %s (X's digest %s): published unverified bytes", dY, digest.FromBytes(got), dX)
	}
}
