// Package clients drives a real `lading serve` with the command-line clients
// users push and pull with: oras, helm, regctl, skopeo, podman, containerd
// (ctr, against a containerd daemon of the test's own) and cosign.
// scripts/test.sh installs each at the version named below; a test fails
// under CI=true when one is missing. Every server answer is checked too: a
// 5xx in the access log fails the test (testserver). The docker command is
// not driven: it needs a Docker engine, which these machines do not run.
package clients

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

// The install commands, as scripts/test.sh runs them.
const (
	orasInstall   = "go install oras.land/oras/cmd/oras@v1.3.6"
	helmInstall   = "go install helm.sh/helm/v3/cmd/helm@v3.22.0"
	regctlInstall = "go install github.com/regclient/regclient/cmd/regctl@v0.11.7"
	cosignInstall = "go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5"
	skopeoInstall = "apt-get install skopeo"
	podmanInstall = "apt-get install podman"
	ctrInstall    = "apt-get install containerd"
)

// client runs one command-line tool in a directory of its own, with a home
// of its own so that no configuration or credential of the machine's is
// read and none is left behind.
type client struct {
	t    *testing.T
	path string
	dir  string
	env  []string
}

func newClient(t *testing.T, name, install string, env ...string) *client {
	t.Helper()
	path := testenv.Tool(t, name, install)
	dir := t.TempDir()
	home := filepath.Join(dir, ".home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	env = append([]string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"), "XDG_DATA_HOME=" + filepath.Join(home, ".local"),
		"PATH=" + os.Getenv("PATH"), "TMPDIR=" + os.TempDir()}, env...)
	return &client{t: t, path: path, dir: dir, env: env}
}

// run runs the tool and returns its standard output; a failure ends the
// test with everything the tool printed.
func (c *client) run(args ...string) string {
	c.t.Helper()
	out, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", filepath.Base(c.path), strings.Join(args, " "), err, out)
	}
	return out
}

// try runs the tool and returns its standard output, or, when it fails,
// everything it printed with the error.
func (c *client) try(args ...string) (string, error) {
	c.t.Helper()
	cmd := exec.Command(c.path, args...)
	cmd.Dir, cmd.Env = c.dir, c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// file writes content to name in the client's directory.
func (c *client) file(name, content string) string {
	c.t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *client) read(name string) string {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, name))
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b)
}

func start(t *testing.T) *testserver.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs lading and client programs")
	}
	return testserver.Start(t, testserver.Options{})
}

// pushImage pushes a random three-layer image with go-containerregistry and
// returns its digest.
func pushImage(t *testing.T, ref string) v1.Hash {
	t.Helper()
	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// mustContain fails unless out contains every one of want.
func mustContain(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("%s: %q missing from:\n%s", what, w, out)
		}
	}
}

func TestOras(t *testing.T) {
	srv := start(t)
	oras := newClient(t, "oras", orasInstall)
	repo := srv.Addr + "/clients/oras"
	oras.file("notes.txt", "release notes\n")
	oras.run("push", "--plain-http", repo+":v1", "--artifact-type", "application/vnd.lading.test", "notes.txt:text/plain")

	oras.run("pull", "--plain-http", repo+":v1", "-o", "pulled")
	if got := oras.read("pulled/notes.txt"); got != "release notes\n" {
		t.Fatalf("pulled %q", got)
	}
	mustContain(t, "repo tags", oras.run("repo", "tags", "--plain-http", repo), "v1")

	// A referrer, found through the referrers API.
	oras.file("sig.txt", "signed\n")
	oras.run("attach", "--plain-http", repo+":v1", "--artifact-type", "application/vnd.lading.sig", "sig.txt:text/plain")
	var tree struct {
		Digest    string `json:"digest"`
		Referrers []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
		} `json:"referrers"`
	}
	if err := json.Unmarshal([]byte(oras.run("discover", "--plain-http", "--format", "json", repo+":v1")), &tree); err != nil {
		t.Fatal(err)
	}
	if len(tree.Referrers) != 1 || tree.Referrers[0].ArtifactType != "application/vnd.lading.sig" {
		t.Fatalf("referrers of %s: %+v", tree.Digest, tree.Referrers)
	}

	// A copy with its referrers to another repository mounts the blobs.
	copied := srv.Addr + "/clients/copy"
	mustContain(t, "cp", oras.run("cp", "-r", "--from-plain-http", "--to-plain-http", repo+":v1", copied+":v1"), "Mounted")
	mustContain(t, "discover after cp", oras.run("discover", "--plain-http", "--format", "json", copied+":v1"), tree.Referrers[0].Digest)
	mustContain(t, "repo ls", oras.run("repo", "ls", "--plain-http", srv.Addr+"/clients"), "oras", "copy")

	// Deleting the referrer takes it out of the referrers list.
	oras.run("manifest", "delete", "--plain-http", "--force", repo+"@"+tree.Referrers[0].Digest)
	if out := oras.run("discover", "--plain-http", "--format", "json", repo+":v1"); strings.Contains(out, tree.Referrers[0].Digest) {
		t.Fatalf("deleted referrer still listed:\n%s", out)
	}
	if out, err := oras.try("manifest", "fetch", "--plain-http", repo+"@"+tree.Referrers[0].Digest); err == nil {
		t.Fatalf("deleted manifest fetched:\n%s", out)
	}
}

