package filesystem

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lading-registry/lading/storage/driver"
	"golang.org/x/sys/unix"
)

// settled returns a new driver once the sync begun at its start has
// finished, so that a test may replace its sync.
func settled(t *testing.T) *Driver {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if tempWay != "" {
		UseTemps(d, tempWay)
	}
	if err := d.barrier.waitFor(d.fresh.startup, nil); err != nil {
		t.Fatal(err)
	}
	// Tests count syncs as where a sync's own flush covers its writes;
	// TestBarrierLagsWithoutAJournal checks the lag.
	d.barrier.mu.Lock() // the startup sync's waiter may still read it
	d.barrier.lag = 0
	d.barrier.mu.Unlock()
	return d
}

// stuckSyncs returns a driver whose syncs hang until the test ends, as
// syncfs does behind gigabytes of another program's data, and the paths
// (below the root, the temporary directory as "#tmp") that its callers
// fsynced instead since the last call.
func stuckSyncs(t *testing.T) (*Driver, func() []string) {
	d := settled(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	d.barrier.sync = func() error { <-release; return nil }
	d.barrier.crowded = func() bool { return false }
	d.barrier.patience = 10 * time.Millisecond
	return d, recordFsyncs(d)
}

func recordFsyncs(d *Driver) func() []string {
	fsynced := fsyncRecorder(d, func(rel string) string {
		if strings.HasPrefix(rel, "#tmp/") {
			return "#tmp"
		}
		return rel
	})
	return func() []string {
		p := fsynced()
		slices.Sort(p)
		return p
	}
}

// fsyncRecorder records the paths d fsyncs, in order, relative to the root
// ("/" for it), temporary files as "#tmp/(unnamed)" or "#tmp/name", each
// passed through rename.
func fsyncRecorder(d *Driver, rename func(rel string) string) func() []string {
	var mu sync.Mutex
	var paths []string
	d.fsync = func(name string, fd int) error {
		rel := strings.TrimPrefix(name, d.root)
		switch {
		case strings.HasSuffix(rel, unnamedName):
			rel = "#tmp/" + unnamedName
		case strings.HasPrefix(rel, "/"+tempDir+"/"):
			rel = "#tmp/name"
		case rel == "":
			rel = "/"
		}
		mu.Lock()
		paths = append(paths, rename(rel))
		mu.Unlock()
		return fsyncPath(name, fd)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		p := paths
		paths = nil
		return p
	}
}

// tempWay is how settled's drivers make their temporary files (see
// TempWays); "" leaves it to the driver.
var tempWay string

// bothTemps runs test with unnamed temporary files, where the file system
// has them, and with named ones.
func bothTemps(t *testing.T, test func(t *testing.T)) {
	for _, way := range []string{"unnamed-proc", "named"} {
		t.Run(way, func(t *testing.T) {
			tempWay = way
			t.Cleanup(func() { tempWay = "" })
			test(t)
		})
	}
}

// sorted sorts paths, as the fsynced lists are.
func sorted(paths ...string) []string {
	slices.Sort(paths)
	return paths
}

// within fails the test unless f returns within a few seconds.
func within(t *testing.T, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s still waits for a sync that hangs", what)
	}
}

// A write whose sync hangs fsyncs what it wrote instead: the bytes, the
// file named (its inode, which the directory's fsync does not write
// without a journal), the directory holding the name, and the parent of
// each directory made for it that no sync has covered yet.
func TestWriteOutlivesAHangingSync(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		d, fsynced := stuckSyncs(t)
		ctx := t.Context()
		within(t, "PutContent", func() error { return d.PutContent(ctx, "/a/b/blob", []byte("bytes")) })
		if got, want := fsynced(), sorted("#tmp", "/", "/a", "/a/b", "/a/b/blob"); !slices.Equal(got, want) {
			t.Fatalf("fsynced %q, want %q", got, want)
		}
		// Those directories' names are durable now.
		within(t, "second PutContent", func() error { return d.PutContent(ctx, "/a/b/other", []byte("more")) })
		if got, want := fsynced(), sorted("#tmp", "/a/b", "/a/b/other"); !slices.Equal(got, want) {
			t.Fatalf("second write fsynced %q, want %q", got, want)
		}
		within(t, "empty PutContent", func() error { return d.PutContent(ctx, "/c/link", nil) })
		if got, want := fsynced(), sorted("/", "/c", "/c/link"); !slices.Equal(got, want) {
			t.Fatalf("an empty write fsynced %q, want %q", got, want)
		}
		if b, err := d.GetContent(ctx, "/a/b/blob"); err != nil || string(b) != "bytes" {
			t.Fatalf("GetContent = %q, %v", b, err)
		}
	})
}

