// Package s3 is a storage driver over an S3-compatible object store.
//
// Paths map to keys below Config.Prefix ("/a/b" → "<prefix>/a/b"). Data of
// writers not yet committed lives in a hidden tree, "<prefix>/~writers/",
// which no path can name ('~' is outside the path alphabet) and which sorts
// after every path, so List, Walk and Stat skip it by stopping there rather
// than filtering through it. See writer.go for its layout.
package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lading-registry/lading/storage/driver"
)

const (
	name = "s3"
	// hiddenDir is the top-level name of the writer tree below the prefix.
	hiddenDir = "~writers"
	// maxAttempts bounds retries of a failed request (with backoff).
	maxAttempts = 5
)

// Driver is a driver.Driver over one bucket.
type Driver struct {
	client   *s3.Client
	presign  *s3.PresignClient
	cfg      Config
	bucket   *string
	root     string // the prefix without slashes; keys are root + path
	partSize int64
	// maxCopySize is the largest object CopyObject may copy in one request;
	// a variable so tests can reach the multipart copy path.
	maxCopySize int64
	// partBufs holds part-sized buffers between writers: one allocated per
	// chunk would cost page faults and collections at every PATCH.
	partBufs *sync.Pool
	// conditionalDelete says the server honours If-Match on DELETE
	// (checkConditionalPut finds out), which RemoveObjectIf uses.
	conditionalDelete bool
	// conditionalReplace says the same of If-Match on PUT, which
	// ReplaceObjectIf uses.
	conditionalReplace bool
	// oneByOne says the server refused a batch delete for lack of a
	// Content-MD5 (MinIO before 2025), which the SDK no longer sends:
	// keys are deleted one request each from then on.
	oneByOne *atomic.Bool
}

var _ driver.Driver = (*Driver)(nil)

// New checks cfg, connects and verifies the bucket is reachable. opts adjust
// the S3 client after the driver's own settings (tests use them to observe
// requests).
func New(ctx context.Context, cfg Config, opts ...func(*s3.Options)) (*Driver, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Region == "" && cfg.Endpoint != "" {
		cfg.Region = "us-east-1"
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient()),
		config.WithRetryer(func() aws.Retryer {
			r := retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = maxAttempts })
			// A server keeping objects as files (versitygw) refuses a write
			// that races the pruning of a folder another delete emptied
			// as if a directory held the key; the same write then goes
			// through. Create still reads a lasting refusal as a taken key.
			return retry.AddWithErrorCodes(r, "ExistingObjectIsDirectory")
		}),
		// Only checksums S3 requires: self-hosted servers differ in which
		// optional ones (and trailing, aws-chunked bodies) they accept.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS config: %w", err)
	}
	awsCfg.HTTPClient = patient(awsCfg.HTTPClient)
	if awsCfg.Region == "" {
		return nil, errors.New("s3 config: region is required (or AWS_REGION)")
	}
	client := s3.NewFromConfig(awsCfg, append([]func(*s3.Options){func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.ForcePathStyle
	}}, opts...)...)

	d := &Driver{
		client:      client,
		presign:     s3.NewPresignClient(client),
		cfg:         cfg,
		bucket:      aws.String(cfg.Bucket),
		root:        strings.Trim(cfg.Prefix, "/"),
		partSize:    cfg.PartSize,
		partBufs:    new(sync.Pool),
		maxCopySize: maxPartSize,
		oneByOne:    new(atomic.Bool),
	}
	if d.partSize == 0 {
		d.partSize = DefaultPartSize
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: d.bucket}); err != nil {
		return nil, fmt.Errorf("s3: bucket %q: %w", cfg.Bucket, err)
	}
	if err := d.checkConditionalPut(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// checkConditionalPut makes sure the server refuses a PUT with
// If-None-Match: * over an existing key. Create relies on it for leases;
// a server that ignores the header would let two writers both "win", so
// such a server is refused at start rather than misbehaving later.
func (d *Driver) checkConditionalPut(ctx context.Context) error {
	var id [8]byte
	_, _ = rand.Read(id[:])
	key := d.hiddenPrefix() + "~probe-" + hex.EncodeToString(id[:])
	defer d.client.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: d.bucket, Key: aws.String(key)})
	put := func() error {
		in := d.putInput(key, nil)
		in.IfNoneMatch = aws.String("*")
		_, err := d.client.PutObject(ctx, in)
		return err
	}
	if err := put(); err != nil {
		return fmt.Errorf("s3: conditional PUT (If-None-Match: *), which Create needs, failed: %w", err)
	}
	err := put()
	if err == nil {
		return errors.New("s3: the server ignores If-None-Match on PUT, so Create cannot be atomic; use a server with conditional writes")
	}
	if httpStatus(err) != http.StatusPreconditionFailed {
		return fmt.Errorf("s3: conditional PUT over an existing key: %w", err)
	}
	// Nor If-Match on PUT (where one does not, ReplaceObjectIf compares,
	// then writes): it must refuse the wrong ETag and take the right one.
	in := d.putInput(key, nil)
	in.IfMatch = aws.String(`"0123456789abcdef0123456789abcdef"`)
	if _, err = d.client.PutObject(ctx, in); changedSince(err) {
		if head, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: d.bucket, Key: aws.String(key)}); err == nil {
			in = d.putInput(key, nil)
			in.IfMatch = head.ETag
			_, err = d.client.PutObject(ctx, in)
			d.conditionalReplace = err == nil
		}
	}
	// Not every server honours If-Match on DELETE (where one does not,
	// RemoveObjectIf compares, then deletes): it must both refuse the
	// wrong ETag and take the right one.
	_, err = d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: d.bucket, Key: aws.String(key), IfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
	if httpStatus(err) != http.StatusPreconditionFailed {
		return nil
	}
	head, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: d.bucket, Key: aws.String(key)})
	if err != nil {
		return nil
	}
	if _, err = d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: d.bucket, Key: aws.String(key), IfMatch: head.ETag}); err != nil {
		return nil
	}
	_, err = d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: d.bucket, Key: aws.String(key)})
	d.conditionalDelete = httpStatus(err) == http.StatusNotFound
	return nil
}

