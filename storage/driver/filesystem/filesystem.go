// Package filesystem is the embedded default storage driver: objects are
// files below one root directory, /a/b being root/a/b.
//
// Data appears at its final path only when complete: small content is
// written to a temporary file, made durable, and then linked (or renamed,
// to replace what is there) into place; an empty object, having no bytes
// to see half of, is made in place. Directories are object-store prefixes: they are
// made on demand and removed again with the last file a Delete takes from
// them (a Move leaves the folder it empties, which reads as absent).
//
// Durability costs a share of one syncfs barrier that concurrent
// operations join (see barrier): once for new bytes (PutContent, Create, a
// Writer's Commit), before their name is made, and once for every name made
// durable (PutContent, Create, Move), or under a driver.Batch one wait at its
// Commit. When a barrier would be slow, each operation fsyncs what it
// touched instead: the bytes' file, each file it named or touched, and
// the directories holding the names. A Writer's own file name is not made
// durable: writers hold data in progress, which the registry publishes
// with Move.
package filesystem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/lading-registry/lading/storage/driver"
)

const name = "filesystem"

// tempDir holds files being written by PutContent and Create. Its name has
// a character no valid path may hold, so no path can ever name it or what
// is inside, and listings skip it like any other invalid name.
const tempDir = "#tmp"

// staleTemp is the age after which a temporary file can only be the litter
// of a crashed process: a PutContent takes milliseconds.
const staleTemp = time.Hour

// Driver is a driver.Driver over a directory.
type Driver struct {
	root     string
	rootInfo os.FileInfo // as at New, which RootPresent compares against
	tmp      string
	barrier  *barrier
	fresh    freshDirs
	unnamed  bool // temporary files for new names are unnamed (see temp)
	byFD     bool // and linked by their descriptor (see linkFD)

	shortReadEnds bool        // see shortReadsEnd
	journaled     bool        // see Journaled
	exchanges     atomic.Bool // renameat2 exchanges names here (see replace)
	parked        parked
	// fsyncPath and writebackErr; tests replace them.
	fsync        func(name string, fd int) error
	writebackErr func(fd int) error
}

var _ driver.Driver = (*Driver)(nil)

// New returns a driver storing below root, creating it if needed.
func New(root string) (*Driver, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	d := &Driver{root: root, tmp: filepath.Join(root, tempDir), fsync: fsyncPath, writebackErr: writebackErr}
	// A root made here is closed to other users: with access control on,
	// a local account must not read private images past it. One that
	// exists keeps the mode its operator gave it.
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, err
	}
	if err := nothingMountedBelow(root); err != nil {
		return nil, err
	}
	if d.rootInfo, err = os.Stat(root); err != nil {
		return nil, err
	}
	d.journaled = journaled(root)
	if !d.journaled {
		spreadFolders(root)
	}
	if err := os.MkdirAll(d.tmp, 0o755); err != nil && !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
		// A root this process may only read (a mirror another process
		// writes, served read-only) needs no temporary files; a writer
		// learns from CheckWritable.
		return nil, err
	}
	d.unnamed, d.byFD = linkUnnamed(d.tmp)
	d.shortReadEnds = shortReadsEnd(root)
	d.exchanges.Store(true)
	if d.barrier, err = newBarrier(root, d.journaled); err != nil {
		return nil, err
	}
	// What a previous process made may not be durable: until this sync
	// has finished, a fallback fsyncs every directory up to the root.
	d.fresh.startup = d.barrier.ticket()
	go d.barrier.waitFor(d.fresh.startup, nil)
	d.removeStaleTemps()
	return d, nil
}

// spreadFolders asks ext2, ext3 and ext4 to place each folder made
// directly in root (the blobs, the repositories, the temporary folder) in
// a block group of its own choosing, as for a folder at the top of the
// file system, rather than next to root. Without a journal, ext4 passes
// over every inode of a group freed in the last minutes at each inode it
// allocates there (recently_deleted), so files made next to many deleted
// ones cost more. Right after a store was removed from the same file
// system, that scan took 8% of the server's CPU on manifest pushes, 0.5%
// with the folders spread (3077 -> 3519 pushes/s). Only on the ext family
// and on a root of the process's own: a flag that lasts is not for a
// folder another user lent. Best effort, and folders made before keep
// their place.
func spreadFolders(root string) {
	const topDir = 0x00020000 // FS_TOPDIR_FL of linux/fs.h, which x/sys/unix lacks
	var st unix.Stat_t
	if fsType(root) != unix.EXT4_SUPER_MAGIC || unix.Stat(root, &st) != nil || int(st.Uid) != os.Geteuid() {
		return
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err == nil && flags&topDir == 0 {
		_ = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|topDir))
	}
}