// Under a batch, staged bytes and the names Commit owes fall back alike; a
// file moved is fsynced where it went.
func TestBatchOutlivesAHangingSync(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		d, fsynced := stuckSyncs(t)
		var staged []driver.Staged
		for _, p := range []string{"/x/one", "/y/two"} {
			s, err := d.Stage(t.Context(), p, []byte(p))
			if err != nil {
				t.Fatal(err)
			}
			staged = append(staged, s)
		}
		ctx, batch := driver.WithBatch(t.Context())
		within(t, "Publish and Commit", func() error {
			for _, s := range staged {
				if err := s.Publish(ctx); err != nil {
					return err
				}
			}
			if err := d.PutContent(ctx, "/x/marker", nil); err != nil {
				return err
			}
			if err := d.Move(ctx, "/x/one", "/z/one"); err != nil {
				return err
			}
			return batch.Commit()
		})
		if got, want := fsynced(), sorted("#tmp", "#tmp", "/", "/x", "/y", "/z", "/x/one", "/y/two", "/x/marker", "/z/one"); !slices.Equal(got, want) {
			t.Fatalf("fsynced %q, want %q", got, want)
		}
	})
}

// A writer's Commit fsyncs its file when the sync hangs.
func TestWriterCommitOutlivesAHangingSync(t *testing.T) {
	d, fsynced := stuckSyncs(t)
	w, err := d.Writer(t.Context(), "/up/data", false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("chunk")); err != nil {
		t.Fatal(err)
	}
	within(t, "Commit", func() error { return w.Commit(t.Context()) })
	if got, want := fsynced(), []string{"/up/data"}; !slices.Equal(got, want) {
		t.Fatalf("fsynced %q, want %q", got, want)
	}
}

// While syncs are in time, nothing is fsynced on its own.
func TestQuickSyncsNeedNoFsync(t *testing.T) {
	d, syncs := countingSyncs(t)
	fsynced := recordFsyncs(d)
	ctx, batch := driver.WithBatch(t.Context())
	if err := d.PutContent(ctx, "/a/blob", []byte("bytes")); err != nil {
		t.Fatal(err)
	}
	if err := batch.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(t.Context(), "/b/blob", []byte("bytes")); err != nil {
		t.Fatal(err)
	}
	if got := fsynced(); len(got) != 0 {
		t.Fatalf("fsynced %q with syncs in time", got)
	}
	if syncs() == 0 {
		t.Fatal("no sync ran")
	}
}

// A failed fsync fails the write, whose temporary file goes and whose name
// is never made.
func TestFailedFsyncFailsTheWrite(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		d, _ := stuckSyncs(t)
		eio := errors.New("EIO")
		d.fsync = func(string, int) error { return eio }
		done := make(chan error, 1)
		go func() { done <- d.PutContent(t.Context(), "/a/blob", []byte("bytes")) }()
		select {
		case err := <-done:
			if !errors.Is(err, eio) {
				t.Fatalf("PutContent: %v, want the fsync's error", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("PutContent still waits")
		}
		if _, err := d.Stat(t.Context(), "/a/blob"); !errors.As(err, new(driver.PathNotFoundError)) {
			t.Fatalf("Stat after the failure: %v", err)
		}
		wantNoTemps(t, d)
	})
}

// On a crowded machine no sync begins: each write fsyncs its own.
func TestCrowdedMachineStartsNoSync(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		d, syncs := countingSyncs(t)
		d.barrier.crowded = func() bool { return true }
		fsynced := recordFsyncs(d)
		if err := d.PutContent(t.Context(), "/a/blob", []byte("bytes")); err != nil {
			t.Fatal(err)
		}
		if got, want := fsynced(), sorted("#tmp", "/", "/a", "/a/blob"); !slices.Equal(got, want) {
			t.Fatalf("fsynced %q, want %q", got, want)
		}
		if n := syncs(); n != 0 {
			t.Fatalf("%d syncs on a crowded machine", n)
		}
		d.barrier.crowded = func() bool { return false }
		if err := d.PutContent(t.Context(), "/a/other", []byte("bytes")); err != nil {
			t.Fatal(err)
		}
		if got := fsynced(); len(got) != 0 {
			t.Fatalf("fsynced %q once the machine is quiet", got)
		}
	})
}

