package hardening

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/internal/testserver"
)

// On a full file system a write is answered 507 with a message that says
// so, never a 500 UNKNOWN; the bytes of a failed upload are given back at
// once rather than held until the session is purged; a session goes on
// from the chunks it had acknowledged; reads go on throughout; and writes
// work again once there is room. It needs a small file system of its own,
// mounted here (root, as CI runs).
func TestFullFileSystem(t *testing.T) {
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=4m"); err != nil {
		testenv.Unavailable(t, "cannot mount a 4 MiB tmpfs (%v): needs root", err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) }) // after the server stops
	srv := start(t, testserver.Options{Root: root, Allow5xx: true})
	c := newClient(srv.URL, 4)
	defer c.close()
	const repo = "full/repo"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	wantFull := func(r reply, err error) {
		t.Helper()
		must(err)
		if r.status != http.StatusInsufficientStorage || errorCode(r.body) != "UNKNOWN" || !bytes.Contains(r.body, []byte("storage full")) {
			t.Fatalf("a write with no room: %s, want 507 UNKNOWN saying storage full", r)
		}
	}
	free := func() int64 {
		var st unix.Statfs_t
		must(unix.Statfs(root, &st))
		return int64(st.Bavail) * st.Bsize
	}

	small, err := c.pushMonolithic(repo, randomBytes(4<<10))
	must(err)
	before := free()

	// One request bigger than the room left.
	big := randomBytes(6 << 20)
	wantFull(c.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest=sha256:"+strings.Repeat("0", 64), big))
	if after := free(); after < before-64<<10 {
		t.Fatalf("a failed upload holds %d KiB", (before-after)>>10)
	}

	// A chunk too big for the room left fails alone, its bytes given
	// back: the session keeps the chunks before it and goes on.
	content := randomBytes(2 << 20)
	loc, err := c.startSession(repo)
	must(err)
	loc, err = c.patch(loc, 0, content[:1<<20])
	must(err)
	before = free()
	wantFull(c.do(http.MethodPatch, loc, big, "Content-Range", "1048576-7340031", "Content-Type", "application/octet-stream"))
	if after := free(); after < before-64<<10 {
		t.Fatalf("a failed chunk holds %d KiB", (before-after)>>10)
	}
	off, _, err := c.sessionOffset(loc)
	must(err)
	if off != 1<<20 {
		t.Fatalf("after a failed chunk the session stands at %d, want %d", off, 1<<20)
	}

	// A chunk whose bytes fit but whose state does not: the session is
	// not dropped while the disk is full, and once there is room it goes
	// on with the chunk's bytes counted.
	filler := filepath.Join(root, "filler")
	fill(t, filler)
	fi, err := os.Stat(filler)
	must(err)
	must(os.Truncate(filler, fi.Size()/4096*4096-64<<10))
	room := free()
	r, err := c.do(http.MethodPatch, loc, content[1<<20:1<<20+room],
		"Content-Range", fmt.Sprintf("%d-%d", 1<<20, 1<<20+room-1), "Content-Type", "application/octet-stream")
	wantFull(r, err)
	r, err = c.do(http.MethodGet, loc, nil)
	wantFull(r, err)
	must(os.Remove(filler))
	if off, _, err = c.sessionOffset(loc); err != nil || off != 1<<20+room {
		t.Fatalf("with room again the session stands at %d (%v), want %d", off, err, 1<<20+room)
	}
	loc, err = c.patch(loc, off, content[off:])
	must(err)
	must(c.commit(loc, digest.FromBytes(content)))
	if ok, err := c.verifyBlob(repo, digest.FromBytes(content)); !ok || err != nil {
		t.Fatalf("the blob pushed after failed chunks: %v, %v", ok, err)
	}

	// Filled by someone else: small writes fail too, reads do not.
	fill(t, filler)
	cfg := randomBytes(64)
	wantFull(c.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(cfg).String(), cfg))
	if ok, err := c.verifyBlob(repo, small); !ok || err != nil {
		t.Fatalf("a read with the disk full: %v, %v", ok, err)
	}
	must(os.Remove(filler))
	_, err = c.pushMonolithic(repo, cfg)
	must(err)
	must(c.putManifest(repo, "after", imageManifest(digest.FromBytes(cfg), len(cfg), small, 4<<10, "room again")))
}

