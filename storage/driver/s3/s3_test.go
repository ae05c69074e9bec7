package s3

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/testsuite"
)

// newTestDriver connects a driver to srv.
func newTestDriver(t testing.TB, srv testenv.S3Server, prefix string, opts ...func(*s3.Options)) *Driver {
	t.Helper()
	d, err := New(context.Background(), Config{
		Endpoint:       srv.Endpoint,
		Region:         srv.Region,
		Bucket:         srv.Bucket,
		Prefix:         prefix,
		ForcePathStyle: true,
		AccessKey:      srv.AccessKey,
		SecretKey:      srv.SecretKey,
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSuite runs the conformance suite on a real S3 server, both at the
// bucket's root (where the hidden writer tree shares the listing of "/")
// and below a prefix.
func TestSuite(t *testing.T) {
	for _, prefix := range []string{"", "registry/v1"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			srv := testenv.S3(t)
			testsuite.Run(t, func(t *testing.T) driver.Driver {
				return driver.Instrument(newTestDriver(t, srv, prefix), nil)
			})
		})
	}
}

// versitygw honours If-Match on DELETE, which the start-up probe finds, so
// RemoveObjectIf there is atomic.
func TestProbeFindsConditionalDelete(t *testing.T) {
	d := newTestDriver(t, testenv.S3(t), "")
	if !d.conditionalDelete {
		t.Fatal("conditional DELETE not found on a server that has it")
	}
}
