package filesystem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A temp is new content not yet at its path. For a new name, where the
// file system makes unnamed files (O_TMPFILE), it is one, linked into
// place once durable: neither its write nor its publication then adds or
// removes a name in the temporary directory, which every write would
// otherwise share (a lookup, an entry added, one removed and a rename
// across directories: 1.13-1.17x on manifest pushes). Elsewhere it is a
// file named in the temporary directory, renamed into place.
//
// An unnamed file's bytes are synced while its link count is 0, and the
// link changes the count again. Without a journal (ext2, ext4 without
// one) the directory block holding the new name may reach the disk before
// the file's inode, by another request's fsync or the kernel's writeback,
// and a check after a crash then drops the name. For a new name that
// loses only the write not yet answered; a name that held content must
// never be lost that way, so a replace is written to a named file, whose
// count is 1 when its bytes are synced, or, when the name turns out taken
// only at the link, the unnamed file is linked in the temporary directory
// and synced again before it is renamed over the name.
type temp struct {
	name    string // for errors and the fallback's fsync; in the temporary directory
	fd      int    // open while the bytes owe a sync, or while unnamed; else -1
	ticket  uint64 // the barrier sync that makes its bytes durable; 0 owes nothing
	since   uint64 // the barrier's since at its creation (see fileDurable)
	unnamed bool
}

// unnamedName stands for an unnamed file where a name is wanted.
const unnamedName = "(unnamed)"

// absent reports whether nothing is at file, so that a temporary file for
// it may be unnamed (see temp); false where none are.
func (d *Driver) absent(file string) bool {
	var st unix.Stat_t
	return d.unnamed && unix.Lstat(file, &st) == unix.ENOENT
}

// openTemp makes a new, empty temporary file, unnamed if asked for and
// the file system makes them.
func (d *Driver) openTemp(unnamed bool) (*temp, error) {
	t, err := d.openTempIn(unnamed)
	if errors.Is(err, fs.ErrNotExist) {
		// The temporary folder is gone: with the root (removed, or an
		// unmount's empty mount point), mkdirs says so; alone (an
		// operator's cleanup), it is made again.
		if err := d.mkdirs(d.tmp); err != nil {
			return nil, err
		}
		t, err = d.openTempIn(unnamed)
	}
	return t, err
}

func (d *Driver) openTempIn(unnamed bool) (*temp, error) {
	since := d.barrier.since()
	if unnamed && d.unnamed {
		fd, err := openFD(d.tmp, unix.O_TMPFILE|unix.O_WRONLY, 0o644)
		if err == nil {
			return &temp{name: filepath.Join(d.tmp, unnamedName), fd: fd, unnamed: true, since: since}, nil
		}
	}
	name := d.tempName()
	fd, err := openFD(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &temp{name: name, fd: fd, since: since}, nil
}

func (d *Driver) tempName() string {
	var id [12]byte
	rand.Read(id[:])
	return filepath.Join(d.tmp, hex.EncodeToString(id[:]))
}

// writeTemp writes content to a new temporary file, unnamed if asked for
// (for a name found absent). When durable, its bytes are durable once the
// barrier's sync numbered ticket has finished (see bytesDurable); ticket 0
// owes nothing.
func (d *Driver) writeTemp(content []byte, durable, unnamed bool) (*temp, error) {
	t, err := d.openTemp(unnamed)
	if err != nil {
		return nil, err
	}
	for rest := content; len(rest) > 0; {
		n, werr := unix.Write(t.fd, rest)
		if werr == unix.EINTR {
			continue
		}
		if werr != nil {
			err = werr
			break
		}
		rest = rest[n:]
	}
	// An empty file has no bytes to lose: the barrier that publishes its
	// name is all the durability it needs, unless it replaces what a name
	// holds, which needs its link count on the disk first (see temp).
	owes := err == nil && durable && (len(content) > 0 || !t.unnamed)
	if !owes && !t.unnamed {
		if cerr := unix.Close(t.fd); err == nil {
			err = cerr
		}
		t.fd = -1
	}
	if err != nil {
		name := t.name
		t.discard()
		return nil, &fs.PathError{Op: "write", Path: name, Err: err}
	}
	if owes {
		t.ticket = d.barrier.ticket()
	}
	return t, nil
}

// bytesDurable waits until the bytes writeTemp wrote are durable, and
// discards the file if they cannot be made so.
func (t *temp) bytesDurable(d *Driver) error {
	if t.ticket == 0 {
		return nil
	}
	err := d.fileDurable(t.name, t.fd, t.ticket, t.since)
	t.ticket = 0
	if err != nil {
		t.discard()
		return err
	}
	if !t.unnamed {
		unix.Close(t.fd)
		t.fd = -1
	}
	return nil
}

// publish gives the temporary file, durable already, the name file (see
// place for durable), or discards it. With replace, what file names is
// replaced atomically; without, a taken name is fs.ErrExist.
func (d *Driver) publish(ctx context.Context, t *temp, file string, durable, replace bool) error {
	defer t.discard()
	return d.placeKeeping(ctx, file, durable, func() (string, error) { return t.link(d, file, durable, replace) })
}

// link names the file file. old names what file held before, when it
// must outlive the change (see replace).
func (t *temp) link(d *Driver, file string, durable, replace bool) (old string, err error) {
	if t.unnamed {
		err := linkFD(t.fd, file, d.byFD)
		if !errors.Is(err, fs.ErrExist) || !replace {
			return "", err
		}
		// The name is taken, and only rename replaces it atomically: by
		// way of a name in the temporary directory, which the file keeps
		// until renamed (once linked and unlinked, an unnamed file cannot
		// be linked again), so that a retry of place renames it. Its link
		// count must be on the disk before it replaces anything (see temp).
		name := d.tempName()
		if err := linkFD(t.fd, name, d.byFD); err != nil {
			return "", err
		}
		t.name, t.unnamed = name, false
		if durable {
			if err := d.fileDurable(name, t.fd, d.barrier.ticket(), t.since); err != nil {
				return "", err
			}
		}
	}
	if !replace {
		return "", os.Link(t.name, file)
	}
	if old, err = d.replace(t.name, file, durable); err != nil {
		return "", err
	}
	t.name = "" // nothing left to remove: place removes old
	return old, nil
}

// replace renames from over to. Without a journal, the disk may take the
// release of the inode to held before the directory block that stops
// naming it; a crash between them loses both contents, the old with the
// new. For a durable change there the names are exchanged instead, so
// that no inode is released, and the old content, named in the temporary
// directory and returned as old, goes once the change is durable (see
// parked). A rename that puts a name where there was none, or replaces on
// a journaled file system, releases nothing the disk could lose.
func (d *Driver) replace(from, to string, durable bool) (old string, err error) {
	if !durable || d.journaled || !d.exchanges.Load() || !regular(to) {
		return "", rename(from, to)
	}
	switch err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_EXCHANGE); err {
	case nil:
	case unix.ENOENT:
		// to went meanwhile, or from: rename tells which.
		return "", rename(from, to)
	case unix.EINVAL, unix.ENOSYS, unix.EPERM:
		// A file system that does not exchange (ext2), or a filter
		// that refuses the call.
		d.exchanges.Store(false)
		return "", rename(from, to)
	default:
		return "", &os.LinkError{Op: "exchange", Old: from, New: to, Err: err}
	}
	if !regular(from) {
		// to became a directory after the look: rename refuses that.
		unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_EXCHANGE)
		return "", &os.LinkError{Op: "rename", Old: from, New: to, Err: unix.EISDIR}
	}
	if filepath.Dir(from) != d.tmp {
		// A Move's source: from must go as a rename's does, and a
		// rename between folders releases nothing.
		name := d.tempName()
		if rename(from, name) == nil {
			from = name
		}
	}
	// The old content keeps its modification time, by which a driver
	// starting on the root would take it for a crash's leftover.
	now := time.Now()
	os.Chtimes(from, now, now)
	d.parked.add(from, d.barrier)
	return from, nil
}

