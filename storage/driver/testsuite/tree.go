package testsuite

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/lading-registry/lading/storage/driver"
)

// trickyNames sort differently by full path than by a recursive walk that
// visits each directory's entries in name order: '-' and '.' sort below '/',
// so "a-b" and "a.b" come before everything in "a/", and "a0" after it.
var trickyNames = []string{
	"A", "a-b", "a.b", "a/b", "a/b-c/d", "a/c/d", "a0", "a_", "ab",
	"b/-", "b/...", "b/_", "b/x/y/z",
}

// putTree stores the tricky names and returns their full paths in the
// order Walk must give them.
func (e *env) putTree() []string {
	var paths []string
	for _, n := range trickyNames {
		paths = append(paths, e.put("t/"+n, []byte(n)))
	}
	slices.Sort(paths)
	return paths
}

func testStat(e *env) {
	before := time.Now()
	p := e.put("dir/obj", []byte("12345"))
	fi, err := e.d.Stat(e.ctx, p)
	if err != nil || fi.Path != p || fi.Size != 5 || fi.IsDir {
		e.t.Errorf("Stat of an object = %+v, %v", fi, err)
	}
	// Clocks of remote stores drift; only absurd times are wrong.
	if fi.ModTime.Before(before.Add(-time.Hour)) || fi.ModTime.After(before.Add(time.Hour)) {
		e.t.Errorf("ModTime %v is far from now (%v)", fi.ModTime, before)
	}
	fi, err = e.d.Stat(e.ctx, e.path("dir"))
	if err != nil || fi.Path != e.path("dir") || !fi.IsDir {
		e.t.Errorf("Stat of a directory = %+v, %v", fi, err)
	}
	for _, rel := range []string{"missing", "dir/missing", "di", "dir/obj/below"} {
		_, err := e.d.Stat(e.ctx, e.path(rel))
		e.wantNotFound("Stat("+rel+")", err)
	}
}