// A request waits answerSilence for its answer to begin: a server that
// takes the connection and never answers costs a client its retries'
// worth of that, not of minutes each. A server-side copy of 5 GiB and a
// multipart completion may keep a server silent for minutes, and get
// slowSilence. Reads wait bodySilence, which must cover sending a part too:
// the transport's read of the answer is under way while the part is sent.
var (
	answerSilence = 30 * time.Second
	slowSilence   = 5 * time.Minute
)

const bodySilence = 5 * time.Minute

// httpClient gives up on a server that stops answering, without bounding
// transfers: a large GET may stream for as long as its reader wants, and
// the caller's context ends it.
func httpClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = 10 * time.Second
			t.ResponseHeaderTimeout = answerSilence
			t.ExpectContinueTimeout = time.Second
			t.MaxIdleConnsPerHost = 64
		}).
		WithReadTimeout(bodySilence)
}

// byOperation sends the requests that may be answered slowly through a
// client that waits longer.
type byOperation struct{ quick, slow aws.HTTPClient }

// patient returns c, which the AWS configuration made from httpClient (its
// CA bundle added), sending slow operations through a copy that waits
// slowSilence for their answers.
func patient(c aws.HTTPClient) aws.HTTPClient {
	b, ok := c.(*awshttp.BuildableClient)
	if !ok {
		return c
	}
	return byOperation{quick: b, slow: b.WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = slowSilence })}
}

func (c byOperation) Do(req *http.Request) (*http.Response, error) {
	switch awsmiddleware.GetOperationName(req.Context()) {
	case "CopyObject", "UploadPartCopy", "CompleteMultipartUpload":
		return c.slow.Do(req)
	}
	return c.quick.Do(req)
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return name }

// key is the object key of path.
func (d *Driver) key(path string) string {
	if path == "/" {
		return d.root
	}
	if d.root == "" {
		return path[1:]
	}
	return d.root + path
}

// dirPrefix is what the keys of every object below path start with.
func (d *Driver) dirPrefix(path string) string {
	if k := d.key(path); k != "" {
		return k + "/"
	}
	return ""
}

// pathOf is the inverse of key.
func (d *Driver) pathOf(key string) string {
	if d.root == "" {
		return "/" + key
	}
	return key[len(d.root):]
}

// hiddenPrefix starts every key of the writer tree.
func (d *Driver) hiddenPrefix() string { return d.dirPrefix("/") + hiddenDir + "/" }

// isHidden reports whether key lies in the writer tree. Only listings of
// the root can meet such keys, and always after every visible one.
func (d *Driver) isHidden(key string) bool { return strings.HasPrefix(key, d.hiddenPrefix()) }
