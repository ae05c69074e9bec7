package filesystem

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// barrier makes every change made before it (bytes written, rename, link,
// mkdir) durable, with one syncfs(2) of the file system shared by every
// caller that arrives while the previous one runs. An fsync per file or
// directory costs a journal commit or a device flush each, and concurrent
// fsyncs queue behind one another; concurrent pushes would pay several per
// blob. New bytes wait for a barrier of their own before their name is
// made, so a barrier never publishes a name whose bytes could still be lost.
//
// syncfs also writes whatever else is dirty on the file system: another
// program's gigabytes, or a large upload in flight, can hold it for
// seconds. So no sync begins while the machine holds much unwritten data
// (crowded), and a caller that has waited patience for a sync gives up on
// it; either way the caller makes its own changes durable instead, with an
// fsync of each file or directory they touched, which waits for those
// alone.
type barrier struct {
	sync     func() error // syncfs of the root; tests replace it
	crowded  func() bool  // whether a sync would have much to write
	patience time.Duration

	mu      sync.Mutex
	started uint64   // syncs begun; running is the latest while started > done
	done    uint64   // syncs finished
	running *syncRun // nil when idle
	// lag is how many syncs after a change's own must also finish before
	// it is durable (see newBarrier).
	lag uint64

	// failed numbers the latest sync that failed, with its error. syncfs
	// reports a writeback error once, so a later sync's success does not
	// clear it for the callers that failed sync covered.
	failed    uint64
	failedErr error

	// reports says syncfs returns a failed writeback of any file of the
	// file system that happened since its previous call (Linux 5.8 and
	// later), which since relies on.
	reports bool
}

// syncRun is one sync in progress.
type syncRun struct {
	began time.Time
	done  chan struct{} // closed when it has finished
}

// patience is how long a caller waits for a sync before syncing its own
// changes: many times what a sync of a registry's own writes takes, even
// on a slow disk, so that only a sync held up by others' data is given up.
const patience = 50 * time.Millisecond

func newBarrier(root string, journaled bool) (*barrier, error) {
	f, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	b := &barrier{sync: func() error { return unix.Syncfs(int(f.Fd())) }, crowded: machineGauge().over, patience: patience, reports: syncfsReportsAll(root)}
	if !syncfsWrites(barrierFSType(root)) {
		// Every caller makes its own changes durable, as when a sync would
		// be crowded: an fsync reaches what a syncfs does not.
		b.crowded = func() bool { return true }
	}
	if !journaled {
		// Without a journal, ext4's syncfs flushes the disk's cache before
		// its last metadata writes, which may then sit in that cache when
		// it returns. The next syncfs's flush covers them: a change is
		// durable once the sync after its own has finished.
		b.lag = 1
	}
	return b, nil
}

// barrierFSType is fsType; tests pose as other file systems.
var barrierFSType = fsType

// syncfsWrites reports whether a syncfs(2) of a file system of type typ
// (statfs(2)'s magic) makes what it holds durable. FUSE passes it on to
// its daemon only for virtiofs, which shares the magic (sshfs, mergerfs,
// rclone, fuse-overlayfs answer it at once, having synced nothing), and
// network file systems need not commit to their server either; an fsync
// reaches both.
func syncfsWrites(typ int64) bool {
	switch typ {
	case unix.FUSE_SUPER_MAGIC, unix.NFS_SUPER_MAGIC, unix.CIFS_SUPER_MAGIC, unix.SMB_SUPER_MAGIC, unix.SMB2_SUPER_MAGIC,
		unix.V9FS_MAGIC, unix.CEPH_SUPER_MAGIC, unix.AFS_FS_MAGIC, unix.AFS_SUPER_MAGIC:
		return false
	}
	return true
}

// journaled reports whether the file system below dir commits its metadata
// through a journal or a copy-on-write transaction, whose sync flushes the
// disk's cache after everything it wrote: XFS, Btrfs, and ext4 with a
// journal (when jbd2 lists its device); tmpfs never writes at all.
func journaled(dir string) bool {
	switch fsType(dir) {
	case unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC:
		return true
	case unix.EXT4_SUPER_MAGIC:
		var st unix.Stat_t
		if unix.Stat(dir, &st) != nil {
			return false
		}
		dev, err := os.Readlink(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)))
		if err != nil {
			return false
		}
		journals, _ := filepath.Glob("/proc/fs/jbd2/" + filepath.Base(dev) + "-*")
		return len(journals) > 0
	}
	return false
}

// ticket names the first sync that begins after the call: one that covers
// every change made before it.
func (b *barrier) ticket() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.started + 1
}

// since returns the first sync that can report a failed writeback of
// bytes written from now on: the first not finished yet. 0 when a sync
// reports no other file's failure.
func (b *barrier) since() uint64 {
	if !b.reports {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done + 1
}

// syncfsReportsAll reports whether syncfs of root's file system returns
// writeback errors of every file: Linux 5.8 and later, on a file system
// whose pages are its own (an overlay's belong to the upper one, whose
// errors its syncfs need not pass on).
func syncfsReportsAll(root string) bool {
	if !localPages(root) {
		return false
	}
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var major, minor int
	if n, _ := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); n != 2 {
		return false
	}
	return major > 5 || major == 5 && minor >= 8
}