// nothingMountedBelow refuses a root with a file system mounted below it:
// the driver links and renames across its folders, which fails between
// mounts (EXDEV, on the first push), and its barrier is one syncfs of the
// root's file system, which would not reach another. A root that is a
// mount point itself is fine.
func nothingMountedBelow(root string) error {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(real))
	if err != nil {
		return nil // no /proc to tell: nothing to check against
	}
	for _, m := range mounts {
		if m.Mountpoint != real {
			return fmt.Errorf("filesystem: %s is mounted below the root %s (%s): Lading needs its whole root on one file system; mount the file system at the root itself", m.Mountpoint, root, m.FSType)
		}
	}
	// A folder of the root may also lead elsewhere through a symbolic
	// link, where every rename and link into it would fail (EXDEV).
	var rootStat unix.Stat_t
	if err := unix.Stat(real, &rootStat); err != nil {
		return err
	}
	entries, err := os.ReadDir(real)
	if err != nil {
		return err
	}
	for _, e := range entries {
		var st unix.Stat_t
		if e.Type()&fs.ModeSymlink != 0 && unix.Stat(filepath.Join(real, e.Name()), &st) == nil && st.Dev != rootStat.Dev {
			return fmt.Errorf("filesystem: %s in the root %s is a symbolic link to another file system: Lading needs its whole root on one file system", e.Name(), root)
		}
	}
	return nil
}

// Journaled reports whether the root's file system commits its metadata
// through a journal or copy-on-write (see journaled). Without one a crash
// can lose files however they are written (docs/operations.md).
func (d *Driver) Journaled() bool { return d.journaled }

// Name implements driver.Driver.
func (d *Driver) Name() string { return name }

// GetContent implements driver.Driver.
func (d *Driver) GetContent(_ context.Context, path string) ([]byte, error) {
	file, err := d.file(path)
	if err != nil {
		return nil, err
	}
	b, err := readWhole(file, d.shortReadEnds)
	if err != nil {
		return nil, d.pathErr(path, err)
	}
	return b, nil
}

// readWhole reads a file with open, reads to its end and close: os.ReadFile
// adds the *os.File's set-up and an fstat, on the path of every tag and
// record read. Only a file that fills the first buffer costs an fstat, to
// size the rest. Unless shortEnds, it reads until a read returns nothing
// rather than trusting a short one, which network and FUSE file systems may
// return early.
func readWhole(name string, shortEnds bool) ([]byte, error) {
	fd, err := openFD(name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var small [smallRead]byte
	n, err := readFull(fd, small[:], shortEnds)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if n < len(small) {
		return append([]byte(nil), small[:n]...), nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: name, Err: err}
	}
	// Room for one read past the size, which finds the end.
	b := append(make([]byte, 0, max(st.Size, int64(n))+512), small[:n]...)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := unix.Read(fd, b[len(b):cap(b)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		case m == 0:
			return b, nil
		}
		b = b[:len(b)+m]
	}
}

// smallRead covers tags, links, records and upload states whole.
const smallRead = 4 << 10

// openFD opens a file as a bare descriptor: an *os.File spends five more
// system calls trying to make a regular file pollable. Like os.Open it
// retries an open a signal interrupted (network and FUSE file systems).
func openFD(name string, flags int, perm uint32) (int, error) {
	fd, err := unix.Open(name, flags|unix.O_CLOEXEC, perm)
	for err == unix.EINTR {
		fd, err = unix.Open(name, flags|unix.O_CLOEXEC, perm)
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return fd, nil
}

// readFull reads into b until it is full or the file ends; with shortEnds,
// a short read is taken for the end.
func readFull(fd int, b []byte, shortEnds bool) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Read(fd, b[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return n, err
		case m == 0:
			return n, nil
		}
		n += m
		if shortEnds && n < len(b) {
			return n, nil
		}
	}
	return n, nil
}

