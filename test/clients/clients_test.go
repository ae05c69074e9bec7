// Package clients drives a real `lading serve` with the command-line clients
// users push and pull with: oras, helm, regctl, skopeo, podman, containerd
// (ctr, against a containerd daemon of the test's own), docker (against a
// dockerd of the test's own) and cosign, each on the filesystem, on S3,
// behind token auth and over TLS. scripts/test.sh installs each at the
// version named below; a test fails under CI=true when one is missing.
// Every server answer is checked too: a 5xx in the access log fails the
// test (testserver).
package clients

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
	authtest "github.com/lading-registry/lading/test/auth"
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
	dockerInstall = "apt-get install docker.io"
)

// client runs one command-line tool in a directory of its own, with a home
// of its own so that no configuration or credential of the machine's is
// read and none is left behind.
type client struct {
	t     *testing.T
	path  string
	dir   string
	env   []string
	stdin string
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

// login runs a log-in command that reads the password from its input.
func (c *client) login(password string, args ...string) {
	c.t.Helper()
	c.stdin = password
	defer func() { c.stdin = "" }()
	c.run(args...)
}

// try runs the tool and returns its standard output, or, when it fails,
// everything it printed with the error.
func (c *client) try(args ...string) (string, error) {
	c.t.Helper()
	args = slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "" })
	// A client that hangs fails its test, not the whole run's timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.path, args...)
	cmd.Dir, cmd.Env, cmd.Stdin = c.dir, c.env, strings.NewReader(c.stdin)
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

// setup is one way of running lading that every client is tried against.
type setup struct {
	srv *testserver.Server
	// user and password log in to the registry; empty without auth.
	user, password string
	// ca is the PEM file of the CA that issued the server's certificate;
	// empty for plain HTTP.
	ca string
}

// flag returns f, a client's flag allowing plain HTTP, for a setup without
// TLS; "" (which client drops) with it, so that the client must verify the
// server's certificate.
func (s setup) flag(f string) string {
	if s.ca != "" {
		return ""
	}
	return f
}

// env is what every client of the setup runs with: with TLS, the CA as the
// one Go's and the clients' trust stores hold (all are Go programs).
func (s setup) env() []string {
	if s.ca == "" {
		return nil
	}
	return []string{"SSL_CERT_FILE=" + s.ca}
}

// The account of the auth setup.
const user, password = "pusher", "client-s3cret"

// eachSetup runs f against lading on the filesystem, on S3 (versitygw),
// behind its built-in token server, where the client logs in first and
// anonymous requests are refused, and over TLS, where the client verifies
// the server's certificate (oras, regctl and cosign then speak HTTP/2).
func eachSetup(t *testing.T, f func(t *testing.T, s setup)) {
	if testing.Short() {
		t.Skip("builds and runs lading and client programs")
	}
	t.Run("filesystem", func(t *testing.T) {
		f(t, setup{srv: testserver.Start(t, testserver.Options{})})
	})
	t.Run("s3", func(t *testing.T) {
		s3 := testenv.S3(t)
		f(t, setup{srv: testserver.Start(t, testserver.Options{Env: testserver.S3Env(s3)})})
	})
	t.Run("token-auth", func(t *testing.T) {
		files := authtest.Write(t, map[string]string{user: password}, "")
		f(t, setup{srv: testserver.Start(t, testserver.Options{Env: files.TokenEnv()}), user: user, password: password})
	})
	t.Run("tls", func(t *testing.T) {
		files := writeTLS(t)
		// Clients take 127.0.0.1 for plain HTTP; any other loopback
		// address is a host like another.
		srv := testserver.Start(t, testserver.Options{Host: tlsHost, TLS: files})
		f(t, setup{srv: srv, ca: files.CA})
	})
}

// tlsHost is the loopback address the TLS setup serves on.
const tlsHost = "127.0.0.2"

