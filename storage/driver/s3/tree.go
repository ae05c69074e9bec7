package s3

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/lading-registry/lading/storage/driver"
)

// deleteBatch is the most keys one DeleteObjects request may name.
const deleteBatch = 1000

// List implements driver.Driver with a delimited listing: one request per
// thousand children, whatever lies deeper.
func (d *Driver) List(ctx context.Context, path string) ([]string, error) {
	in := &s3.ListObjectsV2Input{Bucket: d.bucket, Prefix: aws.String(d.dirPrefix(path)), Delimiter: aws.String("/")}
	var children []string
	for page, err := range d.pages(ctx, in) {
		if err != nil {
			return nil, mapErr("list", path, err)
		}
		for _, o := range page.Contents {
			if p := d.pathOf(aws.ToString(o.Key)); driver.ValidatePath(p) == nil {
				children = append(children, p)
			}
		}
		for _, p := range page.CommonPrefixes {
			if k := aws.ToString(p.Prefix); !d.isHidden(k) {
				if p := d.pathOf(strings.TrimSuffix(k, "/")); driver.ValidatePath(p) == nil {
					children = append(children, p)
				}
			}
		}
	}
	if len(children) == 0 {
		return nil, driver.PathNotFoundError{Driver: name, Path: path}
	}
	// S3 returns objects and prefixes as two sorted lists.
	slices.Sort(children)
	return children, nil
}