func TestHelm(t *testing.T) {
	srv := start(t)
	home := t.TempDir()
	helm := newClient(t, "helm", helmInstall, "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	helm.run("create", "lading-chart")
	helm.run("package", "lading-chart", "-d", "packaged")
	const chart = "lading-chart-0.1.0.tgz"
	helm.run("push", filepath.Join("packaged", chart), "oci://"+srv.Addr+"/charts", "--plain-http")

	ref := "oci://" + srv.Addr + "/charts/lading-chart"
	mustContain(t, "show chart", helm.run("show", "chart", ref, "--version", "0.1.0", "--plain-http"), "name: lading-chart", "version: 0.1.0")
	if err := os.Mkdir(filepath.Join(helm.dir, "pulled"), 0o755); err != nil {
		t.Fatal(err)
	}
	helm.run("pull", ref, "--version", "0.1.0", "--plain-http", "-d", "pulled")
	if helm.read(filepath.Join("pulled", chart)) != helm.read(filepath.Join("packaged", chart)) {
		t.Fatal("pulled chart differs from the pushed one")
	}
	mustContain(t, "template", helm.run("template", "release", ref, "--version", "0.1.0", "--plain-http"), "kind: Deployment")
}

func TestRegctl(t *testing.T) {
	srv := start(t)
	regctl := newClient(t, "regctl", regctlInstall)
	regctl.run("registry", "set", srv.Addr, "--tls", "disabled")
	src := srv.Addr + "/clients/src"
	d := pushImage(t, src+":v1")

	if got := strings.TrimSpace(regctl.run("image", "digest", src+":v1")); got != d.String() {
		t.Fatalf("image digest %s, pushed %s", got, d)
	}
	dst := srv.Addr + "/clients/dst"
	regctl.run("image", "copy", src+":v1", dst+":v1")
	if got := strings.TrimSpace(regctl.run("image", "digest", dst+":v1")); got != d.String() {
		t.Fatalf("copy's digest %s, source's %s", got, d)
	}
	regctl.run("image", "check-base", dst+":v1", "--base", src+":v1")
	regctl.run("tag", "ls", dst) // listed below, after a second tag
	regctl.run("image", "copy", dst+":v1", dst+":v2")
	if tags := strings.Fields(regctl.run("tag", "ls", dst)); !slices.Equal(tags, []string{"v1", "v2"}) {
		t.Fatalf("tags %v", tags)
	}
	mustContain(t, "repo ls", regctl.run("repo", "ls", srv.Addr), "clients/src", "clients/dst")

	regctl.file("sbom.json", `{"packages":[]}`)
	regctl.run("artifact", "put", "--subject", dst+":v1", "--artifact-type", "application/vnd.lading.sbom", "-f", "sbom.json")
	mustContain(t, "artifact list", regctl.run("artifact", "list", dst+":v1", "--format", "{{range .Descriptors}}{{.ArtifactType}} {{end}}"), "application/vnd.lading.sbom")
	mustContain(t, "artifact get", regctl.run("artifact", "get", "--subject", dst+":v1", "--filter-artifact-type", "application/vnd.lading.sbom"), `{"packages":[]}`)

	regctl.run("tag", "delete", dst+":v2")
	if tags := strings.Fields(regctl.run("tag", "ls", dst)); !slices.Equal(tags, []string{"v1"}) {
		t.Fatalf("tags after delete %v", tags)
	}
	regctl.run("manifest", "delete", dst+"@"+d.String(), "--force-tag-dereference")
	if out, err := regctl.try("manifest", "head", dst+"@"+d.String()); err == nil {
		t.Fatalf("deleted manifest still there:\n%s", out)
	}
}

func TestSkopeo(t *testing.T) {
	srv := start(t)
	skopeo := newClient(t, "skopeo", skopeoInstall)
	src := "docker://" + srv.Addr + "/clients/src"
	d := pushImage(t, srv.Addr+"/clients/src:v1")
	var info struct {
		Digest string
		Layers []string
	}
	if err := json.Unmarshal([]byte(skopeo.run("inspect", "--tls-verify=false", src+":v1")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Digest != d.String() || len(info.Layers) != 3 {
		t.Fatalf("inspect: %+v, pushed %s with 3 layers", info, d)
	}
	// Registry to registry, to an OCI layout and back, converting to OCI
	// media types on the way.
	dst := "docker://" + srv.Addr + "/clients/dst"
	skopeo.run("copy", "--insecure-policy", "--src-tls-verify=false", "--dest-tls-verify=false", src+":v1", dst+":v1")
	skopeo.run("copy", "--insecure-policy", "--src-tls-verify=false", dst+":v1", "oci:layout:v1")
	skopeo.run("copy", "--insecure-policy", "--dest-tls-verify=false", "--format", "oci", "oci:layout:v1", dst+":oci")
	mustContain(t, "inspect --raw", skopeo.run("inspect", "--raw", "--tls-verify=false", dst+":oci"), "application/vnd.oci.image.manifest.v1+json")
	var tags struct{ Tags []string }
	if err := json.Unmarshal([]byte(skopeo.run("list-tags", "--tls-verify=false", dst)), &tags); err != nil {
		t.Fatal(err)
	}
	if slices.Sort(tags.Tags); !slices.Equal(tags.Tags, []string{"oci", "v1"}) {
		t.Fatalf("tags %v", tags.Tags)
	}
	skopeo.run("delete", "--tls-verify=false", dst+":v1")
	if out, err := skopeo.try("inspect", "--tls-verify=false", dst+":v1"); err == nil {
		t.Fatalf("deleted image still there:\n%s", out)
	}
}

func TestCosign(t *testing.T) {
	srv := start(t)
	cosign := newClient(t, "cosign", cosignInstall, "COSIGN_PASSWORD=", "COSIGN_YES=true")
	ref := srv.Addr + "/clients/signed"
	d := pushImage(t, ref+":v1")
	byDigest := ref + "@" + d.String()
	cosign.run("generate-key-pair")
	insecure := []string{"--allow-http-registry", "--allow-insecure-registry"}

	// The classic scheme: the signature under a tag named after the digest.
	cosign.run(append([]string{"sign", "--key", "cosign.key", "--tlog-upload=false"}, append(insecure, byDigest)...)...)
	mustContain(t, "triangulate", cosign.run(append([]string{"triangulate"}, append(insecure, byDigest)...)...), "sha256-"+d.Hex+".sig")
	cosign.run(append([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog"}, append(insecure, ref+":v1")...)...)

	// The OCI 1.1 scheme: the signature as a referrer of the image.
	other := srv.Addr + "/clients/referred"
	od := pushImage(t, other+":v1")
	cosign.env = append(cosign.env, "COSIGN_EXPERIMENTAL=1")
	cosign.run(append([]string{"sign", "--key", "cosign.key", "--tlog-upload=false", "--registry-referrers-mode=oci-1-1"}, append(insecure, other+"@"+od.String())...)...)
	cosign.run(append([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog", "--experimental-oci11"}, append(insecure, other+":v1")...)...)

	// A tampered key does not verify.
	cosign.run("generate-key-pair", "--output-key-prefix", "other")
	if out, err := cosign.try(append([]string{"verify", "--key", "other.pub", "--insecure-ignore-tlog"}, append(insecure, ref+":v1")...)...); err == nil {
		t.Fatalf("verified with the wrong key:\n%s", out)
	}
}

// asRoot skips a test of a client that needs root for its local storage
// (podman's and containerd's); CI runs as root.
func asRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for the client's own image store")
	}
}

func TestPodman(t *testing.T) {
	srv := start(t)
	asRoot(t)
	store := t.TempDir()
	// The machine's registries are not read; the test's own is plain HTTP,
	// which podman's `manifest inspect` learns only from this file.
	conf := filepath.Join(store, "registries.conf")
	if err := os.WriteFile(conf, []byte("[[registry]]\nlocation = \""+srv.Addr+"\"\ninsecure = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	podman := newClient(t, "podman", podmanInstall, "CONTAINERS_REGISTRIES_CONF="+conf)
	p := func(args ...string) string {
		t.Helper()
		return podman.run(append([]string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"),
			"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}, args...)...)
	}
	src := srv.Addr + "/clients/src"
	d := pushImage(t, src+":v1")
	p("pull", "--tls-verify=false", src+"@"+d.String())
	p("tag", src+"@"+d.String(), srv.Addr+"/clients/podman:oci", srv.Addr+"/clients/podman:docker")
	p("push", "--tls-verify=false", "--format", "oci", srv.Addr+"/clients/podman:oci")
	p("push", "--tls-verify=false", "--format", "v2s2", srv.Addr+"/clients/podman:docker")

	// A manifest list, pushed with its images.
	list := srv.Addr + "/clients/podman-list:v1"
	p("manifest", "create", list)
	p("manifest", "add", "--tls-verify=false", list, "docker://"+src+"@"+d.String())
	p("manifest", "push", "--tls-verify=false", "--all", list, "docker://"+list)
	mustContain(t, "inspect list", p("manifest", "inspect", list), d.String())

	// Both formats pull back whole into an empty store.
	p("rmi", "--all", "--force")
	p("pull", "--tls-verify=false", srv.Addr+"/clients/podman:oci", srv.Addr+"/clients/podman:docker")
	mustContain(t, "manifest types", p("image", "inspect", "--format", "{{.ManifestType}}", srv.Addr+"/clients/podman:oci", srv.Addr+"/clients/podman:docker"),
		"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
	mustContain(t, "search", p("search", "--tls-verify=false", srv.Addr+"/clients/podman"), "clients/podman")
}

func TestContainerd(t *testing.T) {
	srv := start(t)
	asRoot(t)
	containerd := testenv.Tool(t, "containerd", ctrInstall)
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	conf := filepath.Join(dir, "config.toml")
	err := os.WriteFile(conf, []byte(`version = 2
root = "`+filepath.Join(dir, "root")+`"
state = "`+filepath.Join(dir, "state")+`"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "`+sock+`"
[ttrpc]
  address = "`+sock+`.ttrpc"
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(containerd, "--config", conf)
	var log bytes.Buffer
	daemon.Stdout, daemon.Stderr = &log, &log
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		daemon.Process.Kill()
		daemon.Wait()
		if t.Failed() {
			t.Logf("containerd:\n%s", log.String())
		}
	})
	ctr := newClient(t, "ctr", ctrInstall, "CONTAINERD_ADDRESS="+sock)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := ctr.try("version"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("containerd did not start: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	src := srv.Addr + "/clients/src"
	d := pushImage(t, src+":v1")
	ctr.run("images", "pull", "--plain-http", "--snapshotter", "native", src+":v1")
	mustContain(t, "images ls", ctr.run("images", "ls"), d.String())
	dst := srv.Addr + "/clients/containerd:v1"
	ctr.run("images", "tag", src+":v1", dst)
	ctr.run("images", "push", "--plain-http", dst)
	ctr.run("images", "rm", src+":v1", dst)
	ctr.run("content", "prune", "references")
	ctr.run("images", "pull", "--plain-http", "--snapshotter", "native", dst)
	mustContain(t, "pulled back", ctr.run("images", "ls"), d.String())
}
