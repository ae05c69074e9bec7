package filesystem

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/lading-registry/lading/storage/driver"
)

// placeAttempts bounds the retries of a creation racing with the pruning of
// its directory; each retry needs another prune to land in a window of a
// few syscalls, so a handful is plenty.
const placeAttempts = 8

// place runs create, which makes the file (a rename, link or open) or
// changes the one there in place, making its missing parent directories
// first if needed; with durable set it then waits for the barrier so the
// change, and any directory made for it, survive a crash. A Delete may
// prune a directory between its making and create; create then sees
// ENOENT and place makes the directory again. Under a driver.Batch the
// wait is left to the batch's Commit.
func (d *Driver) place(ctx context.Context, file string, durable bool, create func() error) error {
	return d.placeKeeping(ctx, file, durable, func() (string, error) { return "", create() })
}

// placeKeeping is place for a create that returns the name of what file
// held before, when that must outlive the change (see replace; only a
// durable change keeps one): it is removed once the change is durable, by
// the batch's Commit under one, and kept when that fails.
func (d *Driver) placeKeeping(ctx context.Context, file string, durable bool, create func() (old string, err error)) error {
	dir := filepath.Dir(file)
	for attempt := 1; ; attempt++ {
		old, err := create()
		if err == nil {
			if !durable {
				return nil
			}
			files, kept := []string{file}, []string(nil)
			if old != "" {
				// The old content's name in the temporary directory
				// is part of the change: a fallback syncs it too.
				files, kept = append(files, old), []string{old}
			}
			if driver.Defer(ctx, d.barrier, d.newChanges, func(cs *changes) {
				cs.files = append(cs.files, files...)
				cs.drop = append(cs.drop, kept...)
			}) {
				return nil
			}
			err := d.barrier.waitFor(d.barrier.ticket(), func() error { return d.syncChanges(files...) })
			if err == nil {
				d.parked.drop(kept)
			}
			return err
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == placeAttempts {
			return err
		}
		if err := d.mkdirs(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
}

// mkdirs makes dir and its missing parents. Their durability comes from
// the barrier that place waits for after creating the file below them, or
// from an fsync of each one's parent (see syncChanges), for which each is
// noted as fresh while it is made.
func (d *Driver) mkdirs(dir string) error {
	if dir == d.root || filepath.Dir(dir) == d.root {
		// New made the root, closed to other users. One removed while
		// serving is not made again here, open and empty behind the
		// operator's back, nor are folders made in a mount point left
		// by an unmount: writes fail until the root is back. The error
		// is not a not-found, which callers take for a race with a
		// prune and retry, and the API for an unknown name.
		if err := d.RootPresent(); err != nil || dir == d.root {
			return err
		}
	}
	d.fresh.making(dir)
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrNotExist) {
		if err := d.mkdirs(filepath.Dir(dir)); err != nil {
			d.fresh.made(dir, d)
			return err
		}
		err = os.Mkdir(dir, 0o755)
	}
	d.fresh.made(dir, d)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
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
