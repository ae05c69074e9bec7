package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/s3"
)

// startUpload begins a session as if at start and writes content to it.
func startUpload(t *testing.T, reg *Registry, repo string, start time.Time, content []byte) *Upload {
	t.Helper()
	clock := reg.now
	reg.now = func() time.Time { return start }
	defer func() { reg.now = clock }()
	r, _ := reg.Repository(repo)
	u, err := r.Blobs().Upload(context.Background(), UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(content) > 0 {
		if _, err := u.Append(context.Background(), bytes.NewReader(content), 0); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

func uploadExists(t *testing.T, reg *Registry, repo, id string) bool {
	t.Helper()
	exists := false
	for _, p := range []string{uploadStatePath(repo, id), uploadDataPath(repo, id)} {
		_, err := reg.driver.Stat(context.Background(), p)
		if err != nil && !driver.IsNotFound(err) {
			t.Fatal(err)
		}
		exists = exists || err == nil
	}
	return exists
}

func TestPurgeUploads(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		ctx := context.Background()
		now := time.Now()
		old := startUpload(t, reg, "a/b", now.Add(-2*time.Hour), randomContent(10))
		fresh := startUpload(t, reg, "a/b", now, randomContent(10))
		busy := startUpload(t, reg, "c", now.Add(-2*time.Hour), nil)
		// A crash leftover: data and no state.
		if err := reg.driver.PutContent(ctx, uploadDataPath("c", "0b5e5a5e-0000-4000-8000-000000000000"), []byte("x")); err != nil {
			t.Fatal(err)
		}
		unlock, err := reg.locker.TryLock(ctx, "c/"+busy.ID())
		if err != nil {
			t.Fatal(err)
		}
		n, err := reg.PurgeUploads(ctx, time.Hour)
		if err != nil || n != 1 {
			t.Fatalf("purged %d (%v), want the old session only", n, err)
		}
		if uploadExists(t, reg, "a/b", old.ID()) || !uploadExists(t, reg, "a/b", fresh.ID()) || !uploadExists(t, reg, "c", busy.ID()) {
			t.Fatal("wrong sessions purged")
		}
		if _, err := old.bs.Resume(ctx, old.ID()); !errors.Is(err, ErrBlobUploadUnknown) {
			t.Fatalf("resume of a purged session: %v", err)
		}
		unlock()
		// Later: the busy session and the leftover have aged too.
		reg.now = func() time.Time { return now.Add(3 * time.Hour) }
		n, err = reg.PurgeUploads(ctx, time.Hour)
		if err != nil || n != 3 {
			t.Fatalf("purged %d (%v), want the rest", n, err)
		}
		if _, err := reg.driver.List(ctx, uploadsPath("c")); !driver.IsNotFound(err) {
			t.Fatalf("uploads left: %v", err)
		}
	})
}

// A session of the layout before sessions were two objects (a folder of
// its own) is purged by the age of its newest object.
func TestPurgeUploadsOfTheFolderLayout(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		ctx := context.Background()
		now := time.Now()
		dir := uploadsPath("old") + "/" + newUploadID()
		for _, f := range []string{"data", "startedat", "hashstates/sha256/0"} {
			if err := reg.driver.PutContent(ctx, dir+"/"+f, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := reg.PurgeUploads(ctx, time.Hour); err != nil || n != 0 {
			t.Fatalf("purged %d (%v) while the folder is new", n, err)
		}
		reg.now = func() time.Time { return now.Add(3 * time.Hour) }
		if n, err := reg.PurgeUploads(ctx, time.Hour); err != nil || n != 1 {
			t.Fatalf("purged %d (%v), want the folder", n, err)
		}
		if _, err := reg.driver.List(ctx, dir); !driver.IsNotFound(err) {
			t.Fatalf("the folder after the purge: %v", err)
		}
	})
}

// On S3 a purged session's multipart upload is aborted, so no parts stay
// billed.
func TestPurgeUploadsAbortsMultipartUploads(t *testing.T) {
	reg, client, bucket := smallPartS3(t)
	u := startUpload(t, reg, "big", time.Now().Add(-2*time.Hour), randomContent(s3.MinPartSize+1))
	pending := func() int { return len(multipartUploads(t, client, bucket)) }
	if pending() == 0 {
		t.Fatal("the session holds no multipart upload: the test proves nothing")
	}
	if n, err := reg.PurgeUploads(t.Context(), time.Hour); err != nil || n != 1 {
		t.Fatalf("purged %d: %v", n, err)
	}
	if p := pending(); p != 0 {
		t.Fatalf("%d multipart uploads left after the purge", p)
	}
	if uploadExists(t, reg, "big", u.ID()) {
		t.Fatal("session left")
	}
}

func TestUploadEntryID(t *testing.T) {
	id := newUploadID()
	for entry, want := range map[string]string{
		uploadDataPath("a/b", id):              id,
		uploadStatePath("a/b", id):             id,
		uploadsPath("a/b") + "/" + id:          "", // not a session's object
		uploadsPath("a/b") + "/" + id + ".tmp": "",
		uploadsPath("a/b") + "/x.data":         "",
	} {
		got, ok := uploadEntryID(entry)
		if got != want || ok != (want != "") {
			t.Errorf("uploadEntryID(%q) = %q, %v; want %q", entry, got, ok, want)
		}
	}
}

// smallPartS3 is a registry on S3 whose uploads flush a part every
// s3.MinPartSize bytes, and a client of the same bucket.
func smallPartS3(t *testing.T) (*Registry, *s3sdk.Client, string) {
	srv := testenv.S3(t)
	d, err := s3.New(t.Context(), s3.Config{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, ForcePathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: s3.MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	client := s3sdk.New(s3sdk.Options{BaseEndpoint: aws.String(srv.Endpoint), Region: srv.Region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, "")})
	return New(driver.Instrument(d, nil), Options{}), client, srv.Bucket
}

func multipartUploads(t *testing.T, client *s3sdk.Client, bucket string) []types.MultipartUpload {
	t.Helper()
	out, err := client.ListMultipartUploads(t.Context(), &s3sdk.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Uploads
}

// A session whose multipart upload a bucket's lifecycle rule aborted
// (AbortIncompleteMultipartUpload) ends with BLOB_UPLOAD_UNKNOWN, so the
// client starts the blob over; it met a 500 at every retry.
func TestAbortedMultipartUploadEndsTheSession(t *testing.T) {
	reg, client, bucket := smallPartS3(t)
	ctx := t.Context()
	data := randomContent(2*s3.MinPartSize + 10)
	r, _ := reg.Repository("r")
	u, err := r.Blobs().Upload(ctx, UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(ctx, bytes.NewReader(data[:s3.MinPartSize+5]), 0); err != nil {
		t.Fatal(err)
	}
	uploads := multipartUploads(t, client, bucket)
	if len(uploads) == 0 {
		t.Fatal("the session holds no multipart upload: the test proves nothing")
	}
	for _, mu := range uploads {
		if _, err := client.AbortMultipartUpload(ctx, &s3sdk.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: mu.Key, UploadId: mu.UploadId}); err != nil {
			t.Fatal(err)
		}
	}
	u, err = r.Blobs().Resume(ctx, u.ID())
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.AppendCommit(ctx, bytes.NewReader(data[s3.MinPartSize+5:]), s3.MinPartSize+5, digest.FromBytes(data))
	if !errors.Is(err, ErrBlobUploadUnknown) {
		t.Fatalf("chunk onto an aborted multipart upload: %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
	if _, err := r.Blobs().Resume(ctx, u.ID()); !errors.Is(err, ErrBlobUploadUnknown) {
		t.Fatalf("the session outlived its data: %v", err)
	}
}

// A monolithic push cut off by a crash saves no session state: on S3 its
// multipart upload and the writer's hidden objects are all that is left,
// and the purge finds them by the writer's age, in a repository no blob
// made yet.
func TestPurgeUploadsRemovesUnsavedWriters(t *testing.T) {
	reg, client, bucket := smallPartS3(t)
	ctx := t.Context()
	r, _ := reg.Repository("fresh")
	u := r.Blobs().newUpload(nil) // as Put makes its session, never saved
	w, err := reg.driver.Writer(ctx, uploadDataPath("fresh", u.state.ID), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomContent(s3.MinPartSize + 1)); err != nil { // a part, and a piece at Close
		t.Fatal(err)
	}
	driver.Abandon(w) // the process is gone
	hidden := func() int {
		out, err := client.ListObjectsV2(ctx, &s3sdk.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("~writers/")})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Contents)
	}
	if len(multipartUploads(t, client, bucket)) == 0 || hidden() == 0 {
		t.Fatal("the writer left no multipart upload or hidden objects: the test proves nothing")
	}
	// Young writers stay: one may be a push in progress.
	if n, err := reg.PurgeUploads(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("purged %d young writers: %v", n, err)
	}
	if len(multipartUploads(t, client, bucket)) == 0 {
		t.Fatal("a young writer's upload was aborted")
	}
	reg.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if n, err := reg.PurgeUploads(ctx, time.Hour); err != nil || n != 1 {
		t.Fatalf("purged %d: %v", n, err)
	}
	if left := multipartUploads(t, client, bucket); len(left) != 0 {
		t.Fatalf("%d multipart uploads left", len(left))
	}
	if left := hidden(); left != 0 {
		t.Fatalf("%d hidden writer objects left", left)
	}
}

// A lease long expired, whose key nobody locks again (the holder crashed
// holding a manifest's), is removed by the purge; a live one is not.
func TestPurgeRemovesExpiredLeases(t *testing.T) {
	forEachGCDriver(t, func(t *testing.T, reg *Registry) {
		ctx := context.Background()
		put := func(key string, expires time.Time) {
			raw, _ := json.Marshal(lease{Token: key, Expires: expires})
			if err := reg.driver.PutContent(ctx, lockPath(key), raw); err != nil {
				t.Fatal(err)
			}
		}
		put("crashed", time.Now().Add(-time.Hour))
		put("live", time.Now().Add(time.Minute))
		put("just-lapsed", time.Now().Add(-time.Second))
		if _, err := reg.PurgeUploads(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		for key, want := range map[string]bool{"crashed": false, "live": true, "just-lapsed": true} {
			_, err := driver.StatObject(ctx, reg.driver, lockPath(key))
			if there := err == nil; there != want {
				t.Errorf("lease %s there after the purge: %v (%v), want %v", key, there, err, want)
			}
		}
	})
}
