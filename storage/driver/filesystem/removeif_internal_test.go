package filesystem

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lading-registry/lading/internal/testenv"
)

// A tag a push has just stored (PutContent returned: acknowledged) is
// renamed aside by a RemoveObjectIf whose read saw the old value, then
// linked back. The link back names the acknowledged content again, and
// must be durable before the call returns: a sync that caught the rename
// but not the link would lose the tag in a crash. fanotify holds
// RemoveObjectIf's read so that the push lands between its read and its
// rename.
func TestRemoveObjectIfLinksBackDurably(t *testing.T) {
	d := settled(t)
	ctx := t.Context()
	const tag = "/r/_tags/latest"
	if err := d.PutContent(ctx, tag, []byte("old")); err != nil {
		t.Fatal(err)
	}
	file, _ := d.file(tag)
	fan, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC, unix.O_RDONLY)
	if err != nil {
		testenv.Unavailable(t, "fanotify: %v", err)
	}
	defer unix.Close(fan)
	if err := unix.FanotifyMark(fan, unix.FAN_MARK_ADD, unix.FAN_ACCESS_PERM, unix.AT_FDCWD, file); err != nil {
		testenv.Unavailable(t, "fanotify mark: %v", err)
	}
	type res struct {
		removed bool
		err     error
	}
	done := make(chan res, 1)
	go func() {
		removed, err := d.RemoveObjectIf(ctx, tag, []byte("old"))
		done <- res{removed, err}
	}()
	// RemoveObjectIf is now blocked in the read of the old value.
	var buf [4096]byte
	n, err := unix.Read(fan, buf[:])
	if err != nil || n < 24 {
		t.Fatal("fanotify read", n, err)
	}
	evfd := int32(binary.LittleEndian.Uint32(buf[16:]))
	// The push: stored and acknowledged before RemoveObjectIf goes on.
	if err := d.PutContent(ctx, tag, []byte("new")); err != nil {
		t.Fatal(err)
	}
	// Under the barrier's lock: RemoveObjectIf goes on past fanotify's
	// answer, an order the race detector cannot see.
	var syncs, fsyncs atomic.Int32
	d.barrier.mu.Lock()
	inner := d.barrier.sync
	d.barrier.sync = func() error { syncs.Add(1); return inner() }
	d.fsync = func(name string, fd int) error { fsyncs.Add(1); return fsyncPath(name, fd) }
	d.barrier.mu.Unlock()
	allow := func(evfd int32) {
		resp := struct {
			fd       int32
			response uint32
		}{evfd, unix.FAN_ALLOW}
		unix.Write(fan, (*[8]byte)(unsafe.Pointer(&resp))[:])
		unix.Close(int(evfd))
	}
	allow(evfd)
	go func() { // later reads of the old inode
		var buf [4096]byte
		for {
			n, err := unix.Read(fan, buf[:])
			if err != nil {
				return
			}
			for off := 0; off+24 <= n; {
				l := int(binary.LittleEndian.Uint32(buf[off:]))
				allow(int32(binary.LittleEndian.Uint32(buf[off+16:])))
				off += l
			}
		}
	}()
	var r res
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RemoveObjectIf hangs")
	}
	got, _ := d.GetContent(ctx, tag)
	t.Logf("RemoveObjectIf = %v, %v; tag holds %q; syncs %d, fsyncs %d during the rename aside and link back", r.removed, r.err, got, syncs.Load(), fsyncs.Load())
	if r.removed || !bytes.Equal(got, []byte("new")) {
		t.Fatalf("RemoveObjectIf = %v, %v, tag %q: the push between its read and its rename is not what was set up", r.removed, r.err, got)
	}
	if syncs.Load() == 0 && fsyncs.Load() == 0 {
		t.Errorf("the acknowledged tag was renamed into #tmp and linked back with no sync or fsync: a crash before the next sync can keep the rename and lose the link")
	}
}