func TestMeminfoBytes(t *testing.T) {
	info := []byte("MemTotal:       24576000 kB\nDirty:             18628 kB\nWriteback:            56 kB\nWritebackTmp:          0 kB\n")
	for key, want := range map[string]int64{"Dirty:": 18628 << 10, "Writeback:": 56 << 10, "Missing:": 0, "MemTotal:": 24576000 << 10} {
		if got := meminfoBytes(info, key); got != want {
			t.Errorf("%s = %d, want %d", key, got, want)
		}
	}
	huge, none := newDirtyGauge(1<<62), newDirtyGauge(-1)
	defer unix.Close(huge.fd)
	defer unix.Close(none.fd)
	if huge.fd < 0 {
		t.Skip("no /proc/meminfo")
	}
	if huge.over() {
		t.Error("more than 4 EiB unwritten")
	}
	if !none.over() {
		t.Error("less than nothing unwritten")
	}
}

// A write that only touches a file already there fsyncs the file.
func TestTouchOutlivesAHangingSync(t *testing.T) {
	d, fsynced := stuckSyncs(t)
	ctx := t.Context()
	within(t, "PutContent", func() error { return d.PutContent(ctx, "/a/link", nil) })
	fsynced()
	within(t, "PutContent again", func() error { return d.PutContent(ctx, "/a/link", nil) })
	if got, want := fsynced(), []string{"/a", "/a/link"}; !slices.Equal(got, want) {
		t.Fatalf("a touch fsynced %q, want %q", got, want)
	}
}

// An object another request wrote, persisted under a batch, is fsynced
// with the batch's own changes when the sync hangs: a link to bytes whose
// writer has not made them durable yet must not be durable without them.
func TestPersistOutlivesAHangingSync(t *testing.T) {
	d, fsynced := stuckSyncs(t)
	ctx := t.Context()
	within(t, "PutContent", func() error { return d.PutContent(ctx, "/blobs/b", []byte("bytes")) })
	fsynced()
	bctx, batch := driver.WithBatch(ctx)
	within(t, "Persist and link", func() error {
		if err := d.Persist(bctx, "/blobs/b"); err != nil {
			return err
		}
		if err := d.PutContent(bctx, "/repo/link", nil); err != nil {
			return err
		}
		return batch.Commit()
	})
	if got, want := fsynced(), sorted("/", "/blobs", "/blobs/b", "/repo", "/repo/link"); !slices.Equal(got, want) {
		t.Fatalf("fsynced %q, want %q", got, want)
	}
	// Nothing there is nothing to keep.
	within(t, "Persist of nothing", func() error { return d.Persist(ctx, "/blobs/none") })
}

// Directories pruned and made again are fresh again.
func TestRemadeDirectoriesAreFresh(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		d, fsynced := stuckSyncs(t)
		ctx := t.Context()
		put := func(p string) {
			t.Helper()
			within(t, "PutContent "+p, func() error { return d.PutContent(ctx, p, []byte(p)) })
		}
		put("/p/q/x")
		put("/p/q/y")
		if got, want := fsynced(), sorted("#tmp", "#tmp", "/", "/p", "/p/q", "/p/q", "/p/q/x", "/p/q/y"); !slices.Equal(got, want) {
			t.Fatalf("fsynced %q, want %q", got, want)
		}
		for _, p := range []string{"/p/q/x", "/p/q/y"} {
			if err := d.Delete(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		put("/p/q/z")
		if got, want := fsynced(), sorted("#tmp", "/", "/p", "/p/q", "/p/q/z"); !slices.Equal(got, want) {
			t.Fatalf("after pruning, fsynced %q, want %q", got, want)
		}
	})
}

// Until the sync begun at start has finished, any directory may be a
// previous process's, unsynced: a fallback fsyncs up to the root.
func TestDirectoriesBeforeStartAreNotTrusted(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		d, fsynced := stuckSyncs(t)
		ctx := t.Context()
		if err := os.MkdirAll(filepath.Join(d.root, "e", "f"), 0o755); err != nil {
			t.Fatal(err)
		}
		d.fresh.startup = d.barrier.ticket() // a start whose sync hangs
		within(t, "PutContent", func() error { return d.PutContent(ctx, "/e/f/x", []byte("x")) })
		if got, want := fsynced(), sorted("#tmp", "/", "/e", "/e/f", "/e/f/x"); !slices.Equal(got, want) {
			t.Fatalf("fsynced %q, want %q", got, want)
		}
	})
}

