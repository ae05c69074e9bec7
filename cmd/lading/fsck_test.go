package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/registry"
)

// fsckStore is testStore with its image tagged a, b, c, d and e too, and
// an index idx naming it; image is the image's digest.
func fsckStore(t *testing.T) (root string, image digest.Digest) {
	t.Helper()
	root, _ = testStore(t)
	repo, _ := storeRegistry(t, root, registry.Options{}).Repository("team/app")
	ctx := context.Background()
	m, err := repo.Manifests().Get(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := json.Marshal(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{m.Descriptor}})
	if _, err := repo.Manifests().Put(ctx, m.Descriptor.Digest.String(), "", m.Payload, "a", "b", "c", "d", "e"); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Manifests().Put(ctx, "idx", "", idx); err != nil {
		t.Fatal(err)
	}
	return root, m.Descriptor.Digest
}

// fsckRun runs lading fsck on root and fails unless it answers code.
func fsckRun(t *testing.T, code int, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if got := runFsck(args, &out, &errOut); got != code {
		t.Fatalf("fsck %v: %d, want %d\n%s%s", args, got, code, out.String(), errOut.String())
	}
	return out.String()
}

// A garbage record of the image an index names is a problem reported
// with those after it, not the end of the check (3), and --repair writes
// it again from the image's bytes.
func TestFsckCommandGoesOnPastACorruptRecord(t *testing.T) {
	root, image := fsckStore(t)
	t.Setenv("LADING_CONFIG", "")
	record := "/repositories/team/app/_manifests/sha256/" + image.Encoded()
	if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(record)), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "repositories/team/app/_tags/zz"), []byte(digest.FromString("nothing")), 0o644); err != nil {
		t.Fatal(err)
	}
	out := fsckRun(t, 1, "--root", root)
	for _, want := range []string{"corrupt manifest record: " + record + " (does not decode", "dangling tag: ", "2 problems"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in:\n%s", want, out)
		}
	}
	if out := fsckRun(t, 0, "--root", root, "--repair"); !strings.Contains(out, record+" (does not decode: invalid character 'g' looking for beginning of value): repaired") {
		t.Fatalf("repair:\n%s", out)
	}
	fsckRun(t, 0, "--root", root)
}

// Files and folders its user cannot read are each reported, and the check
// goes on past them.
func TestFsckCommandGoesOnPastWhatItCannotRead(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files of mode 000")
	}
	root, image := fsckStore(t)
	t.Setenv("LADING_CONFIG", "")
	var denied []string
	for _, p := range []string{
		"blobs/sha256/" + image.Encoded()[:2] + "/" + image.Encoded(),
		"repositories/team/app/_manifests/sha256/" + image.Encoded(),
		"repositories/team/app/_tags",
	} {
		if err := os.Chmod(filepath.Join(root, p), 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(filepath.Join(root, p), 0o755) })
		denied = append(denied, p)
	}
	out := fsckRun(t, 1, "--root", root)
	for _, p := range denied {
		if want := "unreadable: /" + p + " ("; !strings.Contains(out, want) || !strings.Contains(out, "permission denied") {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "3 problems") {
		t.Errorf("problems other than the unreadable:\n%s", out)
	}
}

// --repair of an image whose bytes are damaged names every tag it
// removes, and how to restore them; a check names them beforehand.
func TestFsckCommandNamesTheTagsItRemoves(t *testing.T) {
	root, image := fsckStore(t)
	t.Setenv("LADING_CONFIG", "")
	unindex(t, root)
	blob := blobFile(root, image)
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	record := "manifest without its bytes: /repositories/team/app/_manifests/sha256/" + image.Encoded()
	for _, run := range []struct {
		repair bool
		code   int
		want   string
	}{
		{false, 1, record + " (its bytes are corrupt; tagged a, b, c, d, e, v1, which a repair removes)"},
		{true, 0, record + ": repaired, removing its tags a, b, c, d, e, v1 (push them again to restore them)"},
	} {
		if out := fsckRun(t, run.code, "--root", root, "--repair="+strconv.FormatBool(run.repair)); !strings.Contains(out, run.want) {
			t.Fatalf("no %q in:\n%s", run.want, out)
		}
	}
}

// unindex deletes the index of fsckStore, which names its image.
func unindex(t *testing.T, root string) {
	t.Helper()
	idx, err := os.ReadFile(filepath.Join(root, "repositories/team/app/_tags/idx"))
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := storeRegistry(t, root, registry.Options{}).Repository("team/app")
	if err := repo.Manifests().Delete(context.Background(), string(idx)); err != nil {
		t.Fatal(err)
	}
}

// An image an index names keeps its record and tags when its bytes are
// lost: a repair would leave the index naming nothing, and the collector
// then taking what the bytes used. fsck says to push it again.
func TestFsckCommandLeavesAnIndexedImageWithoutBytes(t *testing.T) {
	root, image := fsckStore(t)
	t.Setenv("LADING_CONFIG", "")
	if err := os.Remove(blobFile(root, image)); err != nil {
		t.Fatal(err)
	}
	want := "manifest without its bytes: /repositories/team/app/_manifests/sha256/" + image.Encoded() + " (an index names it: push the manifest again"
	for _, repair := range []bool{false, true} {
		if out := fsckRun(t, 1, "--root", root, "--repair="+strconv.FormatBool(repair)); !strings.Contains(out, want) {
			t.Fatalf("repair %v: no %q in:\n%s", repair, want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "repositories/team/app/_tags/v1")); err != nil {
		t.Fatalf("a tag of the indexed image after a repair: %v", err)
	}
}
