package testsuite

import (
	"errors"
	"time"

	"github.com/lading-registry/lading/storage/driver"
)

// testBatch checks what a caller of driver.WithBatch relies on: every
// change is visible as soon as its call returns, in the order made, and
// Commit succeeds once for all of them and again for an empty batch.
func testBatch(e *env) {
	ctx, batch := driver.WithBatch(e.ctx)
	e.put("src", []byte("blob"))
	steps := []struct {
		what string
		do   func() error
		path string
		want []byte
	}{
		{"PutContent", func() error { return e.d.PutContent(ctx, e.path("a/put"), []byte("put")) }, "a/put", []byte("put")},
		{"PutContent empty", func() error { return e.d.PutContent(ctx, e.path("a/link"), nil) }, "a/link", []byte{}},
		{"Create", func() error { return e.d.Create(ctx, e.path("b/lease"), []byte("lease")) }, "b/lease", []byte("lease")},
		{"Move", func() error { return e.d.Move(ctx, e.path("src"), e.path("c/moved")) }, "c/moved", []byte("blob")},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			e.t.Fatalf("%s under a batch: %v", s.what, err)
		}
		e.wantContent(e.path(s.path), s.want)
	}
	if err := e.d.Create(ctx, e.path("b/lease"), []byte("other")); !errors.Is(err, driver.ErrExists) {
		e.t.Errorf("Create of a taken path under a batch = %v, want ErrExists", err)
	}
	if err := batch.Commit(); err != nil {
		e.t.Fatalf("Commit: %v", err)
	}
	if err := batch.Commit(); err != nil {
		e.t.Fatalf("Commit of an emptied batch: %v", err)
	}
	e.wantGone(e.path("src"))
}

// testEmptyContent checks the markers the registry writes most: an empty
// object replaces content whole, and writing one again where one is keeps
// it but counts as a write (the collector reads recency from ModTime).
func testEmptyContent(e *env) {
	p := e.put("obj", []byte("content"))
	e.put("obj", nil)
	e.wantContent(p, []byte{})
	before, err := e.d.Stat(e.ctx, p)
	if err != nil || before.Size != 0 {
		e.t.Fatalf("Stat of an empty object = %+v, %v", before, err)
	}
	// Object stores keep whole seconds.
	time.Sleep(1100 * time.Millisecond)
	e.put("obj", nil)
	after, err := e.d.Stat(e.ctx, p)
	if err != nil || after.Size != 0 {
		e.t.Fatalf("Stat of an empty object written again = %+v, %v", after, err)
	}
	if !after.ModTime.After(before.ModTime) {
		e.t.Errorf("ModTime %v did not move on after a second write (first %v)", after.ModTime, before.ModTime)
	}
	if err := e.d.PutState(e.ctx, e.path("state"), nil); err != nil {
		e.t.Fatal(err)
	}
	e.wantContent(e.path("state"), []byte{})
}

// testStage checks driver.Stage: staged content stays invisible until
// published, then reads as PutContent's would; discarded content never
// appears and leaves nothing behind.
func testStage(e *env) {
	for _, content := range [][]byte{[]byte("staged"), {}} {
		p := e.path("a/staged")
		s, err := driver.Stage(e.ctx, e.d, p, content)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.d.Stat(e.ctx, p); !driver.IsNotFound(err) {
			e.t.Fatalf("staged %d bytes visible before Publish: %v", len(content), err)
		}
		if err := s.Publish(e.ctx); err != nil {
			e.t.Fatal(err)
		}
		e.wantContent(p, content)
		if err := e.d.Delete(e.ctx, p); err != nil {
			e.t.Fatal(err)
		}
	}
	s, err := driver.Stage(e.ctx, e.d, e.path("b/discarded"), []byte("never"))
	if err != nil {
		e.t.Fatal(err)
	}
	s.Discard()
	e.wantGone(e.path("b"))
}

// testRemoveObjectIf checks driver.RemoveObjectIf: an object goes only
// while it holds the content named.
func testRemoveObjectIf(e *env) {
	p := e.put("tag", []byte("sha256:old"))
	if removed, err := driver.RemoveObjectIf(e.ctx, e.d, p, []byte("sha256:other")); err != nil || removed {
		e.t.Fatalf("RemoveObjectIf of other content = %v, %v", removed, err)
	}
	e.wantContent(p, []byte("sha256:old"))
	if removed, err := driver.RemoveObjectIf(e.ctx, e.d, p, []byte("sha256:old")); err != nil || !removed {
		e.t.Fatalf("RemoveObjectIf of its content = %v, %v", removed, err)
	}
	e.wantGone(p)
	if removed, err := driver.RemoveObjectIf(e.ctx, e.d, p, []byte("sha256:old")); err != nil || removed {
		e.t.Fatalf("RemoveObjectIf of nothing = %v, %v", removed, err)
	}
}

// testReplaceObjectIf checks driver.ReplaceObjectIf: an object is written
// over only while it holds the content named, and nothing is created.
func testReplaceObjectIf(e *env) {
	p := e.put("lease", []byte("old"))
	if replaced, err := driver.ReplaceObjectIf(e.ctx, e.d, p, []byte("other"), []byte("new")); err != nil || replaced {
		e.t.Fatalf("ReplaceObjectIf of other content = %v, %v", replaced, err)
	}
	e.wantContent(p, []byte("old"))
	if replaced, err := driver.ReplaceObjectIf(e.ctx, e.d, p, []byte("old"), []byte("new")); err != nil || !replaced {
		e.t.Fatalf("ReplaceObjectIf of its content = %v, %v", replaced, err)
	}
	e.wantContent(p, []byte("new"))
	missing := e.path("missing")
	if replaced, err := driver.ReplaceObjectIf(e.ctx, e.d, missing, nil, []byte("new")); err != nil || replaced {
		e.t.Fatalf("ReplaceObjectIf of nothing = %v, %v", replaced, err)
	}
	e.wantGone(missing)
}

// testObjectOps checks driver.StatObject and driver.RemoveObject, which a
// driver may serve more cheaply than Stat and Delete for plain objects.
func testObjectOps(e *env) {
	p := e.put("a/obj", []byte("object"))
	fi, err := driver.StatObject(e.ctx, e.d, p)
	if err != nil || fi.Size != 6 || fi.IsDir {
		e.t.Fatalf("StatObject = %+v, %v", fi, err)
	}
	_, err = driver.StatObject(e.ctx, e.d, e.path("a"))
	e.wantNotFound("StatObject of a directory", err)
	_, err = driver.StatObject(e.ctx, e.d, e.path("missing"))
	e.wantNotFound("StatObject of a missing path", err)
	if err := driver.RemoveObject(e.ctx, e.d, p); err != nil {
		e.t.Fatal(err)
	}
	e.wantGone(e.path("a"))
	if err := driver.RemoveObject(e.ctx, e.d, p); err != nil {
		e.t.Fatalf("RemoveObject of a missing object: %v", err)
	}
}