// While no sync covers them, fresh directories past the cap have their
// parents fsynced and are dropped, so that the map stays bounded.
func TestFreshDirectoriesStayBounded(t *testing.T) {
	d, fsynced := stuckSyncs(t)
	bound, limit := freshBound, freshCap
	freshBound, freshCap = 4, 8
	t.Cleanup(func() { freshBound, freshCap = bound, limit })
	ctx := t.Context()
	for i := range 20 {
		p := "/r/" + strings.Repeat("d", i+1) + "/x"
		within(t, "PutContent", func() error { return d.PutState(ctx, p, []byte("s")) })
	}
	d.fresh.mu.Lock()
	n := len(d.fresh.m)
	d.fresh.mu.Unlock()
	if n >= 2*freshCap {
		t.Fatalf("%d fresh directories kept, cap %d", n, freshCap)
	}
	if got := fsynced(); !slices.Contains(got, "/r") {
		t.Fatalf("fsynced %q, want the parent /r of the dropped directories", got)
	}
}

// A writer whose bytes could not be made durable loses its file: a later
// Commit would report success over pages the disk never took. A sync that
// fails on some other file's pages costs it nothing when its own fsync
// succeeds. A failed writeback may have been reported to an earlier sync,
// another request's: for a file written from empty by the writer, any sync
// since its open that failed sends it to its own fsync; for bytes written
// before the writer (or when syncs do not report every file's failures),
// the writer's descriptor is asked, and only then.
func TestFailedWriterCommitDropsTheFile(t *testing.T) {
	eio := errors.New("EIO")
	for _, c := range []struct {
		name                     string
		syncErr, fsyncErr, wbErr error
		before, since            error // a sync's result before the writer's open, and between it and Commit
		appending, unreported    bool
		dropped                  bool
	}{
		{name: "sync and fsync fail", syncErr: eio, fsyncErr: eio, dropped: true},
		{name: "sync fails, fsync succeeds", syncErr: eio},
		{name: "a sync since the open failed, and so does fsync", since: eio, fsyncErr: eio, dropped: true},
		{name: "a sync since the open failed on other files", since: eio},
		{name: "a sync before the open failed", before: eio, fsyncErr: eio, wbErr: eio},
		{name: "no sync failed: neither fsync nor descriptor asked", fsyncErr: eio, wbErr: eio},
		{name: "appending: the descriptor saw an earlier failure", appending: true, wbErr: eio, dropped: true},
		{name: "appending: a sync since the open failed on other files", appending: true, since: eio},
		{name: "syncs that do not report: the descriptor saw a failure", unreported: true, wbErr: eio, dropped: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, _ := countingSyncs(t)
			ctx := t.Context()
			otherSync := func(err error) {
				d.barrier.sync = func() error { return err }
				if got := d.barrier.waitFor(d.barrier.ticket(), nil); got != err {
					t.Fatalf("sync: %v, want %v", got, err)
				}
			}
			d.barrier.reports = !c.unreported
			want := "chunk"
			if c.appending {
				w, err := d.Writer(ctx, "/up/data", false)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write([]byte("first")); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				want = "firstchunk"
			}
			if c.before != nil {
				otherSync(c.before)
			}
			w, err := d.Writer(ctx, "/up/data", c.appending)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("chunk")); err != nil {
				t.Fatal(err)
			}
			if c.since != nil {
				otherSync(c.since)
			}
			d.barrier.sync = func() error { return c.syncErr }
			d.fsync = func(string, int) error { return c.fsyncErr }
			d.writebackErr = func(int) error { return c.wbErr }
			err = w.Commit(ctx)
			if !c.dropped {
				if err != nil {
					t.Fatalf("Commit: %v", err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if b, err := d.GetContent(ctx, "/up/data"); err != nil || string(b) != want {
					t.Fatalf("after Commit: %q, %v", b, err)
				}
				return
			}
			if !errors.Is(err, eio) {
				t.Fatalf("Commit: %v, want EIO", err)
			}
			if _, err := w.Write([]byte("more")); !errors.Is(err, eio) {
				t.Fatalf("Write after a failed Commit: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close after a failed Commit: %v", err)
			}
			if _, err := d.Writer(ctx, "/up/data", true); !errors.As(err, new(driver.PathNotFoundError)) {
				t.Fatalf("resuming after a failed Commit: %v, want not found", err)
			}
		})
	}
}