// writeTLS makes a CA and a server certificate for tlsHost, as PEM files.
func writeTLS(t *testing.T) *testserver.TLSFiles {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lading clients test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: tlsHost},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP(tlsHost)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := &testserver.TLSFiles{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem")}
	for file, block := range map[string]*pem.Block{
		files.Cert: {Type: "CERTIFICATE", Bytes: der},
		files.Key:  {Type: "PRIVATE KEY", Bytes: kder},
		files.CA:   {Type: "CERTIFICATE", Bytes: caDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// remote is how go-containerregistry reaches the setup's registry.
func (s setup) remote(t *testing.T) []remote.Option {
	t.Helper()
	auth := authn.Anonymous
	if s.user != "" {
		auth = &authn.Basic{Username: s.user, Password: s.password}
	}
	opts := []remote.Option{remote.WithAuth(auth)}
	if s.ca != "" {
		pem, err := os.ReadFile(s.ca)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		opts = append(opts, remote.WithTransport(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}))
	}
	return opts
}

// pushImage pushes a random image of three layers of size bytes each with
// go-containerregistry and returns its digest.
func pushImage(t *testing.T, s setup, ref string, size int64) v1.Hash {
	t.Helper()
	img, err := random.Image(size, 3)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, s.remote(t)...); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// referrersTag matches the tags of the referrers tag scheme, which cosign's
// own (sha256-<hex>.sig) do not.
var referrersTag = regexp.MustCompile(`^sha256-[0-9a-f]{64}$`)

// referredThroughAPI checks that subject (repo@digest) has a referrer of
// artifactType and that no client fell back to the tag scheme to get it
// there: clients quietly do when a registry's referrers API fails them, so
// without this a broken API would pass unseen.
func referredThroughAPI(t *testing.T, s setup, subject, artifactType string) {
	t.Helper()
	d, err := name.NewDigest(subject)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(d.Context(), s.remote(t)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if referrersTag.MatchString(tag) {
			t.Fatalf("a client fell back to the tag scheme: tag %s in %s", tag, d.Context())
		}
	}
	idx, err := remote.Referrers(d, s.remote(t)...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range m.Manifests {
		if r.ArtifactType == artifactType {
			return
		}
	}
	t.Fatalf("no referrer of type %s among %+v", artifactType, m.Manifests)
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
	eachSetup(t, func(t *testing.T, s setup) {
		oras := newClient(t, "oras", orasInstall, s.env()...)
		if s.user != "" {
			oras.login(s.password, "login", s.flag("--plain-http"), "-u", s.user, "--password-stdin", s.srv.Addr)
		}
		repo := s.srv.Addr + "/clients/oras"
		oras.file("notes.txt", "release notes\n")
		oras.run("push", s.flag("--plain-http"), repo+":v1", "--artifact-type", "application/vnd.lading.test", "notes.txt:text/plain")

		oras.run("pull", s.flag("--plain-http"), repo+":v1", "-o", "pulled")
		if got := oras.read("pulled/notes.txt"); got != "release notes\n" {
			t.Fatalf("pulled %q", got)
		}
		mustContain(t, "repo tags", oras.run("repo", "tags", s.flag("--plain-http"), repo), "v1")

		// A referrer, found through the referrers API.
		oras.file("sig.txt", "signed\n")
		api := []string{"--distribution-spec", "v1.1-referrers-api"}
		oras.run(append(api, "attach", s.flag("--plain-http"), repo+":v1", "--artifact-type", "application/vnd.lading.sig", "sig.txt:text/plain")...)
		var tree struct {
			Digest    string `json:"digest"`
			Referrers []struct {
				Digest       string `json:"digest"`
				ArtifactType string `json:"artifactType"`
			} `json:"referrers"`
		}
		if err := json.Unmarshal([]byte(oras.run(append(api, "discover", s.flag("--plain-http"), "--format", "json", repo+":v1")...)), &tree); err != nil {
			t.Fatal(err)
		}
		if len(tree.Referrers) != 1 || tree.Referrers[0].ArtifactType != "application/vnd.lading.sig" {
			t.Fatalf("referrers of %s: %+v", tree.Digest, tree.Referrers)
		}
		referredThroughAPI(t, s, repo+"@"+tree.Digest, "application/vnd.lading.sig")

		// A copy with its referrers to another repository mounts the blobs.
		copied := s.srv.Addr + "/clients/copy"
		mustContain(t, "cp", oras.run("cp", "-r", s.flag("--from-plain-http"), s.flag("--to-plain-http"), repo+":v1", copied+":v1"), "Mounted")
		mustContain(t, "discover after cp", oras.run(append(api, "discover", s.flag("--plain-http"), "--format", "json", copied+":v1")...), tree.Referrers[0].Digest)
		referredThroughAPI(t, s, copied+"@"+tree.Digest, "application/vnd.lading.sig")
		mustContain(t, "repo ls", oras.run("repo", "ls", s.flag("--plain-http"), s.srv.Addr+"/clients"), "oras", "copy")

		// Deleting the referrer takes it out of the referrers list.
		oras.run("manifest", "delete", s.flag("--plain-http"), "--force", repo+"@"+tree.Referrers[0].Digest)
		if out := oras.run(append(api, "discover", s.flag("--plain-http"), "--format", "json", repo+":v1")...); strings.Contains(out, tree.Referrers[0].Digest) {
			t.Fatalf("deleted referrer still listed:\n%s", out)
		}
		if out, err := oras.try("manifest", "fetch", s.flag("--plain-http"), repo+"@"+tree.Referrers[0].Digest); err == nil {
			t.Fatalf("deleted manifest fetched:\n%s", out)
		}
		if s.user != "" {
			oras.run("logout", s.srv.Addr)
			if out, err := oras.try("pull", s.flag("--plain-http"), repo+":v1", "-o", "anonymous"); err == nil {
				t.Fatalf("pulled without credentials:\n%s", out)
			}
		}
	})
}

func TestHelm(t *testing.T) {
	eachSetup(t, func(t *testing.T, s setup) {
		home := t.TempDir()
		helm := newClient(t, "helm", helmInstall, append(s.env(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
			"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))...)
		if s.user != "" {
			helm.login(s.password, "registry", "login", s.flag("--plain-http"), "-u", s.user, "--password-stdin", s.srv.Addr)
		}
		helm.run("create", "lading-chart")
		helm.run("package", "lading-chart", "-d", "packaged")
		const chart = "lading-chart-0.1.0.tgz"
		helm.run("push", filepath.Join("packaged", chart), "oci://"+s.srv.Addr+"/charts", s.flag("--plain-http"))

		ref := "oci://" + s.srv.Addr + "/charts/lading-chart"
		mustContain(t, "show chart", helm.run("show", "chart", ref, "--version", "0.1.0", s.flag("--plain-http")), "name: lading-chart", "version: 0.1.0")
		if err := os.Mkdir(filepath.Join(helm.dir, "pulled"), 0o755); err != nil {
			t.Fatal(err)
		}
		helm.run("pull", ref, "--version", "0.1.0", s.flag("--plain-http"), "-d", "pulled")
		if helm.read(filepath.Join("pulled", chart)) != helm.read(filepath.Join("packaged", chart)) {
			t.Fatal("pulled chart differs from the pushed one")
		}
		mustContain(t, "template", helm.run("template", "release", ref, "--version", "0.1.0", s.flag("--plain-http")), "kind: Deployment")
	})
}

func TestRegctl(t *testing.T) {
	eachSetup(t, func(t *testing.T, s setup) {
		regctl := newClient(t, "regctl", regctlInstall, s.env()...)
		tls := "disabled"
		if s.ca != "" {
			tls = "enabled"
		}
		regctl.run("registry", "set", s.srv.Addr, "--tls", tls)
		if s.user != "" {
			regctl.login(s.password, "registry", "login", "-u", s.user, "--pass-stdin", s.srv.Addr)
		}
		src := s.srv.Addr + "/clients/src"
		d := pushImage(t, s, src+":v1", 64<<10)

		if got := strings.TrimSpace(regctl.run("image", "digest", src+":v1")); got != d.String() {
			t.Fatalf("image digest %s, pushed %s", got, d)
		}
		dst := s.srv.Addr + "/clients/dst"
		regctl.run("image", "copy", src+":v1", dst+":v1")
		if got := strings.TrimSpace(regctl.run("image", "digest", dst+":v1")); got != d.String() {
			t.Fatalf("copy's digest %s, source's %s", got, d)
		}
		regctl.run("image", "check-base", dst+":v1", "--base", src+":v1")
		regctl.run("image", "copy", dst+":v1", dst+":v2")
		if tags := strings.Fields(regctl.run("tag", "ls", dst)); !slices.Equal(tags, []string{"v1", "v2"}) {
			t.Fatalf("tags %v", tags)
		}
		mustContain(t, "repo ls", regctl.run("repo", "ls", s.srv.Addr), "clients/src", "clients/dst")

		// New content from an OCI layout, uploaded by regctl itself (a copy
		// between repositories of one registry only mounts).
		img, err := random.Image(1<<20, 2)
		if err != nil {
			t.Fatal(err)
		}
		l, err := layout.Write(filepath.Join(regctl.dir, "layout"), empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
			t.Fatal(err)
		}
		ld, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		regctl.run("image", "copy", "ocidir://layout:v1", s.srv.Addr+"/clients/uploaded:v1")
		if got := strings.TrimSpace(regctl.run("image", "digest", s.srv.Addr+"/clients/uploaded:v1")); got != ld.String() {
			t.Fatalf("uploaded digest %s, layout's %s", got, ld)
		}

		regctl.file("sbom.json", `{"packages":[]}`)
		regctl.run("artifact", "put", "--subject", dst+":v1", "--artifact-type", "application/vnd.lading.sbom", "-f", "sbom.json")
		mustContain(t, "artifact list", regctl.run("artifact", "list", dst+":v1", "--format", "{{range .Descriptors}}{{.ArtifactType}} {{end}}"), "application/vnd.lading.sbom")
		referredThroughAPI(t, s, dst+"@"+d.String(), "application/vnd.lading.sbom")
		mustContain(t, "artifact get", regctl.run("artifact", "get", "--subject", dst+":v1", "--filter-artifact-type", "application/vnd.lading.sbom"), `{"packages":[]}`)

		regctl.run("tag", "delete", dst+":v2")
		if tags := strings.Fields(regctl.run("tag", "ls", dst)); !slices.Equal(tags, []string{"v1"}) {
			t.Fatalf("tags after delete %v", tags)
		}
		regctl.run("manifest", "delete", dst+"@"+d.String(), "--force-tag-dereference")
		if out, err := regctl.try("manifest", "head", dst+"@"+d.String()); err == nil {
			t.Fatalf("deleted manifest still there:\n%s", out)
		}
	})
}

// containersEnv points skopeo and podman (containers/image) at an auth
// file and an empty list of registries of the test's own.
func containersEnv(t *testing.T) []string {
	dir := t.TempDir()
	auth, conf := filepath.Join(dir, "auth.json"), filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(auth, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"REGISTRY_AUTH_FILE=" + auth, "CONTAINERS_REGISTRIES_CONF=" + conf}
}

func TestSkopeo(t *testing.T) {
	eachSetup(t, func(t *testing.T, s setup) {
		skopeo := newClient(t, "skopeo", skopeoInstall, append(s.env(), containersEnv(t)...)...)
		if s.user != "" {
			skopeo.login(s.password, "login", s.flag("--tls-verify=false"), "-u", s.user, "--password-stdin", s.srv.Addr)
		}
		src := "docker://" + s.srv.Addr + "/clients/src"
		d := pushImage(t, s, s.srv.Addr+"/clients/src:v1", 64<<10)
		var info struct {
			Digest string
			Layers []string
		}
		if err := json.Unmarshal([]byte(skopeo.run("inspect", s.flag("--tls-verify=false"), src+":v1")), &info); err != nil {
			t.Fatal(err)
		}
		if info.Digest != d.String() || len(info.Layers) != 3 {
			t.Fatalf("inspect: %+v, pushed %s with 3 layers", info, d)
		}
		// Registry to registry, to an OCI layout and back, converting to
		// OCI media types on the way.
		dst := "docker://" + s.srv.Addr + "/clients/dst"
		skopeo.run("copy", "--insecure-policy", s.flag("--src-tls-verify=false"), s.flag("--dest-tls-verify=false"), src+":v1", dst+":v1")
		skopeo.run("copy", "--insecure-policy", s.flag("--src-tls-verify=false"), dst+":v1", "oci:layout:v1")
		skopeo.run("copy", "--insecure-policy", s.flag("--dest-tls-verify=false"), "--format", "oci", "oci:layout:v1", dst+":oci")
		mustContain(t, "inspect --raw", skopeo.run("inspect", "--raw", s.flag("--tls-verify=false"), dst+":oci"), "application/vnd.oci.image.manifest.v1+json")
		var tags struct{ Tags []string }
		if err := json.Unmarshal([]byte(skopeo.run("list-tags", s.flag("--tls-verify=false"), dst)), &tags); err != nil {
			t.Fatal(err)
		}
		if slices.Sort(tags.Tags); !slices.Equal(tags.Tags, []string{"oci", "v1"}) {
			t.Fatalf("tags %v", tags.Tags)
		}
		skopeo.run("delete", s.flag("--tls-verify=false"), dst+":v1")
		if out, err := skopeo.try("inspect", s.flag("--tls-verify=false"), dst+":v1"); err == nil {
			t.Fatalf("deleted image still there:\n%s", out)
		}
		if s.user != "" {
			skopeo.run("logout", s.srv.Addr)
			if out, err := skopeo.try("inspect", s.flag("--tls-verify=false"), src+":v1"); err == nil {
				t.Fatalf("inspected without credentials:\n%s", out)
			}
		}
	})
}

func TestCosign(t *testing.T) {
	eachSetup(t, func(t *testing.T, s setup) {
		cosign := newClient(t, "cosign", cosignInstall, append(s.env(), "COSIGN_PASSWORD=", "COSIGN_YES=true")...)
		if s.user != "" {
			cosign.login(s.password, "login", "-u", s.user, "--password-stdin", s.srv.Addr)
		}
		ref := s.srv.Addr + "/clients/signed"
		d := pushImage(t, s, ref+":v1", 64<<10)
		byDigest := ref + "@" + d.String()
		cosign.run("generate-key-pair")
		insecure := []string{s.flag("--allow-http-registry"), s.flag("--allow-insecure-registry")}

		// The classic scheme: the signature under a tag named after the digest.
		cosign.run(append([]string{"sign", "--key", "cosign.key", "--tlog-upload=false"}, append(insecure, byDigest)...)...)
		mustContain(t, "triangulate", cosign.run(append([]string{"triangulate"}, append(insecure, byDigest)...)...), "sha256-"+d.Hex+".sig")
		cosign.run(append([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog"}, append(insecure, ref+":v1")...)...)

		// The OCI 1.1 scheme: the signature as a referrer of the image.
		other := s.srv.Addr + "/clients/referred"
		od := pushImage(t, s, other+":v1", 64<<10)
		cosign.env = append(cosign.env, "COSIGN_EXPERIMENTAL=1")
		cosign.run(append([]string{"sign", "--key", "cosign.key", "--tlog-upload=false", "--registry-referrers-mode=oci-1-1"}, append(insecure, other+"@"+od.String())...)...)
		cosign.run(append([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog", "--experimental-oci11"}, append(insecure, other+":v1")...)...)
		referredThroughAPI(t, s, other+"@"+od.String(), "application/vnd.dev.cosign.artifact.sig.v1+json")

		// Another key does not verify.
		cosign.run("generate-key-pair", "--output-key-prefix", "other")
		if out, err := cosign.try(append([]string{"verify", "--key", "other.pub", "--insecure-ignore-tlog"}, append(insecure, ref+":v1")...)...); err == nil {
			t.Fatalf("verified with the wrong key:\n%s", out)
		}
	})
}

// asRoot skips a test of a client that needs root for its local storage
// (podman's and containerd's), except under CI=true, which runs as root and
// where a skip would hide a gap.
func asRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root for the client's own image store")
		}
		t.Skip("needs root for the client's own image store")
	}
}

func TestPodman(t *testing.T) {
	asRoot(t)
	eachSetup(t, func(t *testing.T, s setup) {
		store := t.TempDir()
		podman := newClient(t, "podman", podmanInstall, append(s.env(), containersEnv(t)...)...)
		global := []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"),
			"--tmpdir", filepath.Join(store, "tmp"), "--network-config-dir", filepath.Join(store, "networks"),
			"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}
		p := func(args ...string) string {
			t.Helper()
			return podman.run(append(global, args...)...)
		}
		if s.user != "" {
			podman.login(s.password, append(global, "login", s.flag("--tls-verify=false"), "-u", s.user, "--password-stdin", s.srv.Addr)...)
		}
		addr := s.srv.Addr
		src := addr + "/clients/src"
		d := pushImage(t, s, src+":v1", 64<<10)
		p("pull", s.flag("--tls-verify=false"), src+"@"+d.String())
		p("tag", src+"@"+d.String(), addr+"/clients/podman:oci", addr+"/clients/podman:docker")
		p("push", s.flag("--tls-verify=false"), "--format", "oci", addr+"/clients/podman:oci")
		p("push", s.flag("--tls-verify=false"), "--format", "v2s2", addr+"/clients/podman:docker")

		// A manifest list, pushed with its images.
		list := addr + "/clients/podman-list:v1"
		p("manifest", "create", list)
		p("manifest", "add", s.flag("--tls-verify=false"), list, "docker://"+src+"@"+d.String())
		p("manifest", "push", s.flag("--tls-verify=false"), "--all", list, "docker://"+list)
		lr, err := name.ParseReference(list)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Index(lr, s.remote(t)...)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != 1 || im.Manifests[0].Digest != d {
			t.Fatalf("pushed list holds %+v, want %s", im.Manifests, d)
		}

		// Both formats pull back whole into an empty store.
		p("rmi", "--all", "--force")
		p("pull", s.flag("--tls-verify=false"), addr+"/clients/podman:oci", addr+"/clients/podman:docker")
		mustContain(t, "manifest types", p("image", "inspect", "--format", "{{.ManifestType}}", addr+"/clients/podman:oci", addr+"/clients/podman:docker"),
			"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
		mustContain(t, "search", p("search", s.flag("--tls-verify=false"), addr+"/clients/podman"), "clients/podman")
	})
}

func TestContainerd(t *testing.T) {
	asRoot(t)
	eachSetup(t, func(t *testing.T, s setup) {
		ctr, _ := startContainerd(t, s.env())
		var creds []string
		if s.user != "" {
			creds = []string{"--user", s.user + ":" + s.password}
		}
		if s.ca != "" {
			// ctr speaks plain HTTP to any loopback address unless a
			// hosts.toml names the scheme.
			hosts := t.TempDir()
			toml := "server = \"https://" + s.srv.Addr + "\"\n[host.\"https://" + s.srv.Addr + "\"]\n  ca = \"" + s.ca + "\"\n"
			if err := os.MkdirAll(filepath.Join(hosts, s.srv.Addr), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(hosts, s.srv.Addr, "hosts.toml"), []byte(toml), 0o644); err != nil {
				t.Fatal(err)
			}
			creds = append(creds, "--hosts-dir", hosts)
		}
		c := func(args ...string) string {
			t.Helper()
			if len(args) > 1 && args[0] == "images" && (args[1] == "pull" || args[1] == "push") {
				args = append(append(args[:2:2], creds...), args[2:]...)
			}
			return ctr.run(args...)
		}
		src := s.srv.Addr + "/clients/src"
		d := pushImage(t, s, src+":v1", 64<<10)
		c("images", "pull", s.flag("--plain-http"), "--snapshotter", "native", src+":v1")
		mustContain(t, "images ls", c("images", "ls"), d.String())
		dst := s.srv.Addr + "/clients/containerd:v1"
		c("images", "tag", src+":v1", dst)
		c("images", "push", s.flag("--plain-http"), dst)
		// With the store emptied, the pull back downloads every blob.
		c("images", "rm", "--sync", src+":v1", dst)
		if out := c("content", "ls", "--quiet"); strings.TrimSpace(out) != "" {
			t.Fatalf("content left after the images were removed:\n%s", out)
		}
		c("images", "pull", s.flag("--plain-http"), "--snapshotter", "native", dst)
		mustContain(t, "pulled back", c("images", "ls"), d.String())
	})
}

// startContainerd runs a containerd daemon of the test's own, with its
// state in the test's directory, and returns ctr speaking to it and its
// socket.
func startContainerd(t *testing.T, env []string) (*client, string) {
	t.Helper()
	containerd := testenv.Tool(t, "containerd", ctrInstall)
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	conf := filepath.Join(dir, "config.toml")
	err := os.WriteFile(conf, []byte(`version = 2
root = "`+filepath.Join(dir, "root")+`"
state = "`+filepath.Join(dir, "state")+`"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[plugins."io.containerd.internal.v1.opt"]
  path = "`+filepath.Join(dir, "opt")+`"
[grpc]
  address = "`+sock+`"
[ttrpc]
  address = "`+sock+`.ttrpc"
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(containerd, "--config", conf)
	testenv.DieWithParent(daemon)
	var log testserver.SyncBuffer
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
	ctr := newClient(t, "ctr", ctrInstall, append(env, "CONTAINERD_ADDRESS="+sock)...)
	ctr.waitForDaemon("containerd", &log)
	return ctr, sock
}

// waitForDaemon waits until the client's `version` reaches its daemon,
// whose output log is.
func (c *client) waitForDaemon(daemon string, log *testserver.SyncBuffer) {
	c.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, err := c.try("version")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not start: %v\n%s", daemon, err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCollectBesideClients runs `lading gc` beside a serving lading after
// the clients have signed, attached and deleted: what a deletion freed
// goes, and what the clients keep reaching (an image, its cosign
// signature under a tag, its oras referrer through the API) stays whole.
func TestCollectBesideClients(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs lading and client programs")
	}
	bin := testserver.Binary(t)
	for _, backend := range []string{"filesystem", "s3"} {
		t.Run(backend, func(t *testing.T) {
			opts := testserver.Options{Binary: bin}
			if backend == "s3" {
				opts.Env = testserver.S3Env(testenv.S3(t))
			}
			s := setup{srv: testserver.Start(t, opts)}
			addr := s.srv.Addr
			keep := addr + "/clients/keep"
			kd := pushImage(t, s, keep+":v1", 64<<10)
			gone := addr + "/clients/gone"
			gd := pushImage(t, s, gone+":v1", 64<<10)
			goneLayers := layerDigests(t, s, gone+"@"+gd.String())

			cosign := newClient(t, "cosign", cosignInstall, "COSIGN_PASSWORD=", "COSIGN_YES=true")
			cosign.run("generate-key-pair")
			insecure := []string{"--allow-http-registry", "--allow-insecure-registry"}
			cosign.run(append([]string{"sign", "--key", "cosign.key", "--tlog-upload=false"}, append(insecure, keep+"@"+kd.String())...)...)
			oras := newClient(t, "oras", orasInstall)
			oras.file("sbom.json", "{}")
			var attached struct {
				Digest string `json:"digest"`
			}
			if err := json.Unmarshal([]byte(oras.run("attach", "--plain-http", "--distribution-spec", "v1.1-referrers-api", "--format", "json",
				keep+":v1", "--artifact-type", "application/vnd.lading.sbom", "sbom.json")), &attached); err != nil {
				t.Fatal(err)
			}
			referrer := attached.Digest
			skopeo := newClient(t, "skopeo", skopeoInstall, containersEnv(t)...)
			skopeo.run("delete", "--tls-verify=false", "docker://"+gone+":v1")

			status := func(l v1.Hash) int {
				resp, err := http.Get(s.srv.URL + "/v2/clients/gone/blobs/" + l.String())
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			stored := func(l v1.Hash) bool {
				_, err := os.Stat(filepath.Join(s.srv.Root, "blobs", "sha256", l.Hex[:2], l.Hex))
				return err == nil
			}
			if got := status(goneLayers[0]); got != http.StatusOK {
				t.Fatalf("a layer of the deleted image before gc: %d", got)
			}
			if backend == "filesystem" && !stored(goneLayers[0]) {
				t.Fatal("the layer's file is not where the test looks for it")
			}

			// lading gc and fsck with only the test's settings: none of the
			// machine's LADING_*.
			command := func(args ...string) *exec.Cmd {
				if backend == "filesystem" {
					args = append(args, "--root", s.srv.Root)
				}
				cmd := exec.Command(bin, args...)
				cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "LADING_") }), opts.Env...)
				return cmd
			}
			out, err := command("gc", "--grace", "0s", "--untagged", "--window", "10ms").CombinedOutput()
			if err != nil {
				t.Fatalf("lading gc: %v\n%s", err, out)
			}
			// The deleted image's three layers and config went, whatever
			// else: a repository emptied whole also answers 404.
			if m := regexp.MustCompile(`(\d+) blobs`).FindSubmatch(out); m == nil || atoi(t, string(m[1])) < len(goneLayers)+1 {
				t.Fatalf("gc removed fewer blobs than the deleted image had:\n%s", out)
			}
			for _, l := range goneLayers {
				if got := status(l); got != http.StatusNotFound {
					t.Fatalf("layer %s of the deleted image: %d after gc", l, got)
				}
				if backend == "filesystem" && stored(l) {
					t.Fatalf("layer %s of the deleted image still stored", l)
				}
			}
			// What the clients reach stays whole: read, not only listed.
			cosign.run(append([]string{"verify", "--key", "cosign.pub", "--insecure-ignore-tlog"}, append(insecure, keep+":v1")...)...)
			referredThroughAPI(t, s, keep+"@"+kd.String(), "application/vnd.lading.sbom")
			oras.run("pull", "--plain-http", "-o", "pulled", keep+"@"+referrer)
			if got := oras.read("pulled/sbom.json"); got != "{}" {
				t.Fatalf("the referrer's file after gc: %q", got)
			}
			skopeo.run("copy", "--insecure-policy", "--src-tls-verify=false", "docker://"+keep+":v1", "dir:kept")
			// And the store the clients and the collector leave is sound.
			if out, err := command("fsck").CombinedOutput(); err != nil || !strings.Contains(string(out), " 0 problems") {
				t.Fatalf("lading fsck: %v\n%s", err, out)
			}
		})
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// layerDigests lists the layers of the image at ref.
func layerDigests(t *testing.T, s setup, ref string) []v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, s.remote(t)...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var ds []v1.Hash
	for _, l := range m.Layers {
		ds = append(ds, l.Digest)
	}
	return ds
}

// TestDocker drives the docker command through a Docker engine of the
// test's own (dockerd with its state in the test's folder, vfs storage, no
// networking of its own: pulls and pushes need no container). dockerd
// takes every 127.0.0.0/8 registry for an insecure one, so over TLS it
// talks TLS but does not verify the certificate.
func TestDocker(t *testing.T) {
	asRoot(t)
	eachSetup(t, func(t *testing.T, s setup) {
		docker := startDocker(t, s.env())
		if s.user != "" {
			docker.login(s.password, "login", "-u", s.user, "--password-stdin", s.srv.Addr)
		}
		src := s.srv.Addr + "/clients/src"
		d := pushImage(t, s, src+":v1", 64<<10)
		dst := s.srv.Addr + "/clients/docker"
		docker.run("pull", src+":v1")
		docker.run("tag", src+":v1", dst+":v1")
		// docker writes a manifest of its own for what it pushes.
		pushedDigest := func(out string) string {
			m := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no digest in docker push's output:\n%s", out)
			}
			return m[1]
		}
		out := docker.run("push", dst+":v1")
		mustContain(t, "push of a pulled image", out, "Mounted from clients/src")
		pushed := pushedDigest(out)
		// New content, uploaded rather than mounted: an image imported
		// from a tarball.
		docker.file("content/hello.txt", "hello\n")
		cmd := exec.Command("tar", "-C", filepath.Join(docker.dir, "content"), "-cf", filepath.Join(docker.dir, "layer.tar"), "hello.txt")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, out)
		}
		docker.run("import", "layer.tar", dst+":imported")
		out = docker.run("push", dst+":imported")
		mustContain(t, "push of an imported image", out, "Pushed")
		imported := pushedDigest(out)
		mustContain(t, "manifest inspect", docker.run("manifest", "inspect", "--insecure", dst+":imported"), "application/vnd.docker.distribution.manifest.v2+json")

		// Pulled back into an emptied store, byte for byte what was pushed.
		docker.run("rmi", src+":v1", dst+":v1", dst+":imported")
		if out := docker.run("images", "-aq"); strings.TrimSpace(out) != "" {
			t.Fatalf("images left after rmi:\n%s", out)
		}
		if out := docker.run("pull", dst+":v1"); strings.Contains(out, "Already exists") {
			t.Fatalf("a layer was not pulled again:\n%s", out)
		}
		mustContain(t, "repo digest", docker.run("inspect", "--format", "{{json .RepoDigests}}", dst+":v1"), pushed)
		docker.run("pull", dst+":imported")
		mustContain(t, "repo digest", docker.run("inspect", "--format", "{{json .RepoDigests}}", dst+":imported"), imported)
		// The image pulled from the first push keeps the layers pushed
		// by go-containerregistry.
		for _, l := range layerDigests(t, s, src+"@"+d.String()) {
			mustContain(t, "layers", docker.run("manifest", "inspect", "--insecure", dst+"@"+pushed), l.String())
		}
		if s.user != "" {
			docker.run("logout", s.srv.Addr)
			docker.run("rmi", dst+":v1")
			if out, err := docker.try("pull", dst+":v1"); err == nil || !strings.Contains(out, "denied") {
				t.Fatalf("a pull without credentials: %v\n%s", err, out)
			}
		}
	})
}

// startDocker runs a dockerd of the test's own and returns the docker
// command speaking to it, with a client configuration of its own.
func startDocker(t *testing.T, env []string) *client {
	t.Helper()
	dockerd := testenv.Tool(t, "dockerd", dockerInstall)
	// A containerd of its own: dockerd would use the system's where its
	// socket exists.
	_, containerd := startContainerd(t, env)
	dir := t.TempDir()
	sock := filepath.Join(dir, "docker.sock")
	// A configuration of its own, so that none in /etc/docker is read,
	// and the key dockerd 20.10 makes goes into the test's folder.
	conf := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(conf, []byte(`{"deprecated-key-path": "`+filepath.Join(dir, "key.json")+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	daemon := exec.Command(dockerd, "--config-file", conf, "--containerd", containerd,
		"--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "--host", "unix://"+sock, "--storage-driver", "vfs",
		"--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false")
	daemon.Env = append(os.Environ(), env...)
	testenv.DieWithParent(daemon)
	var log testserver.SyncBuffer
	daemon.Stdout, daemon.Stderr = &log, &log
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { daemon.Wait(); close(exited) }()
	t.Cleanup(func() {
		daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			daemon.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("dockerd:\n%s", log.String())
		}
	})
	docker := newClient(t, "docker", dockerInstall, append(env, "DOCKER_HOST=unix://"+sock)...)
	docker.env = append(docker.env, "DOCKER_CONFIG="+filepath.Join(docker.dir, ".docker"))
	docker.waitForDaemon("dockerd", &log)
	return docker
}
