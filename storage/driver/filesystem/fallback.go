package filesystem

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// When the barrier is slow (see barrier), each operation makes what it
// changed durable by itself: an fsync of each file it made, moved or
// touched, and of the directory holding it and the parent of every
// directory on the way up whose own name may not be durable yet. The
// file's own fsync is needed even when its bytes were synced before: on a
// file system without a journal a directory's fsync writes the directory,
// not the new file's inode (its link count, its times), without which a
// check after a crash drops the name.

// changes are the files a batch has changed: one barrier makes them
// durable, or, when it is slow or fails, syncChanges.
type changes struct {
	d     *Driver
	files []string
	// removals are folders whose entries were removed (PersistRemovals).
	removals []string
	drop     []string // names of replaced contents, removed once durable (see replace)
	ticket   uint64   // the first Sync's, kept so that a retry meets its failure
}

func (d *Driver) newChanges() *changes { return &changes{d: d} }

// Sync waits for a sync begun after the call: a retry covers the changes
// made since the failed Sync too. Any sync since the first Sync's that
// failed sends it to the files' own fsyncs.
func (cs *changes) Sync() error {
	t := cs.d.barrier.ticket()
	if cs.ticket == 0 {
		cs.ticket = t
	}
	err := cs.d.barrier.waitSince(t, cs.ticket, func() error {
		if err := cs.d.syncChanges(cs.files...); err != nil {
			return err
		}
		return cs.d.syncRemovals(cs.removals...)
	})
	if err == nil {
		cs.d.parked.drop(cs.drop)
		cs.drop = nil
	}
	return err
}

// syncRemovals makes the removals of entries of dirs durable without the
// barrier: it fsyncs the nearest of each dir and its parents that is there
// when it looks (a folder pruned meanwhile, by another request or the
// collector, takes the removal up with it), the root at most.
func (d *Driver) syncRemovals(dirs ...string) error {
	for _, dir := range dirs {
		for p := dir; ; p = filepath.Dir(p) {
			err := d.fsync(p, -1)
			if !errors.Is(err, fs.ErrNotExist) || p == d.root || !strings.HasPrefix(p, d.root+"/") {
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				break
			}
		}
	}
	return nil
}

// syncChanges makes the changes to files durable without the barrier.
// A file gone meanwhile (moved or deleted by a later change) is skipped:
// the change that took it fsyncs where it went.
func (d *Driver) syncChanges(files ...string) error {
	var dirs []string
	var seen []freshSeen
	for _, f := range files {
		dirs, seen = d.fresh.chain(filepath.Dir(f), d, dirs, seen)
	}
	// Files before the directories naming them: a name must not reach the
	// disk ahead of its file's inode (see temp).
	if err := d.fsyncAll(files); err != nil {
		return err
	}
	if err := d.fsyncAll(dirs); err != nil {
		return err
	}
	d.fresh.synced(seen)
	return nil
}

// fsyncAll fsyncs each of paths once. A directory pruned meanwhile lost its
// files to a Delete: there is nothing left in it to make durable.
func (d *Driver) fsyncAll(paths []string) error {
	// Deepest first: a directory's own name, in its parent, must not reach
	// the disk ahead of the directory. A copy: a batch keeps its list for
	// a retry.
	paths = slices.Clone(paths)
	slices.SortFunc(paths, func(a, b string) int {
		if da, db := strings.Count(a, "/"), strings.Count(b, "/"); da != db {
			return db - da
		}
		return strings.Compare(a, b)
	})
	for _, p := range slices.Compact(paths) {
		if err := d.fsync(p, -1); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// freshDirs are the directories whose names the barrier may not have made
// durable yet: made since the last sync, being made, or, until the sync
// begun at start has finished, any (a previous process may have made them
// and left them unsynced).
type freshDirs struct {
	mu      sync.Mutex
	m       map[string]freshDir
	last    uint64 // the latest freshDir.seq
	startup uint64 // the ticket of the sync begun at start
	bound   int    // the size at which making looks for entries to drop
}

type freshDir struct {
	ticket uint64 // the sync that makes its name durable, once made
	making int    // mkdirs of it in progress: fresh whatever the ticket
	seq    uint64 // changes whenever it is made again
}

// freshSeen is a fresh directory seen by chain, made (not being made) then.
type freshSeen struct {
	dir string
	seq uint64
}

// freshBound is where the map starts to drop entries; freshCap is where,
// when no sync has covered them (the machine is crowded for long), their
// parents are fsynced so that they can go. Tests lower them.
var freshBound, freshCap = 1 << 10, 1 << 16

// making notes dir as being made.
func (f *freshDirs) making(dir string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string]freshDir)
	}
	e := f.m[dir]
	e.making++
	f.last++
	e.seq = f.last
	f.m[dir] = e
}