// shortReadsEnd reports whether the file system below dir is one whose
// read(2) of a regular file returns less than asked only at the file's end
// (a page-cache read stops early only for a fatal signal): on those, a tag
// or record read saves the read that would find the end. Like the syncfs
// barrier, it takes everything below the root to be one file system.
func shortReadsEnd(dir string) bool { return localPages(dir) }

// localPages reports whether the file system below dir keeps its files'
// pages in the page cache as its own: ext4, XFS, Btrfs, tmpfs (not a
// network, FUSE or overlay file system).
func localPages(dir string) bool {
	switch fsType(dir) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC:
		return true
	}
	return false
}

// fsType is the type of the file system below dir (statfs(2)'s magic), 0
// when it cannot tell.
func fsType(dir string) int64 {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return 0
	}
	return int64(st.Type)
}

// PutContent implements driver.Driver.
func (d *Driver) PutContent(ctx context.Context, path string, content []byte) error {
	return d.put(ctx, path, content, true)
}

// PutState implements driver.Driver: a rename of an unsynced temporary
// file, atomic for readers and with no sync at all.
func (d *Driver) PutState(ctx context.Context, path string, content []byte) error {
	return d.put(ctx, path, content, false)
}

// put renames a complete temporary file onto path, so readers see the old
// content or the new, never a part.
func (d *Driver) put(ctx context.Context, path string, content []byte, durable bool) error {
	file, err := d.file(path)
	if err != nil {
		return err
	}
	if len(content) == 0 {
		if done, err := d.putEmpty(ctx, file, durable); done || err != nil {
			return err
		}
	}
	// Empty content reaches here only over content (see putEmpty).
	t, err := d.writeTemp(content, durable, len(content) > 0 && d.absent(file))
	if err != nil {
		return err
	}
	if err := t.bytesDurable(d); err != nil {
		return err
	}
	return d.publish(ctx, t, file, durable, true)
}

// DefersUnderBatch implements driver.Deferring: under a batch the syncfs
// barrier waits for the batch's Commit.
func (d *Driver) DefersUnderBatch() bool { return true }

// Stage implements driver.Stager: the temporary file is written now, and
// renamed into place by Publish once a barrier begun after the write has
// made its bytes durable. The contents a request stages side by side thus
// share the wait of its first Publish.
func (d *Driver) Stage(ctx context.Context, path string, content []byte) (driver.Staged, error) {
	file, err := d.file(path)
	if err != nil {
		return nil, err
	}
	if len(content) == 0 {
		// Made in place at Publish: there are no bytes to sync first.
		return &staged{d: d, path: path, file: file}, nil
	}
	t, err := d.writeTemp(content, true, d.absent(file))
	if err != nil {
		return nil, err
	}
	return &staged{d: d, path: path, file: file, t: t}, nil
}

type staged struct {
	d          *Driver
	path, file string
	t          *temp // nil for empty content
	done       bool
}

func (s *staged) Publish(ctx context.Context) error {
	if s.done {
		return errors.New("filesystem: staged content published or discarded already")
	}
	s.done = true
	if s.t == nil {
		return s.d.put(ctx, s.path, nil, true)
	}
	if err := s.t.bytesDurable(s.d); err != nil {
		return err
	}
	return s.d.publish(ctx, s.t, s.file, true, true)
}

func (s *staged) Discard() {
	if !s.done && s.t != nil {
		s.t.discard()
	}
	s.done = true
}