// Staged bytes whose writeback failed before the sync that covers them
// (reported to another caller's sync after they were written) are never
// published: the staged file's fsync sees the failure, or, where syncs do
// not report every file's, its descriptor.
func TestEarlierWritebackFailureStopsPublish(t *testing.T) {
	for _, reports := range []bool{true, false} {
		t.Run(fmt.Sprintf("reports=%v", reports), func(t *testing.T) {
			bothTemps(t, func(t *testing.T) {
				d, _ := countingSyncs(t)
				d.barrier.reports = reports
				eio := errors.New("EIO")
				s, err := d.Stage(t.Context(), "/a/record", []byte("bytes"))
				if err != nil {
					t.Fatal(err)
				}
				if reports {
					d.barrier.sync = func() error { return eio }
					d.barrier.waitFor(d.barrier.ticket(), nil)
					d.barrier.sync = func() error { return nil }
					d.fsync = func(string, int) error { return eio }
				} else {
					d.writebackErr = func(int) error { return eio }
				}
				if err := s.Publish(t.Context()); !errors.Is(err, eio) {
					t.Fatalf("Publish: %v, want EIO", err)
				}
				if _, err := d.Stat(t.Context(), "/a/record"); !errors.As(err, new(driver.PathNotFoundError)) {
					t.Fatalf("Stat: %v", err)
				}
				wantNoTemps(t, d)
			})
		})
	}
}

// A name must not reach the disk ahead of its file's inode: the fallback
// fsyncs each file before the directories that name it.
func TestFallbackSyncsFilesBeforeDirectories(t *testing.T) {
	bothTemps(t, func(t *testing.T) {
		d, _ := stuckSyncs(t)
		fsynced := fsyncRecorder(d, func(rel string) string { return rel })
		within(t, "PutContent", func() error { return d.PutContent(t.Context(), "/a/b/blob", []byte("bytes")) })
		got := fsynced()
		file := slices.Index(got, "/a/b/blob")
		if file < 0 {
			t.Fatalf("fsynced %q: not the file", got)
		}
		for _, dir := range []string{"/", "/a", "/a/b"} {
			if i := slices.Index(got, dir); i < file {
				t.Errorf("fsynced %q: %s before the file", got, dir)
			}
		}
		// And each directory before its parent, which names it.
		if b, a, root := slices.Index(got, "/a/b"), slices.Index(got, "/a"), slices.Index(got, "/"); !(b < a && a < root) {
			t.Errorf("fsynced %q: a parent before its child", got)
		}
	})
}

// A name that holds content is replaced only by a file whose link count is
// on the disk: written to a named temporary file, or, when the name was
// taken only after the write, an unnamed one linked in the temporary
// directory and synced again before the rename.
func TestReplaceSyncsTheLinkCountFirst(t *testing.T) {
	d, _ := stuckSyncs(t)
	if !d.unnamed {
		t.Skip("no unnamed temporary files here")
	}
	ctx := t.Context()
	fsynced := fsyncRecorder(d, func(rel string) string { return rel })
	within(t, "PutContent", func() error { return d.PutContent(ctx, "/t/tag", []byte("old")) })
	if got := fsynced(); got[0] != "#tmp/"+unnamedName {
		t.Fatalf("a new name's bytes were fsynced as %q, want an unnamed file first", got)
	}
	within(t, "PutContent over it", func() error { return d.PutContent(ctx, "/t/tag", []byte("new")) })
	if got := fsynced(); got[0] != "#tmp/name" {
		t.Fatalf("a replace's bytes were fsynced as %q, want a named file first", got)
	}
	within(t, "an empty PutContent over it", func() error { return d.PutContent(ctx, "/t/tag", nil) })
	if got := fsynced(); got[0] != "#tmp/name" {
		t.Fatalf("an empty replace fsynced %q, want its named file first", got)
	}
	// Taken between the write and the link.
	s, err := d.Stage(ctx, "/t/other", []byte("staged"))
	if err != nil {
		t.Fatal(err)
	}
	within(t, "PutContent", func() error { return d.PutContent(ctx, "/t/other", []byte("first")) })
	fsynced()
	within(t, "Publish", func() error { return s.Publish(ctx) })
	got := fsynced()
	want := []string{"#tmp/" + unnamedName, "#tmp/name", "/t/other"}
	if !d.journaled {
		// And the old content's name, exchanged into the temporary
		// directory (see replace).
		want = []string{"#tmp/" + unnamedName, "#tmp/name", "#tmp/name", "/t/other"}
	}
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("a raced replace fsynced %q, want %q first", got, want)
	}
	if b, err := d.GetContent(ctx, "/t/other"); err != nil || string(b) != "staged" {
		t.Fatalf("GetContent = %q, %v", b, err)
	}
	wantNoTemps(t, d)
}

