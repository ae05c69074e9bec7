package ops

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/lading-registry/lading/internal/testenv"
)

// storeWithImages returns the root of a filesystem store holding two
// images, one of them untagged, written by a lading since stopped.
func storeWithImages(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	p, addr := serve(t, nil, "--root", root)
	pushRandom(t, addr+"/ops/progress:v1")
	pushRandom(t, addr+"/ops/progress:v1") // the first is left untagged
	if p.stop(t) != 0 {
		t.Fatal("exit status after SIGTERM is not 0")
	}
	return root
}

// logLine is a progress line written when standard error is not a
// terminal: a time, then counts.
var logLine = regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d \S+ +repositories \d+ `)

// TestProgressWithoutTerminal runs lading gc with standard error in a
// file: progress comes as plain, timed lines, without terminal controls.
// The run waits out its 5s window for pushes in flight, long enough for a
// line.
func TestProgressWithoutTerminal(t *testing.T) {
	root := storeWithImages(t)
	p := launch(t, nil, "gc", "--root", root, "--grace", "0s", "--untagged")
	if code := p.exit(t, 60*time.Second); code != 0 {
		t.Fatalf("lading gc: exit %d\n%s", code, p.output())
	}
	out := p.output()
	if !logLine.MatchString(out) {
		t.Errorf("no progress line in:\n%s", out)
	}
	if strings.ContainsAny(out, "\r\x1b") {
		t.Errorf("terminal controls written to a file:\n%q", out)
	}
	if !strings.Contains(out, "removed 1 manifests") {
		t.Errorf("no report of the untagged manifest removed:\n%s", out)
	}
}

// TestProgressOnTerminal runs lading fsck and lading gc with standard
// error on a pseudo-terminal: progress is one line rewritten in place, and
// cleared before the report.
func TestProgressOnTerminal(t *testing.T) {
	root := storeWithImages(t)
	for _, args := range [][]string{
		{"fsck", "--root", root},
		{"gc", "--root", root, "--window", "1ms"},
	} {
		t.Run(args[0], func(t *testing.T) {
			tty := onTerminal(t, args...)
			if !strings.Contains(tty, "\r\x1b[K") || !strings.Contains(tty, "repositories ") {
				t.Errorf("no status line rewritten in place:\n%q", tty)
			}
			if !strings.HasSuffix(tty, "\r\x1b[K") {
				t.Errorf("status line not cleared at the end:\n%q", tty)
			}
		})
	}
}

// onTerminal runs lading with args, standard error on a new
// pseudo-terminal, and returns what it wrote there.
func onTerminal(t *testing.T, args ...string) string {
	t.Helper()
	ptm, pts := openPTY(t)
	defer ptm.Close()
	cmd := exec.Command(ladingBinary(t), args...)
	cmd.Env = cleanEnv()
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, pts
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close() // the child holds it now; reads end when it exits
	read := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(ptm) // EIO once the last holder of pts closes it
		read <- b
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("lading %s: %v\n%s", strings.Join(args, " "), err, stdout.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("lading %s still running after 60s", strings.Join(args, " "))
	}
	return string(<-read)
}

// openPTY opens a pseudo-terminal pair through /dev/ptmx.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		testenv.Unavailable(t, "no pseudo-terminal: %v", err)
	}
	var unlock int32
	if err := ioctl(ptm, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		ptm.Close()
		t.Fatal(err)
	}
	var n uint32
	if err := ioctl(ptm, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		ptm.Close()
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ptm.Close()
		t.Fatal(err)
	}
	return ptm, pts
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}
