package filesystem_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lading-registry/lading/internal/testenv"
	"github.com/lading-registry/lading/storage/driver"
	"github.com/lading-registry/lading/storage/driver/filesystem"
	"github.com/lading-registry/lading/storage/driver/testsuite"
	"golang.org/x/sys/unix"
)

func newDriver(t testing.TB) (*filesystem.Driver, string) {
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return d, root
}

// The suite runs with every way of making temporary files that this
// machine has: unnamed (O_TMPFILE) as on the file systems Lading is run on,
// and named, as where they are missing.
func TestConformance(t *testing.T) {
	for _, way := range filesystem.TempWays {
		t.Run(way, func(t *testing.T) {
			if d, _ := newDriver(t); !filesystem.UseTemps(d, way) {
				t.Skipf("temporary files cannot be %s here", way)
			}
			testsuite.Run(t, func(t *testing.T) driver.Driver {
				d, root := newDriver(t)
				filesystem.UseTemps(d, way)
				// Runs after the suite's own cleanup: the root must be as new.
				t.Cleanup(func() { wantPristine(t, root) })
				return d
			})
		})
	}
}

// Temporary files are unnamed on the usual Linux file systems, so that
// the suite's unnamed passes are not the named one again.
func TestTempsAreUnnamedOnLinux(t *testing.T) {
	d, root := newDriver(t)
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC, unix.TMPFS_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC:
	default:
		t.Skipf("file system type %#x", st.Type)
	}
	if !filesystem.UseTemps(d, "unnamed-proc") {
		t.Fatal("temporary files are named on a file system with O_TMPFILE")
	}
}

// On ext4 without a journal the root asks for its folders to be spread
// (spreadFolders), so a push's inodes stay clear of a neighbour's deletes.
func TestRootSpreadsItsFoldersWithoutAJournal(t *testing.T) {
	d, root := newDriver(t)
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.EXT4_SUPER_MAGIC || d.Journaled() {
		t.Skipf("file system type %#x, journaled %v", st.Type, d.Journaled())
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatal(err)
	}
	if flags&0x00020000 == 0 { // FS_TOPDIR_FL
		t.Fatalf("the root's flags are %#x, without FS_TOPDIR_FL", flags)
	}
}

// A root the driver makes is closed to other users; one that exists keeps
// its operator's mode.
func TestRootMadePrivate(t *testing.T) {
	made := filepath.Join(t.TempDir(), "made", "root")
	if _, err := filesystem.New(made); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(made); err != nil || fi.Mode().Perm()&0o007 != 0 {
		t.Fatalf("a root made by the driver: %v, %v; other users may enter it", fi.Mode(), err)
	}
	given := t.TempDir()
	if err := os.Chmod(given, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := filesystem.New(given); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(given); fi.Mode().Perm() != 0o755 {
		t.Fatalf("an existing root's mode changed to %v", fi.Mode())
	}
}

// wantPristine checks that root holds nothing but an empty temporary
// directory: no temporary file outlived its call, no directory its objects.
func wantPristine(t *testing.T, root string) {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "#tmp" {
			t.Errorf("left in the root: %s", e.Name())
		}
	}
	temps, err := os.ReadDir(filepath.Join(root, "#tmp"))
	if err != nil || len(temps) > 0 {
		t.Errorf("temporary directory holds %d entries (%v)", len(temps), err)
	}
}