// putEmpty puts an empty object (a marker or link, the most frequent write)
// in place: with no bytes, a reader can only see the file whole, so no
// temporary file and rename are needed. An empty file already there is
// touched instead, since the collector reads a recent write from the
// modification time. done is false when the path holds content, which
// only a rename may replace atomically.
func (d *Driver) putEmpty(ctx context.Context, file string, durable bool) (done bool, err error) {
	err = d.place(ctx, file, durable, func() error {
		fd, err := openFD(file, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err == nil {
			return unix.Close(fd)
		}
		if !errors.Is(err, unix.EEXIST) {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(file, &st); err != nil {
			return &fs.PathError{Op: "lstat", Path: file, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 {
			return errNotEmpty
		}
		now := time.Now()
		return os.Chtimes(file, now, now)
	})
	if err == errNotEmpty {
		return false, nil
	}
	return true, err
}

var errNotEmpty = errors.New("not an empty file")

// Create implements driver.Driver. link(2) fails when the name is taken,
// which makes first-writer-wins atomic where rename would overwrite.
func (d *Driver) Create(ctx context.Context, path string, content []byte) error {
	file, err := d.file(path)
	if err != nil {
		return err
	}
	// Taken paths are the common case of a lease; spare them the write.
	_, err = os.Lstat(file)
	if err == nil {
		return driver.ErrExists
	}
	// Create never replaces, so its file may be unnamed (see temp).
	t, err := d.writeTemp(content, true, errors.Is(err, fs.ErrNotExist))
	if err != nil {
		return err
	}
	if err := t.bytesDurable(d); err != nil {
		return err
	}
	err = d.publish(ctx, t, file, true, false)
	if errors.Is(err, fs.ErrExist) {
		return driver.ErrExists
	}
	return err
}

// Reader implements driver.Driver. The reader is the *os.File itself, so
// that net/http can hand it to sendfile(2).
func (d *Driver) Reader(_ context.Context, path string, offset int64) (io.ReadCloser, error) {
	file, err := d.file(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, d.pathErr(path, err)
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
	case fi.IsDir():
		err = d.notFound(path)
	case offset < 0 || offset > fi.Size():
		err = driver.InvalidOffsetError{Driver: name, Path: path, Offset: offset}
	case offset > 0:
		_, err = f.Seek(offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Stat implements driver.Driver.
func (d *Driver) Stat(_ context.Context, path string) (driver.FileInfo, error) {
	file, err := d.file(path)
	if err != nil {
		return driver.FileInfo{}, err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return driver.FileInfo{}, d.pathErr(path, err)
	}
	info := driver.FileInfo{Path: path, ModTime: fi.ModTime(), IsDir: fi.IsDir()}
	if !fi.IsDir() {
		info.Size = fi.Size()
	} else if !hasEntries(file) {
		// Left behind by a race with pruning; object stores have no such thing.
		return driver.FileInfo{}, d.notFound(path)
	}
	return info, nil
}

// StatObject implements driver.ObjectOps: one stat(2), without os.Stat's
// allocations, on the path of every HEAD, GET by tag and push.
func (d *Driver) StatObject(_ context.Context, path string) (driver.FileInfo, error) {
	file, err := d.file(path)
	if err != nil {
		return driver.FileInfo{}, err
	}
	var st unix.Stat_t
	err = unix.Stat(file, &st)
	for err == unix.EINTR { // as os.Stat: network file systems may be interrupted
		err = unix.Stat(file, &st)
	}
	if err != nil {
		return driver.FileInfo{}, d.pathErr(path, &fs.PathError{Op: "stat", Path: file, Err: err})
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return driver.FileInfo{}, d.notFound(path)
	}
	return driver.FileInfo{Path: path, Size: st.Size, ModTime: time.Unix(st.Mtim.Unix())}, nil
}

// Persist implements driver.Persister. Nothing is written: the path joins
// the changes the caller's sync covers, which a syncfs covers whoever made
// them, so that a sync falling back to fsyncs of the caller's own files
// (see barrier) fsyncs this one and its directory too.
func (d *Driver) Persist(ctx context.Context, path string) error {
	file, err := d.file(path)
	if err != nil {
		return err
	}
	if driver.Defer(ctx, d.barrier, d.newChanges, func(cs *changes) { cs.files = append(cs.files, file) }) {
		return nil
	}
	return d.barrier.waitFor(d.barrier.ticket(), func() error { return d.syncChanges(file) })
}

// RootPresent fails when the root is gone, or is no longer the folder New
// opened: a file system unmounted while serving leaves its mount point, an
// empty folder where writes would go on unseen, and every pull would be
// answered 404, which clients take for "no such image" rather than an
// outage. The same folder moved away and back passes again (the check
// holds no handle); another folder in its place needs a restart.
//
// The error is a driver.UnavailableError: requests get 503 with
// Retry-After, as when an object store is down.
func (d *Driver) RootPresent() error {
	fi, err := os.Stat(d.root)
	switch {
	case err != nil:
		err = fmt.Errorf("storage root %s: %v", d.root, err)
	case !fi.IsDir():
		err = fmt.Errorf("storage root %s is not a folder", d.root)
	case !os.SameFile(fi, d.rootInfo):
		err = fmt.Errorf("storage root %s is no longer the folder opened at start (a file system unmounted, or the folder replaced); restart once the right one is back", d.root)
	}
	if err != nil {
		return driver.UnavailableError{Driver: name, Err: err}
	}
	return nil
}

// CheckWritable makes and removes a file in the root's temporary folder:
// a root another user owns, or a file system mounted read-only, fails here
// rather than at every write.
func (d *Driver) CheckWritable() error {
	f, err := os.CreateTemp(d.tmp, "probe-*")
	if err != nil {
		return fmt.Errorf("%s is not writable: %w", d.root, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// PersistRemovals implements driver.RemovalPersister: a syncfs covers
// every removal; a fallback fsyncs the nearest of dir and its parents that
// is there when it runs (syncRemovals), which makes the removal of its
// entries, pruned folders included, durable.
func (d *Driver) PersistRemovals(ctx context.Context, dir string) error {
	file, err := d.file(dir)
	if err != nil {
		return err
	}
	if driver.Defer(ctx, d.barrier, d.newChanges, func(cs *changes) { cs.removals = append(cs.removals, file) }) {
		return nil
	}
	return d.barrier.waitFor(d.barrier.ticket(), func() error { return d.syncRemovals(file) })
}

// MaxSegment implements driver.SegmentLimiter: NAME_MAX of Linux file
// systems.
func (d *Driver) MaxSegment() int { return 255 }

// RemoveObjectIf implements driver.ContentRemover. Content that differs
// is left alone after a read. Content that matches is renamed into the
// temporary directory, which takes it from every writer, and compared
// again there: the same goes; other content (a writer's, in between) is
// linked back unless a writer has put something at the path since, which
// then wins. Only in that race do readers miss the object for a moment.
func (d *Driver) RemoveObjectIf(ctx context.Context, path string, content []byte) (bool, error) {
	file, err := d.file(path)
	if err != nil {
		return false, err
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, content) {
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		return false, d.pathErr(path, err)
	}
	aside := d.tempName()
	if err := rename(file, aside); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	// A temporary file keeps its time; a fresh one is no leftover to
	// remove at the next start (removeStaleTemps).
	now := time.Now()
	_ = os.Chtimes(aside, now, now)
	got, err := os.ReadFile(aside)
	if err == nil && bytes.Equal(got, content) {
		os.Remove(aside)
		d.prune(filepath.Dir(file))
		return true, nil
	}
	// link(2) refuses a taken name, so a writer that put content at the
	// path meanwhile keeps it. The folder may have been pruned by a
	// removal beside this one: it is made again. The link is made durable
	// before the name aside goes: a sync between the rename and the link
	// could otherwise keep the path without what a writer was told is
	// there (rare: a writer must land between the read and the rename).
	lerr := d.place(ctx, file, true, func() error { return os.Link(aside, file) })
	if lerr == nil || errors.Is(lerr, fs.ErrExist) {
		os.Remove(aside)
	} else if err == nil {
		err = lerr
	}
	return false, err
}

// RemoveObject implements driver.ObjectOps: Delete, with nothing there
// taken as done.
func (d *Driver) RemoveObject(ctx context.Context, path string) error {
	if err := d.Delete(ctx, path); err != nil && !driver.IsNotFound(err) {
		return err
	}
	return nil
}

// List implements driver.Driver.
func (d *Driver) List(_ context.Context, path string) ([]string, error) {
	file, err := d.file(path)
	if err != nil {
		return nil, err
	}
	names, err := readNames(file)
	if err != nil {
		return nil, d.pathErr(path, err)
	}
	children := make([]string, 0, len(names))
	for _, n := range names {
		if validName(n) {
			children = append(children, join(path, n))
		}
	}
	if len(children) == 0 {
		return nil, d.notFound(path)
	}
	slices.Sort(children)
	return children, nil
}

// Move implements driver.Driver. Only objects move; a directory is not one.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	from, err := d.file(src)
	if err != nil {
		return err
	}
	to, err := d.file(dst)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(from); err != nil || fi.IsDir() {
		return d.notFound(src)
	}
	if src == dst {
		return nil
	}
	err = d.placeKeeping(ctx, to, true, func() (string, error) { return d.replace(from, to, true) })
	if errors.Is(err, fs.ErrNotExist) {
		return d.notFound(src) // moved or deleted by someone else meanwhile
	}
	// The source's folder stays even when emptied (see driver.Driver.List):
	// it is an upload folder that the next push fills again, and removing
	// it each time freed an inode that the next push allocated, which on
	// ext4 without a journal makes every later create scan the inodes freed
	// in the last half minute.
	return err
}

// Delete implements driver.Driver.
func (d *Driver) Delete(_ context.Context, path string) error {
	file, err := d.file(path)
	if err != nil {
		return err
	}
	if path == "/" {
		return d.deleteAll()
	}
	fi, err := os.Lstat(file)
	if err != nil {
		return d.pathErr(path, err)
	}
	// An empty directory is what Stat does not show: it goes, but was not there.
	found := !fi.IsDir() || hasEntries(file)
	if err := os.RemoveAll(file); err != nil {
		return err
	}
	d.prune(filepath.Dir(file))
	if !found {
		return d.notFound(path)
	}
	return nil
}

// deleteAll empties the root but keeps it, and the temporary directory.
func (d *Driver) deleteAll() error {
	names, err := readNames(d.root)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return d.notFound("/")
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(d.root, n)); err != nil {
			return err
		}
	}
	return nil
}

// RedirectURL implements driver.Driver: the files are only reachable here.
func (d *Driver) RedirectURL(*http.Request, string) (string, error) { return "", nil }

// file maps a path to its file. The path is checked again here although
// driver.Instrument checks it first: on a file system an unchecked ".."
// would reach outside the root, and the check costs nanoseconds.
func (d *Driver) file(path string) (string, error) {
	err := driver.ValidatePath(path)
	if ip, ok := err.(driver.InvalidPathError); ok {
		ip.Driver = name
		return "", ip
	}
	if err != nil {
		return "", err
	}
	return d.root + filepath.FromSlash(path), nil
}

// fileDurable waits until the bytes of file, open as fd, are durable: by
// the barrier's sync numbered ticket, or an fsync of fd. A writeback of
// them that failed earlier may have been reported to another request's
// sync. When since > 0, every byte of the file was written through fd
// after since was taken (barrier.since): any sync that can have reported
// such a failure is numbered since or later, and one that failed makes fd
// fsync, which sees the failure. Otherwise the bytes may predate fd, and fd
// is asked for a failure it has not seen after a sync succeeds.
func (d *Driver) fileDurable(file string, fd int, ticket, since uint64) error {
	own := func() error { return d.fsync(file, fd) }
	if since > 0 {
		return d.barrier.waitSince(ticket, since, own)
	}
	err := d.barrier.waitFor(ticket, own)
	if err == nil {
		err = d.writebackErr(fd)
	}
	return err
}

// rename is os.Rename without its look at the target first, which guards
// against renaming onto a directory: rename(2) itself refuses that.
func rename(from, to string) error {
	if err := unix.Rename(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

func (d *Driver) removeStaleTemps() {
	entries, _ := os.ReadDir(d.tmp)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			os.Remove(filepath.Join(d.tmp, e.Name()))
		}
	}
}

// notFound says nothing is at path, unless the root itself is gone or
// replaced (RootPresent): then every path is missing, and a pull answered
// "unknown" would tell clients the image does not exist rather than that
// the storage is out. A stat more, on misses only.
func (d *Driver) notFound(path string) error {
	if err := d.RootPresent(); err != nil {
		return err
	}
	return driver.PathNotFoundError{Driver: name, Path: path}
}

// pathErr turns the ways a file system says "nothing there" into
// PathNotFoundError: a missing name, a file where a directory was expected,
// or a directory where a file was.
func (d *Driver) pathErr(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return d.notFound(path)
	}
	return err
}

// join makes the path of a directory's child.
func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// validName tells the names of objects and directories from the temporary
// directory and from anything else that no path could have put there.
func validName(name string) bool {
	return driver.ValidatePath("/"+name) == nil
}
