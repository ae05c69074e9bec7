package inmemory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/inmemory"
	"github.com/lading-registry/lading/storage/driver/testsuite"
)

func TestConformance(t *testing.T) {
	testsuite.Run(t, func(*testing.T) driver.Driver { return inmemory.New() })
}

func TestRedirectURL(t *testing.T) {
	if url, err := inmemory.New().RedirectURL(nil, "/a"); url != "" || err != nil {
		t.Errorf("RedirectURL = %q, %v; want no redirect", url, err)
	}
}

// A file system cannot hold an object that is also a directory; refusing it
// here makes tests on this driver catch a layout that only S3 would accept.
func TestObjectAndPrefixConflict(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	if err := d.PutContent(ctx, "/a/b", nil); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/a", nil); err == nil {
		t.Error("PutContent on a directory succeeded")
	}
	if err := d.PutContent(ctx, "/a/b/c", nil); err == nil {
		t.Error("PutContent below an object succeeded")
	}
	if err := d.Create(ctx, "/a", nil); !errors.Is(err, driver.ErrExists) {
		t.Errorf("Create on a directory: %v", err)
	}
	if err := d.Move(ctx, "/a/b", "/a/b/c"); err == nil {
		t.Error("Move below itself succeeded")
	}
	if _, err := d.GetContent(ctx, "/a/b"); err != nil {
		t.Errorf("failed Move lost its source: %v", err)
	}
}
