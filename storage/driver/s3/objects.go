package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/lading-registry/lading/storage/driver"
)

// createAttempts bounds retries of a conditional put that S3 refused with
// 409 because another conditional write to the key was in flight.
const createAttempts = 3

// GetContent implements driver.Driver.
func (d *Driver) GetContent(ctx context.Context, path string) ([]byte, error) {
	b, err := d.getObject(ctx, d.key(path))
	return b, mapErr("get", path, err)
}

// bodyAttempts bounds the reads of a small object whose body was cut off:
// the SDK retries a request, never the read of its answer.
const bodyAttempts = 3

func (d *Driver) getObject(ctx context.Context, key string) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		out, err := d.client.GetObject(ctx, &s3.GetObjectInput{Bucket: d.bucket, Key: aws.String(key)})
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		// A body that stalled past its timeout is not read again: that
		// already took minutes.
		var ne net.Error
		if err == nil || ctx.Err() != nil || attempt == bodyAttempts || errors.As(err, &ne) && ne.Timeout() {
			return b, err
		}
	}
}

// PutContent implements driver.Driver. A single PUT is atomic in S3.
func (d *Driver) PutContent(ctx context.Context, path string, content []byte) error {
	_, err := d.client.PutObject(ctx, d.putInput(d.key(path), content))
	return mapErr("put", path, err)
}

// PutState implements driver.Driver: an acknowledged PUT is durable on S3,
// so there is nothing cheaper to offer.
func (d *Driver) PutState(ctx context.Context, path string, content []byte) error {
	return d.PutContent(ctx, path, content)
}

// Create implements driver.Driver with a conditional PUT (If-None-Match: *),
// which S3 evaluates atomically against concurrent writers.
func (d *Driver) Create(ctx context.Context, path string, content []byte) error {
	err := d.createKey(ctx, d.key(path), content)
	if err == driver.ErrExists {
		return err
	}
	return mapErr("create", path, err)
}

// createKey puts content at key unless something is there (ErrExists).
func (d *Driver) createKey(ctx context.Context, key string, content []byte) error {
	in := d.putInput(key, content)
	in.IfNoneMatch = aws.String("*")
	for attempt := 1; ; attempt++ {
		_, err := d.client.PutObject(ctx, in)
		switch code := errorCode(err); {
		case err == nil:
			return nil
		case code == "PreconditionFailed" || httpStatus(err) == http.StatusPreconditionFailed:
			return driver.ErrExists
		case code == "ExistingObjectIsDirectory":
			// A server backed by a file system refuses a key that is
			// already a directory; for the driver that path is taken.
			return driver.ErrExists
		case code == "ConditionalRequestConflict" && attempt < createAttempts:
			// Another conditional write to the key is in flight (the same
			// manifest pushed to many repositories at once): give it time.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
			}
			in.Body = bytes.NewReader(content)
			continue
		case code == "ConditionalRequestConflict":
			// Still contended: the client may try again (503).
			return driver.UnavailableError{Driver: name, Err: err}
		default:
			return err
		}
	}
}

func (d *Driver) putInput(key string, content []byte) *s3.PutObjectInput {
	in := &s3.PutObjectInput{
		Bucket:        d.bucket,
		Key:           aws.String(key),
		Body:          bytes.NewReader(content),
		ContentLength: aws.Int64(int64(len(content))),
		ContentType:   aws.String("application/octet-stream"),
	}
	in.StorageClass, in.ServerSideEncryption, in.SSEKMSKeyId = d.storageOptions()
	return in
}

func (d *Driver) storageOptions() (types.StorageClass, types.ServerSideEncryption, *string) {
	var kms *string
	if d.cfg.KMSKeyID != "" {
		kms = aws.String(d.cfg.KMSKeyID)
	}
	return types.StorageClass(d.cfg.StorageClass), types.ServerSideEncryption(d.cfg.ServerSideEncryption), kms
}

// Reader implements driver.Driver with a ranged GET from offset.
func (d *Driver) Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, driver.InvalidOffsetError{Driver: name, Path: path, Offset: offset}
	}
	in := &s3.GetObjectInput{Bucket: d.bucket, Key: aws.String(d.key(path))}
	if offset > 0 {
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-")
	}
	out, err := d.client.GetObject(ctx, in)
	if err == nil {
		return out.Body, nil
	}
	if errorCode(err) != "InvalidRange" && httpStatus(err) != http.StatusRequestedRangeNotSatisfiable {
		return nil, mapErr("read", path, err)
	}
	// A range starting at the size is unsatisfiable to S3, but a reader at
	// io.EOF to the driver; only beyond the size is the offset wrong.
	fi, err := d.Stat(ctx, path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir || offset != fi.Size {
		return nil, driver.InvalidOffsetError{Driver: name, Path: path, Offset: offset}
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

// Stat implements driver.Driver: an object, else a directory if any object
// lies below path.
func (d *Driver) Stat(ctx context.Context, path string) (driver.FileInfo, error) {
	if path != "/" {
		if fi, err := d.StatObject(ctx, path); !driver.IsNotFound(err) {
			return fi, err
		}
	}
	out, err := d.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: d.bucket, Prefix: aws.String(d.dirPrefix(path)), MaxKeys: aws.Int32(1)})
	if err != nil {
		return driver.FileInfo{}, mapErr("stat", path, err)
	}
	if len(out.Contents) == 0 || d.isHidden(aws.ToString(out.Contents[0].Key)) {
		return driver.FileInfo{}, driver.PathNotFoundError{Driver: name, Path: path}
	}
	return driver.FileInfo{Path: path, IsDir: true}, nil
}

