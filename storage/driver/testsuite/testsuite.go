// Package testsuite is the conformance suite every storage driver passes:
// a driver's test calls Run with a constructor. Each subtest works below its
// own unique prefix and checks on the way out that nothing is left there, so
// the suite can run against a bucket shared with other users.
//
// Where driver.Driver leaves room, the suite settles on what an object store
// does naturally: a directory exists only while objects lie below it, so
// Stat, List and Delete of an emptied one say not found; a directory is not
// an object to GetContent or Reader; and Walk below a path holding no
// objects calls nothing and returns nil.
package testsuite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"slices"
	"testing"

	"github.com/lading-registry/lading/storage/driver"
)

// Run runs the suite. newDriver is called once per subtest; the drivers it
// returns may share one backend.
func Run(t *testing.T, newDriver func(t *testing.T) driver.Driver) {
	var id [6]byte
	rand.Read(id[:])
	root := "/lading-suite-" + hex.EncodeToString(id[:])
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &env{t: t, d: newDriver(t), ctx: t.Context(), p: root + "/" + c.name}
			t.Cleanup(e.leaveNothingBehind)
			c.run(e)
		})
	}
}

var cases = []struct {
	name string
	run  func(*env)
}{
	{"content-small", testSmallContent},
	{"content-large", testLargeContent},
	{"put-state", testPutState},
	{"content-empty", testEmptyContent},
	{"batch", testBatch},
	{"stage", testStage},
	{"object-ops", testObjectOps},
	{"remove-object-if", testRemoveObjectIf},
	{"replace-object-if", testReplaceObjectIf},
	{"create", testCreate},
	{"create-concurrent", testCreateConcurrent},
	{"reader-offsets", testReaderOffsets},
	{"reader-missing", testReaderMissing},
	{"writer-append-reopened", testWriterAppendReopened},
	{"writer-append-after-empty", testWriterAppendAfterEmpty},
	{"writer-append-nothing", testWriterAppendNothing},
	{"writer-replaces", testWriterReplaces},
	{"writer-fresh-hides-committed", testWriterFreshHidesCommitted},
	{"writer-zero-bytes", testWriterZeroBytes},
	{"writer-cancel", testWriterCancel},
	{"writer-closed", testWriterClosed},
	{"stat", testStat},
	{"list", testList},
	{"walk-order", testWalkOrder},
	{"walk-resume", testWalkResume},
	{"walk-stop", testWalkStop},
	{"walk-while-deleting", testWalkWhileDeleting},
	{"move", testMove},
	{"delete", testDelete},
	{"delete-prunes-directories", testDeletePrunes},
	{"concurrent-readers", testConcurrentReaders},
	{"concurrent-writers", testConcurrentWriters},
	{"path-validation", testPathValidation},
	{"path-longest", testLongestPath},
}

// env is one subtest's driver and prefix; its helpers fail the test on any
// unexpected error so the cases read as the behaviour they check.
type env struct {
	t   *testing.T
	d   driver.Driver
	ctx context.Context
	p   string // every path of the subtest lies below it
}

// path returns the subtest's path for rel ("a/b" → "<prefix>/a/b").
func (e *env) path(rel string) string { return e.p + "/" + rel }

func (e *env) put(rel string, content []byte) string {
	e.t.Helper()
	p := e.path(rel)
	if err := e.d.PutContent(e.ctx, p, content); err != nil {
		e.t.Fatalf("PutContent(%s): %v", p, err)
	}
	return p
}

func (e *env) get(p string) []byte {
	e.t.Helper()
	b, err := e.d.GetContent(e.ctx, p)
	if err != nil {
		e.t.Fatalf("GetContent(%s): %v", p, err)
	}
	return b
}

func (e *env) writer(p string, append bool) driver.FileWriter {
	e.t.Helper()
	w, err := e.d.Writer(e.ctx, p, append)
	if err != nil {
		e.t.Fatalf("Writer(%s, %v): %v", p, append, err)
	}
	return w
}

// write writes pieces through one writer and commits them.
func (e *env) write(p string, append bool, pieces ...string) {
	e.t.Helper()
	w := e.writer(p, append)
	for _, s := range pieces {
		if _, err := io.WriteString(w, s); err != nil {
			e.t.Fatalf("Write(%s): %v", p, err)
		}
	}
	if err := w.Commit(e.ctx); err != nil {
		e.t.Fatalf("Commit(%s): %v", p, err)
	}
	if err := w.Close(); err != nil {
		e.t.Fatalf("Close(%s): %v", p, err)
	}
}

func (e *env) walk(path, from string) []string {
	e.t.Helper()
	var paths []string
	err := e.d.Walk(e.ctx, path, from, func(fi driver.FileInfo) error {
		if fi.IsDir {
			e.t.Errorf("Walk(%s) visited directory %s", path, fi.Path)
		}
		paths = append(paths, fi.Path)
		return nil
	})
	if err != nil {
		e.t.Fatalf("Walk(%s, %q): %v", path, from, err)
	}
	return paths
}

func (e *env) wantContent(p string, want []byte) {
	e.t.Helper()
	if got := e.get(p); string(got) != string(want) {
		e.t.Errorf("content of %s = %q, want %q", p, clip(got), clip(want))
	}
}

func (e *env) wantNotFound(what string, err error) {
	e.t.Helper()
	if !driver.IsNotFound(err) {
		e.t.Errorf("%s: got %v, want PathNotFoundError", what, err)
	}
}

// wantGone checks that p is neither an object nor a directory.
func (e *env) wantGone(p string) {
	e.t.Helper()
	_, err := e.d.Stat(e.ctx, p)
	e.wantNotFound("Stat("+p+")", err)
	_, err = e.d.GetContent(e.ctx, p)
	e.wantNotFound("GetContent("+p+")", err)
	_, err = e.d.List(e.ctx, p)
	e.wantNotFound("List("+p+")", err)
	if left := e.walk(p, ""); len(left) > 0 {
		e.t.Errorf("Walk(%s) still finds %q", p, left)
	}
}

func (e *env) wantPaths(what string, got, want []string) {
	e.t.Helper()
	if !slices.Equal(got, want) {
		e.t.Errorf("%s =\n  %q\nwant\n  %q", what, got, want)
	}
}

// leaveNothingBehind removes the subtest's prefix and checks it is empty:
// on a shared bucket, anything left there is the suite's own litter.
func (e *env) leaveNothingBehind() {
	e.ctx = context.Background() // the test's context is done by now
	if err := e.d.Delete(e.ctx, e.p); err != nil && !driver.IsNotFound(err) {
		e.t.Errorf("cleanup: Delete(%s): %v", e.p, err)
	}
	e.wantGone(e.p)
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return append(b[:64:64], "..."...)
	}
	return b
}
