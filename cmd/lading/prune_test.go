package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/internal/glob"
	"github.com/lading-registry/lading/registry"
)

// pruneStore is a filesystem root whose repositories hold the tags given,
// each last pushed as long ago as it says (by its file's time), each
// naming an image of its own.
func pruneStore(t *testing.T, tags map[string]map[string]time.Duration) (root string, digests map[string]digest.Digest) {
	t.Helper()
	root = t.TempDir()
	reg := storeRegistry(t, root, registry.Options{})
	ctx := context.Background()
	digests = map[string]digest.Digest{}
	for name, ages := range tags {
		repo, err := reg.Repository(name)
		if err != nil {
			t.Fatal(err)
		}
		for tag, age := range ages {
			config := []byte(`{"architecture":"amd64","os":"linux","tag":"` + name + ":" + tag + `"}`)
			d := digest.FromBytes(config)
			if _, err := repo.Blobs().Put(ctx, d, bytes.NewReader(config)); err != nil {
				t.Fatal(err)
			}
			m, _ := json.Marshal(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
				Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: d, Size: int64(len(config))}, Layers: []v1.Descriptor{}})
			pushed, err := repo.Manifests().Put(ctx, tag, "", m)
			if err != nil {
				t.Fatal(err)
			}
			digests[name+":"+tag] = pushed.Descriptor.Digest
			at := time.Now().Add(-age)
			if err := os.Chtimes(filepath.Join(root, "repositories", name, "_tags", tag), at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root, digests
}

// tagFiles lists the tags left in a repository of root.
func tagFiles(t *testing.T, root, repo string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "repositories", repo, "_tags"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var tags []string
	for _, e := range entries {
		tags = append(tags, e.Name())
	}
	return tags
}

func TestPruneCommand(t *testing.T) {
	t.Setenv("LADING_CONFIG", "")
	t.Setenv("LADING_TAGS_IMMUTABLE", "v*")
	day := 24 * time.Hour
	root, digests := pruneStore(t, map[string]map[string]time.Duration{
		"team/app": {"sha-1": 40 * day, "sha-2": 10 * day, "latest": 0, "v1": 100 * day},
		"other":    {"sha-1": 40 * day},
	})
	args := []string{"--root", root, "--repository", "team/**", "--older-than", "30d", "--verbose"}
	var out, errOut bytes.Buffer
	if code := runPrune(append(args, "--dry-run", "--gc"), &out, &errOut); code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, errOut.String())
	}
	want := "team/app: 4 tags matched, 0 kept by count, 2 kept by age, 1 kept immutable, 1 to remove\n" +
		"  would remove team/app:sha-1 " + digests["team/app:sha-1"].String() + " (pushed 40d0h ago)\n" +
		"would remove 1 of 4 matched tags in 1 repositories (a dry run removes nothing; no collection either)\n"
	if out.String() != want {
		t.Fatalf("dry run printed:\n%s\nwant:\n%s", out.String(), want)
	}
	if got := tagFiles(t, root, "team/app"); len(got) != 4 {
		t.Fatalf("the dry run left %v", got)
	}

	out.Reset()
	args = []string{"--root", root, "--repository", "team/**", "--keep", "1", "--older-than", "7d", "--tags", "sha-*", "--tags", "lat*"}
	if code := runPrune(args, &out, &errOut); code != 0 {
		t.Fatalf("prune: exit %d\n%s", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "team/app: 3 tags matched, 1 kept by count, 0 kept by age, 0 kept immutable, 2 removed\n"+
		"removed 2 of 3 matched tags in 1 repositories\n"+
		"no space is freed yet: the manifests those tags named are untagged now (unless another tag names them), and lading gc --untagged") {
		t.Fatalf("prune printed:\n%s", out.String())
	}
	if got := tagFiles(t, root, "team/app"); !slices.Equal(got, []string{"latest", "v1"}) {
		t.Fatalf("team/app kept %v, want latest and v1", got)
	}
	if got := tagFiles(t, root, "other"); !slices.Equal(got, []string{"sha-1"}) {
		t.Fatalf("other, which the pattern does not match, kept %v", got)
	}
	if errOut.Len() > 0 {
		t.Fatalf("stderr: %s", errOut.String())
	}

	// On --root alone, with no rule in force, it says where the rules are.
	t.Setenv("LADING_TAGS_IMMUTABLE", "")
	if code := runPrune([]string{"--root", root, "--repository", "other", "--keep", "1", "--dry-run"}, &out, &errOut); code != 0 ||
		!strings.Contains(errOut.String(), "no tags.immutable in force") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

// A command line that would remove every tag, or that cannot be read, is
// refused before the store is opened (exit 2).
func TestPruneCommandRefusals(t *testing.T) {
	t.Setenv("LADING_CONFIG", "")
	root := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--keep", "3"}, "--repository is required"},
		{[]string{"--repository", "team/*"}, "give --keep, --older-than or both"},
		{[]string{"--repository", "team/*", "--tags", "sha-*", "--dry-run"}, "give --keep, --older-than or both"},
		{[]string{"--repository", "team/*", "--keep", "-1"}, "--keep must be 0 or more"},
		{[]string{"--repository", "team/*", "--older-than", "-1h"}, "want a duration of 0 or more"},
		{[]string{"--repository", "team/*", "--older-than", "3 weeks"}, "want a duration of 0 or more"},
		// Days past what a time.Duration holds, which would wrap to 25 minutes.
		{[]string{"--repository", "team/*", "--older-than", "213504d"}, "want a duration of 0 or more"},
		{[]string{"--repository", "team/*", "--keep", "1", "--tags", "a/b"}, "a tag holds no /"},
		{[]string{"--repository", "team/*", "--keep", "1", "--tags", "[a"}, "syntax error in pattern"},
		{[]string{"--repository", "team/*", "--keep", "1", "--tags", "pr-*,"}, "an empty pattern"},
		{[]string{"--repository", "Team/*", "--keep", "1"}, "can never match"},
		{[]string{"--repository", "team/*", "--keep", "1", "extra"}, "unexpected arguments"},
	} {
		var out, errOut bytes.Buffer
		if code := runPrune(append([]string{"--root", root}, tc.args...), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
	// A rule given whole goes through, --older-than 0 included, on a store
	// with nothing to match.
	var out, errOut bytes.Buffer
	if code := runPrune([]string{"--root", root, "--repository", "**", "--older-than", "0s"}, &out, &errOut); code != 0 || out.String() != "removed 0 of 0 matched tags in 0 repositories\n" {
		t.Errorf("an empty store: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}

// An interrupt stops the run (exit 1), says so once, and the summary says
// what was removed before it.
func TestPruneInterrupted(t *testing.T) {
	root, _ := pruneStore(t, map[string]map[string]time.Duration{"a": {"old": 48 * time.Hour}, "b": {"old": 48 * time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	p := pruner{reg: storeRegistry(t, root, registry.Options{}), stdout: &out, stderr: &errOut,
		opts: registry.PruneOptions{OlderThan: time.Hour}}
	every, _ := glob.Compile("**")
	if code := p.run(ctx, every); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	p.summary(time.Hour, false, false)
	if errOut.String() != "lading prune: interrupted; the tags removed stay removed, run it again to go on\n" ||
		!strings.HasPrefix(out.String(), "stopped; removed so far 0 of ") {
		t.Fatalf("an interrupted run printed:\n%s\nand on stderr:\n%s", out.String(), errOut.String())
	}
	if got := tagFiles(t, root, "a"); len(got) != 1 {
		t.Fatalf("a kept %v", got)
	}
}

// --tags takes a retention rule's comma-separated list as well, so a rule
// tried with the command matches what it will match in the configuration.
func TestPruneTagsFlagSplitsCommas(t *testing.T) {
	var p tagPatterns
	for _, v := range []string{"pr-*, sha-*", "v1"} {
		if err := p.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(p, tagPatterns{"pr-*", "sha-*", "v1"}) {
		t.Errorf("%q", p)
	}
}