// StatObject implements driver.ObjectOps: one HEAD, with no listing to
// tell a directory from nothing.
func (d *Driver) StatObject(ctx context.Context, path string) (driver.FileInfo, error) {
	out, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: d.bucket, Key: aws.String(d.key(path))})
	if err != nil {
		return driver.FileInfo{}, mapErr("stat", path, err)
	}
	return driver.FileInfo{Path: path, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// RemoveObjectIf implements driver.ContentRemover: a GET, and a DELETE on
// the condition that the object is still what was read (If-Match) where
// the server honours it; elsewhere a write between the two is lost.
func (d *Driver) RemoveObjectIf(ctx context.Context, path string, content []byte) (bool, error) {
	etag, ok, err := d.holds(ctx, "remove", path, content)
	if !ok {
		return false, err
	}
	in := &s3.DeleteObjectInput{Bucket: d.bucket, Key: aws.String(d.key(path))}
	if d.conditionalDelete {
		in.IfMatch = etag
	}
	_, err = d.client.DeleteObject(ctx, in)
	if changedSince(err) {
		return false, nil
	}
	if err = mapErr("remove", path, err); driver.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// ReplaceObjectIf implements driver.ContentReplacer: a GET, and a PUT on the
// condition that the object is still what was read (If-Match) where the
// server honours it; elsewhere a write between the two is lost.
func (d *Driver) ReplaceObjectIf(ctx context.Context, path string, old, content []byte) (bool, error) {
	etag, ok, err := d.holds(ctx, "replace", path, old)
	if !ok {
		return false, err
	}
	in := d.putInput(d.key(path), content)
	if d.conditionalReplace {
		in.IfMatch = etag
	}
	_, err = d.client.PutObject(ctx, in)
	if changedSince(err) {
		return false, nil // written again since the read
	}
	if errorCode(err) == "ConditionalRequestConflict" {
		// Another conditional write to the key in flight: not known to
		// have changed it, so the caller may try again (503).
		return false, driver.UnavailableError{Driver: name, Err: err}
	}
	if err = mapErr("replace", path, err); driver.IsNotFound(err) {
		return false, nil // removed since the read
	}
	return err == nil, err
}

// holds reads the object at path and reports whether it holds content,
// with its ETag for a conditional request on what was read.
func (d *Driver) holds(ctx context.Context, op, path string, content []byte) (etag *string, ok bool, err error) {
	out, err := d.client.GetObject(ctx, &s3.GetObjectInput{Bucket: d.bucket, Key: aws.String(d.key(path))})
	if err != nil {
		if err = mapErr(op, path, err); driver.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, content) {
		return nil, false, mapErr(op, path, err)
	}
	return out.ETag, true, nil
}

// changedSince reports whether a conditional request failed because the
// object is no longer what its If-Match named.
func changedSince(err error) bool {
	return errorCode(err) == "PreconditionFailed" || httpStatus(err) == http.StatusPreconditionFailed
}

// RemoveObject implements driver.ObjectOps: one DELETE, which S3 answers
// alike whether or not the key was there.
func (d *Driver) RemoveObject(ctx context.Context, path string) error {
	_, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: d.bucket, Key: aws.String(d.key(path))})
	if err = mapErr("delete", path, err); driver.IsNotFound(err) {
		return nil
	}
	return err
}

// RedirectURL implements driver.Driver: a presigned GET when Config.Redirect
// enables it.
func (d *Driver) RedirectURL(r *http.Request, path string) (string, error) {
	if d.cfg.Redirect.Expiry <= 0 {
		return "", nil
	}
	req, err := d.presign.PresignGetObject(r.Context(),
		&s3.GetObjectInput{Bucket: d.bucket, Key: aws.String(d.key(path))},
		s3.WithPresignExpires(d.cfg.Redirect.Expiry))
	if err != nil {
		return "", mapErr("presign", path, err)
	}
	return req.URL, nil
}