// The reader must be the file itself, so net/http reaches sendfile(2).
func TestReaderIsTheFile(t *testing.T) {
	d, _ := newDriver(t)
	ctx := t.Context()
	if err := d.PutContent(ctx, "/blob", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	for _, drv := range []driver.Driver{d, driver.Instrument(d, nil), driver.Instrument(d, func(string, time.Duration, error) {})} {
		r, err := drv.Reader(ctx, "/blob", 4)
		if err != nil {
			t.Fatal(err)
		}
		f, ok := r.(*os.File)
		if !ok {
			t.Fatalf("Reader returned %T, want *os.File", r)
		}
		if pos, _ := f.Seek(0, io.SeekCurrent); pos != 4 {
			t.Errorf("file positioned at %d, want 4", pos)
		}
		r.Close()
	}
}

// Nothing outside the path charset is ever shown: not the temporary
// directory, not stray files an operator left in the root.
func TestInvalidNamesAreInvisible(t *testing.T) {
	d, root := newDriver(t)
	ctx := t.Context()
	for _, junk := range []string{"#tmp/pending", "a b", "dir/x y", ".hidden-is-valid"} {
		p := filepath.Join(root, junk)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.PutContent(ctx, "/dir/obj", []byte("x")); err != nil {
		t.Fatal(err)
	}
	list, err := d.List(ctx, "/")
	if want := []string{"/.hidden-is-valid", "/dir"}; err != nil || !slices.Equal(list, want) {
		t.Errorf("List(/) = %q, %v; want %q", list, err, want)
	}
	var walked []string
	d.Walk(ctx, "/", "", func(fi driver.FileInfo) error {
		walked = append(walked, fi.Path)
		return nil
	})
	if want := []string{"/.hidden-is-valid", "/dir/obj"}; !slices.Equal(walked, want) {
		t.Errorf("Walk(/) = %q, want %q", walked, want)
	}
	if err := d.Delete(ctx, "/"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stat(ctx, "/"); !driver.IsNotFound(err) {
		t.Errorf("Stat of an emptied root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "#tmp")); err != nil {
		t.Errorf("Delete(/) took the temporary directory: %v", err)
	}
}

// The driver checks paths itself: on a file system a bad one escapes the root.
func TestPathsCannotLeaveTheRoot(t *testing.T) {
	d, root := newDriver(t)
	secret := filepath.Join(filepath.Dir(root), "secret")
	os.WriteFile(secret, []byte("s"), 0o644)
	defer os.Remove(secret)
	for _, p := range []string{"/../secret", "/a/../../secret", "/#tmp"} {
		if _, err := d.GetContent(t.Context(), p); !driver.IsInvalidPath(err) {
			t.Errorf("GetContent(%q): %v, want InvalidPathError", p, err)
		}
	}
}

// Creators and deleters share directories: a Delete prunes a directory
// that a concurrent PutContent, Create, Writer or Move has just made, and
// that one must make it again rather than fail.
func TestCreationRacesPruning(t *testing.T) {
	d, root := newDriver(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				p := fmt.Sprintf("/r/s/%d-%d", g, i)
				var err error
				switch i % 4 {
				case 0:
					err = d.PutContent(ctx, p, []byte("x"))
				case 1:
					err = d.Create(ctx, p, []byte("x"))
				case 2:
					var w driver.FileWriter
					if w, err = d.Writer(ctx, p, false); err == nil {
						err = w.Commit(ctx)
						w.Close()
					}
				case 3:
					src := fmt.Sprintf("/m/%d-%d", g, i)
					if err = d.PutContent(ctx, src, []byte("x")); err == nil {
						err = d.Move(ctx, src, p)
					}
				}
				if err != nil {
					t.Errorf("%s: %v", p, err)
					return
				}
				if err := d.Delete(ctx, p); err != nil {
					t.Errorf("Delete(%s): %v", p, err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Move keeps the folder it emptied, and only that one, empty.
	if err := os.Remove(filepath.Join(root, "m")); err != nil {
		t.Errorf("the folder moves emptied: %v", err)
	}
	wantPristine(t, root)
}

// A write replacing an object races a Delete of it, which prunes its
// folder: the write must land, in a folder made again, however the
// temporary file is made (an unnamed one linked and unlinked again cannot
// be linked a second time).
func TestReplaceRacesDelete(t *testing.T) {
	eachTempWay(t, func(t *testing.T, d *filesystem.Driver, root string) {
		ctx := t.Context()
		stop := make(chan struct{})
		var deleter sync.WaitGroup
		deleter.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					d.Delete(ctx, "/d/e/x")
				}
			}
		})
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 400 {
					var err error
					if i%2 == 0 {
						err = d.PutState(ctx, "/d/e/x", []byte{byte(g), byte(i)})
					} else {
						err = d.PutContent(ctx, "/d/e/x", []byte{byte(g), byte(i)})
					}
					if err != nil {
						t.Errorf("write %d: %v", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		deleter.Wait()
		d.Delete(ctx, "/d/e/x")
		wantPristine(t, root)
	})
}

// Every temporary file's descriptor is closed once its call returns,
// whichever way it went.
func TestTempsLeaveNoDescriptors(t *testing.T) {
	eachTempWay(t, func(t *testing.T, d *filesystem.Driver, root string) {
		ctx := t.Context()
		before := openDescriptors(t, root)
		d.PutContent(ctx, "/a/x", []byte("one"))
		d.PutContent(ctx, "/a/x", []byte("two")) // replaces
		d.PutState(ctx, "/a/s", []byte("state"))
		d.PutState(ctx, "/a/s", []byte("again"))
		d.Create(ctx, "/a/c", []byte("first"))
		if err := d.Create(ctx, "/a/c", []byte("second")); err != driver.ErrExists {
			t.Errorf("Create over a taken name: %v", err)
		}
		if err := d.PutContent(ctx, "/a", []byte("onto a folder")); err == nil {
			t.Error("PutContent onto a folder succeeded")
		}
		s1, _ := d.Stage(ctx, "/b/one", []byte("1"))
		s2, _ := d.Stage(ctx, "/b/two", []byte("2"))
		s3, _ := d.Stage(ctx, "/a", []byte("onto a folder"))
		s1.Publish(ctx)
		s1.Discard()
		s2.Discard()
		if err := s2.Publish(ctx); err == nil {
			t.Error("Publish after Discard succeeded")
		}
		s3.Publish(ctx)
		if got := openDescriptors(t, root); got != before {
			t.Errorf("%d descriptors open, %d before", got, before)
		}
	})
}

// eachTempWay runs test on a new driver for every way of making temporary
// files that this machine has.
func eachTempWay(t *testing.T, test func(t *testing.T, d *filesystem.Driver, root string)) {
	for _, way := range filesystem.TempWays {
		t.Run(way, func(t *testing.T) {
			d, root := newDriver(t)
			if !filesystem.UseTemps(d, way) {
				t.Skipf("temporary files cannot be %s here", way)
			}
			test(t, d, root)
		})
	}
}

// openDescriptors counts this process's descriptors of files below root
// (the root itself aside, which the driver keeps open to sync): other
// tests' goroutines may open and close descriptors of their own meanwhile.
func openDescriptors(t *testing.T, root string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, root+"/") {
			n++
		}
	}
	return n
}

// A crashed process's temporary files go at the next start; fresh ones
// may belong to another driver over the same root and stay.
func TestStaleTemporaryFilesAreRemoved(t *testing.T) {
	root := t.TempDir()
	tmp := filepath.Join(root, "#tmp")
	os.MkdirAll(tmp, 0o755)
	old, fresh := filepath.Join(tmp, "old"), filepath.Join(tmp, "fresh")
	os.WriteFile(old, nil, 0o644)
	os.WriteFile(fresh, nil, 0o644)
	longAgo := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, longAgo, longAgo)
	if _, err := filesystem.New(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale temporary file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file removed: %v", err)
	}
}

// GetContent reads small files in one read and larger ones after an fstat:
// every size around the boundary comes back whole.
func TestGetContentSizes(t *testing.T) {
	d, _ := newDriver(t)
	for _, n := range []int{0, 1, 4095, 4096, 4097, 8192, 100000} {
		want := bytes.Repeat([]byte{byte(n)}, n)
		for i := range want {
			want[i] += byte(i)
		}
		p := fmt.Sprintf("/sizes/%d", n)
		if err := d.PutContent(t.Context(), p, want); err != nil {
			t.Fatal(err)
		}
		if got, err := d.GetContent(t.Context(), p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("GetContent of %d bytes: %d bytes, %v", n, len(got), err)
		}
	}
	if _, err := d.GetContent(t.Context(), "/sizes"); !driver.IsNotFound(err) {
		t.Errorf("GetContent of a directory: %v, want not found", err)
	}
}

// A root with a file system mounted below it is refused at start, naming
// the mount point; a root that is a mount point itself is not. Mounting
// needs privileges, which CI has.
func TestRefusesMountsBelowTheRoot(t *testing.T) {
	root := t.TempDir()
	below := filepath.Join(root, "blobs")
	if err := os.Mkdir(below, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", below, "tmpfs", 0, "size=1m"); err != nil {
		testenv.Unavailable(t, "cannot mount here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(below, unix.MNT_DETACH) })
	if _, err := filesystem.New(root); err == nil || !strings.Contains(err.Error(), below) {
		t.Fatalf("New over a root with %s mounted below: %v", below, err)
	}
	if _, err := filesystem.New(filepath.Join(root, ".", "blobs")); err != nil {
		t.Fatalf("New over a mount point: %v", err)
	}
	// A folder of the root that is a symbolic link to another file system
	// is refused too; one to the root's own file system is not.
	linked := t.TempDir()
	if err := os.Symlink(below, filepath.Join(linked, "repositories")); err != nil {
		t.Fatal(err)
	}
	if _, err := filesystem.New(linked); err == nil || !strings.Contains(err.Error(), "repositories") {
		t.Fatalf("New over a root whose repositories lead to another file system: %v", err)
	}
	sameFS := t.TempDir()
	if err := os.Mkdir(filepath.Join(sameFS, "elsewhere"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(sameFS, "elsewhere"), filepath.Join(sameFS, "catalog")); err != nil {
		t.Fatal(err)
	}
	if _, err := filesystem.New(sameFS); err != nil {
		t.Fatalf("New over a root with a link within its file system: %v", err)
	}
}

// Retract takes back what a writer wrote since its open, and nothing when
// another writer has appended since: its bytes are not the first's to cut.
func TestRetract(t *testing.T) {
	ctx := t.Context()
	d, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/up/data", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	write := func(s string) driver.FileWriter {
		t.Helper()
		w, err := d.Writer(ctx, "/up/data", true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		return w
	}
	content := func() string {
		t.Helper()
		b, err := d.GetContent(ctx, "/up/data")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	w := write("-retracted")
	if err := driver.Retract(w); err != nil || w.Size() != 4 {
		t.Fatalf("Retract: %v, size %d", err, w.Size())
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write after Retract succeeded")
	}
	w.Close()
	if got := content(); got != "kept" {
		t.Fatalf("after Retract: %q", got)
	}
	w = write("-mine")
	other := write("-theirs")
	other.Close()
	if err := driver.Retract(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := content(); got != "kept-mine-theirs" {
		t.Fatalf("Retract after another writer appended: %q", got)
	}
}

// A writer's Commit refuses a file another writer changed meanwhile: its
// caller hashed only its own bytes.
func TestCommitRefusesAFileChangedByAnother(t *testing.T) {
	ctx := t.Context()
	d, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mine, err := d.Writer(ctx, "/up/data", false)
	if err != nil {
		t.Fatal(err)
	}
	mine.Write([]byte("mine"))
	theirs, err := d.Writer(ctx, "/up/data", true)
	if err != nil {
		t.Fatal(err)
	}
	theirs.Write([]byte("-theirs"))
	theirs.Close()
	if err := mine.Commit(ctx); err == nil {
		t.Fatal("Commit over another writer's bytes succeeded")
	}
	mine.Close()
}

// twoDrivers returns two drivers over one new root, as two servers would open it.
func twoDrivers(t *testing.T) (root string, a, b *filesystem.Driver) {
	t.Helper()
	root = t.TempDir()
	var err error
	if a, err = filesystem.New(root); err != nil {
		t.Fatal(err)
	}
	if b, err = filesystem.New(root); err != nil {
		t.Fatal(err)
	}
	return root, a, b
}

// One process serves a root at a time: a second claim fails, naming the
// holder, until the first is released; then it succeeds.
func TestClaim(t *testing.T) {
	root, a, b := twoDrivers(t)
	release, err := a.Claim()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim(); !errors.Is(err, filesystem.ErrClaimed) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("second claim: %v, want ErrClaimed naming process %d", err, os.Getpid())
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "#serving")); len(b) != 0 {
		t.Fatalf("a released claim still names a process: %q", b)
	}
	release, err = b.Claim()
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	release()
}

// The claim holds with its file deleted: a second server still finds the
// root taken.
func TestClaimOutlivesItsFile(t *testing.T) {
	root, a, b := twoDrivers(t)
	release, err := a.Claim()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "#serving")); err != nil {
		t.Fatal(err)
	}
	if r, err := b.Claim(); !errors.Is(err, filesystem.ErrClaimed) {
		if err == nil {
			r()
		}
		t.Fatalf("claim beside a holder whose file was deleted: %v, want ErrClaimed", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	release, err = b.Claim()
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	release()
}

// A lock file planted as a symbolic link is not followed: its target is
// left as it was.
func TestClaimFollowsNoLink(t *testing.T) {
	root, outside := t.TempDir(), filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "#serving")); err != nil {
		t.Fatal(err)
	}
	if release, err := d.Claim(); err == nil {
		release()
		t.Fatal("claimed through a symbolic link")
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Fatalf("the link's target was changed: %q", b)
	}
}

// A conditional removal of one object beside the removal of its sibling,
// which empties their folder, never takes the sibling that differs, nor
// hides it from readers.
func TestRemoveObjectIfLeavesWhatDiffers(t *testing.T) {
	d, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for range 200 {
		if err := d.PutContent(ctx, "/r/_tags/latest", []byte("sha256:e")); err != nil {
			t.Fatal(err)
		}
		if err := d.PutContent(ctx, "/r/_tags/v1", []byte("sha256:d")); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var missing atomic.Bool
		for _, tag := range []string{"v1", "latest"} {
			wg.Go(func() {
				if _, err := d.RemoveObjectIf(ctx, "/r/_tags/"+tag, []byte("sha256:d")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Go(func() {
			if _, err := d.GetContent(ctx, "/r/_tags/latest"); err != nil {
				missing.Store(true)
			}
		})
		wg.Wait()
		if got, err := d.GetContent(ctx, "/r/_tags/latest"); err != nil || string(got) != "sha256:e" || missing.Load() {
			t.Fatalf("the tag that differs: %q %v (missing to a reader: %v)", got, err, missing.Load())
		}
		if _, err := d.GetContent(ctx, "/r/_tags/v1"); !driver.IsNotFound(err) {
			t.Fatalf("the tag that matched: %v", err)
		}
		if err := d.Delete(ctx, "/r/_tags/latest"); err != nil {
			t.Fatal(err)
		}
	}
}

// CheckWritable tells a root where nothing can be written from one where
// files can be made.
func TestCheckWritable(t *testing.T) {
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CheckWritable(); err != nil {
		t.Fatalf("fresh root: %v", err)
	}
	// Where the temporary folder should be, a file: nothing can be made
	// in it, as in a folder another user owns.
	tmp := filepath.Join(root, "#tmp")
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckWritable(); err == nil {
		t.Fatal("a root where no file can be made passes")
	}
}

// A root this process may not write, without the temporary folder a
// writer leaves, still opens, for a server that only reads it; a writer
// is told by CheckWritable. The folder is made immutable, which refuses
// even root, as a mirror another account owns refuses anyone else.
func TestRootThatCannotBeWrittenOpensForReading(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "blobs", "a"), []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	const immutable = 0x00000010 // FS_IMMUTABLE_FL of linux/fs.h
	setFlags := func(on bool) error {
		fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		if err != nil {
			return err
		}
		if on {
			flags |= immutable
		} else {
			flags &^= immutable
		}
		return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags))
	}
	if err := setFlags(true); err != nil {
		t.Skipf("cannot make a folder immutable here: %v", err)
	}
	t.Cleanup(func() { setFlags(false) })
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatalf("a root that cannot be written does not open: %v", err)
	}
	if got, err := d.GetContent(t.Context(), "/blobs/a"); err != nil || string(got) != "content" {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := d.CheckWritable(); err == nil {
		t.Fatal("a root that cannot be written passes CheckWritable")
	}
}

// A root removed while serving is not made again by the next write, open
// to every user and empty: writes fail, with an error that names it and is
// no not-found, until the operator puts it back.
func TestRootGoneIsNotMadeAgain(t *testing.T) {
	root, d := storeWithALink(t)
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	err := d.PutContent(t.Context(), "/repositories/b/_layers/y", nil)
	if err == nil || driver.IsNotFound(err) || !strings.Contains(err.Error(), root) {
		t.Fatalf("write below a removed root: %v", err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the root was made again: %v", err)
	}
}

// An unmount leaves the mount point, an empty folder: writes must not go
// on into it.
func TestRootReplacedIsNotWrittenInto(t *testing.T) {
	root, d := storeWithALink(t)
	if err := os.Rename(root, root+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := d.RootPresent(); err == nil {
		t.Error("RootPresent with another folder at the root: nil")
	}
	for _, content := range [][]byte{nil, []byte("manifest")} { // a temporary file for the latter
		err := d.PutContent(t.Context(), "/repositories/b/_layers/y", content)
		if !driver.IsUnavailable(err) || !strings.Contains(err.Error(), "no longer the folder") {
			t.Fatalf("write of %q below a replaced root: %v, want unavailable", content, err)
		}
	}
	// Reads say the storage is out, not that nothing is there: a pull
	// answered "unknown" tells clients the image does not exist.
	ctx := t.Context()
	_, err := d.GetContent(ctx, "/repositories/a/_layers/x")
	if !driver.IsUnavailable(err) {
		t.Errorf("read below a replaced root: %v, want unavailable", err)
	}
	if _, err := d.Stat(ctx, "/repositories/a/_layers/x"); !driver.IsUnavailable(err) {
		t.Errorf("stat below a replaced root: %v, want unavailable", err)
	}
	for _, dir := range []string{"/repositories/a/_layers", "/"} {
		err := d.Walk(ctx, dir, "", func(driver.FileInfo) error { return nil })
		if !driver.IsUnavailable(err) {
			t.Errorf("walk of %s below a replaced root: %v, want unavailable", dir, err)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the replacing folder was written into: %v", entries)
	}
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(root+".away", root); err != nil {
		t.Fatal(err)
	}
	if err := d.RootPresent(); err != nil {
		t.Errorf("RootPresent with the root back: %v", err)
	}
	// With the root in place, what is missing is missing.
	if _, err := d.GetContent(ctx, "/repositories/a/_layers/none"); !driver.IsNotFound(err) {
		t.Errorf("read of a missing file: %v, want not found", err)
	}
	if err := d.Walk(ctx, "/repositories/none", "", func(driver.FileInfo) error { return nil }); err != nil {
		t.Errorf("walk of a missing folder: %v, want none", err)
	}
}

// storeWithALink is a driver over a root of its own holding one link.
func storeWithALink(t *testing.T) (root string, d *filesystem.Driver) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "store")
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(t.Context(), "/repositories/a/_layers/x", nil); err != nil {
		t.Fatal(err)
	}
	return root, d
}
