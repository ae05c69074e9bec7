// Package inmemory is a storage driver that keeps every object in process
// memory. It exists for tests: it has the exact semantics of driver.Driver,
// including object-store directories (a directory is only a prefix of
// objects, so it vanishes with its last object), and nothing survives the
// process.
package inmemory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lading-registry/lading/storage/driver"
)

const name = "inmemory"

// Driver is an in-memory driver.Driver.
type Driver struct {
	mu      sync.RWMutex
	objects map[string]*object
	// keys holds the keys of objects in lexical order, so List, Stat of a
	// directory and Walk are binary searches rather than scans.
	keys []string
}

// object's data is only ever appended to or replaced as a whole, never
// changed in place, so a reader may keep a slice of it without a lock.
type object struct {
	data    []byte
	modTime time.Time
}

var _ driver.Driver = (*Driver)(nil)

// New returns an empty driver.
func New() *Driver {
	return &Driver{objects: make(map[string]*object)}
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return name }

// GetContent implements driver.Driver.
func (d *Driver) GetContent(_ context.Context, path string) ([]byte, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	o, ok := d.objects[path]
	if !ok {
		return nil, notFound(path)
	}
	return bytes.Clone(o.data), nil
}

// PutContent implements driver.Driver.
func (d *Driver) PutContent(_ context.Context, path string, content []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.store(path, &object{data: bytes.Clone(content), modTime: time.Now()})
}

// PutState implements driver.Driver; memory is never durable anyway.
func (d *Driver) PutState(ctx context.Context, path string, content []byte) error {
	return d.PutContent(ctx, path, content)
}

// Create implements driver.Driver.
func (d *Driver) Create(_ context.Context, path string, content []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.objects[path]; ok || d.isDir(path) {
		return driver.ErrExists
	}
	return d.store(path, &object{data: bytes.Clone(content), modTime: time.Now()})
}

// RemoveObjectIf implements driver.ContentRemover.
func (d *Driver) RemoveObjectIf(_ context.Context, path string, content []byte) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[path]
	if !ok || !bytes.Equal(o.data, content) {
		return false, nil
	}
	d.remove(path)
	return true, nil
}

// ReplaceObjectIf implements driver.ContentReplacer.
func (d *Driver) ReplaceObjectIf(_ context.Context, path string, old, content []byte) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[path]
	if !ok || !bytes.Equal(o.data, old) {
		return false, nil
	}
	return true, d.store(path, &object{data: bytes.Clone(content), modTime: time.Now()})
}

// Reader implements driver.Driver.
func (d *Driver) Reader(_ context.Context, path string, offset int64) (io.ReadCloser, error) {
	d.mu.RLock()
	o, ok := d.objects[path]
	var data []byte
	if ok {
		data = o.data
	}
	d.mu.RUnlock()
	if !ok {
		return nil, notFound(path)
	}
	if offset < 0 || offset > int64(len(data)) {
		return nil, driver.InvalidOffsetError{Driver: name, Path: path, Offset: offset}
	}
	return io.NopCloser(bytes.NewReader(data[offset:])), nil
}

// Writer implements driver.Driver.
func (d *Driver) Writer(_ context.Context, path string, append bool) (driver.FileWriter, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[path]
	switch {
	case append && !ok:
		return nil, notFound(path)
	case !append:
		o = &object{modTime: time.Now()}
		if err := d.store(path, o); err != nil {
			return nil, err
		}
	}
	return &writer{d: d, path: path, obj: o}, nil
}

// Stat implements driver.Driver.
func (d *Driver) Stat(_ context.Context, path string) (driver.FileInfo, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if o, ok := d.objects[path]; ok {
		return driver.FileInfo{Path: path, Size: int64(len(o.data)), ModTime: o.modTime}, nil
	}
	if d.isDir(path) {
		return driver.FileInfo{Path: path, IsDir: true}, nil
	}
	return driver.FileInfo{}, notFound(path)
}

// List implements driver.Driver.
func (d *Driver) List(_ context.Context, path string) ([]string, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	prefix := dirPrefix(path)
	var children []string
	for _, k := range d.keys[d.firstWithPrefix(prefix):] {
		if !strings.HasPrefix(k, prefix) {
			break
		}
		child := k
		if i := strings.IndexByte(k[len(prefix):], '/'); i >= 0 {
			child = k[:len(prefix)+i]
		}
		if len(children) == 0 || children[len(children)-1] != child {
			children = append(children, child)
		}
	}
	if len(children) == 0 {
		return nil, notFound(path)
	}
	// Keys are in full-path order, in which "/a-b" precedes "/a/x"; the
	// children "/a" and "/a-b" need sorting again, and "/a" may repeat.
	slices.Sort(children)
	return slices.Compact(children), nil
}

