package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lading-registry/lading/config"
	"github.com/lading-registry/lading/internal/testserver"
	"github.com/lading-registry/lading/registry"
	"github.com/lading-registry/lading/storage/driver/filesystem"
)

func TestRun(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		stdout     string
		stderr     string
		emptyError bool
	}{
		{args: nil, code: 2, stderr: "Usage:"},
		{args: []string{"help"}, code: 0, stdout: "lading serve"},
		{args: []string{"--help"}, code: 0, stdout: "Usage:"},
		{args: []string{"version"}, code: 0, stdout: "lading dev\ncommit ", emptyError: true},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"serve", "--nope"}, code: 2, stderr: "flag provided but not defined"},
		{args: []string{"serve", "extra"}, code: 2, stderr: "unexpected arguments"},
		{args: []string{"serve", "-h"}, code: 0, stderr: "-root"},
		{args: []string{"serve", "--addr", "nonsense"}, code: 2, stderr: "http.addr"},
		{args: []string{"config", "example"}, code: 0, stdout: "storage:"},
		{args: []string{"config"}, code: 2, stderr: "usage: lading config"},
		{args: []string{"config", "check", "/nonexistent.yaml"}, code: 2, stderr: "nonexistent"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tt.code, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q lacks %q", &stdout, tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", &stderr, tt.stderr)
			}
			if tt.emptyError && stderr.Len() > 0 {
				t.Errorf("stderr %q", &stderr)
			}
		})
	}
	var stdout bytes.Buffer
	run([]string{"version"}, &stdout, io.Discard)
	if !strings.Contains(stdout.String(), runtime.Version()) {
		t.Errorf("version lacks the Go version: %q", &stdout)
	}
}

func TestVersionFromLinker(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "v1.2.3", "abc123"
	var stdout bytes.Buffer
	printVersion(&stdout)
	if !strings.HasPrefix(stdout.String(), "lading v1.2.3\ncommit abc123\n") {
		t.Fatalf("%q", &stdout)
	}
}

func TestVersionFromModule(t *testing.T) {
	installed := &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}
	for _, c := range []struct {
		linked string
		bi     *debug.BuildInfo
		want   string
	}{
		{"dev", installed, "v1.4.0"},
		{"v2.0.0", installed, "v2.0.0"}, // the linker's wins
		{"dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"dev", nil, "dev"},
	} {
		if got := versionOf(c.linked, c.bi); got != c.want {
			t.Errorf("versionOf(%q, %v) = %q, want %q", c.linked, c.bi, got, c.want)
		}
	}
}

func TestServeStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	root := filepath.Join(t.TempDir(), "data")
	go func() {
		done <- serve(ctx, testConfig(root, "127.0.0.1:0"), discard, discard, nil)
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after cancellation")
	}
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("root not created: %v", err)
	}
}

// testConfig is the embedded default on root, listening on addr.
var discard = slog.New(slog.DiscardHandler)

func testConfig(root, addr string) *config.Config {
	cfg := config.Default()
	cfg.Storage.Filesystem.Root = root
	cfg.HTTP.Addr = addr
	return cfg
}

func TestServeFailsOnBadRoot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	// A root that cannot be a folder is a configuration mistake, caught
	// before anything starts, and named by its key.
	code := run([]string{"serve", "--root", file, "--addr", "127.0.0.1:0"}, io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "storage.filesystem.root") {
		t.Fatalf("exit %d; stderr %s", code, &stderr)
	}
}

// A listener that cannot bind is named by its key: the address alone does
// not say which of the two it was.
func TestServeNamesTheListenerItCannotBind(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, key := range []string{"http.addr", "http.debugaddr"} {
		cfg := testConfig(t.TempDir(), "127.0.0.1:0")
		if key == "http.addr" {
			cfg.HTTP.Addr = taken.Addr().String()
		} else {
			cfg.HTTP.DebugAddr = taken.Addr().String()
		}
		err := serve(context.Background(), cfg, discard, discard, nil)
		if err == nil || !strings.HasPrefix(err.Error(), key+": ") {
			t.Errorf("%s taken: %v", key, err)
		}
	}
}

