package filesystem

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/lading-registry/lading/storage/driver"
)

// Walk implements driver.Driver. Each directory's entries are visited in
// the order of their full paths: a directory "a" sorts as "a/", after "a-b"
// and "a.b" and before "a0". Subtrees that sort entirely before from are
// never read, so resuming costs one directory read per level.
func (d *Driver) Walk(ctx context.Context, path, from string, fn driver.WalkFunc) error {
	file, err := d.file(path)
	if err != nil {
		return err
	}
	err = d.walk(ctx, file, path, from, fn)
	if errors.Is(err, driver.ErrStopWalk) {
		return nil
	}
	return err
}

// readDir is a variable so a test can see which directories a walk reads.
var readDir = os.ReadDir

func (d *Driver) walk(ctx context.Context, dir, path, from string, fn driver.WalkFunc) error {
	entries, err := readDir(dir)
	if err != nil {
		// Nothing below a missing path or a file; a directory pruned while
		// the walk went on is just as empty.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return err
	}
	for _, e := range inPathOrder(entries) {
		if err := ctx.Err(); err != nil {
			return err
		}
		child := join(path, e.Name())
		if e.IsDir() {
			below := child + "/"
			if from >= below && !strings.HasPrefix(from, below) {
				continue // all of it sorts before from
			}
			if err := d.walk(ctx, filepath.Join(dir, e.Name()), child, from, fn); err != nil {
				return err
			}
			continue
		}
		if child <= from {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the directory was read
		}
		if err != nil {
			return err
		}
		if err := fn(driver.FileInfo{Path: child, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// inPathOrder drops what no path can name and sorts the rest by the order
// of the paths they hold.
func inPathOrder(entries []fs.DirEntry) []fs.DirEntry {
	type keyed struct {
		key string
		e   fs.DirEntry
	}
	ks := make([]keyed, 0, len(entries))
	for _, e := range entries {
		switch {
		case !validName(e.Name()):
		case e.IsDir():
			ks = append(ks, keyed{e.Name() + "/", e})
		case e.Type().IsRegular():
			ks = append(ks, keyed{e.Name(), e})
		}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	for i, k := range ks {
		entries[i] = k.e
	}
	return entries[:len(ks)]
}
