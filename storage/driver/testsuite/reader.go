package testsuite

import (
	"bytes"
	"io"

	"github.com/lading-registry/lading/storage/driver"
)

func testReaderOffsets(e *env) {
	const size = 1000
	content := pattern(1).bytes(0, size)
	p := e.put("obj", content)
	for _, off := range []int64{0, 1, size / 2, size - 1} {
		r, err := e.d.Reader(e.ctx, p, off)
		if err != nil {
			e.t.Errorf("Reader at %d: %v", off, err)
			continue
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, content[off:]) {
			e.t.Errorf("Reader at %d read %d bytes, %v; want the %d from there", off, len(got), err, size-off)
		}
	}

	// At exactly the size: a reader whose first Read is the end.
	r, err := e.d.Reader(e.ctx, p, size)
	if err != nil {
		e.t.Fatalf("Reader at the size: %v", err)
	}
	n, err := r.Read(make([]byte, 16))
	r.Close()
	if n != 0 || err != io.EOF {
		e.t.Errorf("Read at the size = %d, %v; want 0, io.EOF", n, err)
	}

	for _, off := range []int64{size + 1, 1 << 40, -1} {
		if r, err := e.d.Reader(e.ctx, p, off); !driver.IsInvalidOffset(err) {
			if err == nil {
				r.Close()
			}
			e.t.Errorf("Reader at %d: %v, want InvalidOffsetError", off, err)
		}
	}

	// An empty object has one valid offset.
	empty := e.put("empty", nil)
	if r, err := e.d.Reader(e.ctx, empty, 0); err != nil {
		e.t.Errorf("Reader of an empty object: %v", err)
	} else {
		if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			e.t.Errorf("Read of an empty object = %d, %v; want 0, io.EOF", n, err)
		}
		r.Close()
	}
}

func testReaderMissing(e *env) {
	_, err := e.d.Reader(e.ctx, e.path("missing"), 0)
	e.wantNotFound("Reader of a missing path", err)
	e.put("dir/child", []byte("x"))
	_, err = e.d.Reader(e.ctx, e.path("dir"), 0)
	e.wantNotFound("Reader of a directory", err)
}