// TestShutdownDrainsUploads cancels serve while a chunk is still arriving:
// the chunk completes and serve returns cleanly.
func TestShutdownDrainsUploads(t *testing.T) {
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Port 0 and the address serve reports: one found free and released
	// could be taken by another process before serve binds it.
	listening := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, testConfig(root, "127.0.0.1:0"), discard, discard, listening)
	}()
	var base string
	select {
	case addr := <-listening:
		base = "http://" + addr
	case err := <-served:
		t.Fatalf("serve: %v", err)
	}
	var loc string
	for i := 0; loc == ""; i++ {
		if i > 100 {
			t.Fatal("lading did not come up")
		}
		resp, err := http.Post(base+"/v2/a/blobs/uploads/", "", nil)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		resp.Body.Close()
		loc = resp.Header.Get("Location")
	}

	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPatch, base+loc, pr)
	answered := make(chan *http.Response, 1)
	// A connection of its own: the shutdown may close an idle kept-alive
	// one just as a new request starts on it, which is not what is tested.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
		}
		answered <- resp
	}()
	first := bytes.Repeat([]byte("x"), 3<<20) // beyond the registry's copy buffer, so some reaches disk
	pw.Write(first)
	// Cancel only once the handler is writing the chunk: before that the
	// connection may still wait in the listener's backlog, which closing
	// the listener resets.
	waitForUploadData(t, root)
	cancel()
	time.Sleep(100 * time.Millisecond)
	pw.Write([]byte("second half"))
	pw.Close()
	resp := <-answered
	if resp == nil {
		return
	}
	resp.Body.Close()
	if want := fmt.Sprintf("0-%d", len(first)+len("second half")-1); resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != want {
		t.Fatalf("in-flight chunk: %d %v", resp.StatusCode, resp.Header)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// waitForUploadData waits until some upload's data file under root holds
// bytes.
func waitForUploadData(t *testing.T, root string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		found := false
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".data") && strings.Contains(path, "_uploads") {
				if info, err := d.Info(); err == nil && info.Size() > 0 {
					found = true
				}
			}
			return nil
		})
		if found {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no upload data appeared")
}

// On a file system without a journal serve warns at start, naming the
// root; on one with a journal it does not.
func TestServeWarnsWithoutAJournal(t *testing.T) {
	root := t.TempDir()
	fsd, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	var logs testserver.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listening := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- serve(ctx, testConfig(root, "127.0.0.1:0"), log, discard, listening) }()
	select {
	case <-listening:
	case err := <-served:
		t.Fatalf("serve: %v", err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	warned := strings.Contains(logs.String(), "without a journal") && strings.Contains(logs.String(), root)
	if warned == fsd.Journaled() {
		t.Fatalf("journaled %v, warned %v:\n%s", fsd.Journaled(), warned, logs.String())
	}
}

// serveUntil runs serve on cfg until until returns true (polled), then
// stops it and fails the test on its error.
func serveUntil(t *testing.T, cfg *config.Config, until func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, discard, discard, nil) }()
	for !until() {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A stop during a scheduled collection lets it tell writers it is over
// before serve returns: a run left showing makes every push pin its digests
// until the next collection.
func TestServeEndsItsCollectionBeforeReturning(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(root, "127.0.0.1:0")
	cfg.GC.Interval = 200 * time.Millisecond
	t.Parallel()
	// The first look comes within a second, on a loaded machine later: serve
	// is stopped once the run shows, during its 5 s window.
	statePath := filepath.Join(root, "gc", "state")
	running := false
	deadline := time.Now().Add(30 * time.Second)
	serveUntil(t, cfg, func() bool {
		state, _ := os.ReadFile(statePath)
		running = strings.Contains(string(state), `"run"`)
		return running || time.Now().After(deadline)
	})
	if !running {
		t.Fatal("no collection showed itself running within 30s")
	}
	state, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(state), `"run"`) {
		t.Fatalf("serve returned with a collection shown running: %s", state)
	}
}