// Move implements driver.Driver.
func (d *Driver) Move(_ context.Context, src, dst string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[src]
	if !ok {
		return notFound(src)
	}
	if src == dst {
		return nil
	}
	if err := d.conflict(dst); err != nil {
		return err
	}
	d.remove(src)
	return d.store(dst, o)
}

// Delete implements driver.Driver.
func (d *Driver) Delete(_ context.Context, path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.objects[path]; ok {
		d.remove(path)
		return nil
	}
	prefix := dirPrefix(path)
	start := d.firstWithPrefix(prefix)
	end := start
	for end < len(d.keys) && strings.HasPrefix(d.keys[end], prefix) {
		delete(d.objects, d.keys[end])
		end++
	}
	if start == end {
		return notFound(path)
	}
	d.keys = slices.Delete(d.keys, start, end)
	return nil
}

// Walk implements driver.Driver. The lock is taken per step, not for the
// whole walk, so fn may call the driver (for example to delete what it sees).
func (d *Driver) Walk(ctx context.Context, path, from string, fn driver.WalkFunc) error {
	prefix := dirPrefix(path)
	// No key equals a prefix (keys never end in "/"), so "after the prefix"
	// is the same as "at or below it".
	after := max(from, prefix)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		info, ok := d.next(prefix, after)
		if !ok {
			return nil
		}
		if err := fn(info); err != nil {
			if errors.Is(err, driver.ErrStopWalk) {
				return nil
			}
			return err
		}
		after = info.Path
	}
}

// next finds the first object below prefix that sorts strictly after after.
func (d *Driver) next(prefix, after string) (driver.FileInfo, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	i, found := slices.BinarySearch(d.keys, after)
	if found {
		i++
	}
	if i >= len(d.keys) || !strings.HasPrefix(d.keys[i], prefix) {
		return driver.FileInfo{}, false
	}
	k := d.keys[i]
	o := d.objects[k]
	return driver.FileInfo{Path: k, Size: int64(len(o.data)), ModTime: o.modTime}, true
}

// RedirectURL implements driver.Driver: the bytes are only in this process.
func (d *Driver) RedirectURL(*http.Request, string) (string, error) { return "", nil }

// store puts o at path.
func (d *Driver) store(path string, o *object) error {
	if err := d.conflict(path); err != nil {
		return err
	}
	if _, ok := d.objects[path]; !ok {
		i, _ := slices.BinarySearch(d.keys, path)
		d.keys = slices.Insert(d.keys, i, path)
	}
	d.objects[path] = o
	return nil
}

// conflict refuses, like a file system, a path that is a directory or lies
// below an object, so tests on this driver catch a layout that only an
// object store would accept.
func (d *Driver) conflict(path string) error {
	if _, ok := d.objects[path]; ok {
		return nil
	}
	if d.isDir(path) {
		return fmt.Errorf("%s: %s is a directory", name, path)
	}
	for p := parent(path); p != "/"; p = parent(p) {
		if _, ok := d.objects[p]; ok {
			return fmt.Errorf("%s: %s lies below the object %s", name, path, p)
		}
	}
	return nil
}

func (d *Driver) remove(path string) {
	delete(d.objects, path)
	if i, ok := slices.BinarySearch(d.keys, path); ok {
		d.keys = slices.Delete(d.keys, i, i+1)
	}
}

func (d *Driver) isDir(path string) bool {
	prefix := dirPrefix(path)
	i := d.firstWithPrefix(prefix)
	return i < len(d.keys) && strings.HasPrefix(d.keys[i], prefix)
}

func (d *Driver) firstWithPrefix(prefix string) int {
	i, _ := slices.BinarySearch(d.keys, prefix)
	return i
}

// dirPrefix is what every key below path starts with.
func dirPrefix(path string) string {
	if path == "/" {
		return path
	}
	return path + "/"
}

func parent(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/"
	}
	return path[:i]
}

func notFound(path string) error {
	return driver.PathNotFoundError{Driver: name, Path: path}
}