// A file system turned read-only after a disk error (ext4's
// errors=remount-ro) refuses writes with 503 UNAVAILABLE, never a 500
// UNKNOWN, and reads go on. It mounts a small ext4 image of its own (root,
// as CI runs) and has the kernel fail it.
func TestReadOnlyFileSystem(t *testing.T) {
	dir := t.TempDir()
	img, root := filepath.Join(dir, "fs.img"), filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"truncate", "-s", "16M", img},
		{"mkfs.ext4", "-q", "-F", img},
		{"mount", "-o", "loop,errors=remount-ro", img, root},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			testenv.Unavailable(t, "%s: %v: %s (needs root, e2fsprogs and loop devices)", args[0], err, out)
		}
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) }) // after the server stops
	src, err := exec.Command("findmnt", "-n", "-o", "SOURCE", root).Output()
	if err != nil {
		t.Fatal(err)
	}
	trigger := "/sys/fs/ext4/" + filepath.Base(strings.TrimSpace(string(src))) + "/trigger_fs_error"
	srv := start(t, testserver.Options{Root: root, Allow5xx: true})
	c := newClient(srv.URL, 4)
	defer c.close()
	const repo = "ro/repo"
	layer := randomBytes(4 << 10)
	small, err := c.pushMonolithic(repo, layer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trigger, []byte("test\n"), 0); err != nil {
		testenv.Unavailable(t, "failing the file system through %s: %v", trigger, err)
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	for _, w := range []struct {
		method, target string
		body           []byte
		header         []string
	}{
		{http.MethodPost, "/v2/" + repo + "/blobs/uploads/?digest=" + digest.FromBytes(cfg).String(), cfg, nil},
		{http.MethodPost, "/v2/" + repo + "/blobs/uploads/", nil, nil},
		{http.MethodPut, "/v2/" + repo + "/manifests/v1", imageManifest(small, len(layer), small, len(layer), "ro"),
			[]string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}},
	} {
		r, err := c.do(w.method, w.target, w.body, w.header...)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusServiceUnavailable || errorCode(r.body) != "UNAVAILABLE" {
			t.Errorf("%s %s on a read-only file system: %s, want 503 UNAVAILABLE", w.method, w.target, r)
		}
	}
	if ok, err := c.verifyBlob(repo, small); !ok || err != nil {
		t.Fatalf("a read on a read-only file system: %v %v", ok, err)
	}
}

// fill writes name until the file system is full.
func fill(t *testing.T, name string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// A process out of file descriptors answers a request that needs one 503
// UNAVAILABLE with Retry-After, which clients retry, never a 500: the
// descriptors come back as other requests end.
func TestOutOfFileDescriptors(t *testing.T) {
	srv := start(t, testserver.Options{Allow5xx: true})
	c := newClient(srv.URL, 1)
	defer c.close()
	const repo = "fd/repo"
	d, err := c.pushMonolithic(repo, randomBytes(4<<10))
	if err != nil {
		t.Fatal(err)
	}
	c.close()
	// Connections accepted and answered first: accepting one needs a
	// descriptor, which the limit below leaves none for.
	conns := make([]*bufio.ReadWriter, 3)
	for i := range conns {
		conn, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[i] = bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn))
		if r := rawRequest(t, conns[i], http.MethodGet, "/v2/"); r.StatusCode != http.StatusOK {
			t.Fatalf("GET /v2/: %d", r.StatusCode)
		}
	}
	pid := srv.PID()
	// The server closes its end of the first client's connection on its
	// own time; a descriptor it frees after the count below would be free
	// under the limit. So the count is taken once it holds still.
	var fds []os.DirEntry
	for deadline := time.Now().Add(5 * time.Second); ; {
		before, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if fds, err = os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err != nil {
			t.Fatal(err)
		}
		if len(fds) == len(before) || time.Now().After(deadline) {
			break
		}
	}
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatal(err)
	}
	// A new descriptor takes the lowest number free: a limit at that
	// number leaves none.
	taken := map[string]bool{}
	for _, fd := range fds {
		taken[fd.Name()] = true
	}
	lowest := 0
	for taken[strconv.Itoa(lowest)] {
		lowest++
	}
	full := unix.Rlimit{Cur: uint64(lowest), Max: old.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &full, nil); err != nil {
		testenv.Unavailable(t, "lowering lading's descriptor limit: %v", err)
	}
	restore := func() { unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil) }
	t.Cleanup(restore) // before the server stops
	for i, target := range []string{"/v2/" + repo + "/blobs/" + d.String(), "/v2/" + repo + "/blobs/uploads/"} {
		method := http.MethodGet
		if i == 1 {
			method = http.MethodPost
		}
		r := rawRequest(t, conns[i], method, target)
		if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s out of descriptors: %d, Retry-After %q; want 503 with Retry-After", method, target, r.StatusCode, r.Header.Get("Retry-After"))
		}
	}
	restore()
	if r := rawRequest(t, conns[2], http.MethodGet, "/v2/"+repo+"/blobs/"+d.String()); r.StatusCode != http.StatusOK {
		t.Errorf("GET with descriptors again: %d", r.StatusCode)
	}
}

// rawRequest sends a request without a body on a connection of its own
// and reads the response whole.
func rawRequest(t *testing.T, rw *bufio.ReadWriter, method, target string) *http.Response {
	t.Helper()
	fmt.Fprintf(rw, "%s %s HTTP/1.1\r\nHost: registry\r\nContent-Length: 0\r\n\r\n", method, target)
	if err := rw.Flush(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(rw.Reader, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
