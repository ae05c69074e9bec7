// Package testserver builds Go programs of this module for tests and runs
// `lading serve` as a real process on a free loopback port, so end-to-end
// and conformance tests exercise the binary users run.
package testserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lading-registry/lading/internal/testenv"
)

// Build compiles the package pkg (an import path, or a path relative to the
// module root such as "./cmd/lading") into the test's temporary directory
// and returns the binary's path. The go command's cache makes repeated
// builds cheap.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = ModuleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

var moduleRoot = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
})

// ModuleRoot is the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}

// Options choose how lading runs. The zero value builds ./cmd/lading and
// serves on the filesystem driver under a temporary root.
type Options struct {
	// Binary is the lading executable; empty means $LADING_TEST_BINARY
	// (to test a release build), else ./cmd/lading built for the test.
	Binary string
	// Args are extra arguments after `serve --root DIR --addr HOST:PORT`,
	// such as a configuration file for S3 or auth.
	Args []string
	// Env is added to the test's environment.
	Env []string
	// Root is the data directory; empty means a new temporary one. A test
	// restarts lading on the data of a previous run by passing its Root.
	Root string
	// Host is the loopback address to serve on; empty means 127.0.0.1.
	// Clients treat 127.0.0.1 as plain HTTP unless told otherwise; any
	// other address of 127.0.0.0/8 is just a host to them.
	Host string
	// TLS serves HTTPS with this certificate, key and the CA that issued
	// it (PEM); Start then waits for the server through that CA.
	TLS *TLSFiles
	// Allow5xx lets the test pass although lading answered a request with
	// a 5xx: for tests that break the storage under the server on purpose.
	// Otherwise every 5xx in the access log fails the test, since a
	// client's mistake must never be answered with one.
	Allow5xx bool
}

// TLSFiles are PEM files of a server certificate (the chain, leaf first),
// its key, and the CA that issued it.
type TLSFiles struct {
	Cert, Key, CA string
}

// Server is a running `lading serve`.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// URL is "http://" + Addr, or "https://" with TLS.
	URL string
	// Root is the data directory given with --root.
	Root string

	cmd      *exec.Cmd
	client   *http.Client // trusts the server's CA
	logs     *SyncBuffer
	exited   chan struct{}
	allow5xx bool
	killed   bool
}

// Start runs lading and waits until /v2/ answers. The process is stopped
// (SIGTERM, then SIGKILL) when the test ends, and its log is printed if
// the test failed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := opts.Binary
	if bin == "" {
		bin = Binary(t)
	}
	root := opts.Root
	if root == "" {
		root = t.TempDir()
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	scheme, client, tlsArgs := "http", &http.Client{Timeout: time.Second}, []string(nil)
	if opts.TLS != nil {
		pool := x509.NewCertPool()
		ca, err := os.ReadFile(opts.TLS.CA)
		if err != nil || !pool.AppendCertsFromPEM(ca) {
			t.Fatalf("reading the CA %s: %v", opts.TLS.CA, err)
		}
		scheme = "https"
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		tlsArgs = []string{"--tls-cert", opts.TLS.Cert, "--tls-key", opts.TLS.Key}
	}
	var lastErr error
	// A free port found by listening and closing can be taken by another
	// process before lading binds it; try again with another.
	for range 3 {
		addr, err := freeAddr(host)
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{Addr: addr, URL: scheme + "://" + addr, Root: root, client: client, logs: &SyncBuffer{}, exited: make(chan struct{}), allow5xx: opts.Allow5xx}
		args := append(append([]string{"serve", "--root", root, "--addr", addr}, tlsArgs...), opts.Args...)
		s.cmd = exec.Command(bin, args...)
		s.cmd.Env = NoScheduledGC(append(os.Environ(), opts.Env...))
		s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
		testenv.DieWithParent(s.cmd) // even when a timeout panic skips the cleanups
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("starting lading: %v", err)
		}
		go func() { _ = s.cmd.Wait(); close(s.exited) }()
		if lastErr = s.waitReady(30 * time.Second); lastErr == nil {
			t.Cleanup(func() { s.stop(t) })
			return s
		}
		s.kill()
	}
	t.Fatalf("lading did not start: %v", lastErr)
	return nil
}

// NoScheduledGC returns env with LADING_GC_INTERVAL=0 added, unless env
// sets an interval already (the variable outranks a configuration file, and
// a --set outranks it). With the default schedule a serving lading starts a
// real collection at a random moment of its first ten minutes and holds the
// collector's lease for seconds: a test's own `lading gc` beside it then
// fails as "another garbage collection is running".
func NoScheduledGC(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "LADING_GC_INTERVAL=") {
			return env
		}
	}
	return append(env[:len(env):len(env)], "LADING_GC_INTERVAL=0")
}

// Logs returns what the process wrote so far.
func (s *Server) Logs() string { return s.logs.String() }

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("lading exited early: %s", s.Logs())
		default:
		}
		resp, err := s.client.Get(s.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			// 401 is up too: the registry may require authentication.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer on %s/v2/ within %v", s.URL, timeout)
}

// PID is the process id of the running lading, for tests that watch its
// resources in /proc.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Kill ends lading with SIGKILL, as a crash would, and waits for it to be
// gone. The test can then Start another on the same Root.
func (s *Server) Kill() {
	s.killed = true
	s.kill()
}

// serverErrorLine matches an access log line (text or JSON) of a 5xx,
// which the access log writes at level ERROR; anchored at the line's start
// so that no logged client value can forge one.
var serverErrorLine = regexp.MustCompile(`(?m)^(?:time=\S+ level=ERROR msg=request |\{"time":"[^"]*","level":"ERROR","msg":"request").*$`)

// stop asks for a graceful shutdown and checks that it happens, and that
// no request was answered with a 5xx.
func (s *Server) stop(t testing.TB) {
	if !s.killed {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-s.exited:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 && !s.killed {
			t.Errorf("lading exited with status %d after SIGTERM", code)
		}
	case <-time.After(40 * time.Second):
		t.Errorf("lading did not stop within 40s of SIGTERM")
		s.kill()
	}
	if !s.allow5xx {
		if lines := serverErrorLine.FindAllString(s.Logs(), 10); len(lines) > 0 {
			t.Errorf("lading answered with a server error:\n%s", strings.Join(lines, "\n"))
		}
	}
	if t.Failed() {
		t.Logf("lading log (last %d lines):\n%s", logTail, tail(s.Logs(), logTail))
	}
}

func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// logTail bounds the log printed for a failed test: a conformance run logs
// thousands of requests, and the end is where a failure shows.
const logTail = 200

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func freeAddr(host string) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// SyncBuffer collects output written from several goroutines: a process's, from
// exec's, or a logger's while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Binary is the lading Start runs by default: $LADING_TEST_BINARY (see
// Main), else one built for the test.
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("LADING_TEST_BINARY"); bin != "" {
		return bin
	}
	return Build(t, "./cmd/lading")
}

// Main runs a package's tests with lading built once for all of them,
// unless $LADING_TEST_BINARY names one already: every Start would
// otherwise link it again, a second or two each. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testserver.Main(m)) }
func Main(m *testing.M) int {
	flag.Parse()
	if testing.Short() || os.Getenv("LADING_TEST_BINARY") != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "lading-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bin := filepath.Join(dir, "lading")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/lading")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/lading: %v\n%s", err, out)
		return 1
	}
	os.Setenv("LADING_TEST_BINARY", bin)
	defer os.Unsetenv("LADING_TEST_BINARY")
	return m.Run()
}