// A read-only server neither collects nor purges: it writes nothing.
func TestReadOnlyServeDoesNoMaintenance(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(root, "127.0.0.1:0")
	cfg.ReadOnly = true
	cfg.GC.Interval = 100 * time.Millisecond
	t.Parallel()
	// Long enough for a writing server's first look (within a second).
	stop := time.Now().Add(1500 * time.Millisecond)
	serveUntil(t, cfg, func() bool { return time.Now().After(stop) })
	for _, p := range []string{"gc", "locks"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("a read-only server wrote %s", p)
		}
	}
}

// With http.shutdowndelay, a stop first makes /readyz fail while the
// registry still serves, on connections each answer closes, then drains.
func TestShutdownDelayKeepsServingWhileNotReady(t *testing.T) {
	t.Parallel() // it waits out the delay
	cfg := testConfig(filepath.Join(t.TempDir(), "data"), "127.0.0.1:0")
	// Long enough for the two requests below on a loaded machine.
	cfg.HTTP.ShutdownDelay = 4 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, discard, discard, listening) }()
	base := "http://" + <-listening
	var closing bool // whether the last answer closed its connection
	status := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		closing = resp.Close
		return resp.StatusCode
	}
	if got := status("/readyz"); got != http.StatusOK {
		t.Fatalf("readyz before the stop: %d", got)
	}
	if got := status("/v2/"); got != http.StatusOK || closing {
		t.Fatalf("/v2/ before the stop: %d, closing the connection: %v", got, closing)
	}
	stopped := time.Now()
	cancel()
	time.Sleep(50 * time.Millisecond)
	if got := status("/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("readyz during the delay: %d", got)
	}
	// Answered, on a connection the answer closes: clients move to new
	// ones before the drain closes this one under a request.
	if got := status("/v2/"); got != http.StatusOK || !closing {
		t.Fatalf("/v2/ during the delay: %d, closing the connection: %v", got, closing)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(stopped); took < cfg.HTTP.ShutdownDelay {
		t.Fatalf("serve returned %v after the stop, before the delay", took)
	}
}

// Auth files that exist but do not parse are mistakes in the configuration:
// `config check` finds them, and serve refuses them with exit 2 before it
// creates or claims anything under its root.
func TestBrokenAuthFilesAreConfigurationMistakes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	policy := write("policy.yaml", "this is: [not a policy\n")
	htpasswd := write("htpasswd", "not an htpasswd line\n")
	key := write("key.pem", "not a key\n")
	for _, tc := range []struct{ name, yaml, want string }{
		{"policy", "auth:\n  policy: " + policy + "\n", "policy"},
		{"htpasswd", "auth:\n  htpasswd:\n    path: " + htpasswd + "\n", "want user:hash"},
		{"token key", "auth:\n  htpasswd:\n    path: " + write("ok.htpasswd", "") + "\n  token:\n    server:\n      enabled: true\n      key: " + key + "\n", "token.server.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(dir, tc.name+"-root")
			file := write(tc.name+"-lading.yaml", tc.yaml+"storage:\n  filesystem:\n    root: "+root+"\n")
			var stdout, stderr bytes.Buffer
			if code := run([]string{"config", "check", file}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("config check: exit %d, stderr %q, want 2 naming %q", code, &stderr, tc.want)
			}
			stderr.Reset()
			if code := run([]string{"serve", "--config", file, "--addr", "127.0.0.1:0"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("serve: exit %d, stderr %q, want 2 naming %q", code, &stderr, tc.want)
			}
			if _, err := os.Stat(root); !os.IsNotExist(err) {
				t.Errorf("serve made its root before refusing the configuration: %v", err)
			}
		})
	}
}

