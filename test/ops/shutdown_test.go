package ops

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// slowBody streams size pseudo-random bytes, one piece every interval,
// hashing them as they go out.
type slowBody struct {
	left     int64
	piece    int
	inPiece  int // bytes of the current piece already read
	interval time.Duration
	src      *rand.ChaCha8
	sum      hash.Hash
	sent     atomic.Int64
}

func newSlowBody(size int64, piece int, interval time.Duration) *slowBody {
	return &slowBody{left: size, piece: piece, interval: interval, src: rand.NewChaCha8([32]byte{'o', 'p', 's'}), sum: sha256.New()}
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	if b.inPiece == b.piece {
		time.Sleep(b.interval)
		b.inPiece = 0
	}
	n := int(min(int64(len(p)), int64(b.piece-b.inPiece), b.left))
	b.inPiece += n
	b.src.Read(p[:n])
	b.sum.Write(p[:n])
	b.left -= int64(n)
	b.sent.Add(int64(n))
	return n, nil
}

func (b *slowBody) digest() string { return "sha256:" + hex.EncodeToString(b.sum.Sum(nil)) }

// startUpload opens an upload session in repo through client (nil: a
// plain one) and returns its path.
func startUpload(t *testing.T, client *http.Client, base, repo string) string {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, "/v2/") {
		t.Fatalf("POST upload: %s, Location %q", resp.Status, loc)
	}
	return loc
}

// patch sends body as one chunk through client; nil means on a
// connection of its own, so that a shutdown cannot close it as idle just
// before the request starts.
func patch(client *http.Client, base, loc string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPatch, base+loc, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("0-%d", size-1))
	if client == nil {
		client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	}
	return client.Do(req)
}

// waitForUploadData waits until an upload's data under root holds at
// least n bytes: the request is then surely being served, not waiting in
// the listener's backlog.
func waitForUploadData(t *testing.T, root string, n int64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		found := false
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(d.Name(), ".data") && strings.Contains(path, "_uploads") {
				if info, err := d.Info(); err == nil && info.Size() >= n {
					found = true
				}
			}
			return nil
		})
		if found {
			return
		}
	}
	t.Fatalf("no upload data of %d bytes appeared under %s", n, root)
}

// TestShutdownFinishesAnUploadInFlight sends SIGTERM while a 64 MiB chunk
// is streaming slowly: the listener closes at once, the chunk completes,
// the process exits 0, and a new process on the same root commits the
// session.
func TestShutdownFinishesAnUploadInFlight(t *testing.T) {
	const size = 64 << 20
	root := t.TempDir()
	p, addr := serve(t, nil, "--root", root, "--debug-addr", debugAddr)
	debug, err := p.listening("debug listener")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	loc := startUpload(t, nil, base, "ops/drain")

	// 1 MiB every 100ms: about 6.4s for the whole chunk, seconds more than
	// the checks of the drain below take even on a loaded machine.
	body := newSlowBody(size, 1<<20, 100*time.Millisecond)
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := patch(nil, base, loc, body, size)
		if err != nil {
			t.Errorf("PATCH in flight during shutdown: %v", err)
		}
		answered <- resp
	}()
	waitForUploadData(t, root, 4<<20)
	signalled := body.sent.Load()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); !refused(addr); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 2s after SIGTERM")
		}
	}
	// The debug listener stays up through the drain and says the
	// instance is leaving.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, _ := get(t, "http://"+debug+"/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during the drain: %d, want 503", code)
		}
	}
	if code, _ := get(t, "http://"+debug+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics during the drain: %d", code)
	}
	if body.sent.Load() == size {
		t.Error("the chunk ended before the drain was observed; the test proves less than it says")
	}

	resp := <-answered
	if resp == nil {
		t.FailNow()
	}
	resp.Body.Close()
	t.Logf("SIGTERM after %d MiB of %d sent", signalled>>20, size>>20)
	if want := fmt.Sprintf("0-%d", size-1); resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != want {
		t.Fatalf("chunk in flight: %s, Range %q, want 202 and %s", resp.Status, resp.Header.Get("Range"), want)
	}
	if code := p.exit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after a complete drain", code)
	}

	// The session, whole, is there for the next process.
	p2, addr2 := serve(t, nil, "--root", root)
	base2 := "http://" + addr2
	status, err := http.Get(base2 + loc)
	if err != nil {
		t.Fatal(err)
	}
	status.Body.Close()
	if status.StatusCode != http.StatusNoContent || status.Header.Get("Range") != fmt.Sprintf("0-%d", size-1) {
		t.Fatalf("session after restart: %s, Range %q", status.Status, status.Header.Get("Range"))
	}
	req, _ := http.NewRequest(http.MethodPut, base2+loc+"?digest="+body.digest(), nil)
	commit, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	commit.Body.Close()
	if commit.StatusCode != http.StatusCreated {
		t.Fatalf("commit after restart: %s", commit.Status)
	}
	head, err := http.Head(base2 + "/v2/ops/drain/blobs/" + body.digest())
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != http.StatusOK || head.ContentLength != size {
		t.Fatalf("blob after commit: %s, %d bytes", head.Status, head.ContentLength)
	}
	if p2.stop(t) != 0 {
		t.Errorf("exit status %d after SIGTERM", p2.cmd.ProcessState.ExitCode())
	}
}

