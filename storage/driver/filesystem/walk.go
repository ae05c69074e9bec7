package filesystem

import (
	"container/heap"
	"context"
	"errors"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
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

// readDir reads a directory's entries in no particular order (os.ReadDir
// sorts them, which a walk does its own way); a variable so a test can see
// which directories a walk reads.
var readDir = func(dir string) ([]os.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

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
	for e := range inPathOrder(entries, path, from) {
		if err := ctx.Err(); err != nil {
			return err
		}
		child := join(path, e.Name())
		if e.IsDir() {
			if err := d.walk(ctx, filepath.Join(dir, e.Name()), child, from, fn); err != nil {
				return err
			}
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

// inPathOrder yields the entries of the directory at path that can hold
// paths after from, in the order of the paths they hold: a directory "a"
// as "a/". It orders them as it goes (a heap), so a page read from a large
// folder costs one pass over its names and the page's own share of a sort,
// not a sort of them all.
func inPathOrder(entries []fs.DirEntry, path, from string) iter.Seq[fs.DirEntry] {
	h := make(pathHeap, 0, len(entries))
	for _, e := range entries {
		if !validName(e.Name()) {
			continue
		}
		child := join(path, e.Name())
		switch {
		case e.IsDir():
			below := child + "/"
			if from >= below && !strings.HasPrefix(from, below) {
				continue // all of it sorts before from
			}
			h = append(h, keyed{e.Name() + "/", e})
		case e.Type().IsRegular():
			if child <= from {
				continue
			}
			h = append(h, keyed{e.Name(), e})
		}
	}
	heap.Init(&h)
	return func(yield func(fs.DirEntry) bool) {
		for h.Len() > 0 {
			if !yield(heap.Pop(&h).(keyed).e) {
				return
			}
		}
	}
}

type keyed struct {
	key string
	e   fs.DirEntry
}

// pathHeap is a container/heap of entries, least key first.
type pathHeap []keyed

func (h pathHeap) Len() int           { return len(h) }
func (h pathHeap) Less(i, j int) bool { return h[i].key < h[j].key }
func (h pathHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pathHeap) Push(x any)        { *h = append(*h, x.(keyed)) }
func (h *pathHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
