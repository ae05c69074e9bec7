package testsuite

import (
	"bytes"
	"errors"
	"io"

	"github.com/lading-registry/lading/storage/driver"
)

func testWriterAppendReopened(e *env) {
	p := e.path("upload/data")
	w := e.writer(p, false)
	io.WriteString(w, "abc")
	if err := w.Close(); err != nil {
		e.t.Fatal(err)
	}
	// Each reopening continues where the last writer closed.
	for _, piece := range []string{"def", "", "ghij"} {
		w := e.writer(p, true)
		before := w.Size()
		if _, err := io.WriteString(w, piece); err != nil {
			e.t.Fatal(err)
		}
		if w.Size() != before+int64(len(piece)) {
			e.t.Errorf("Size after writing %d bytes at %d = %d", len(piece), before, w.Size())
		}
		if err := w.Close(); err != nil {
			e.t.Fatal(err)
		}
	}
	w = e.writer(p, true)
	if w.Size() != 10 {
		e.t.Errorf("Size after three writers = %d, want 10", w.Size())
	}
	if err := w.Commit(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	w.Close()
	e.wantContent(p, []byte("abcdefghij"))
}

// A writer closed with nothing written leaves an object that later
// writers go on from, in small pieces as in large.
func testWriterAppendAfterEmpty(e *env) {
	p := e.path("upload/data")
	for i, piece := range []string{"", "abc", "def"} {
		w := e.writer(p, i > 0)
		if _, err := io.WriteString(w, piece); err != nil {
			e.t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			e.t.Fatalf("Close after %q: %v", piece, err)
		}
	}
	w := e.writer(p, true)
	if err := w.Commit(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	w.Close()
	e.wantContent(p, []byte("abcdef"))
}

func testWriterAppendNothing(e *env) {
	w, err := e.d.Writer(e.ctx, e.path("missing"), true)
	if err == nil {
		w.Cancel(e.ctx)
	}
	e.wantNotFound("Writer(append) of a missing path", err)
}

func testWriterReplaces(e *env) {
	p := e.put("obj", []byte("a long earlier content"))
	e.write(p, false, "new")
	e.wantContent(p, []byte("new"))
}

func testWriterZeroBytes(e *env) {
	p := e.path("empty")
	e.write(p, false)
	e.wantContent(p, nil)
	fi, err := e.d.Stat(e.ctx, p)
	if err != nil || fi.Size != 0 || fi.IsDir {
		e.t.Errorf("Stat of a zero-byte object = %+v, %v", fi, err)
	}
	e.write(p, true)
	e.wantContent(p, nil)
}

func testWriterCancel(e *env) {
	p := e.path("upload/data")
	w := e.writer(p, false)
	io.WriteString(w, "abc")
	if err := w.Cancel(e.ctx); err != nil {
		e.t.Fatalf("Cancel: %v", err)
	}
	w.Close()
	e.wantGone(p)
	e.wantGone(e.path("upload"))

	// Cancel discards earlier writers' data too.
	e.write(p, false, "abc")
	w = e.writer(p, true)
	io.WriteString(w, "def")
	if err := w.Cancel(e.ctx); err != nil {
		e.t.Fatalf("Cancel after reopening: %v", err)
	}
	w.Close()
	e.wantGone(e.path("upload"))
}

func testWriterClosed(e *env) {
	p := e.path("obj")
	w := e.writer(p, false)
	io.WriteString(w, "abc")
	if err := w.Close(); err != nil {
		e.t.Fatal(err)
	}
	if _, err := io.WriteString(w, "def"); !errors.Is(err, driver.ErrWriterClosed) {
		e.t.Errorf("Write after Close: %v, want %v", err, driver.ErrWriterClosed)
	}
}

// testWriterFreshHidesCommitted: once a writer starts afresh over committed
// bytes, no reader of the path finds those bytes, before or after the new
// writer commits.
func testWriterFreshHidesCommitted(e *env) {
	p := e.path("fresh")
	e.write(p, false, "the old committed bytes")
	w := e.writer(p, false)
	if _, err := io.WriteString(w, "new"); err != nil {
		e.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		e.t.Fatal(err)
	}
	if rc, err := e.d.Reader(e.ctx, p, 0); err == nil {
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.HasPrefix([]byte("new"), got) {
			e.t.Fatalf("a reader of a path written afresh found %q", got)
		}
	}
	e.write(p, true, " bytes")
	e.wantContent(p, []byte("new bytes"))
}
