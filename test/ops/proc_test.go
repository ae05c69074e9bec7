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
	"regexp"
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
	if len(args) > 0 && args[0] == "serve" {
		p.cmd.Env = testserver.NoScheduledGC(p.cmd.Env)
	}
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

// serve launches `lading serve` with args on a loopback port the kernel
// picks as lading binds it, and waits until it answers plain HTTP there.
// It returns the process and its address.
func serve(t *testing.T, env []string, args ...string) (*proc, string) {
	t.Helper()
	p, addr := startServe(t, env, args...)
	p.waitFor(t, nil, "http://"+addr+"/v2/")
	return p, addr
}

// startServe launches `lading serve --addr 127.0.0.1:0` with args and
// returns it once it listens, with the address it logged. A port found
// free, released and then given to lading could be taken by another
// process in between; one the kernel picks at the bind cannot.
func startServe(t *testing.T, env []string, args ...string) (*proc, string) {
	t.Helper()
	p := launch(t, env, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	addr, err := p.listening("lading serving")
	if err != nil {
		t.Fatal(err)
	}
	return p, addr
}

// debugAddr is what --debug-addr takes for a port the kernel picks: another
// loopback address than the main listener's 127.0.0.1:0, which lading
// would refuse as the same.
const debugAddr = "127.0.0.2:0"

// listenAddr is the address in the log line of a listener, text or JSON.
var listenAddr = regexp.MustCompile(`\baddr"?[=:]"?([^\s",]+)`)

// listening waits for lading to log msg, the line of a listener it bound,
// and returns the address in it, or an error if lading exits first.
func (p *proc) listening(msg string) (string, error) {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-p.exited:
			return "", fmt.Errorf("lading exited with status %d before it listened:\n%s", p.cmd.ProcessState.ExitCode(), p.output())
		default:
		}
		out := p.output()
		// Whole lines only: the last may be read while being written.
		for line := range strings.Lines(out[:strings.LastIndex(out, "\n")+1]) {
			if m := listenAddr.FindStringSubmatch(line); m != nil && strings.Contains(line, msg) {
				return m[1], nil
			}
		}
	}
	return "", fmt.Errorf("lading did not log %q within 20s:\n%s", msg, p.output())
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

// serveAt runs start with a free loopback address, on which start must
// make lading serve, and waits until it answers there. A port found free
// and released can be taken by another process before lading binds it:
// then it tries another.
func serveAt(t *testing.T, start func(addr string) *proc) *proc {
	t.Helper()
	for try := 1; ; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		p := start(addr)
		got, err := p.listening("lading serving")
		if err != nil && strings.Contains(p.output(), addr+": bind: address already in use") && try < 3 {
			continue
		}
		if err != nil {
			t.Fatalf("serving on %s: %v", addr, err)
		}
		if got != addr {
			t.Fatalf("lading serves on %s, want %s", got, addr)
		}
		p.waitFor(t, nil, "http://"+addr+"/v2/")
		return p
	}
}

// hold returns a loopback address the test listens on until it ends.
func hold(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
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
