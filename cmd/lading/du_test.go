package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/bytesize"
	"github.com/lading-registry/lading/registry"
)

// duStore is testStore (team/app linking a config, a layer of 5 bytes,
// a manifest and a blob of 17 bytes no manifest uses) with the layer
// mounted into team/web too, and a blob of 8 bytes that no repository
// links.
func duStore(t *testing.T) (root string) {
	t.Helper()
	root, _ = testStore(t)
	web, _ := storeRegistry(t, root, registry.Options{}).Repository("team/web")
	if _, err := web.Blobs().Mount(context.Background(), "team/app", digest.FromString("layer")); err != nil {
		t.Fatal(err)
	}
	unlinked := blobFile(root, digest.FromString("unlinked"))
	if err := os.MkdirAll(filepath.Dir(unlinked), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unlinked, []byte("unlinked"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func duRun(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(append([]string{"du"}, args...), &out, &errOut); code != 0 {
		t.Fatalf("du %v: %d\n%s%s", args, code, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

func TestDuCommand(t *testing.T) {
	root := duStore(t)
	t.Setenv("LADING_CONFIG", "")

	out, _ := duRun(t, "--root", root, "--json", "--top", "1")
	var rep struct {
		registry.UsageReport
		MoreRepositories int `json:"moreRepositories"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(rep.Repositories) != 1 || rep.MoreRepositories != 1 || rep.StoredBlobs != 5 || rep.UnlinkedBlobs != 1 || rep.UnlinkedBytes != 8 {
		t.Fatalf("json: %+v\n%s", rep, out)
	}
	app := rep.Repositories[0]
	if app.Name != "team/app" || app.LinkedBlobs != 4 || app.ExclusiveBlobs != 3 || app.LinkedBytes != app.ExclusiveBytes+5 ||
		rep.StoredBytes != app.LinkedBytes+8 || app.Manifests != 1 || app.Tags != 1 {
		t.Fatalf("team/app: %+v", app)
	}
	for _, key := range []string{`"linkedBytes"`, `"exclusiveBytes"`, `"storedBytes"`, `"unlinkedBlobs"`, `"damaged": 0`} {
		if !strings.Contains(out, key) {
			t.Fatalf("no %s in:\n%s", key, out)
		}
	}

	out, _ = duRun(t, "--root", root)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"REPOSITORY LINKED BLOBS EXCLUSIVE BLOBS MANIFESTS TAGS",
		fmt.Sprintf("team/app %s 4 %s 3 1 1", bytesize.Format(app.LinkedBytes), bytesize.Format(app.ExclusiveBytes)),
		"team/web 5 B 1 0 B 0 0 0",
		fmt.Sprintf("stored: 5 blobs (%s), each once; linked by no repository: 1 blobs (8 B)", bytesize.Format(rep.StoredBytes)),
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out)
	}
	for i, w := range want {
		if got := strings.Join(strings.Fields(lines[i]), " "); got != w {
			t.Fatalf("line %d: %q, want %q\n%s", i, got, w, out)
		}
	}

	// team/app's layer is still shared when team/web is not reported.
	out, _ = duRun(t, "--root", root, "--repository", "team/a*", "--json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Repositories) != 1 || rep.Repositories[0] != app || rep.MoreRepositories != 0 {
		t.Fatalf("--repository team/a*: %+v", rep)
	}
	out, _ = duRun(t, "--root", root, "--repository", "other/**")
	if !strings.HasPrefix(out, "REPOSITORY") || strings.Contains(out, "team/") {
		t.Fatalf("--repository other/**:\n%s", out)
	}

	// What is not what its place holds is named, and the report goes on.
	stray := filepath.Join(root, "repositories/team/app/_tags/.v1.swp")
	if err := os.WriteFile(stray, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs := duRun(t, "--root", root)
	if !strings.Contains(errs, "lading du: passed over /repositories/team/app/_tags/.v1.swp: not a tag\n") ||
		!strings.Contains(errs, "1 entries passed over") || !strings.Contains(out, "team/web") {
		t.Fatalf("a stray among the tags:\n%s%s", out, errs)
	}

	var errOut bytes.Buffer
	if code := runDu([]string{"--root", root, "--repository", "Team/*"}, &bytes.Buffer{}, &errOut); code != 2 || !strings.Contains(errOut.String(), "lower-case") {
		t.Fatalf("a pattern no name matches: %d %s", code, errOut.String())
	}
	if code := runDu([]string{"--root", root, "--top", "-1"}, &bytes.Buffer{}, &errOut); code != 2 {
		t.Fatalf("--top -1: %d", code)
	}
}
