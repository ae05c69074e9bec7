package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// distributionTree is a Distribution storage root whose repository app
// links one blob the tree holds and, when missing, one it does not.
func distributionTree(t *testing.T, missing bool) string {
	t.Helper()
	root := t.TempDir()
	v2 := filepath.Join(root, "docker", "registry", "v2")
	write := func(p string, b []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(d digest.Digest) {
		write(filepath.Join(v2, "repositories", "app", "_layers", "sha256", d.Encoded(), "link"), []byte(d))
	}
	blob := []byte("a layer")
	d := digest.FromBytes(blob)
	write(filepath.Join(v2, "blobs", "sha256", d.Encoded()[:2], d.Encoded(), "data"), blob)
	link(d)
	if missing {
		link(digest.FromString("gone"))
	}
	return root
}

func TestImportCommand(t *testing.T) {
	t.Setenv("LADING_CONFIG", "")
	src := distributionTree(t, false)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no source", []string{"--root", t.TempDir()}, 2, "", "DISTRIBUTION_ROOT (Distribution's storage.filesystem.rootdirectory) missing"},
		{"not a source", []string{"--root", t.TempDir(), t.TempDir()}, 2, "", "holds no Distribution storage"},
		{"bad pattern", []string{"--root", t.TempDir(), "--repository", "a[", src}, 2, "", "syntax error in pattern"},
		{"two sources", []string{"--root", t.TempDir(), src, src}, 2, "", "unexpected arguments"},
		{"flags after the source", []string{src, "--root", t.TempDir(), "--dry-run"}, 0, "app: blobs 1 to copy (7 B)", ""},
		{"filtered out", []string{"--root", t.TempDir(), "--repository", "other/*", src}, 0, "imported 0 repositories", ""},
		{"imported", []string{"--root", t.TempDir(), src}, 0, "imported 1 repositories from " + filepath.Join(src, "docker/registry/v2") + ": blobs 1 copied (7 B)", ""},
		{"a problem", []string{"--root", t.TempDir(), distributionTree(t, true)}, 1, "1 problems", "lading import: app: blob " + digest.FromString("gone").String() + ": missing from the source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append([]string{"import"}, tc.args...), &out, &errOut)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errOut.String(), tc.stderr) || (tc.stderr == "" && errOut.Len() > 0) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errOut.String())
			}
		})
	}
}

// TestImportManifestLimit checks that the import follows the servers'
// limit on manifests, which the configuration sets.
func TestImportManifestLimit(t *testing.T) {
	src := distributionTree(t, false)
	big := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","padding":"` + strings.Repeat("x", 200) + `"}`)
	d := digest.FromBytes(big)
	v2 := filepath.Join(src, "docker", "registry", "v2")
	for p, b := range map[string][]byte{
		filepath.Join(v2, "blobs", "sha256", d.Encoded()[:2], d.Encoded(), "data"):                         big,
		filepath.Join(v2, "repositories", "app", "_manifests", "revisions", "sha256", d.Encoded(), "link"): []byte(d),
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("LADING_CONFIG", "")
	t.Setenv("LADING_HTTP_MAXMANIFESTSIZE", "100")
	var out, errOut bytes.Buffer
	if code := run([]string{"import", "--root", t.TempDir(), src}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "larger than the 100 bytes") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
}
