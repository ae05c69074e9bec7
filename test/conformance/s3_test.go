package conformance

import (
	"testing"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

// TestConformanceS3 runs the same categories as TestConformance with every
// blob, manifest, tag and upload session kept in a real S3 server, as
// replicas keep them.
func TestConformanceS3(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the conformance suite against a lading process on S3")
	}
	s3 := testenv.S3(t)
	srv := testserver.Start(t, testserver.Options{Env: testserver.S3Env(s3)})
	run(t, srv, nil)
}
