package filesystem

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"github.com/lading-registry/lading/storage/driver"
	"golang.org/x/sys/unix"
)

// placeAttempts bounds the retries of a creation racing with the pruning of
// its directory; each retry needs another prune to land in a window of a
// few syscalls, so a handful is plenty.
const placeAttempts = 8

// place runs create, which makes the file (a rename, link or open), making
// its missing parent directories first if needed; with durable set it then
// waits for the barrier so the new name, and any directory made for it,
// survive a crash. A Delete may prune a directory between its making and
// create; create then sees ENOENT and place makes the directory again.
// Under a driver.Batch the wait is left to the batch's Commit.
func (d *Driver) place(ctx context.Context, file string, durable bool, create func() error) error {
	dir := filepath.Dir(file)
	for attempt := 1; ; attempt++ {
		err := create()
		if err == nil {
			if !durable || driver.Defer(ctx, d.barrier, d.newNames, func(n *names) { n.files = append(n.files, file) }) {
				return nil
			}
			return d.barrier.waitFor(d.barrier.ticket(), func() error { return d.syncNames(file) })
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == placeAttempts {
			return err
		}
		if err := d.mkdirs(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
}

// names are the files a batch has named: one barrier makes them durable,
// or, when it is slow, an fsync of the directories holding their names.
type names struct {
	d     *Driver
	files []string
}

func (d *Driver) newNames() *names { return &names{d: d} }

func (n *names) Sync() error {
	return n.d.barrier.waitFor(n.d.barrier.ticket(), func() error { return n.d.syncNames(n.files...) })
}

// mkdirs makes dir and its missing parents. Their durability comes from
// the barrier that place waits for after creating the file below them, or
// from an fsync of each one's parent (see syncNames), for which each is
// noted as fresh before it is made.
func (d *Driver) mkdirs(dir string) error {
	d.fresh.add(dir, d.barrier)
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrNotExist) && dir != d.root {
		if err := d.mkdirs(filepath.Dir(dir)); err != nil {
			return err
		}
		err = os.Mkdir(dir, 0o755)
	}
	if err == nil || errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
}

// syncNames makes the names of files durable without the barrier: an
// fsync of the directory holding each, and of the parent of every
// directory on the way up that may not be durable yet, whoever made it.
func (d *Driver) syncNames(files ...string) error {
	var dirs []string
	var made []freshDir
	for _, f := range files {
		dirs, made = d.fresh.chain(filepath.Dir(f), d.root, d.barrier, dirs, made)
	}
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	for _, dir := range dirs {
		if err := d.fsync(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// A directory pruned meanwhile lost its files to a Delete.
			return err
		}
	}
	d.fresh.synced(made)
	return nil
}

// freshDirs are the directories made whose names a barrier may not have
// made durable yet.
type freshDirs struct {
	mu   sync.Mutex
	m    map[string]freshDir
	last uint64 // the latest freshDir.seq
}

type freshDir struct {
	dir    string
	ticket uint64 // the sync that makes its name durable
	seq    uint64 // tells a directory made again from the one seen before
}

// add notes dir, about to be made, as fresh until b's next sync.
func (f *freshDirs) add(dir string, b *barrier) {
	t := b.ticket()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string]freshDir)
	}
	if len(f.m) >= 1024 {
		for k, e := range f.m {
			if b.covered(e.ticket) {
				delete(f.m, k)
			}
		}
	}
	f.last++
	f.m[dir] = freshDir{dir: dir, ticket: t, seq: f.last}
}

// chain appends dir to dirs, then its parents while the one before is
// fresh: the directories whose fsync makes a name in dir durable. The
// fresh directories met are appended to made. dir must exist, so that
// every directory met has been made.
func (f *freshDirs) chain(dir, root string, b *barrier, dirs []string, made []freshDir) ([]string, []freshDir) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dirs = append(dirs, dir)
	for len(dir) > len(root) {
		e, ok := f.m[dir]
		if !ok || b.covered(e.ticket) {
			break
		}
		made = append(made, e)
		dir = filepath.Dir(dir)
		dirs = append(dirs, dir)
	}
	return dirs, made
}

// synced forgets the directories in made, whose parents have been
// fsynced, unless made again since.
func (f *freshDirs) synced(made []freshDir) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range made {
		if f.m[e.dir].seq == e.seq {
			delete(f.m, e.dir)
		}
	}
}

// fsyncPath makes a file's bytes, or a directory's entries, durable.
func fsyncPath(name string) error {
	fd, err := openFD(name, unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	err = unix.Fsync(fd)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &fs.PathError{Op: "fsync", Path: name, Err: err}
	}
	return nil
}

// prune removes dir and its parents up to the root while they are empty:
// a directory is the prefix of the objects below it and goes with the last
// of them. rmdir(2) itself refuses a directory that is not empty, so a
// racing creator either finds its directory or recreates it in place.
func (d *Driver) prune(dir string) {
	for len(dir) > len(d.root) {
		if syscall.Rmdir(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// hasEntries reports whether dir holds anything a path can name.
func hasEntries(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(16)
		for _, n := range names {
			if validName(n) {
				return true
			}
		}
		if err == io.EOF || len(names) == 0 {
			return false
		}
	}
}

// readNames returns the names in dir that a path can name.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	valid := names[:0]
	for _, n := range names {
		if validName(n) {
			valid = append(valid, n)
		}
	}
	return valid, err
}
