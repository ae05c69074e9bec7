package conformance

import (
	"testing"

	"github.com/lading-registry/lading/internal/testserver"
	authtest "github.com/lading-registry/lading/test/auth"
)

// conformancePolicy gives the suite's user its two repositories and nothing
// else, so the run also shows the policy letting through what it should,
// mounts from one repository into the other included.
const conformancePolicy = `
rules:
  - repositories: ["conformance/**"]
    users: [conformer]
    actions: ["*"]
`

var conformanceLogin = []string{"OCI_USERNAME=conformer", "OCI_PASSWORD=s3cret-conformance"}

func startWithAuth(t *testing.T, env func(*authtest.Files) []string) *testserver.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the conformance suite against a lading process")
	}
	files := authtest.Write(t, map[string]string{"conformer": "s3cret-conformance", "other": "other-password"}, conformancePolicy)
	return testserver.Start(t, testserver.Options{Env: env(files)})
}

// TestConformanceBasicAuth runs the suite as a user logging in with Basic
// credentials, which the suite sends once challenged.
func TestConformanceBasicAuth(t *testing.T) {
	srv := startWithAuth(t, (*authtest.Files).BasicEnv)
	run(t, srv, conformanceLogin)
}

// TestConformanceTokenAuth runs the suite against the built-in token
// server: on each 401 the suite asks the realm for a token with exactly the
// scope of the challenge.
func TestConformanceTokenAuth(t *testing.T) {
	srv := startWithAuth(t, (*authtest.Files).TokenEnv)
	run(t, srv, conformanceLogin)
}
