package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lading-registry/lading/cache"
	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

// storeRegistry opens the filesystem store at root as the store commands
// do.
func storeRegistry(t *testing.T, root string, opts registry.Options) *registry.Registry {
	t.Helper()
	fsd, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return registry.New(driver.Instrument(fsd, nil), opts)
}

// testStore is a filesystem registry root holding one tagged image and one
// blob nothing uses.
func testStore(t *testing.T) (root string, stray digest.Digest) {
	t.Helper()
	root = t.TempDir()
	reg := storeRegistry(t, root, registry.Options{})
	repo, _ := reg.Repository("team/app")
	ctx := context.Background()
	put := func(b []byte) v1.Descriptor {
		d := digest.FromBytes(b)
		if _, err := repo.Blobs().Put(ctx, d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: d, Size: int64(len(b))}
	}
	config := put([]byte(`{"architecture":"amd64","os":"linux"}`))
	config.MediaType = v1.MediaTypeImageConfig
	m, _ := json.Marshal(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		Config: config, Layers: []v1.Descriptor{put([]byte("layer"))}})
	if _, err := repo.Manifests().Put(ctx, "v1", "", m); err != nil {
		t.Fatal(err)
	}
	return root, put([]byte("nothing uses this")).Digest
}

func blobFile(root string, d digest.Digest) string {
	return filepath.Join(root, "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())
}

func TestGCCommand(t *testing.T) {
	root, stray := testStore(t)
	t.Setenv("LADING_CONFIG", "")
	var out, errOut bytes.Buffer
	args := []string{"--root", root, "--grace", "0s", "--window", "1ms"}
	if code := runGC(append(args, "--dry-run"), &out, &errOut); code != 0 {
		t.Fatalf("dry run: %d %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "would remove blob "+stray.String()+" (17 B)") ||
		!strings.Contains(out.String(), "would remove 0 manifests, 1 repository links, 1 blobs (17 B) and 0 repositories empty already (those the run would empty are not counted in a dry run) in ") {
		t.Fatalf("dry run printed:\n%s", out.String())
	}
	if _, err := os.Stat(blobFile(root, stray)); err != nil {
		t.Fatalf("dry run removed the blob: %v", err)
	}
	out.Reset()
	if code := runGC(args, &out, &errOut); code != 0 {
		t.Fatalf("gc: %d %s", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "removed 0 manifests, 1 repository links, 1 blobs (17 B) and 0 repositories in ") {
		t.Fatalf("gc printed:\n%s", out.String())
	}
	if _, err := os.Stat(blobFile(root, stray)); !os.IsNotExist(err) {
		t.Fatalf("stray blob: %v", err)
	}
	// The image's config, layer and manifest.
	if !strings.HasSuffix(out.String(), "\nleft 3 blobs (435 B) stored\n") {
		t.Errorf("gc printed:\n%s", out.String())
	}
	// The configured grace (24 hours by default) protects what is young.
	out.Reset()
	root2, stray2 := testStore(t)
	if code := runGC([]string{"--root", root2, "--window", "1ms"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "removed 0 manifests, 0 repository links, 0 blobs") {
		t.Fatalf("gc with the default grace: %d %s %s", code, out.String(), errOut.String())
	}
	if _, err := os.Stat(blobFile(root2, stray2)); err != nil {
		t.Fatal(err)
	}
}

// The statuses keep apart a mistake in the command (2) and a store that
// cannot be opened (gc 1, fsck 3); fsck's 1, for a store with problems, is
// TestFsckCommand's.
// A scheduled job may run gc and fsck with the serve configuration without
// the certificate and password files serve reads.
func TestStoreCommandsLeaveServingFiles(t *testing.T) {
	t.Setenv("LADING_CONFIG", "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "lading.yaml")
	os.Mkdir(filepath.Join(dir, "data"), 0o700)
	os.WriteFile(cfg, []byte("http:\n  tls:\n    cert: /nonexistent/c.pem\n    key: /nonexistent/k.pem\nauth:\n  htpasswd:\n    path: /nonexistent/htpasswd\n"+
		"storage:\n  filesystem:\n    root: "+filepath.Join(dir, "data")+"\n"), 0o600)
	for name, run := range map[string]func([]string, io.Writer, io.Writer) int{"gc": runGC, "fsck": runFsck} {
		var out, errOut bytes.Buffer
		if code := run([]string{"--config", cfg}, &out, &errOut); code != 0 {
			t.Errorf("%s with the serve configuration: exit %d\n%s", name, code, errOut.String())
		}
	}
}

func TestStoreCommandRefusals(t *testing.T) {
	t.Setenv("LADING_CONFIG", "")
	inmemory := filepath.Join(t.TempDir(), "inmemory.yaml")
	os.WriteFile(inmemory, []byte("storage:\n  driver: inmemory\n"), 0o600)
	for _, tc := range []struct {
		cmd  string
		args []string
		code int
		err  string
	}{
		{"gc", []string{"--root", filepath.Join(t.TempDir(), "missing")}, 1, "no such file"},
		{"gc", []string{"--grace", "soon"}, 2, "invalid value"},
		{"gc", []string{"extra"}, 2, "unexpected arguments"},
		{"gc", []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, 2, "configuration"},
		{"fsck", []string{"--root", filepath.Join(t.TempDir(), "missing")}, 3, "no such file"},
		{"fsck", []string{"--repair=maybe"}, 2, "invalid"},
		{"fsck", []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, 2, "configuration"},
		{"gc", []string{"--root", filepath.Join(t.TempDir(), "missing"), "--grace=-1h"}, 2, "--grace must be 0 or more"},
		{"gc", []string{"--root", t.TempDir(), "--window", "0s"}, 2, "--window more than 0"},
		{"gc", []string{"--config", inmemory}, 2, "no store here"},
		{"fsck", []string{"--config", inmemory}, 2, "no store here"},
	} {
		run := runGC
		if tc.cmd == "fsck" {
			run = runFsck
		}
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.err) {
			t.Errorf("%s %v: %d %q", tc.cmd, tc.args, code, errOut.String())
		}
	}
}

func TestFsckCommand(t *testing.T) {
	root, stray := testStore(t)
	t.Setenv("LADING_CONFIG", "")
	var out, errOut bytes.Buffer
	if code := runFsck([]string{"--root", root}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "checked 4 blobs") {
		t.Fatalf("clean store: %d %s %s", code, out.String(), errOut.String())
	}
	if err := os.WriteFile(blobFile(root, stray), []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := runFsck([]string{"--root", root}, &out, &errOut); code != 1 || !strings.Contains(out.String(), "corrupt blob: /blobs/sha256/") {
		t.Fatalf("corrupt store: %d %s", code, out.String())
	}
	out.Reset()
	if code := runFsck([]string{"--root", root, "--repair"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "2 problems, 2 repaired") {
		t.Fatalf("repair: %d %s", code, out.String())
	}
	out.Reset()
	if code := runFsck([]string{"--root", root}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "0 problems") {
		t.Fatalf("after repair: %d %s", code, out.String())
	}
}

// With Redis configured, what lading gc removes leaves the cache the
// serving replicas share, so none answers from a stale entry.
func TestGCCommandInvalidatesRedis(t *testing.T) {
	root, stray := testStore(t)
	addr := testenv.Redis(t)
	t.Setenv("LADING_CONFIG", "")
	rc := cache.NewRedis(cache.RedisOptions{Addr: addr})
	defer rc.Close()
	serving := storeRegistry(t, root, registry.Options{Cache: rc})
	repo, _ := serving.Repository("team/app")
	if _, err := repo.Blobs().Stat(context.Background(), stray); err != nil { // now cached
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "lading.yaml")
	yaml := "storage:\n  driver: filesystem\n  filesystem:\n    root: " + root + "\nredis:\n  addr: " + addr + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := runGC([]string{"--config", cfg, "--grace", "0s", "--window", "1ms"}, &out, &errOut); code != 0 {
		t.Fatalf("gc: %d %s", code, errOut.String())
	}
	if _, err := repo.Blobs().Stat(context.Background(), stray); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Fatalf("serving replica still sees the collected blob: %v", err)
	}
}