// Without a journal a replaced content's inode lives, named in the
// temporary directory, until the change that replaced it is durable: a
// crash before then leaves the old content or the new at the name, never
// neither. A failed sync keeps it for the retry; with a journal a rename
// suffices.
func TestReplaceKeepsTheOldUntilDurable(t *testing.T) {
	for _, journal := range []bool{false, true} {
		t.Run(fmt.Sprintf("journaled=%v", journal), func(t *testing.T) {
			bothTemps(t, func(t *testing.T) {
				d, _ := countingSyncs(t)
				d.journaled = journal
				ctx := t.Context()
				if err := d.PutContent(ctx, "/t/tag", []byte("old")); err != nil {
					t.Fatal(err)
				}
				longAgo := time.Now().Add(-2 * staleTemp)
				if err := os.Chtimes(filepath.Join(d.root, "t", "tag"), longAgo, longAgo); err != nil {
					t.Fatal(err)
				}
				bctx, batch := driver.WithBatch(ctx)
				for _, stage := range []bool{false, true} {
					content := []byte("new by PutContent")
					if stage {
						content = []byte("new by Stage")
						s, err := d.Stage(ctx, "/t/tag", content)
						if err != nil {
							t.Fatal(err)
						}
						if err := s.Publish(bctx); err != nil {
							t.Fatal(err)
						}
					} else if err := d.PutContent(bctx, "/t/tag", content); err != nil {
						t.Fatal(err)
					}
					if b, err := d.GetContent(ctx, "/t/tag"); err != nil || string(b) != string(content) {
						t.Fatalf("GetContent = %q, %v", b, err)
					}
				}
				eio := errors.New("EIO")
				d.barrier.sync = func() error { return eio }
				d.fsync = func(string, int) error { return eio }
				// The Stage's own sync, for its bytes, made the first
				// replace durable: only the last one's old content waits.
				kept := tempContents(t, d)
				want := []string{"new by PutContent"}
				if journal {
					want = nil
				}
				if !slices.Equal(kept, want) {
					t.Fatalf("before Commit the temporary directory holds %q, want %q", kept, want)
				}
				// Old contents keep their modification times: a driver
				// starting meanwhile must not take them for leftovers.
				if _, err := New(d.root); err != nil {
					t.Fatal(err)
				}
				if kept := tempContents(t, d); !slices.Equal(kept, want) {
					t.Fatalf("a driver starting on the root left %q, want %q", kept, want)
				}
				if err := batch.Commit(); !errors.Is(err, eio) {
					t.Fatalf("Commit: %v, want EIO", err)
				}
				if kept := tempContents(t, d); !slices.Equal(kept, want) {
					t.Fatalf("after a failed Commit the temporary directory holds %q, want %q", kept, want)
				}
				d.barrier.sync = func() error { return nil }
				d.fsync = fsyncPath
				if err := batch.Commit(); err != nil {
					t.Fatal(err)
				}
				wantNoTemps(t, d)
				// Without a batch the write waits, then removes the old.
				if err := d.PutContent(ctx, "/t/tag", []byte("last")); err != nil {
					t.Fatal(err)
				}
				wantNoTemps(t, d)
			})
		})
	}
}

