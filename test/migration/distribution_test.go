// Package migration moves images from a real CNCF Distribution registry
// into Lading with `lading import`, and pulls them back from a real
// `lading serve`. scripts/test.sh installs Distribution at the version
// below; the test fails under CI=true when it is missing.
package migration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

// distributionInstall is how scripts/test.sh installs Distribution.
const distributionInstall = "go install github.com/distribution/distribution/v3/cmd/registry@v3.1.1"

// distribution is a running Distribution registry on a file system root.
type distribution struct {
	addr   string
	cmd    *exec.Cmd
	out    *testserver.SyncBuffer
	exited chan struct{}
}

// startDistribution runs Distribution's registry on root, on a free port
// of 127.0.0.1, until stop or the end of the test.
func startDistribution(t *testing.T, root string) *distribution {
	t.Helper()
	bin := testenv.Tool(t, "registry", distributionInstall)
	var lastErr error
	// A free port found by listening and closing can be taken before the
	// registry binds it: try another.
	for range 3 {
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(t.TempDir(), "config.yml")
		yml := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", root, addr)
		if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		d := &distribution{addr: addr, out: &testserver.SyncBuffer{}, exited: make(chan struct{})}
		d.cmd = exec.Command(bin, "serve", conf)
		d.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
		testenv.DieWithParent(d.cmd)
		if err := d.cmd.Start(); err != nil {
			t.Fatalf("starting Distribution: %v", err)
		}
		go func() { _ = d.cmd.Wait(); close(d.exited) }()
		if lastErr = d.waitReady(15 * time.Second); lastErr == nil {
			t.Cleanup(d.stop)
			return d
		}
		d.stop()
	}
	t.Fatalf("Distribution did not start: %v", lastErr)
	return nil
}

func (d *distribution) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-d.exited:
			return fmt.Errorf("exited early: %s", d.out)
		default:
		}
		if resp, err := client.Get("http://" + d.addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("no answer on %s within %v: %s", d.addr, timeout, d.out)
}

// stop ends the registry, as an operator stops it before a migration.
func (d *distribution) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

func freeAddr() (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ladingImport runs `lading import` with env added to the test's
// environment, and returns what it printed and its exit status.
func ladingImport(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testserver.Binary(t), append([]string{"import"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("lading import: %v", err)
	}
	return out.String(), errOut.String(), code
}

func digestOf(t *testing.T, h interface{ String() string }) digest.Digest {
	t.Helper()
	d, err := digest.Parse(h.String())
	if err != nil {
		t.Fatal(err)
	}
	return d
}