// made notes that a mkdir of dir, made or failed, has returned: its name
// is durable once the next sync has finished.
func (f *freshDirs) made(dir string, d *Driver) {
	t := d.barrier.ticket()
	f.mu.Lock()
	e := f.m[dir]
	e.making--
	e.ticket = t
	f.m[dir] = e
	full := len(f.m) >= max(f.bound, freshBound)
	f.mu.Unlock()
	if full {
		f.trim(d)
	}
}

// trim drops the entries a sync has covered; when too many remain, it
// fsyncs their parents and drops them too.
func (f *freshDirs) trim(d *Driver) {
	f.mu.Lock()
	for dir, e := range f.m {
		if e.making == 0 && d.barrier.covered(e.ticket) {
			delete(f.m, dir)
		}
	}
	var seen []freshSeen
	var parents []string
	if len(f.m) >= freshCap {
		for dir, e := range f.m {
			if e.making == 0 {
				seen = append(seen, freshSeen{dir, e.seq})
				parents = append(parents, filepath.Dir(dir))
			}
		}
	}
	f.bound = 2 * len(f.m)
	f.mu.Unlock()
	if len(seen) == 0 {
		return
	}
	if d.fsyncAll(parents) == nil { // else kept, for a sync or the next trim
		f.synced(seen)
	}
}

// chain appends dir to paths, then its parents while the one before may
// not be durable: the directories whose fsync makes a name in dir durable.
// The fresh directories seen, made, are appended to seen. dir must exist,
// so that every directory on the way has been made.
func (f *freshDirs) chain(dir string, d *Driver, paths []string, seen []freshSeen) ([]string, []freshSeen) {
	f.mu.Lock()
	defer f.mu.Unlock()
	paths = append(paths, dir)
	for len(dir) > len(d.root) {
		e, ok := f.m[dir]
		switch {
		case ok && e.making == 0 && d.barrier.covered(e.ticket):
			return paths, seen
		case ok && e.making == 0:
			seen = append(seen, freshSeen{dir, e.seq})
		case !ok && d.barrier.covered(f.startup):
			return paths, seen
		}
		dir = filepath.Dir(dir)
		paths = append(paths, dir)
	}
	return paths, seen
}

// synced drops the directories seen, whose parents have been fsynced,
// unless made again since.
func (f *freshDirs) synced(seen []freshSeen) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range seen {
		if e, ok := f.m[s.dir]; ok && e.seq == s.seq && e.making == 0 {
			delete(f.m, s.dir)
		}
	}
}

// fsyncPath makes a file's bytes, or a directory's entries, durable:
// through fd when one is open (it sees a writeback error that another
// descriptor of the file has reported already), else through a descriptor
// of its own.
func fsyncPath(name string, fd int) error {
	own := fd < 0
	if own {
		var err error
		if fd, err = openFD(name, unix.O_RDONLY, 0); err != nil {
			return err
		}
	}
	err := unix.Fsync(fd)
	if own {
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return &fs.PathError{Op: "fsync", Path: name, Err: err}
	}
	return nil
}

// writebackErr returns a failed writeback of fd's file that fd has not
// seen: a sync reports one once, possibly to another request, so a sync
// that succeeded says nothing of pages written out (and lost) before it.
// It waits for no I/O once a sync has run.
func writebackErr(fd int) error {
	return unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WAIT_BEFORE)
}