// An old content whose replace never reached its batch's Commit (the
// request failed first) goes once a sync has covered the replace, at the
// next exchange.
func TestAbandonedReplaceLeavesNoOldContent(t *testing.T) {
	d, _ := countingSyncs(t)
	d.journaled = false
	ctx := t.Context()
	putOld(t, d, "/t/a", "/t/b")
	bctx, _ := driver.WithBatch(ctx)
	if err := d.PutContent(bctx, "/t/a", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if kept := tempContents(t, d); !slices.Equal(kept, []string{"old"}) {
		t.Fatalf("the temporary directory holds %q, want the old content", kept)
	}
	if err := d.PutContent(ctx, "/t/b", []byte("new")); err != nil {
		t.Fatal(err)
	}
	wantNoTemps(t, d)
}

// A Commit retried after a failure waits for a sync begun after the retry:
// the changes made since the failure are covered too, and their old
// contents stay until they are.
func TestRetriedCommitCoversLaterChanges(t *testing.T) {
	d, syncs := countingSyncs(t)
	d.journaled = false
	ctx := t.Context()
	putOld(t, d, "/t/a", "/t/b")
	bctx, batch := driver.WithBatch(ctx)
	if err := d.PutContent(bctx, "/t/a", []byte("new")); err != nil {
		t.Fatal(err)
	}
	// The machine is crowded: the Commit fsyncs, which fail.
	eio := errors.New("EIO")
	d.barrier.crowded = func() bool { return true }
	d.fsync = func(string, int) error { return eio }
	if err := batch.Commit(); !errors.Is(err, eio) {
		t.Fatalf("Commit: %v, want EIO", err)
	}
	d.barrier.crowded = func() bool { return false }
	d.fsync = fsyncPath
	// Another request's sync covers the first Commit's ticket.
	if err := d.barrier.waitFor(d.barrier.ticket(), nil); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(bctx, "/t/b", []byte("new")); err != nil {
		t.Fatal(err)
	}
	before := syncs()
	if err := batch.Commit(); err != nil {
		t.Fatal(err)
	}
	if syncs() == before {
		t.Fatal("the retried Commit ran no sync for the change made after the failure")
	}
	wantNoTemps(t, d)
}

// putOld writes "old" at each path, durably.
func putOld(t *testing.T, d *Driver, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := d.PutContent(t.Context(), p, []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
}

// A Move over a name replaces it as a write does: the source goes at
// once, and without a journal the old content waits in the temporary
// directory until the move is durable.
func TestMoveOverANameKeepsTheOldUntilDurable(t *testing.T) {
	for _, journal := range []bool{false, true} {
		t.Run(fmt.Sprintf("journaled=%v", journal), func(t *testing.T) {
			d, _ := countingSyncs(t)
			d.journaled = journal
			ctx := t.Context()
			for p, content := range map[string]string{"/blob": "stored", "/up/data": "uploaded"} {
				if err := d.PutContent(ctx, p, []byte(content)); err != nil {
					t.Fatal(err)
				}
			}
			bctx, batch := driver.WithBatch(ctx)
			if err := d.Move(bctx, "/up/data", "/blob"); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Stat(ctx, "/up/data"); !errors.As(err, new(driver.PathNotFoundError)) {
				t.Fatalf("the source after Move: %v", err)
			}
			if b, err := d.GetContent(ctx, "/blob"); err != nil || string(b) != "uploaded" {
				t.Fatalf("GetContent = %q, %v", b, err)
			}
			want := []string{"stored"}
			if journal {
				want = nil
			}
			if kept := tempContents(t, d); !slices.Equal(kept, want) {
				t.Fatalf("before Commit the temporary directory holds %q, want %q", kept, want)
			}
			if err := batch.Commit(); err != nil {
				t.Fatal(err)
			}
			wantNoTemps(t, d)
		})
	}
}

// tempContents returns the contents of the temporary directory's files,
// sorted.
func tempContents(t *testing.T, d *Driver) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.root, tempDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(d.root, tempDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out
}

func wantNoTemps(t *testing.T, d *Driver) {
	t.Helper()
	if left, _ := os.ReadDir(filepath.Join(d.root, tempDir)); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// A directory's name is durable once a sync that began after its making
// has finished, and none since failed: a failed sync's lost writes are not
// made by the next one, so its fresh directories stay fresh.
func TestFailedSyncLeavesDirectoriesFresh(t *testing.T) {
	d, _ := countingSyncs(t)
	dir := filepath.Join(d.root, "f", "g")
	if err := d.mkdirs(dir); err != nil {
		t.Fatal(err)
	}
	eio := errors.New("EIO")
	d.barrier.sync = func() error { return eio }
	if err := d.barrier.waitFor(d.barrier.ticket(), nil); !errors.Is(err, eio) {
		t.Fatalf("waitFor: %v, want the sync's failure", err)
	}
	d.barrier.sync = func() error { return nil }
	if err := d.barrier.waitFor(d.barrier.ticket(), nil); err != nil {
		t.Fatal(err)
	}
	paths, _ := d.fresh.chain(dir, d, nil, nil)
	if want := []string{dir, filepath.Dir(dir), d.root}; !slices.Equal(paths, want) {
		t.Fatalf("chain = %q, want %q: the failed sync's directories are fresh", paths, want)
	}
}

// journaled tells ext4 without a journal (whose syncfs flushes the disk's
// cache before its last metadata writes) from the file systems that commit
// through a journal or copy-on-write.
func TestJournaledFileSystems(t *testing.T) {
	dir := t.TempDir()
	var fst unix.Statfs_t
	if err := unix.Statfs(dir, &fst); err != nil {
		t.Fatal(err)
	}
	journals, _ := os.ReadDir("/proc/fs/jbd2")
	switch {
	case fst.Type == unix.EXT4_SUPER_MAGIC && len(journals) == 0:
		if journaled(dir) {
			t.Fatal("ext4 counted as journaled while no ext4 file system has a journal")
		}
	case fst.Type == unix.XFS_SUPER_MAGIC || fst.Type == unix.TMPFS_MAGIC || fst.Type == unix.BTRFS_SUPER_MAGIC:
		if !journaled(dir) {
			t.Fatalf("file system %#x counted as without a journal", fst.Type)
		}
	default:
		t.Skipf("file system type %#x", fst.Type)
	}
}

// Where a sync's flush may come before its last writes, a change is
// durable only once the sync after its own has finished: from idle, a
// wait takes two syncs, and a caller arriving while they run rides them.
func TestBarrierLagsWithoutAJournal(t *testing.T) {
	d, syncs := countingSyncs(t)
	d.barrier.lag = 1
	tk := d.barrier.ticket()
	if err := d.barrier.waitFor(tk, nil); err != nil {
		t.Fatal(err)
	}
	if n := syncs(); n != 2 {
		t.Fatalf("%d syncs for one wait, want 2", n)
	}
	if d.barrier.covered(tk + 1) {
		t.Fatal("a later ticket is covered by the sync that only flushed the one before")
	}
	if !d.barrier.covered(tk) {
		t.Fatal("the ticket is not covered after the sync after it")
	}
}

// A removal persisted while the sync hangs fsyncs the nearest folder that
// is there when the fallback runs: the removal of its entries, and of the
// folders pruned below it, is then durable. The folder named may be
// pruned between the call and the sync (by another request, or the
// collector), and no folder above the root is touched.
func TestPersistRemovalsOutlivesAHangingSync(t *testing.T) {
	d, fsynced := stuckSyncs(t)
	ctx := t.Context()
	within(t, "PutContent", func() error {
		for _, p := range []string{"/r/_tags/t", "/r/_tags/kept", "/r/x/_refs/s/a", "/r/x/keep"} {
			if err := d.PutContent(ctx, p, []byte("x")); err != nil {
				return err
			}
		}
		return nil
	})
	fsynced()
	if err := d.Delete(ctx, "/r/_tags/t"); err != nil {
		t.Fatal(err)
	}
	within(t, "PersistRemovals", func() error {
		bctx, batch := driver.WithBatch(ctx)
		for _, dir := range []string{"/r/_tags", "/r/x/_refs/s"} {
			if err := d.PersistRemovals(bctx, dir); err != nil {
				return err
			}
		}
		// Pruned after the call, before the sync: /r/x/_refs/s and /r/x/_refs go.
		if err := d.Delete(ctx, "/r/x/_refs/s/a"); err != nil {
			return err
		}
		return batch.Commit()
	})
	got := fsynced()
	for _, want := range []string{"/r/_tags", "/r/x"} {
		if !slices.Contains(got, want) {
			t.Fatalf("fsynced %q: %s missing", got, want)
		}
	}
	if slices.Contains(got, "/r") {
		t.Fatalf("fsynced %q: /r is above what it takes", got)
	}
	// The root's own removals: the root, nothing above it.
	fsynced()
	within(t, "PersistRemovals of the root", func() error { return d.PersistRemovals(ctx, "/") })
	if got := fsynced(); len(got) != 1 {
		t.Fatalf("persisting the root's removals fsynced %q", got)
	}
}

// Where syncfs makes nothing durable (FUSE but virtiofs, network file
// systems), every write is made durable by fsyncs of its own files and
// folders, never by the shared sync.
func TestNoSharedSyncWhereSyncfsWritesNothing(t *testing.T) {
	defer func(f func(string) int64) { barrierFSType = f }(barrierFSType)
	barrierFSType = func(string) int64 { return unix.FUSE_SUPER_MAGIC }
	d := settled(t)
	syncs := 0
	d.barrier.sync = func() error { syncs++; return nil }
	fsynced := recordFsyncs(d)
	if err := d.PutContent(t.Context(), "/a/b", []byte("content")); err != nil {
		t.Fatal(err)
	}
	if got := fsynced(); syncs != 0 || len(got) == 0 {
		t.Fatalf("%d shared syncs, fsyncs of %q; want fsyncs only", syncs, got)
	}
	if !syncfsWrites(unix.EXT4_SUPER_MAGIC) || !syncfsWrites(unix.XFS_SUPER_MAGIC) || syncfsWrites(unix.NFS_SUPER_MAGIC) {
		t.Error("syncfsWrites misjudges ext4, XFS or NFS")
	}
}
