package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/imagebuild"
	"github.com/lading-registry/lading/internal/imagetest"
	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(testserver.Main(m)) }

// TestImagePushedToLadingRuns builds the image for this machine's
// platform alone (cross-compiling the others costs a minute each; the
// index of both is TestIndexHoldsAnImagePerPlatform's), pushes it into a
// real lading serve, pulls it back, and runs the binary it holds.
func TestImagePushedToLadingRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles lading and runs two servers")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image's binary runs on Linux only")
	}
	if raceDetector {
		// Its code runs in one goroutine: the plain pass covers it.
		t.Skip("slow under the race detector, and nothing concurrent to watch")
	}
	root := testserver.ModuleRoot(t)
	registry := testserver.Start(t, testserver.Options{})
	ref := registry.Addr + "/lading:test"
	build := func(out ...string) string {
		t.Helper()
		args := append([]string{"-C", root, "--platform", "linux/" + runtime.GOARCH,
			"--version", "v9.8.7-test", "--commit", "feedc0de", "--created", "2026-05-06T07:08:09Z"}, out...)
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), args, &stdout, &stderr); err != nil {
			t.Fatalf("ladingimage %v: %v\n%s", args, err, stderr.String())
		}
		return strings.TrimSpace(stdout.String())
	}
	pushed := build("--push", ref)

	// Reproducible: a second build, into a layout, gives the same digest.
	ociDir := t.TempDir()
	if again := build("--oci", ociDir, "--tag", "again"); again != pushed {
		t.Fatalf("two builds of one commit: %s, then %s", pushed, again)
	}
	lp, err := layout.FromPath(ociDir)
	if err != nil {
		t.Fatal(err)
	}
	lidx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	lim, _ := lidx.IndexManifest()
	if len(lim.Manifests) != 1 || lim.Manifests[0].Digest.String() != pushed || lim.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "again" {
		t.Fatalf("the layout's index.json lists %+v, want the image as again", lim.Manifests)
	}

	// Another tool reads the layout, and copies the index as it is.
	skopeo := testenv.Tool(t, "skopeo", "apt-get install skopeo")
	auth := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(auth, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	copyCmd := exec.Command(skopeo, "copy", "--all", "--dest-tls-verify=false", "oci:"+ociDir+":again", "docker://"+registry.Addr+"/lading:copied")
	copyCmd.Env = append(os.Environ(), "REGISTRY_AUTH_FILE="+auth)
	if out, err := copyCmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy from the layout: %v\n%s", err, out)
	}
	copiedRef, err := name.ParseReference(registry.Addr + "/lading:copied")
	if err != nil {
		t.Fatal(err)
	}
	copied, err := remote.Head(copiedRef)
	if err != nil || copied.Digest.String() != pushed {
		t.Fatalf("skopeo's copy is %v (%v), pushed %s", copied, err, pushed)
	}

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("pulling the index back: %v", err)
	}
	if d, _ := idx.Digest(); d.String() != pushed {
		t.Fatalf("lading serves %s under %s, pushed %s", d, ref, pushed)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Platform == nil || im.Manifests[0].Platform.Architecture != runtime.GOARCH {
		t.Fatalf("index lists %+v, want one image for linux/%s", im.Manifests, runtime.GOARCH)
	}
	img, err := remote.Image(r.Context().Digest(im.Manifests[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"lading"}) || !slices.Equal(c.Cmd, []string{"serve"}) {
		t.Errorf("user %q, entrypoint %q, cmd %q", c.User, c.Entrypoint, c.Cmd)
	}
	if c.Labels["org.opencontainers.image.version"] != "v9.8.7-test" || c.Labels["org.opencontainers.image.revision"] != "feedc0de" ||
		c.Labels["org.opencontainers.image.created"] != "2026-05-06T07:08:09Z" || c.Labels["org.opencontainers.image.source"] != imagebuild.SourceURL {
		t.Errorf("labels %v", c.Labels)
	}
	// The image's environment is a configuration lading takes, with the
	// data in the folder the image gives its user.
	cfg, err := config.Load("", c.Env, nil)
	if err != nil {
		t.Fatalf("the image's environment %q: %v", c.Env, err)
	}
	if cfg.Storage.Filesystem.Root != imagebuild.DataDir {
		t.Errorf("the image stores under %q, want %s", cfg.Storage.Filesystem.Root, imagebuild.DataDir)
	}

	files := flatten(t, img)
	if h := files["var/lib/lading"]; h == nil || h.Uid != imagebuild.UID || h.Typeflag != tar.TypeDir {
		t.Errorf("the data folder in the image: %+v", h)
	}
	if h := files["etc/ssl/certs/ca-certificates.crt"]; h == nil || h.Size == 0 {
		t.Errorf("no CA certificates in the image")
	}
	bin := files["usr/local/bin/lading"]
	if bin == nil || bin.Mode&0o111 == 0 {
		t.Fatalf("the binary in the image: %+v", bin)
	}
	lading := filepath.Join(t.TempDir(), "lading")
	if err := os.WriteFile(lading, bin.Data, 0o755); err != nil {
		t.Fatal(err)
	}
	// Static: the image has no dynamic loader or C library to run it.
	exe, err := elf.Open(lading)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range exe.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (program header %v)", p.Type)
		}
	}
	exe.Close()
	out, err := exec.Command(lading, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "lading v9.8.7-test\ncommit feedc0de\n") {
		t.Fatalf("lading version: %v\n%s", err, out)
	}

	// It serves (Start waits for /v2/ to answer 200) and stores what is
	// pushed under the root it is given.
	served := testserver.Start(t, testserver.Options{Binary: lading})
	probe, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := name.ParseReference(served.Addr + "/probe:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(pr, probe); err != nil {
		t.Fatalf("push into the image's lading: %v", err)
	}
	var stored int
	err = filepath.WalkDir(served.Root, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			stored++
		}
		return err
	})
	if err != nil || stored < 3 {
		t.Fatalf("%d files under the root %s after a push (%v)", stored, served.Root, err)
	}
}

func TestNeedsAnOutput(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"--platform", "linux/amd64"}, &stdout, &stderr); err == nil {
		t.Fatal("ran with neither --oci nor --push")
	}
	if err := run(t.Context(), []string{"--platform", "linux/amd64,plan9/386", "--oci", t.TempDir()}, &stdout, &stderr); err == nil {
		t.Fatal("took plan9/386")
	}
}

// flatten reads the image's file system, its layers applied in order.
func flatten(t *testing.T, img v1.Image) map[string]*imagetest.File {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]*imagetest.File{}
	for _, f := range imagetest.Files(t, rc) {
		files[strings.TrimSuffix(f.Name, "/")] = &f
	}
	return files
}