// TestDrainTimeoutCutsARequest keeps a chunk streaming past
// http.draintimeout: the request is cut, and the process exits 0 on time,
// since stopping is what it was asked to do; the log says what was cut.
func TestDrainTimeoutCutsARequest(t *testing.T) {
	root := t.TempDir()
	p, addr := serve(t, nil, "--root", root, "--set", "http.draintimeout=1s")
	base := "http://" + addr
	loc := startUpload(t, nil, base, "ops/cut")

	// 64 KiB every 50ms: 1 MiB/s, 17 minutes for the whole chunk, which
	// the exit must not wait for.
	const size = 1 << 30
	body := newSlowBody(size, 64<<10, 50*time.Millisecond)
	answered := make(chan error, 1)
	go func() {
		resp, err := patch(nil, base, loc, body, size)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %s", resp.Status)
		}
		answered <- err
	}()
	waitForUploadData(t, root, 1)
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := p.exit(t, 20*time.Second)
	took := time.Since(start)
	if code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	// Not before the timeout; after it, within a margin for the exit's
	// durable writes on a loaded machine, far below the chunk's length.
	if took < time.Second || took > 10*time.Second {
		t.Errorf("exited %v after SIGTERM with a 1s drain timeout", took)
	}
	select {
	case err := <-answered:
		t.Logf("client of the cut request: %v", err)
		if err == nil || strings.Contains(err.Error(), "answered") {
			t.Errorf("the request outliving the drain was not cut: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the client of the cut request is still waiting")
	}
	if !strings.Contains(p.output(), "drain timeout") {
		t.Errorf("the log does not say the drain timeout cut requests")
	}

	// What arrived before the cut is kept: the client resumes there on
	// the next process and completes the blob.
	p2, addr2 := serve(t, nil, "--root", root)
	base2 := "http://" + addr2
	status, err := http.Get(base2 + loc)
	if err != nil {
		t.Fatal(err)
	}
	status.Body.Close()
	var last int64
	// At 1 MiB/s for the 1s drain, about a MiB had arrived.
	if _, err := fmt.Sscanf(status.Header.Get("Range"), "0-%d", &last); status.StatusCode != http.StatusNoContent || err != nil || last < 256<<10 {
		t.Fatalf("session after the cut: %s, Range %q, want the bytes received kept", status.Status, status.Header.Get("Range"))
	}
	kept := last + 1
	const more = 1 << 20
	rest := newSlowBody(kept+more, 1<<30, 0)
	io.CopyN(io.Discard, rest, kept) // the same stream, hashed from its start
	req, _ := http.NewRequest(http.MethodPatch, base2+loc, io.LimitReader(rest, more))
	req.ContentLength = more
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", kept, kept+more-1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("resuming at %d after the cut: %s", kept, resp.Status)
	}
	req, _ = http.NewRequest(http.MethodPut, base2+loc+"?digest="+rest.digest(), nil)
	commit, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	commit.Body.Close()
	if commit.StatusCode != http.StatusCreated {
		t.Fatalf("commit of %d bytes after the cut: %s", kept+more, commit.Status)
	}
	t.Logf("%d bytes kept from the cut chunk", kept)
	if p2.stop(t) != 0 {
		t.Error("exit status after SIGTERM is not 0")
	}
}

// TestShutdownIsPromptWhenIdle stops lading right after a push with
// go-containerregistry, whose ping races an HTTPS and an HTTP connection
// and keeps the loser open without a request on it: such connections must
// not hold up the exit, which would then wait out the drain timeout.
func TestShutdownIsPromptWhenIdle(t *testing.T) {
	p, addr := serve(t, nil, "--root", t.TempDir(), "--set", "http.draintimeout=1m")
	pushRandom(t, addr+"/ops/prompt:v1")
	start := time.Now()
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	// A margin for a loaded machine, far below the drain timeout.
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("exit took %v after SIGTERM with nothing in flight", took)
	}
}

// TestSecondSignalEndsTheDrain: an operator who signals again does not
// wait for the drain.
func TestSecondSignalEndsTheDrain(t *testing.T) {
	root := t.TempDir()
	p, addr := serve(t, nil, "--root", root)
	base := "http://" + addr
	loc := startUpload(t, nil, base, "ops/impatient")
	const size = 1 << 30
	go func() {
		resp, err := patch(nil, base, loc, newSlowBody(size, 64<<10, 50*time.Millisecond), size)
		if err == nil {
			resp.Body.Close()
		}
	}()
	waitForUploadData(t, root, 1)
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if !p.logged(`msg="shutting down"`, 5*time.Second) {
		t.Fatal("SIGINT did not start a drain")
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.exit(t, 5*time.Second)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("exit took %v after the second signal", took)
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("process state %v, want ended by the second SIGTERM", p.cmd.ProcessState)
	}
}