func testList(e *env) {
	e.putTree()
	children, err := e.d.List(e.ctx, e.path("t"))
	if err != nil {
		e.t.Fatal(err)
	}
	want := []string{"A", "a", "a-b", "a.b", "a0", "a_", "ab", "b"}
	for i, w := range want {
		want[i] = e.path("t/" + w)
	}
	slices.Sort(want)
	e.wantPaths("List(t)", children, want)

	children, err = e.d.List(e.ctx, e.path("t/a"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.wantPaths("List(t/a)", children, []string{e.path("t/a/b"), e.path("t/a/b-c"), e.path("t/a/c")})

	for _, rel := range []string{"missing", "t/a/missing", "t/a-", "t/a/b"} {
		_, err := e.d.List(e.ctx, e.path(rel))
		e.wantNotFound("List("+rel+")", err)
	}
}

func testWalkOrder(e *env) {
	all := e.putTree()
	e.wantPaths("Walk(t)", e.walk(e.path("t"), ""), all)

	var below []string
	for _, p := range all {
		if strings.HasPrefix(p, e.path("t/a/")) {
			below = append(below, p)
		}
	}
	e.wantPaths("Walk(t/a)", e.walk(e.path("t/a"), ""), below)

	err := e.d.Walk(e.ctx, e.path("t"), "", func(fi driver.FileInfo) error {
		if want := int64(len(fi.Path) - len(e.path("t/"))); fi.Size != want {
			e.t.Errorf("Walk gave %s size %d, want %d", fi.Path, fi.Size, want)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}

	// Nothing below an object, a missing path or a near-miss prefix.
	for _, rel := range []string{"t/a/b", "missing", "t/a-"} {
		if got := e.walk(e.path(rel), ""); len(got) > 0 {
			e.t.Errorf("Walk(%s) = %q, want nothing", rel, got)
		}
	}
}

func testWalkResume(e *env) {
	all := e.putTree()
	froms := slices.Clone(all)
	for _, rel := range []string{
		"t", "t/a", "t/a/b-c", "t/b", "t/b/x", // directories
		"t/a/bb", "t/a-", "t/a/b-", "t/0", "t/zzz", "s", "u", // absent
	} {
		froms = append(froms, e.path(rel))
	}
	froms = append(froms, "/", e.p, "/zzzz")
	for _, from := range froms {
		var want []string
		for _, p := range all {
			if p > from {
				want = append(want, p)
			}
		}
		e.wantPaths("Walk(t) from "+from, e.walk(e.path("t"), from), want)
	}
}

func testWalkStop(e *env) {
	all := e.putTree()
	var seen []string
	err := e.d.Walk(e.ctx, e.path("t"), "", func(fi driver.FileInfo) error {
		seen = append(seen, fi.Path)
		if len(seen) == 3 {
			return driver.ErrStopWalk
		}
		return nil
	})
	if err != nil {
		e.t.Errorf("Walk ended by ErrStopWalk returned %v, want nil", err)
	}
	e.wantPaths("Walk stopped after 3", seen, all[:3])

	boom := errors.New("boom")
	err = e.d.Walk(e.ctx, e.path("t"), "", func(driver.FileInfo) error { return boom })
	if !errors.Is(err, boom) {
		e.t.Errorf("Walk returned %v, want the WalkFunc's error", err)
	}
}

// testWalkWhileDeleting is how garbage collection sweeps: delete what the
// walk hands over, while it goes on.
func testWalkWhileDeleting(e *env) {
	all := e.putTree()
	var seen []string
	err := e.d.Walk(e.ctx, e.path("t"), "", func(fi driver.FileInfo) error {
		seen = append(seen, fi.Path)
		return e.d.Delete(e.ctx, fi.Path)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.wantPaths("Walk while deleting", seen, all)
	e.wantGone(e.path("t"))
}

func testMove(e *env) {
	src := e.put("uploads/u1/data", []byte("moved"))
	dst := e.path("blobs/ab/abcd")
	if err := e.d.Move(e.ctx, src, dst); err != nil {
		e.t.Fatalf("Move to new directories: %v", err)
	}
	e.wantContent(dst, []byte("moved"))
	e.wantGone(src)
	// Its last object moved away: the folder may stay (a file system
	// keeps it for the next upload) but holds nothing.
	e.wantGone(e.path("uploads/u1"))
	if left := e.walk(e.path("uploads"), ""); len(left) > 0 {
		e.t.Errorf("Walk(uploads) after its last object moved finds %q", left)
	}

	// Onto an existing object: replaced.
	src = e.put("uploads/u2/data", []byte("newer"))
	if err := e.d.Move(e.ctx, src, dst); err != nil {
		e.t.Fatalf("Move onto an existing object: %v", err)
	}
	e.wantContent(dst, []byte("newer"))
	e.wantGone(src)

	err := e.d.Move(e.ctx, e.path("missing"), e.path("elsewhere"))
	e.wantNotFound("Move of a missing path", err)
	e.wantGone(e.path("elsewhere"))
}

func testDelete(e *env) {
	p := e.put("obj", []byte("x"))
	keep := e.put("obj-sibling", []byte("y"))
	if err := e.d.Delete(e.ctx, p); err != nil {
		e.t.Fatalf("Delete of an object: %v", err)
	}
	e.wantGone(p)
	e.wantContent(keep, []byte("y"))

	all := e.putTree()
	if err := e.d.Delete(e.ctx, e.path("t/a")); err != nil {
		e.t.Fatalf("Delete of a tree: %v", err)
	}
	e.wantGone(e.path("t/a"))
	var rest []string
	for _, p := range all {
		if !strings.HasPrefix(p, e.path("t/a/")) {
			rest = append(rest, p)
		}
	}
	// "t/a-b" and "t/a0" share the string prefix "t/a" but are not below it.
	e.wantPaths("Walk(t) after deleting t/a", e.walk(e.path("t"), ""), rest)

	if err := e.d.Delete(e.ctx, e.path("t")); err != nil {
		e.t.Fatalf("Delete of a tree: %v", err)
	}
	e.wantGone(e.path("t"))
	e.wantNotFound("Delete of a deleted tree", e.d.Delete(e.ctx, e.path("t")))
	e.wantNotFound("Delete of a missing path", e.d.Delete(e.ctx, e.path("missing")))
	e.wantNotFound("Delete of a near-miss prefix", e.d.Delete(e.ctx, e.path("obj-")))
}

// testDeletePrunes checks object-store directories: a directory is only the
// prefix of the objects below it, and goes with the last of them.
func testDeletePrunes(e *env) {
	p := e.put("x/y/z/obj", []byte("x"))
	keep := e.put("x/keep", []byte("k"))
	if err := e.d.Delete(e.ctx, p); err != nil {
		e.t.Fatal(err)
	}
	e.wantGone(e.path("x/y/z"))
	e.wantGone(e.path("x/y"))
	children, err := e.d.List(e.ctx, e.path("x"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.wantPaths("List(x) after deleting x/y/z/obj", children, []string{keep})

	// The emptied directories can be filled again at once.
	e.put("x/y/z/again", []byte("a"))
	e.wantContent(e.path("x/y/z/again"), []byte("a"))
}
