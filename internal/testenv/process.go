package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const (
	startAttempts = 5
	readyTimeout  = 15 * time.Second
	stopTimeout   = 5 * time.Second
)

// server describes how to start one kind of server on a given port.
type server struct {
	name  string
	path  string
	args  func(port int) []string
	env   []string
	dir   string
	ready func(addr string, pid int) error // nil once the server at addr is this process and answers
}

// process is a started server.
type process struct {
	addr   string
	cmd    *exec.Cmd
	out    *tailBuffer
	exited chan struct{}
}

// start launches s on a free port. Between choosing a port and the server
// binding it another process may take it, so a server that dies before it
// answers is started again on a new port.
func start(s server) (*process, error) {
	var lastErr error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := launch(s, port)
		if err == nil {
			return p, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("testenv: %s did not start after %d attempts: %w", s.name, startAttempts, lastErr)
}

func launch(s server, port int) (*process, error) {
	cmd := exec.Command(s.path, s.args(port)...)
	cmd.Env = s.env
	cmd.Dir = s.dir
	out := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	p := &process{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, out: out, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before answering (%v): %s", s.name, cmd.ProcessState, out.String())
		default:
		}
		err := s.ready(p.addr, cmd.Process.Pid)
		if err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s not ready on %s after %v: %v; output: %s", s.name, p.addr, readyTimeout, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop asks the server to shut down, and kills it if it does not.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testenv: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes a server printed, for failure messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ErrNotInstalled is wrapped by the Start functions when a server's binary
// cannot be found.
var ErrNotInstalled = errors.New("testenv: server binary not installed")