// Walk implements driver.Driver: S3 lists in key order, which is path order,
// and StartAfter resumes there without reading what came before.
func (d *Driver) Walk(ctx context.Context, path, from string, fn driver.WalkFunc) error {
	in := &s3.ListObjectsV2Input{Bucket: d.bucket, Prefix: aws.String(d.dirPrefix(path))}
	if from != "" {
		in.StartAfter = aws.String(d.key(from))
	}
	for page, err := range d.pages(ctx, in) {
		if err != nil {
			return mapErr("walk", path, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if d.isHidden(k) {
				return nil // sorts last: nothing visible follows
			}
			p := d.pathOf(k)
			if driver.ValidatePath(p) != nil {
				// A key no path could have made (another tool's, a hand's):
				// skipped, as the file system skips such names, so that no
				// caller meets a path every other call refuses.
				continue
			}
			err := fn(driver.FileInfo{Path: p, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
			if errors.Is(err, driver.ErrStopWalk) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// pages yields the pages of a listing; each is fetched only when the
// previous one has been consumed.
func (d *Driver) pages(ctx context.Context, in *s3.ListObjectsV2Input) iter.Seq2[*s3.ListObjectsV2Output, error] {
	return func(yield func(*s3.ListObjectsV2Output, error) bool) {
		p := s3.NewListObjectsV2Paginator(d.client, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if !yield(page, err) || err != nil {
				return
			}
		}
	}
}

// uploadPages is pages for the multipart uploads of keys starting with
// prefix.
func (d *Driver) uploadPages(ctx context.Context, prefix string) iter.Seq2[*s3.ListMultipartUploadsOutput, error] {
	return func(yield func(*s3.ListMultipartUploadsOutput, error) bool) {
		p := s3.NewListMultipartUploadsPaginator(d.client, &s3.ListMultipartUploadsInput{Bucket: d.bucket, Prefix: aws.String(prefix)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if !yield(page, err) || err != nil {
				return
			}
		}
	}
}

// keysUnder returns every key starting with prefix.
func (d *Driver) keysUnder(ctx context.Context, prefix string) ([]types.Object, error) {
	var objs []types.Object
	for page, err := range d.pages(ctx, &s3.ListObjectsV2Input{Bucket: d.bucket, Prefix: aws.String(prefix)}) {
		if err != nil {
			return nil, err
		}
		objs = append(objs, page.Contents...)
	}
	return objs, nil
}

// Move implements driver.Driver by a server-side copy and a delete: the
// bytes never pass through this process.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	head, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: d.bucket, Key: aws.String(d.key(src))})
	if err != nil {
		return mapErr("move", src, err)
	}
	if src == dst {
		return nil
	}
	if err := d.copyObject(ctx, d.key(src), d.key(dst), aws.ToInt64(head.ContentLength)); err != nil {
		return mapErr("move", src+" to "+dst, err)
	}
	_, err = d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: d.bucket, Key: aws.String(d.key(src))})
	return mapErr("move", src, err)
}

// Delete implements driver.Driver. Besides the objects at and below path it
// removes the data of writers there and aborts their multipart uploads, so
// deleting an abandoned upload's directory leaves nothing billed behind.
func (d *Driver) Delete(ctx context.Context, path string) error {
	// Four independent look-ups: in parallel, Delete costs two round trips.
	var (
		object         bool
		below, writers []types.Object
		aborted        int
		key            = d.key(path)
	)
	g, gctx := errgroup.WithContext(ctx)
	if path != "/" { // the root's listing covers the writer tree
		g.Go(func() error {
			_, err := d.client.HeadObject(gctx, &s3.HeadObjectInput{Bucket: d.bucket, Key: aws.String(key)})
			object = err == nil
			if err = mapErr("delete", path, err); driver.IsNotFound(err) {
				return nil
			}
			return err
		})
		g.Go(func() (err error) {
			writers, err = d.keysUnder(gctx, d.writersPrefix(path))
			return mapErr("delete", path, err)
		})
	}
	g.Go(func() (err error) {
		below, err = d.keysUnder(gctx, d.dirPrefix(path))
		return mapErr("delete", path, err)
	})
	g.Go(func() (err error) {
		aborted, err = d.abortUploads(gctx, path)
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	var doomed []string
	if object {
		doomed = append(doomed, key)
	}
	for _, o := range slices.Concat(below, writers) {
		doomed = append(doomed, aws.ToString(o.Key))
	}
	if len(doomed) == 0 && aborted == 0 {
		return driver.PathNotFoundError{Driver: name, Path: path}
	}
	return mapErr("delete", path, d.deleteKeys(ctx, doomed))
}

// abortUploads aborts every multipart upload for the object at path or any
// object below it, and returns how many there were.
func (d *Driver) abortUploads(ctx context.Context, path string) (int, error) {
	key, prefix := d.key(path), d.dirPrefix(path)
	n := 0
	for page, err := range d.uploadPages(ctx, key) {
		if err != nil {
			return n, mapErr("abort uploads", path, err)
		}
		for _, u := range page.Uploads {
			k := aws.ToString(u.Key)
			// The prefix "a/b" also matches "a/bc".
			if k != key && !strings.HasPrefix(k, prefix) {
				continue
			}
			_, err := d.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: d.bucket, Key: u.Key, UploadId: u.UploadId})
			if err != nil && errorCode(err) != "NoSuchUpload" {
				return n, mapErr("abort upload", d.pathOf(k), err)
			}
			n++
		}
	}
	return n, nil
}

// deleteKeys removes keys, a thousand per request.
func (d *Driver) deleteKeys(ctx context.Context, keys []string) error {
	for batch := range slices.Chunk(keys, deleteBatch) {
		if !d.oneByOne.Load() {
			refused, err := d.deleteObjects(ctx, batch)
			if !refused {
				if err != nil {
					return err
				}
				continue
			}
			d.oneByOne.Store(true)
		}
		if err := d.deleteEach(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// deleteObjects removes up to a thousand keys in one request; refused says
// the server takes no batch delete without a Content-MD5.
func (d *Driver) deleteObjects(ctx context.Context, keys []string) (refused bool, err error) {
	ids := make([]types.ObjectIdentifier, len(keys))
	for i, k := range keys {
		ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
	}
	out, err := d.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: d.bucket,
		Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	})
	if errorCode(err) == "MissingContentMD5" {
		return true, err
	}
	if err != nil {
		return false, err
	}
	for _, e := range out.Errors {
		if aws.ToString(e.Code) != "NoSuchKey" {
			// As an API error, so that mapErr reads its code: a key
			// refused with SlowDown is a busy backend, not a fault.
			return false, fmt.Errorf("delete %s: %w", aws.ToString(e.Key), &smithy.GenericAPIError{Code: aws.ToString(e.Code), Message: aws.ToString(e.Message)})
		}
	}
	return false, nil
}

// deleteEach deletes keys one request each, a few at a time, for a server
// that refuses batch deletes (see Driver.oneByOne). A key already gone is
// no error: S3 answers its DELETE with success.
func (d *Driver) deleteEach(ctx context.Context, keys []string) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, k := range keys {
		g.Go(func() error {
			_, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: d.bucket, Key: aws.String(k)})
			if errorCode(err) == "NoSuchKey" {
				return nil
			}
			return err
		})
	}
	return g.Wait()
}

// PendingWriters implements driver.PendingWriterLister: the writers' hidden
// directories below dir, and the multipart uploads of keys below it (a
// writer starts its upload before it writes its first marker), each path
// with the newest time either shows.
func (d *Driver) PendingWriters(ctx context.Context, dir string, fn func(path string, lastWrite time.Time) error) error {
	hidden := d.hiddenPrefix()
	writers, keys := hidden, d.dirPrefix(dir)
	if dir != "/" {
		writers = d.writersPrefix(dir)
	}
	last := map[string]time.Time{}
	note := func(path string, t time.Time) {
		if cur, seen := last[path]; !seen || t.After(cur) {
			last[path] = t
		}
	}
	for page, err := range d.pages(ctx, &s3.ListObjectsV2Input{Bucket: d.bucket, Prefix: aws.String(writers)}) {
		if err != nil {
			return mapErr("list writers", dir, err)
		}
		for _, o := range page.Contents {
			// <hidden><path without its leading '/'>/~<entry>: no path
			// holds a '~'.
			rel := strings.TrimPrefix(aws.ToString(o.Key), hidden)
			if i := strings.Index(rel, "/~"); i > 0 {
				note("/"+rel[:i], aws.ToTime(o.LastModified))
			}
		}
	}
	for page, err := range d.uploadPages(ctx, keys) {
		if err != nil {
			return mapErr("list uploads", dir, err)
		}
		for _, u := range page.Uploads {
			if k := aws.ToString(u.Key); !strings.HasPrefix(k, hidden) {
				note(d.pathOf(k), aws.ToTime(u.Initiated))
			}
		}
	}
	for _, path := range slices.Sorted(maps.Keys(last)) {
		if err := fn(path, last[path]); err != nil {
			return err
		}
	}
	return nil
}
