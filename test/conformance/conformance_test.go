// Package conformance runs the OCI distribution-spec conformance suite
// (the pinned tool in go.mod) against a real `lading serve`.
package conformance

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lading-registry/lading/internal/testserver"
)

const suite = "github.com/opencontainers/distribution-spec/conformance"

// ociEnv turns on every API and data category of the v1.1 suite. Sparse
// manifests stay off: Lading, like most registries, refuses a manifest
// whose blobs were not pushed, which the spec allows.
var ociEnv = []string{
	"OCI_TLS=disabled",
	"OCI_VERSION=1.1",
	"OCI_REPO1=conformance/repo1",
	"OCI_REPO2=conformance/repo2",
	"OCI_LOG=warn",
	"OCI_API_PING=true",
	"OCI_API_PULL=true",
	"OCI_API_PUSH=true",
	"OCI_API_BLOBS_ATOMIC=true",
	"OCI_API_BLOBS_DELETE=true",
	"OCI_API_BLOBS_DIGEST_HEADER=true",
	"OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
	"OCI_API_BLOBS_UPLOAD_CANCEL=true",
	"OCI_API_MANIFESTS_ATOMIC=true",
	"OCI_API_MANIFESTS_DELETE=true",
	"OCI_API_MANIFESTS_DIGEST_HEADER=true",
	"OCI_API_MANIFESTS_TAG_PARAM=true",
	"OCI_API_TAGS_ATOMIC=true",
	"OCI_API_TAGS_DELETE=true",
	"OCI_API_TAGS_LIST=true",
	"OCI_API_REFERRER=true",
	"OCI_DATA_IMAGE=true",
	"OCI_DATA_INDEX=true",
	"OCI_DATA_INDEX_LIST=true",
	"OCI_DATA_SPARSE=false",
	"OCI_DATA_ARTIFACT=true",
	"OCI_DATA_SUBJECT=true",
	"OCI_DATA_SUBJECT_MISSING=true",
	"OCI_DATA_ARTIFACT_LIST=true",
	"OCI_DATA_SUBJECT_LIST=true",
	"OCI_DATA_DATA_FIELD=true",
	"OCI_DATA_NONDISTRIBUTABLE=true",
	"OCI_DATA_CUSTOM_FIELDS=true",
	"OCI_DATA_NO_LAYERS=true",
	"OCI_DATA_EMPTY_BLOB=true",
	"OCI_DATA_SHA512=true",
}

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the conformance suite against a lading process")
	}
	srv := testserver.Start(t, testserver.Options{})
	run(t, srv, nil)
}

// run executes the suite against srv, with extra OCI_* settings (such as
// OCI_USERNAME and OCI_PASSWORD for a registry with auth), and fails t
// with every failing case unless there are none.
func run(t *testing.T, srv *testserver.Server, extraEnv []string) {
	t.Helper()
	bin := testserver.Build(t, suite)
	results := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = results
	cmd.Env = append(withoutOCI(os.Environ()), ociEnv...)
	cmd.Env = append(cmd.Env, "OCI_REGISTRY="+srv.Addr, "OCI_RESULTS_DIR="+results)
	cmd.Env = append(cmd.Env, extraEnv...)
	out, runErr := cmd.CombinedOutput()

	raw, err := os.ReadFile(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("no junit.xml (suite exit: %v):\n%s", runErr, out)
	}
	var report junitReport
	if err := xml.Unmarshal(raw, &report); err != nil {
		t.Fatalf("parsing junit.xml: %v", err)
	}
	counts := map[string]int{}
	var failed []junitCase
	for _, s := range report.Suites {
		for _, c := range s.Cases {
			counts[c.Status]++
			if c.Status == "failure" || c.Status == "error" {
				failed = append(failed, c)
			}
		}
	}
	t.Logf("conformance: %d cases passed, %d failed, %d errors, %d skipped\n%s",
		counts["passed"], counts["failure"], counts["error"], counts["skipped"], totals(out))
	for _, c := range failed {
		t.Errorf("%s: %s\n%s", c.Status, c.Name, indent(c.SystemOut))
	}
	if len(failed) == 0 && runErr != nil {
		t.Errorf("suite exited with %v and no failing case:\n%s", runErr, out)
	}
	if counts["passed"] == 0 {
		t.Errorf("no case passed:\n%s", out)
	}
	if t.Failed() {
		t.Logf("suite summary:\n%s", summary(out))
	}
}

type junitReport struct {
	Suites []struct {
		Cases []junitCase `xml:"testcase"`
	} `xml:"testsuite"`
}

type junitCase struct {
	Name      string `xml:"name,attr"`
	Status    string `xml:"status,attr"`
	SystemOut string `xml:"system-out"`
}

func withoutOCI(env []string) []string {
	var kept []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "OCI_") {
			kept = append(kept, kv)
		}
	}
	return kept
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
}

// totals is the suite's own count of results, from its console report.
func totals(out []byte) string {
	s := summary(out)
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// summary is the suite's console report from its result counts on, which
// lists API and data conformance without the per-case noise.
func summary(out []byte) string {
	s := string(out)
	if i := strings.Index(s, "OCI Conformance Result"); i >= 0 {
		return s[i:]
	}
	return s
}