// With the built-in token server its two routes are named in the metrics
// and the access log; without it they are paths that name nothing.
func TestRouteLabelsNameTheTokenServer(t *testing.T) {
	for _, tc := range []struct {
		path        string
		tokenServer bool
		want        string
	}{
		{"/auth/token", true, "token"},
		{"/auth/jwks", true, "jwks"},
		{"/auth/token", false, ""},
		{"/v2/", true, "base"},
		{"/v2/a/manifests/latest", true, "manifest"},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.path, nil)
		if got, _ := routeLabels(tc.tokenServer)(r); got != tc.want {
			t.Errorf("%s (token server %v): route %q, want %q", tc.path, tc.tokenServer, got, tc.want)
		}
	}
}

// With auth on, a storage root every local user may enter is named: its
// files are readable by all, whatever the API allows.
func TestWarnOpenRoot(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o750, false}, {0o700, false}, {0o755, true}, {0o711, true}} {
		if err := os.Chmod(root, tc.mode); err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		warnOpenRoot(slog.New(slog.NewTextHandler(&logs, nil)), root)
		if got := strings.Contains(logs.String(), "every local user"); got != tc.warn {
			t.Errorf("mode %#o: warned %v, want %v: %s", tc.mode, got, tc.warn, logs.String())
		}
	}
}

// countingReader counts what a client's transport took of a request body.
type countingReader struct{ n atomic.Int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// Over HTTP/2 a client may send several MiB of a push before the handler
// reads any: with Go's default 1 MiB window a push crawls at 1 MiB per
// round trip on any distant link.
func TestHTTP2WindowLetsAPushAhead(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
	})
	ts := httptest.NewUnstartedServer(h)
	ts.Config = newHTTPServer(config.Default(), h, nil, slog.New(slog.DiscardHandler))
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	defer close(release)
	body := &countingReader{}
	req, _ := http.NewRequest(http.MethodPost, ts.URL, io.LimitReader(body, 64<<20))
	go func() {
		if resp, err := ts.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for body.n.Load() < 3<<20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := body.n.Load(); n < 3<<20 {
		t.Fatalf("the client sent %d KiB before the handler read any, want the stream's window of %d MiB", n>>10, h2StreamWindow>>20)
	}
}

// A low open-file limit is warned of at start, naming the limit; a usual
// one is not.
func TestFewFilesWarned(t *testing.T) {
	for _, tc := range []struct {
		limit uint64
		warn  bool
	}{{64, true}, {1024, true}, {fewFiles, false}, {1 << 20, false}} {
		var buf bytes.Buffer
		warnFewFiles(slog.New(slog.NewTextHandler(&buf, nil)), tc.limit)
		if got := strings.Contains(buf.String(), fmt.Sprintf("limit=%d", tc.limit)); got != tc.warn {
			t.Errorf("limit %d: warned %v, want %v (%q)", tc.limit, got, tc.warn, buf.String())
		}
	}
}

// A server writes the store's format marker, and neither it nor a command
// over the store opens a store a newer build wrote.
func TestStoreFormatIsChecked(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	listening := make(chan string, 1)
	go func() { done <- serve(ctx, testConfig(root, "127.0.0.1:0"), discard, discard, listening) }()
	select {
	case <-listening:
	case err := <-done:
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "format")); err != nil || !strings.Contains(string(b), `"format":1`) {
		t.Fatalf("marker %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(root, "format"), []byte(`{"format":2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// (Were it to start, it would stop after a while, with no error.)
	sctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := serve(sctx, testConfig(root, "127.0.0.1:0"), discard, discard, nil); !errors.Is(err, registry.ErrNewerFormat) {
		t.Errorf("serve on a newer store: %v", err)
	}
	var stderr bytes.Buffer
	if code := runDu([]string{"--root", root}, io.Discard, &stderr); code == 0 || !strings.Contains(stderr.String(), "newer format") {
		t.Errorf("du on a newer store: exit %d, %s", code, &stderr)
	}
}