// regular reports whether name is a regular file.
func regular(name string) bool {
	var st unix.Stat_t
	return unix.Lstat(name, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
}

// parked are the old contents that exchanges keep (see replace), each with
// the barrier's ticket when it was replaced. The change that replaced one
// removes it once durable; one whose change never got there (a request
// that failed before its batch's Commit) goes once a sync has covered its
// ticket, found by the next exchange.
type parked struct {
	mu sync.Mutex
	m  map[string]uint64
}

// add parks name, and removes the names parked before whose replacements
// a sync has made durable since.
func (p *parked) add(name string, b *barrier) {
	t := b.ticket()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[string]uint64)
	}
	for n, nt := range p.m {
		if b.covered(nt) {
			os.Remove(n)
			delete(p.m, n)
		}
	}
	p.m[name] = t
}

// drop removes names, parked old contents whose replacements are durable.
func (p *parked) drop(names []string) {
	if len(names) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range names {
		os.Remove(n)
		delete(p.m, n)
	}
}

// linkFD names the unnamed file open as fd: by the descriptor itself
// (AT_EMPTY_PATH) when byFD, which needs CAP_DAC_READ_SEARCH or, since
// Linux 6.10, being the file's opener, else by its link in /proc, which
// costs a walk of /proc/self/fd on every link.
func linkFD(fd int, name string, byFD bool) error {
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	var err error
	if byFD {
		err = unix.Linkat(fd, "", unix.AT_FDCWD, name, unix.AT_EMPTY_PATH)
	} else {
		err = unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: proc, New: name, Err: err}
	}
	return nil
}

// discard closes the file and removes its name; an unnamed file goes with
// its last descriptor. A name given by publish stays.
func (t *temp) discard() {
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
	if !t.unnamed && t.name != "" {
		os.Remove(t.name)
	}
	t.name = ""
}

// linkUnnamed reports whether the file system below dir makes unnamed
// files that can be linked (O_TMPFILE needs a file system that has it),
// and whether by their descriptor, or else through /proc.
func linkUnnamed(dir string) (ok, byFD bool) {
	for _, byFD := range []bool{true, false} {
		fd, err := openFD(dir, unix.O_TMPFILE|unix.O_WRONLY, 0o644)
		if err != nil {
			return false, false
		}
		var id [12]byte
		rand.Read(id[:])
		name := filepath.Join(dir, "probe-"+hex.EncodeToString(id[:]))
		err = linkFD(fd, name, byFD)
		unix.Close(fd)
		if err == nil {
			os.Remove(name)
			return true, byFD
		}
	}
	return false, false
}
