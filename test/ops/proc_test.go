// Package ops runs `lading serve` the way an operator does, with a
// configuration file, LADING_* variables, flags, certificates and signals,
// and checks what the process then does from the outside: the port it
// listens on, the logs it writes, its metrics, health and exit status.
package ops

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

// binary is the lading built once for the whole package.
var binary struct {
	once sync.Once
	path string
	err  error
}

// ladingBinary returns $LADING_TEST_BINARY, or ./cmd/lading built once.
func ladingBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs lading")
	}
	if p := os.Getenv("LADING_TEST_BINARY"); p != "" {
		return p
	}
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "lading-ops-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "lading")
		cmd := exec.Command("go", "build", "-o", binary.path, "./cmd/lading")
		cmd.Dir = testserver.ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.path != "" {
		os.RemoveAll(filepath.Dir(binary.path))
	}
	os.Exit(code)
}

// proc is one lading process.
type proc struct {
	cmd    *exec.Cmd
	out    string // the file holding its standard output and error
	exited chan struct{}
}

// launch runs lading with args and, on top of a test environment free of
// any LADING_ variable, env. The process is killed when the test ends if
// it is still running.
func launch(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "lading-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p := &proc{out: out.Name(), exited: make(chan struct{})}
	p.cmd = exec.Command(ladingBinary(t), args...)
	p.cmd.Env = cleanEnv(env...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	testenv.DieWithParent(p.cmd) // even when a timeout panic skips the cleanups
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if out := p.output(); t.Failed() {
			t.Logf("lading output (last 8 KiB):\n%s", out[max(0, len(out)-8<<10):])
		}
	})
	return p
}

// cleanEnv is the test's environment without any LADING_ variable, which
// lading would take for a setting, plus extra.
func cleanEnv(extra ...string) []string {
	return append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "LADING_")
	}), extra...)
}

// serveOn launches `lading serve` with args and waits until url answers
// through client (nil: a plain client).
func serveOn(t *testing.T, client *http.Client, url string, env []string, args ...string) *proc {
	t.Helper()
	p := launch(t, env, append([]string{"serve"}, args...)...)
	p.waitFor(t, client, url)
	return p
}

// waitFor polls url until it answers at all.
func (p *proc) waitFor(t *testing.T, client *http.Client, url string) {
	t.Helper()
	if client == nil {
		client = &http.Client{}
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			t.Fatalf("lading exited with status %d before answering %s", p.cmd.ProcessState.ExitCode(), url)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("no answer on %s within 20s", url)
}

// exit waits up to timeout for the process to end and returns its status.
func (p *proc) exit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("lading still running %v later", timeout)
		return -1
	}
}

// stop sends SIGTERM and returns the exit status.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return p.exit(t, 20*time.Second)
}

// output is what the process wrote so far.
func (p *proc) output() string {
	b, _ := os.ReadFile(p.out)
	return string(b)
}

// logged waits up to timeout for the process to write s.
func (p *proc) logged(s string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.output(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// freeAddr returns a loopback host:port nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// refused reports whether nothing accepts connections on addr.
func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
