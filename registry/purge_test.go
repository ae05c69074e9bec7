package registry

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

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
	srv := testenv.S3(t)
	d, err := s3.New(t.Context(), s3.Config{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, ForcePathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: s3.MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	reg := New(driver.Instrument(d, nil), Options{})
	u := startUpload(t, reg, "big", time.Now().Add(-2*time.Hour), randomContent(s3.MinPartSize+1))
	client := s3sdk.New(s3sdk.Options{BaseEndpoint: aws.String(srv.Endpoint), Region: srv.Region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, "")})
	pending := func() int {
		out, err := client.ListMultipartUploads(t.Context(), &s3sdk.ListMultipartUploadsInput{Bucket: aws.String(srv.Bucket)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Uploads)
	}
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
