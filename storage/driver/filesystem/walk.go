package filesystem

import (
	"container/heap"
	"context"
	"errors"
	"io"
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
	visited := false
	err = d.walk(ctx, file, path, from, func(fi driver.FileInfo) error {
		visited = true
		return fn(fi)
	})
	if errors.Is(err, driver.ErrStopWalk) {
		return nil
	}
	if err == nil && !visited {
		// A folder not there lists as empty, unless the root is gone or
		// replaced (see notFound): an empty catalog is no answer then.
		if _, serr := os.Lstat(file); errors.Is(serr, fs.ErrNotExist) || path == "/" {
			return d.RootPresent()
		}
	}
	return err
}

// openDir opens a directory to read its entries; a variable so a test can
// see which directories a walk reads.
var openDir = func(dir string) (*os.File, error) { return os.Open(dir) }

// walkBatch bounds how many names of one directory a walk holds while the
// walk stays within them: more than a listing's largest page (10,000
// entries, and one more to tell whether more follow). A page of a folder
// of 100,000 tags thus holds a page's names, not the folder's. A walk
// going past them reads the directory once more and holds the rest. A
// variable for the tests.
var walkBatch = 16 << 10

func (d *Driver) walk(ctx context.Context, dir, path, from string, fn driver.WalkFunc) error {
	after, limit := "", walkBatch
	for {
		names, more, err := namesInOrder(dir, path, from, after, limit)
		if err != nil {
			// Nothing below a missing path or a file; a directory pruned while
			// the walk went on is just as empty.
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return err
		}
		for _, n := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := strings.TrimSuffix(n.key, "/")
			child := join(path, name)
			if n.dir {
				if err := d.walk(ctx, filepath.Join(dir, name), child, from, fn); err != nil {
					return err
				}
				continue
			}
			fi, err := os.Lstat(filepath.Join(dir, name))
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
		if !more {
			return nil
		}
		after, limit = names[len(names)-1].key, 0
	}
}

// entryName is a directory entry a walk visits, keyed as the paths it
// holds sort: a directory "a" as "a/".
type entryName struct {
	key string
	dir bool
}

// namesInOrder returns, in the order of the paths they hold, the entries
// of the directory at path (dir on disk) that can hold paths after from
// and whose keys sort after after: all of them when limit is 0, else the
// limit least, with more set when others remain. It reads the directory
// in pieces and keeps only the names it returns (a heap of the least so
// far when limited), so its memory follows what it returns, not the
// directory.
func namesInOrder(dir, path, from, after string, limit int) (names []entryName, more bool, err error) {
	prefix := path
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	// rel is from below this directory; every entry is after a from that
	// sorts before the directory, none after one that sorts past it.
	rel, all := "", from < prefix
	if strings.HasPrefix(from, prefix) {
		rel, all = from[len(prefix):], false
	} else if !all {
		return nil, false, nil
	}
	f, err := openDir(dir)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	h := nameHeap{}
	for {
		batch, rerr := f.ReadDir(1024)
		for _, e := range batch {
			name := e.Name()
			n := entryName{key: name}
			switch {
			case e.IsDir():
				n.key, n.dir = n.key+"/", true
				if !all && rel >= n.key && !strings.HasPrefix(rel, n.key) {
					continue // all of it sorts before from
				}
			case e.Type().IsRegular():
				if !all && n.key <= rel {
					continue
				}
			default:
				continue
			}
			if after != "" && n.key <= after {
				continue
			}
			if limit > 0 && len(h) == limit {
				more = true
				if n.key >= h[0].key {
					continue
				}
				if validName(name) {
					h[0] = n
					heap.Fix(&h, 0)
				}
				continue
			}
			if validName(name) {
				heap.Push(&h, n)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, false, rerr
		}
	}
	slices.SortFunc(h, func(a, b entryName) int { return strings.Compare(a.key, b.key) })
	return h, more, nil
}

// nameHeap is a container/heap of entries, greatest key first: the limit
// least seen so far, whose greatest the next lesser name replaces.
type nameHeap []entryName

func (h nameHeap) Len() int           { return len(h) }
func (h nameHeap) Less(i, j int) bool { return h[i].key > h[j].key }
func (h nameHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nameHeap) Push(x any)        { *h = append(*h, x.(entryName)) }
func (h *nameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