// covered reports whether a change made before ticket t is durable: its
// sync and every one since finished, and none of them failed (a failed
// sync's lost pages are not written by a later one).
func (b *barrier) covered(t uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return t+b.lag <= b.done && t > b.failed
}

// waitFor returns once sync number t (and the lag after it) has finished,
// starting the next sync if none is running. A caller may thus make a change, take a ticket, and wait later:
// by then another caller's sync may have covered it already. When the sync
// it waits for has run for longer than patience (counted from that sync's
// start), would begin while the machine is crowded, or failed, waitFor
// returns what own returns instead: own must make the caller's changes
// durable by itself. A nil own waits for the sync however long it takes,
// and gets its error.
func (b *barrier) waitFor(t uint64, own func() error) error {
	return b.waitSince(t, t, own)
}

// waitSince is waitFor for a change that a failure reported to any sync
// numbered since or later undoes, not only to its own: bytes written
// through one descriptor whose failed writeback an earlier sync (since
// returned) may have reported to other callers.
func (b *barrier) waitSince(t, since uint64, own func() error) error {
	if since == 0 || since > t {
		since = t
	}
	b.mu.Lock()
	for b.done < t+b.lag {
		r := b.running
		if r == nil {
			if own != nil && b.crowded() {
				b.mu.Unlock()
				return own()
			}
			r = b.start()
		}
		b.mu.Unlock()
		if own == nil {
			<-r.done
		} else if !waitUntil(r.done, r.began.Add(b.patience)) {
			return own()
		}
		b.mu.Lock()
	}
	failed := b.failed >= since
	err := b.failedErr
	b.mu.Unlock()
	if failed && own != nil {
		// The sync may have failed on another file's pages: the caller's
		// own fsync tells for its changes alone.
		return own()
	}
	if failed {
		return err
	}
	return nil
}

// start begins the next sync; b.mu is held. It runs apart from its callers
// so that each can stop waiting for it.
func (b *barrier) start() *syncRun {
	b.started++
	n := b.started
	r := &syncRun{began: time.Now(), done: make(chan struct{})}
	b.running = r
	sync := b.sync // read under b.mu, where tests replace it
	go func() {
		err := sync()
		b.mu.Lock()
		b.done, b.running = n, nil
		if err != nil {
			b.failed, b.failedErr = n, err
		}
		b.mu.Unlock()
		close(r.done)
	}()
	return r
}

// waitUntil reports whether done is closed by deadline.
func waitUntil(done <-chan struct{}, deadline time.Time) bool {
	select {
	case <-done:
		return true
	default:
	}
	wait := time.Until(deadline)
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// crowdedBytes is how much unwritten data makes a sync not worth
// starting: a fraction of a second of writing at a few hundred MB/s, and
// more than a layer or two in flight leave pending.
const crowdedBytes = 64 << 20

// dirtyGauge reads how much data the kernel holds unwritten, dirty or
// being written back, on all file systems together: Linux does not tell
// it per file system cheaply, and a sync of this one also waits for its
// share of the writeback in flight.
type dirtyGauge struct {
	mu    sync.Mutex
	fd    int // /proc/meminfo, or -1
	limit int64
	// The answer is kept for a millisecond: a busy registry starts a sync
	// about that often.
	read time.Time
	was  bool
	buf  [8 << 10]byte
}

// machineGauge is the process's one gauge, shared by every driver.
var machineGauge = sync.OnceValue(func() *dirtyGauge { return newDirtyGauge(crowdedBytes) })

func newDirtyGauge(limit int64) *dirtyGauge {
	fd, err := unix.Open("/proc/meminfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fd = -1
	}
	return &dirtyGauge{fd: fd, limit: limit}
}

// over reports whether more than the limit is unwritten; false when it
// cannot tell.
func (g *dirtyGauge) over() bool {
	if g.fd < 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if now.Sub(g.read) < time.Millisecond {
		return g.was
	}
	n, err := unix.Pread(g.fd, g.buf[:], 0)
	if err != nil || n <= 0 {
		return false
	}
	g.read = now
	g.was = meminfoBytes(g.buf[:n], "Dirty:")+meminfoBytes(g.buf[:n], "Writeback:") > g.limit
	return g.was
}

// meminfoBytes returns the value of a /proc/meminfo line, given in kB, or
// 0 when the line is missing.
func meminfoBytes(info []byte, key string) int64 {
	i := 0
	if !bytes.HasPrefix(info, []byte(key)) {
		if i = bytes.Index(info, []byte("\n"+key)); i < 0 {
			return 0
		}
		i++
	}
	var kb int64
	for _, c := range info[i+len(key):] {
		switch {
		case c == ' ':
			if kb > 0 {
				return kb << 10
			}
		case c >= '0' && c <= '9':
			kb = kb*10 + int64(c-'0')
		default:
			return kb << 10
		}
	}
	return kb << 10
}
