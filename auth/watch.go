package auth

import (
	"bytes"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// recheckEvery bounds how often a watched file is stat'ed: edits show up
// within a second without a syscall per request.
const recheckEvery = time.Second

// watchedFile holds what was parsed from a file and re-parses it when the
// file changes. A change that does not parse is logged and the last good
// content stays in force, so a half-saved edit never locks everyone out.
type watchedFile[T any] struct {
	path   string
	parse  func([]byte) (T, error)
	logger *slog.Logger

	mu      sync.Mutex
	current T
	stamp   fileStamp
	checked time.Time
	stale   bool // the file changed and the change did not load
	missing bool // the file cannot be stat'ed (removed, unreadable)
}

// staticFile holds content that did not come from a file and never changes.
func staticFile[T any](v T) *watchedFile[T] { return &watchedFile[T]{current: v} }

func orDefault(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}

// fileStamp tells a file's versions apart without reading it. The inode
// and change time are in it beside the modification time and size: an
// editor or Kubernetes saves a file by renaming a new one over it, which
// may keep both of those where timestamps are coarse.
type fileStamp struct {
	mod    time.Time
	size   int64
	ino    uint64
	change syscall.Timespec
}

func stampOf(fi os.FileInfo) fileStamp {
	st := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino, st.change = sys.Ino, sys.Ctim
	}
	return st
}

func watchFile[T any](path string, parse func([]byte) (T, error), logger *slog.Logger) (*watchedFile[T], error) {
	w := &watchedFile[T]{path: path, parse: parse, logger: logger}
	stamp, v, err := w.read()
	if err != nil {
		return nil, err
	}
	w.current, w.stamp, w.checked = v, stamp, time.Now()
	return w, nil
}

func (w *watchedFile[T]) read() (fileStamp, T, error) {
	var zero T
	fi, err := os.Stat(w.path)
	if err != nil {
		return fileStamp{}, zero, err
	}
	data, err := os.ReadFile(w.path)
	if err != nil {
		return fileStamp{}, zero, err
	}
	v, err := w.parse(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	if err != nil {
		return fileStamp{}, zero, err
	}
	return stampOf(fi), v, nil
}

func (w *watchedFile[T]) get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.path == "" || time.Since(w.checked) < recheckEvery {
		return w.current
	}
	w.checked = time.Now()
	fi, err := os.Stat(w.path)
	if err != nil && !w.missing {
		w.logger.Error("auth: keeping previous content of a file that cannot be read", "path", w.path, "err", err)
	}
	if w.missing = err != nil; w.missing || stampOf(fi) == w.stamp {
		return w.current
	}
	stamp, v, err := w.read()
	if err != nil {
		w.logger.Error("auth: keeping previous content of changed file", "path", w.path, "err", err)
		w.stamp = stampOf(fi) // do not re-parse the bad version every second
		w.stale = true
		return w.current
	}
	w.current, w.stamp, w.stale = v, stamp, false
	w.logger.Info("auth: reloaded", "path", w.path)
	return w.current
}

// isStale reports whether the file has changed since the content in force
// was read, and the change did not load, or cannot be read at all.
func (w *watchedFile[T]) isStale() bool {
	w.get()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stale || w.missing
}
